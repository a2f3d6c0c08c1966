"""Embeddings: one-hot, cosine similarity, nearest neighbours, PCA and the tiny word2vec,
against hand-computed values; the exercise checkers; and a trained-synonyms check that can fail."""
import math

import pytest
import torch

from diffusion_course import embeddings as emb
from diffusion_course import shapes, unet
from diffusion_course.exercises import embeddings as ex
from exercise_contract import ExerciseContract
from diffusion_course.text import Tokenizer


# ---- one-hot --------------------------------------------------------------------------------

def test_one_hot_by_hand():
    y = emb.one_hot(torch.tensor([2, 0, 2]), 4)
    assert y.dtype == torch.float32
    assert y.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]]
    assert emb.one_hot(3, 5).tolist() == [0, 0, 0, 1, 0]                  # a single id -> one vector
    assert emb.one_hot([[0, 1], [1, 1]], 2).shape == (2, 2, 2)            # any shape of ids gets a last axis


def test_one_hot_times_table_is_a_lookup():
    table = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))    # (V, D)
    ids = torch.tensor([4, 0, 6, 4])
    torch.testing.assert_close(emb.one_hot(ids, 7) @ table, table[ids])
    # different words' one-hot vectors never overlap: all dot products are 0, all cosines 0
    h = emb.one_hot(torch.arange(5), 5)
    torch.testing.assert_close(emb.cosine_similarity(h), torch.eye(5))


@pytest.mark.parametrize("ids, n, error, words", [
    (torch.tensor([0, 5]), 5, ValueError, "id 5 is outside"),
    (torch.tensor([-1]), 5, ValueError, "id -1 is outside"),
    (torch.tensor([0.0, 1.0]), 5, TypeError, "integer word ids"),
    (torch.tensor([True]), 5, TypeError, "integer word ids"),
    (torch.tensor([0]), 0, ValueError, "num_classes must be a positive integer"),
    (torch.tensor([0]), 2.0, ValueError, "num_classes must be a positive integer"),
])
def test_one_hot_bad_inputs(ids, n, error, words):
    with pytest.raises(error, match=words):
        emb.one_hot(ids, n)


# ---- cosine similarity ----------------------------------------------------------------------

def test_cosine_similarity_by_hand():
    cos = emb.cosine_similarity
    assert cos(torch.tensor([3.0, 4.0]), torch.tensor([4.0, 3.0])).item() == pytest.approx(24 / 25)
    assert cos(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])).item() == pytest.approx(0.0)
    assert cos(torch.tensor([1.0, 1.0]), torch.tensor([-2.0, -2.0])).item() == pytest.approx(-1.0)
    assert cos([1.0, 2.0, 2.0], [2.0, 4.0, 4.0]).item() == pytest.approx(1.0)   # length does not matter
    assert cos(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0])).item() == 0.0  # no direction: 0
    assert cos(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])).item() == pytest.approx(math.cos(math.pi / 4))


def test_cosine_similarity_matrix_matches_the_formula_entry_by_entry():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 6, generator=g), torch.randn(3, 6, generator=g) * 5
    sim = emb.cosine_similarity(a, b)
    assert sim.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            want = (a[i] * b[j]).sum() / (a[i].pow(2).sum().sqrt() * b[j].pow(2).sum().sqrt())
            assert sim[i, j].item() == pytest.approx(want.item(), abs=1e-6)
    square = emb.cosine_similarity(a)                                     # every row against every row
    torch.testing.assert_close(square, square.T)
    torch.testing.assert_close(square.diagonal(), torch.ones(4))
    torch.testing.assert_close(emb.cosine_similarity(a[0], b), sim[0])    # a vector against a table


@pytest.mark.parametrize("a, b, words", [
    (torch.zeros(3, 4), torch.zeros(2, 5), "same vector length"),
    (torch.zeros(2, 3, 4), None, r"one vector \(D,\) or a table"),
])
def test_cosine_similarity_bad_inputs(a, b, words):
    with pytest.raises(ValueError, match=words):
        emb.cosine_similarity(a, b)


# ---- nearest neighbours ---------------------------------------------------------------------

TABLE = torch.tensor([[1.0, 0.0],     # 0: east
                      [10.0, 1.0],    # 1: east, a bit north, and long
                      [0.0, 1.0],     # 2: north
                      [-1.0, 0.0],    # 3: west
                      [1.0, 1.0]])    # 4: north-east


def test_nearest_on_a_constructed_case():
    scores, idx = emb.nearest(torch.tensor([2.0, 0.0]), TABLE, k=3)
    assert idx.tolist() == [0, 1, 4]                                      # by angle, not by length
    assert scores[0].item() == pytest.approx(1.0)
    assert scores[1].item() == pytest.approx(10 / math.sqrt(101))
    assert scores[2].item() == pytest.approx(1 / math.sqrt(2))
    _, idx = emb.nearest(torch.tensor([-0.2, 3.0]), TABLE, k=5)          # north, a little west
    assert idx.tolist() == [2, 4, 3, 1, 0]                                # the whole table, best first


def test_nearest_excludes_the_query_itself_and_takes_batches():
    _, idx = emb.nearest(TABLE[4], TABLE, k=1)
    assert idx.tolist() == [4]                                            # a row is its own nearest neighbour
    _, idx = emb.nearest(TABLE[4], TABLE, k=1, exclude=4)
    assert idx.tolist() == [1]                                            # 40 degrees away beats 45
    scores, idx = emb.nearest(TABLE[[0, 2]], TABLE, k=1, exclude=[0, 2])  # one exclusion per query
    assert idx.tolist() == [[1], [4]]
    assert scores.shape == (2, 1)


@pytest.mark.parametrize("kwargs, words", [
    ({"k": 0}, "k must be an integer from 1 to 5"),
    ({"k": 6}, "k must be an integer from 1 to 5"),
    ({"k": 5, "exclude": 0}, "k must be an integer from 1 to 4"),
    ({"k": 1, "exclude": 9}, "row indices in 0..4"),
    ({"k": 1, "exclude": [0, 1, 2]}, "one row index or one per query"),
])
def test_nearest_bad_inputs(kwargs, words):
    with pytest.raises(ValueError, match=words):
        emb.nearest(torch.tensor([1.0, 0.0]), TABLE, **kwargs)
    with pytest.raises(ValueError, match=r"table of vectors \(N, D\)"):
        emb.nearest(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]), k=1)


# ---- PCA ------------------------------------------------------------------------------------

def test_pca_2d_recovers_a_known_plane():
    # points spread along u (a lot) and v (less) inside 5-D space, plus an offset
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g))
    u, v = q[:, 0], q[:, 1]
    s = torch.randn(50, generator=g)
    s, t = 3 * (s - s.mean()), torch.randn(50, generator=g)
    t = t - t.mean()
    t = t - (t @ s) / (s @ s) * s                                         # uncorrelated with s
    x = s[:, None] * u + t[:, None] * v + torch.tensor([1.0, -2, 0, 4, 5])
    xy = emb.pca_2d(x)
    assert xy.shape == (50, 2)
    torch.testing.assert_close(xy[:, 0].abs(), s.abs(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(xy[:, 1].abs(), t.abs(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(emb.pca_2d(x + 3), xy, atol=1e-4, rtol=1e-4)      # the mean does not matter
    torch.testing.assert_close(emb.pca_2d(-x), -xy, atol=1e-4, rtol=1e-4)        # same directions, same signs


@pytest.mark.parametrize("x", [torch.zeros(1, 4), torch.zeros(5, 1), torch.zeros(5)])
def test_pca_2d_bad_inputs(x):
    with pytest.raises(ValueError, match="at least 2 points"):
        emb.pca_2d(x)


# ---- the skip-gram pieces -------------------------------------------------------------------

def test_context_pairs_by_hand():
    pairs = emb.context_pairs([[5, 6, 7], [8]])
    assert sorted(map(tuple, pairs.tolist())) == [(5, 6), (5, 7), (6, 5), (6, 7), (7, 5), (7, 6)]
    pairs = emb.context_pairs([[5, 6, 7]], window=1)
    assert sorted(map(tuple, pairs.tolist())) == [(5, 6), (6, 5), (6, 7), (7, 6)]
    with pytest.raises(ValueError, match="window must be a positive integer"):
        emb.context_pairs([[1, 2]], window=0)
    with pytest.raises(ValueError, match="no word pairs"):
        emb.context_pairs([[1]])


def test_skipgram_loss_by_hand():
    model = emb.SkipGram(3, dim=2)
    with torch.no_grad():
        model.inp.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        model.out.weight.copy_(torch.tensor([[0.5, 0.0], [1.0, -1.0], [0.0, 1.0]]))
    center, context, negatives = torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[2], [0]])
    sig = lambda z: 1 / (1 + math.exp(-z))                                # noqa: E731
    # pair 0: word 0 with word 1: score 1; fake: word 2, score 0. pair 1: word 1 with 2: score 2; fake 0: 0
    want = (-math.log(sig(1.0)) - math.log(sig(-0.0)) - math.log(sig(2.0)) - math.log(sig(-0.0))) / 2
    assert emb.skipgram_loss(model, center, context, negatives).item() == pytest.approx(want, rel=1e-6)


def test_train_word_vectors_bad_inputs():
    with pytest.raises(ValueError, match="word id 7, outside 0..4"):
        emb.train_word_vectors([[0, 1, 7]], vocab_size=5, steps=1)
    with pytest.raises(ValueError, match="word id -1, outside 0..4"):
        emb.train_word_vectors([[0, -1]], vocab_size=5, steps=1)
    with pytest.raises(ValueError, match="negatives must be a positive integer"):
        emb.train_word_vectors([[0, 1]], vocab_size=5, negatives=0, steps=1)
    with pytest.raises(ValueError, match="per_scene must be a positive integer"):
        emb.caption_docs(3, per_scene=0)


def test_caption_docs_are_the_tokenized_captions_of_one_scene():
    tok = Tokenizer()
    docs, texts = emb.caption_docs(4, per_scene=3, seed=2, tokenizer=tok)
    assert len(docs) == len(texts) == 4 and all(len(t) == 3 for t in texts)
    for doc, captions in zip(docs, texts):
        assert tok.decode(doc)[0] == " ".join(captions)
    again, _ = emb.caption_docs(4, per_scene=3, seed=2, tokenizer=tok)
    assert all(torch.equal(a, b) for a, b in zip(docs, again))            # seeded


# ---- trained synonyms sit close together (and only when the data says so) ---------------------

def synonym_stats(vectors, tok):
    """For the 24 colour words: how often a word's most similar other colour word is a synonym,
    and the mean similarity to synonyms minus the mean similarity to the other colours' words."""
    groups = [shapes.SYNONYMS[c] for c in shapes.COLORS]
    words = [w for g in groups for w in g]
    gid = torch.tensor([i for i, g in enumerate(groups) for _ in g])
    sim = emb.cosine_similarity(vectors[[tok.index[w] for w in words]])  # (24, 24)
    same = (gid[:, None] == gid[None]) & ~torch.eye(len(words), dtype=torch.bool)
    other = gid[:, None] != gid[None]
    hit = (gid[sim.fill_diagonal_(-2).argmax(1)] == gid).float().mean().item()
    return hit, (sim[same].mean() - sim[other].mean()).item()


@pytest.fixture(scope="module")
def trained():
    """Word vectors from 3 captions per scene, and (the control) from 1 caption per scene."""
    tok = Tokenizer()
    out = {}
    for per_scene in (3, 1):
        docs, _ = emb.caption_docs(300, per_scene=per_scene, seed=0, tokenizer=tok)
        model, run = emb.train_word_vectors(docs, len(tok), steps=600, seed=0, device="cpu")
        out[per_scene] = (model, run, synonym_stats(model.vectors, tok))
    return out


def test_trained_synonyms_are_closer_than_other_colour_words(trained):
    model, run, (hit, gap) = trained[3]
    assert sum(run.losses[-50:]) / 50 < run.losses[0] - 1.0               # it learned something
    assert hit >= 0.9, f"only {hit:.0%} of colour words have a synonym as their nearest colour word"
    assert gap > 0.3, f"synonyms are only {gap:.2f} more similar than other colour words"


def test_without_several_captions_per_scene_colours_are_not_told_apart(trained):
    # The control: in single captions every colour word keeps exactly the same company, so the
    # check above fails. This shows it is a test that can fail, and why the docs matter.
    _, _, (hit, gap) = trained[1]
    assert hit < 0.5 and gap < 0.15, (hit, gap)


def test_training_is_repeatable():
    docs = [torch.tensor([2, 3, 4]), torch.tensor([4, 5, 2, 2])]
    a, _ = emb.train_word_vectors(docs, 6, dim=4, steps=20, seed=3, device="cpu")
    b, _ = emb.train_word_vectors(docs, 6, dim=4, steps=20, seed=3, device="cpu")
    assert torch.equal(a.vectors, b.vectors)
    assert a.config == {"vocab_size": 6, "dim": 4, "seed": 3}


# ---- the exercise checkers ------------------------------------------------------------------

CASES = {"one_hot": ex._one_hot_cases, "cosine_similarity": ex._cosine_cases,
         "nearest": ex._nearest_cases, "sinusoidal_embedding": ex._sinusoidal_cases}
CHECKERS = {"one_hot": ex.check_one_hot, "cosine_similarity": ex.check_cosine_similarity,
            "nearest": ex.check_nearest, "sinusoidal_embedding": ex.check_sinusoidal_embedding}
REFERENCES = {"one_hot": ex.one_hot, "cosine_similarity": ex.cosine_similarity,
              "nearest": ex.nearest, "sinusoidal_embedding": ex.sinusoidal_embedding}
ALTERNATIVES = {
    "one_hot": lambda ids, n: torch.eye(n)[ids],
    "cosine_similarity": lambda a, b: emb.cosine_similarity(a, b),
    "nearest": lambda q, t, k: emb.nearest(q, t, k)[1],
    "sinusoidal_embedding": lambda sigma, dim: unet.sinusoidal_embedding(sigma, dim),
}
MISTAKES = {
    "one_hot": lambda ids, n: torch.nn.functional.one_hot(ids, n),        # int64, not float
    "cosine_similarity": lambda a, b: a @ b.T,                            # a dot product: lengths count
    "nearest": lambda q, t, k: (t @ q).topk(k).indices,                   # same mistake
    "sinusoidal_embedding": lambda sigma, dim: ex.sinusoidal_embedding(sigma, dim).roll(dim // 2, 1),  # cos first
}


def test_sinusoidal_reference_is_the_unets():
    sigma = torch.tensor([0.002, 0.1, 1.0, 7.0, 80.0])
    for dim in (2, 8, 64):
        torch.testing.assert_close(ex.sinusoidal_embedding(sigma, dim), unet.sinusoidal_embedding(sigma, dim))
    e = ex.sinusoidal_embedding(torch.tensor([1.0]), 6)                   # t = 0
    assert e.tolist() == [[0, 0, 0, 1, 1, 1]]


class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES
    ATOL = 2e-3                                 # the checker's own tolerance for sinusoidal_embedding
