"""Exercises for chapter 8, "Beyond": cutting a picture into patches, the velocity of flow matching,
a Heun step, and cold diffusion's improved step.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs of varied shapes and
answers in one line (see `diffusion_course.exercises.check`). Pass `seed=` to repeat a run exactly.

    >>> from diffusion_course.exercises import beyond as ex
    >>> ex.check_velocity(lambda eps_hat, x_sigma, sigma: (1 + sigma.view(-1, 1, 1, 1)) * eps_hat - x_sigma)
    ✅ velocity: matches the reference on 12 random inputs.
"""
from dataclasses import dataclass

import torch

from . import N_CASES, check, generators
from ..degrade import Blur, Mask


# ---- the reference solutions ------------------------------------------------------------

def patchify(x, p):
    """Cut pictures into p x p patches, one token per patch: (B, C, H, W) -> (B, N, C * p * p).

    N = (H / p) * (W / p) patches in reading order (row by row); each token lists its patch's
    values channel by channel, each channel row by row (the order dit.DiT's unpatchify undoes).
    """
    b, c, h, w = x.shape
    patches = x.unfold(2, p, p).unfold(3, p, p)                      # (B, C, H/p, W/p, p, p)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(b, (h // p) * (w // p), c * p * p)


def velocity(eps_hat, x_sigma, sigma):
    """Flow matching's velocity v_hat = (1 + sigma) eps_hat - x_sigma (flow.py, eq. 4).

    eps_hat, x_sigma: (B, C, H, W); sigma: (B,) noise levels.
    """
    return (1 + sigma.view(-1, 1, 1, 1)) * eps_hat - x_sigma


def heun_step(x, sigma, sigma_next, eps_fn):
    """One Heun step from sigma to sigma_next > 0 (sampling.py, eq. 5): an Euler (DDIM) step to x',
    then the step again from x with the average of the slopes eps(x, sigma) and eps(x', sigma_next)."""
    eps = eps_fn(x, sigma)
    x_euler = x - (sigma - sigma_next) * eps
    return x - (sigma - sigma_next) * (eps + eps_fn(x_euler, sigma_next)) / 2


def cold_step(x, x0_hat, degrade, s):
    """Cold diffusion's improved step from severity s to s - 1 (Bansal et al., Alg. 2):
    x - D(x0_hat, s) + D(x0_hat, s - 1), with D = degrade."""
    return x - degrade(x0_hat, s) + degrade(x0_hat, s - 1)


# ---- random inputs -------------------------------------------------------------------------

def _patch_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.arange(16.0).view(1, 1, 4, 4), 2)]               # by hand: the first token is 0, 1, 4, 5
    while len(cases) < N_CASES:
        p = rng.choice([1, 2, 4, 7])
        shape = (rng.randint(1, 3), rng.choice([1, 3, 4]), p * rng.randint(1, 4), p * rng.randint(1, 4))
        cases.append((torch.randn(shape, generator=gen), p))
    return cases


def _velocity_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        shape = (rng.randint(1, 4), rng.choice([1, 3]), rng.randint(2, 8), rng.randint(2, 8))
        sigma = torch.exp(torch.empty(shape[0]).uniform_(-4, 4, generator=gen))
        cases.append((torch.randn(shape, generator=gen), torch.randn(shape, generator=gen), sigma))
    return cases


@dataclass(frozen=True)
class _Gaussian:
    """The exact denoiser of data N(mu, s^2): eps = sigma (x - mu) / (s^2 + sigma^2)."""
    mu: float
    s: float

    def __call__(self, x, sigma):
        return sigma * (x - self.mu) / (self.s ** 2 + sigma ** 2)

    def __repr__(self):
        return f"the exact denoiser of N({self.mu:.2g}, {self.s:.2g}^2)"


def _heun_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        sigma = rng.choice([80.0, 10.0, 2.0, 0.5, rng.uniform(0.05, 20.0)])
        x = sigma * torch.randn(rng.randint(1, 4), rng.randint(1, 6), generator=gen)
        cases.append((x, sigma, sigma * rng.uniform(0.2, 0.9), _Gaussian(rng.uniform(-2, 2), rng.uniform(0.2, 2.0))))
    return cases


def _cold_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        steps = rng.choice([5, 10, 20])
        degrade = Blur(steps=steps, size=8) if rng.random() < 0.5 else Mask(steps=steps, size=8, seed=rng.randint(0, 9))
        shape = (rng.randint(1, 3), 1, 8, 8)
        cases.append((torch.randn(shape, generator=gen), torch.randn(shape, generator=gen), degrade,
                      rng.randint(1, steps)))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_patchify(fn, seed=None):
    """Check `fn(x, p)` -> (B, N, C * p * p), the patches of x in reading order."""
    return check("patchify", fn, patchify, _patch_cases(seed))


def check_velocity(fn, seed=None):
    """Check `fn(eps_hat, x_sigma, sigma)` -> flow matching's velocity (B, C, H, W)."""
    return check("velocity", fn, velocity, _velocity_cases(seed))


def check_heun_step(fn, seed=None):
    """Check `fn(x, sigma, sigma_next, eps_fn)` -> x after one Heun step."""
    return check("heun_step", fn, heun_step, _heun_cases(seed))


def check_cold_step(fn, seed=None):
    """Check `fn(x, x0_hat, degrade, s)` -> x after one improved cold-diffusion step."""
    return check("cold_step", fn, cold_step, _cold_cases(seed))
