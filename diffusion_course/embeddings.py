"""Embeddings: turning words (and numbers) into vectors whose distances mean something.

    one_hot(ids, V)                  a word as a vector of V zeros with a single 1: no meaning, no sharing
    cosine_similarity(a, b)          the cosine of the angle between vectors: 1 same way, 0 unrelated
    nearest(query, table, k)         the k rows of a table that point most the same way as the query
    pca_2d(x)                        the flat 2-D view that keeps the most spread, for plotting
    caption_docs(n_scenes)           shapes-world captions, several per scene, as word ids
    train_word_vectors(docs, V)      a tiny skip-gram model (word2vec, `SkipGram`) trained on them

An *embedding table* is a lookup table: row i is the vector of word i. Looking a word up
is the same as multiplying its one-hot vector by the table, one_hot(i) @ E == E[i]. The
numbers in the table start random and are learned. Skip-gram with negative sampling
(Mikolov et al., 2013) learns them from one rule: a word's vector should point the same
way as the vectors of the words that appear beside it, and away from random words. Words
that keep the same company (red, crimson, scarlet in captions of the same scenes) are
pulled the same way, so they end up close together.
"""
import torch
import torch.nn.functional as F

from .runtime import get_device
from .train import train


def _as_ids(ids, name="ids"):
    ids = torch.as_tensor(ids)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"{name} must hold integer word ids, got dtype {ids.dtype}; "
                        "convert with .long() if the values are whole numbers")
    return ids.long()


def one_hot(ids, num_classes):
    """A float vector of `num_classes` zeros with a 1 at each id: (...,) ints -> (..., num_classes).

    This is the plainest way to turn a word id into a vector. Every pair of different words
    is equally far apart (their dot product is 0), so a one-hot vector says *which* word,
    never *what it means*; and its length grows with the vocabulary.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer (the vocabulary size), got {num_classes!r}")
    ids = _as_ids(ids)
    if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
        bad = ids[(ids < 0) | (ids >= num_classes)][0].item()
        raise ValueError(f"id {bad} is outside the vocabulary: ids must be in 0..{num_classes - 1} "
                         f"for num_classes={num_classes}")
    out = torch.zeros(*ids.shape, num_classes, device=ids.device)         # (..., V)
    return out.scatter_(-1, ids.unsqueeze(-1), 1.0)


def _as_table(x, name):
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be one vector (D,) or a table of vectors (N, D), got shape {tuple(x.shape)}")
    return x


def cosine_similarity(a, b=None, eps=1e-8):
    """Cosine of the angle between vectors: a (N, D), b (M, D) -> (N, M); two vectors (D,) -> a number.

    cos(a, b) = a . b / (|a| |b|): the dot product of the two vectors after scaling each to
    length 1. It is 1 when they point the same way, 0 when they are at right angles, -1
    when opposite; the lengths do not matter. With b left out, every row of a is compared
    with every other row (a square, symmetric matrix with ones on the diagonal).
    A zero vector has no direction: its similarity to anything is 0.
    """
    a = _as_table(a, "a")
    b = a if b is None else _as_table(b, "b")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a and b must have the same vector length D, got a {tuple(a.shape)} and b {tuple(b.shape)}")
    vectors = a.ndim == 1 and b.ndim == 1
    a_hat = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)               # (N, D) unit rows
    b_hat = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)               # (M, D)
    sim = a_hat.reshape(-1, a.shape[-1]) @ b_hat.reshape(-1, b.shape[-1]).T  # (N, M) all dot products
    return sim[0, 0] if vectors else sim.reshape(*a.shape[:-1], *b.shape[:-1])


def nearest(query, table, k=5, exclude=None):
    """The k rows of `table` most similar (by cosine) to `query`, best first.

    query: (D,) or (Q, D); table: (N, D). Returns (scores, indices), each (k,) or (Q, k).
    exclude: a row index to leave out (or one per query), typically the query word itself,
    which is always its own nearest neighbour.
    """
    table = _as_table(table, "table")
    if table.ndim != 2:
        raise ValueError(f"table must be a table of vectors (N, D), got shape {tuple(table.shape)}")
    query = _as_table(query, "query")
    single = query.ndim == 1
    sim = cosine_similarity(query.reshape(-1, query.shape[-1]) if not single else query[None], table)  # (Q, N)
    n = table.shape[0] - (exclude is not None)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer from 1 to {n} (the rows available), got {k!r}")
    if exclude is not None:
        exclude = _as_ids(exclude, "exclude").reshape(-1)
        if exclude.numel() not in (1, sim.shape[0]):
            raise ValueError(f"exclude must be one row index or one per query ({sim.shape[0]}), "
                             f"got {exclude.numel()}")
        if exclude.min() < 0 or exclude.max() >= table.shape[0]:
            raise ValueError(f"exclude must hold row indices in 0..{table.shape[0] - 1}, got {exclude.tolist()}")
        sim = sim.clone()
        sim[torch.arange(sim.shape[0]), exclude.expand(sim.shape[0])] = -float("inf")
    scores, indices = sim.topk(k, dim=-1)                                 # (Q, k) each
    return (scores[0], indices[0]) if single else (scores, indices)


def pca_2d(x):
    """Project points (N, D) onto the 2 directions along which they spread the most: -> (N, 2).

    Principal component analysis: subtract the mean, then the singular value decomposition
    x = U S Vh gives the directions (rows of Vh) sorted by how much spread each explains.
    Each direction's sign is arbitrary; we flip it so that its largest coordinate is
    positive, which makes the picture repeatable.
    """
    x = _as_table(x, "x")
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"pca_2d needs a table of at least 2 points with at least 2 numbers each (N, D), "
                         f"got shape {tuple(x.shape)}")
    xc = x - x.mean(dim=0)                                                # (N, D) centred
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)                  # vh: (min(N, D), D)
    v = vh[:2]                                                            # (2, D) top directions
    v = v * torch.sign(v.gather(1, v.abs().argmax(dim=1, keepdim=True)))  # fix each sign
    return xc @ v.T                                                       # (N, 2)


# ---- a tiny word2vec: skip-gram with negative sampling -----------------------------------------

class SkipGram(torch.nn.Module):
    """Two embedding tables: `inp` (the word vectors we keep) and `out` (the same words as context).

    forward(center, context) -> a score per pair, the dot product inp[center] . out[context];
    training makes it high for words seen together and low for random pairs.
    """

    def __init__(self, vocab_size, dim=16, seed=0):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "dim": dim, "seed": seed}
        self.inp = torch.nn.Embedding(vocab_size, dim)                    # (V, D) the lookup table
        self.out = torch.nn.Embedding(vocab_size, dim)                    # (V, D)
        gen = torch.Generator().manual_seed(seed)                         # small random start, repeatable
        with torch.no_grad():
            self.inp.weight.copy_(torch.randn(vocab_size, dim, generator=gen) * 0.5 / dim ** 0.5)
            self.out.weight.zero_()

    @property
    def vectors(self):
        """The embedding table (V, D): row i is the learned vector of word i."""
        return self.inp.weight.detach()

    def forward(self, center, context):
        return (self.inp(center) * self.out(context)).sum(-1)             # (...,) one score per pair


def context_pairs(docs, window=None):
    """Every (center, context) pair of word ids that sit within `window` words of each other in a doc.

    docs: a list of lists of word ids. window=None pairs every word of a doc with every other
    word of the same doc (a doc is then a bag of words, e.g. all the captions of one scene).
    Returns a (P, 2) long tensor.
    """
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
        raise ValueError(f"window must be a positive integer or None (the whole doc), got {window!r}")
    pairs = []
    for doc in docs:
        doc = _as_ids(doc, "each doc").reshape(-1)                        # (L,)
        L = doc.numel()
        i, j = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
        keep = (i != j) if window is None else (i != j) & ((i - j).abs() <= window)
        pairs.append(torch.stack([doc[i[keep]], doc[j[keep]]], dim=1))   # (P_doc, 2)
    if not pairs or sum(p.shape[0] for p in pairs) == 0:
        raise ValueError("docs gave no word pairs: pass a list of docs, each a list of at least 2 word ids")
    return torch.cat(pairs)


def caption_docs(n_scenes=500, per_scene=3, seed=0, tokenizer=None, p_two=0.5):
    """Training text for word vectors: `per_scene` differently worded captions of each of
    `n_scenes` random shapes-world scenes (like the five captions per photo of a captioning data set).

    Returns (docs, texts): docs[i] is a (L,) long tensor, the word ids of all the captions of
    scene i one after the other (from `tokenizer`, default text.Tokenizer()); texts[i] is the
    list of those captions. per_scene=1 gives one caption per doc.
    """
    from . import shapes
    from .text import Tokenizer
    for name, value in (("n_scenes", n_scenes), ("per_scene", per_scene)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    tokenizer = Tokenizer() if tokenizer is None else tokenizer
    gen = torch.Generator().manual_seed(seed)
    attrs = shapes.sample_attributes(n_scenes, p_two=p_two, generator=gen)
    texts = list(zip(*[shapes.captions(attrs, generator=gen) for _ in range(per_scene)]))  # n_scenes x per_scene
    ids, mask = tokenizer([t for scene in texts for t in scene])         # (n_scenes * per_scene, L) each
    ids, mask = ids.view(n_scenes, -1), mask.view(n_scenes, -1)          # (n_scenes, per_scene * L)
    return [row[keep] for row, keep in zip(ids, mask)], [list(t) for t in texts]


def skipgram_loss(model, center, context, negatives):
    """The negative-sampling loss: -log sigmoid(score of a real pair) - sum log sigmoid(-score of a fake one).

    center, context: (B,) word ids seen together; negatives: (B, K) random words as fake contexts.
    """
    pos = model(center, context)                                          # (B,)
    neg = model(center[:, None], negatives)                               # (B, K)
    # -log sigmoid(s) = softplus(-s), written this way because it is numerically stable (and
    # F.logsigmoid is oddly slow on small CPU tensors with several threads)
    return (F.softplus(-pos) + F.softplus(neg).sum(-1)).mean()


def train_word_vectors(docs, vocab_size, dim=16, window=None, negatives=5, steps=1500, batch_size=256,
                       lr=0.02, seed=0, device=None):
    """Train a SkipGram model on `docs` (lists of word ids) with the course's train() loop.

    Each step draws `batch_size` real (center, context) pairs and, for each, `negatives`
    fake contexts from the word frequencies raised to the power 3/4 (as word2vec does, so
    that rare words are drawn a little more often). Returns (model, run): the trained model
    (its `vectors` are the embedding table) and the TrainRun with the loss history.
    """
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    if not isinstance(negatives, int) or negatives < 1:
        raise ValueError(f"negatives must be a positive integer (fake contexts per real pair), got {negatives!r}")
    device = get_device(device)
    pairs = context_pairs(docs, window)                                   # (P, 2)
    bad = pairs[(pairs < 0) | (pairs >= vocab_size)]
    if bad.numel():
        raise ValueError(f"docs hold word id {bad[0].item()}, outside 0..{vocab_size - 1}; "
                         "pass the tokenizer's vocabulary size as vocab_size")
    counts = torch.bincount(pairs[:, 1], minlength=vocab_size).double()
    noise = (counts ** 0.75 / (counts ** 0.75).sum()).float().to(device)  # (V,) where fake contexts come from
    pairs = pairs.to(device)
    model = SkipGram(vocab_size, dim, seed=seed)

    def get_batch(gen):
        i = torch.randint(0, pairs.shape[0], (batch_size,), generator=gen, device=device)
        neg = torch.multinomial(noise, batch_size * negatives, replacement=True, generator=gen)
        return pairs[i, 0], pairs[i, 1], neg.view(batch_size, negatives)

    def loss_fn(model, batch, gen):
        return skipgram_loss(model, *batch)

    run = train(model, loss_fn, get_batch, steps=steps, lr=lr, warmup=min(100, steps // 10), ema_decay=0.0,
                grad_clip=0.0, seed=seed, device=device, desc="word vectors", amp=False)
    return run.model, run
