"""Tokenizer bad inputs and round trips; the text encoder's shapes and its blindness to padding."""
import warnings

import pytest
import torch

from diffusion_course import shapes
from diffusion_course.text import PAD, UNK, TextEncoder, Tokenizer


def test_vocabulary_ids_and_round_trip():
    tok = Tokenizer()
    assert tok.words[:2] == [PAD, UNK] and len(tok) == len(shapes.vocabulary()) + 2
    ids, mask = tok(["A red circle, left of a box.", "a big blue box above a tiny disc"])
    assert ids.shape == mask.shape == (2, tok.max_len) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [7, 8]
    assert (ids[~mask] == tok.pad_id).all() and (ids[mask] >= 2).all()
    assert tok.decode(ids) == ["a red circle left of a box", "a big blue box above a tiny disc"]
    assert ids[0, 1] == tok.index["red"]


def test_every_caption_tokenizes():
    tok = Tokenizer()
    caps = shapes.make_scenes(500, seed=0).captions
    ids, mask = tok(caps)
    assert tok.decode(ids) == caps


def test_unknown_words_are_named():
    tok = Tokenizer()
    with pytest.raises(ValueError, match=r"'dog'.*'a red dog'"):
        tok("a red dog")
    with pytest.raises(ValueError, match="did you mean 'crimson' for 'crimsn'"):
        tok(["a red circle", "a crimsn circle"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids, _ = tok("a red dog", unknown="warn")
    assert "'dog'" in str(caught[0].message)
    assert ids[0, :3].tolist() == [tok.index["a"], tok.index["red"], tok.unk_id]


def test_too_long_prompts():
    tok = Tokenizer(max_len=5)
    with pytest.raises(ValueError, match=r"7 words, more than max_len=5.*'tiny disc'"):
        tok("a big blue box above tiny disc")
    with pytest.warns(UserWarning, match="dropped"):
        ids, mask = tok("a big blue box above tiny disc", too_long="truncate")
    assert tok.decode(ids) == ["a big blue box above"] and mask.all()


@pytest.mark.parametrize("bad, error", [("", ValueError), ("  ,. ", ValueError), ([], ValueError),
                                        (3, TypeError), (["a red circle", None], TypeError)])
def test_bad_prompts(bad, error):
    with pytest.raises(error):
        Tokenizer()(bad)


def test_bad_vocab_and_options():
    with pytest.raises(ValueError):
        Tokenizer(["red", "Blue"])
    with pytest.raises(ValueError):
        Tokenizer(["red", "left of"])
    with pytest.raises(TypeError):
        Tokenizer("red blue")
    with pytest.raises(ValueError):
        Tokenizer(max_len=0)
    with pytest.raises(ValueError):
        Tokenizer()("a red circle", unknown="ignore")


def test_encoder_shapes_and_padding_is_invisible():
    torch.manual_seed(0)
    enc = TextEncoder(dim=32, depth=2, heads=4).eval()
    ids, mask = enc.tokenizer(["a red circle", "a big blue box above a tiny disc", "there is a huge white plus"])
    states, pooled = enc(ids, mask)
    assert states.shape == (3, enc.tokenizer.max_len, 32) and pooled.shape == (3, 32)
    # pooled is the mean of the states of the real words
    torch.testing.assert_close(pooled[0], states[0, :3].mean(0))
    # whatever sits in the padded positions, nothing real changes
    noisy = ids.clone()
    noisy[~mask] = torch.randint(2, len(enc.tokenizer), (int((~mask).sum()),))
    states2, pooled2 = enc(noisy, mask)
    torch.testing.assert_close(pooled2, pooled)
    torch.testing.assert_close(states2[mask], states[mask])
    # a prompt alone gives what it gives inside a batch; and a shorter padded length too
    torch.testing.assert_close(enc(ids[1:2], mask[1:2])[1], pooled[1:2])
    torch.testing.assert_close(enc(ids[:, :10], mask[:, :10])[1], pooled)


def test_word_order_matters():
    torch.manual_seed(0)
    enc = TextEncoder(dim=32, depth=1, heads=2).eval()
    _, pooled, _ = enc.encode(["a red circle left of a blue square", "a blue square left of a red circle"])
    assert not torch.allclose(pooled[0], pooled[1], atol=1e-4)       # learned positions tell them apart


def test_encoder_bad_inputs():
    enc = TextEncoder(dim=16, depth=1, heads=2)
    ids, mask = enc.tokenizer("a red circle")
    with pytest.raises(ValueError, match="int64"):
        enc(ids.float(), mask)
    with pytest.raises(ValueError, match="at least one real token"):
        enc(ids, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="divisible"):
        TextEncoder(dim=30, heads=4)
