"""Exercises for chapter 2, "Embeddings": one-hot vectors, cosine similarity, nearest
neighbours and the sinusoidal embedding of the noise level.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs of varied
shapes and answers in one line (see `diffusion_course.exercises.check`). Pass `seed=` to
repeat a run exactly; by default every call draws new inputs.

    >>> from diffusion_course.exercises import embeddings as ex
    >>> ex.check_one_hot(lambda ids, n: torch.eye(n)[ids])
    ✅ one_hot: matches the reference on 12 random inputs.
"""
import math

import torch

from . import N_CASES, check, generators



# ---- the reference solutions ------------------------------------------------------------

def one_hot(ids, num_classes):
    """(N,) integer word ids -> (N, num_classes) float32: row i is all zeros except a 1 at ids[i]."""
    out = torch.zeros(ids.shape[0], num_classes)
    out[torch.arange(ids.shape[0]), ids] = 1.0
    return out


def cosine_similarity(a, b):
    """a (N, D), b (M, D) -> (N, M): entry [i, j] is cos(a_i, b_j) = a_i . b_j / (|a_i| |b_j|)."""
    a_hat = a / a.norm(dim=1, keepdim=True)
    b_hat = b / b.norm(dim=1, keepdim=True)
    return a_hat @ b_hat.T


def nearest(query, table, k):
    """query (D,), table (N, D) -> (k,) long: the row indices of the k rows most similar to the
    query by cosine similarity, most similar first."""
    sim = cosine_similarity(query[None], table)[0]                        # (N,)
    return sim.topk(k).indices


def sinusoidal_embedding(sigma, dim):
    """sigma (B,) noise levels -> (B, dim): the vector the U-Net receives for each noise level.

    t = 4 ln(sigma); frequencies f_i = 100^(-i / half) for i = 0 .. half-1, half = dim / 2;
    the result is [sin(t f_0), ..., sin(t f_{half-1}), cos(t f_0), ..., cos(t f_{half-1})].
    """
    half = dim // 2
    t = 4.0 * torch.log(sigma)                                            # (B,)
    freqs = torch.exp(-math.log(100.0) * torch.arange(half) / half)       # (half,)
    angles = t[:, None] * freqs[None]                                     # (B, half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


# ---- random inputs -------------------------------------------------------------------------

def _one_hot_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([0, 2, 1, 2]), 3)]                             # a repeated id, both ends
    while len(cases) < N_CASES:
        v = rng.randint(2, 50)
        n = rng.randint(1, 20)
        ids = torch.randint(0, v, (n,), generator=gen)
        cases.append((ids, v))
    return cases


def _cosine_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([[1.0, 0.0], [3.0, 4.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))]
    while len(cases) < N_CASES:
        n, m, d = rng.randint(1, 12), rng.randint(1, 12), rng.randint(2, 32)
        scale_a = torch.rand(n, 1, generator=gen) * 5 + 0.1               # lengths differ: only angles count
        cases.append((torch.randn(n, d, generator=gen) * scale_a, torch.randn(m, d, generator=gen)))
    return cases


def _nearest_cases(seed):
    gen, rng = generators(seed)
    # the longest row is not the most similar one: a dot product alone picks row 1, cosine picks row 0
    cases = [(torch.tensor([1.0, 0.0]), torch.tensor([[1.0, 0.1], [5.0, 4.0], [-1.0, 0.0], [0.0, 1.0]]), 2)]
    while len(cases) < N_CASES:
        n, d = rng.randint(3, 40), rng.randint(2, 24)
        table = torch.randn(n, d, generator=gen) * (torch.rand(n, 1, generator=gen) * 4 + 0.2)
        query = torch.randn(d, generator=gen)
        cases.append((query, table, rng.randint(1, n)))
    return cases


def _sinusoidal_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([1.0]), 4)]                                    # t = 0: sines 0, cosines 1
    while len(cases) < N_CASES:
        b = rng.randint(1, 10)
        sigma = torch.exp(torch.empty(b).uniform_(math.log(0.002), math.log(80.0), generator=gen))
        cases.append((sigma, 2 * rng.randint(1, 32)))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_one_hot(fn, seed=None):
    """Check `fn(ids, num_classes)`: (N,) ids -> (N, num_classes) float one-hot rows."""
    return check("one_hot", fn, one_hot, _one_hot_cases(seed))


def check_cosine_similarity(fn, seed=None):
    """Check `fn(a, b)`: a (N, D), b (M, D) -> the (N, M) matrix of cosine similarities."""
    return check("cosine_similarity", fn, cosine_similarity, _cosine_cases(seed))


def check_nearest(fn, seed=None):
    """Check `fn(query, table, k)`: the indices (k,) of the k rows most similar to the query, best first."""
    return check("nearest", fn, nearest, _nearest_cases(seed))


def check_sinusoidal_embedding(fn, seed=None):
    """Check `fn(sigma, dim)`: (B,) noise levels -> (B, dim) sines then cosines of 4 ln(sigma) * f_i.

    The angles stay within about +-25 radians, where float32 rounding of the same formula
    written in another order moves a sine by ~1e-6; the tolerance allows for that.
    """
    return check("sinusoidal_embedding", fn, sinusoidal_embedding, _sinusoidal_cases(seed), atol=1e-5, rtol=0)
