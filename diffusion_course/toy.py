"""2-D toy datasets: small clouds of points you can draw, learn in seconds and check by eye.

Each returns a float32 tensor of shape (n, 2), scaled so the cloud spans roughly [-2, 2],
drawn from `generator` (or a fresh one seeded by `seed`) so that the same call gives the
same points.
"""
import math

import torch


def _gen(generator, seed):
    return generator if generator is not None else torch.Generator().manual_seed(seed)


def _check(n):
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of points, got {n!r}")


def swiss_roll(n=1000, noise=0.05, seed=0, generator=None):
    """A spiral: angle t from 1.5 pi to 4.5 pi, radius growing with t."""
    _check(n)
    g = _gen(generator, seed)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))                        # (n,)
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / 7.0               # (n, 2)
    return x + noise * torch.randn(n, 2, generator=g)


def two_moons(n=1000, noise=0.05, seed=0, generator=None):
    """Two interleaving half circles (as in scikit-learn's make_moons), centred."""
    _check(n)
    g = _gen(generator, seed)
    upper = torch.rand(n, generator=g) < 0.5                                         # which moon
    t = math.pi * torch.rand(n, generator=g)
    x = torch.where(upper[:, None],
                    torch.stack([torch.cos(t), torch.sin(t)], 1),
                    torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1))           # (n, 2)
    x = (x - torch.tensor([0.5, 0.25])) * 1.5
    return x + noise * torch.randn(n, 2, generator=g)


def gaussian_mixture(n=1000, k=8, radius=1.5, std=0.1, seed=0, generator=None):
    """k small round blobs evenly spaced on a circle: the classic multi-modal test."""
    _check(n)
    g = _gen(generator, seed)
    which = torch.randint(0, k, (n,), generator=g)
    angle = 2 * math.pi * which.float() / k
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)          # (n, 2)
    return centres + std * torch.randn(n, 2, generator=g)


DATASETS = {"swiss_roll": swiss_roll, "two_moons": two_moons, "gaussian_mixture": gaussian_mixture}
