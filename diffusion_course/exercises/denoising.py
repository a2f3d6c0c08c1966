"""Exercises for chapter 4, "Denoising": the ideal denoiser, sampler steps and guidance.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs and answers in
one line (see `diffusion_course.exercises.check`). Pass `seed=` to repeat a run exactly.

    >>> from diffusion_course.exercises import denoising as ex
    >>> ex.check_ddim_step(lambda x, eps, sigma, sigma_next: x - (sigma - sigma_next) * eps)
    ✅ ddim_step: matches the reference on 12 random inputs.
"""
import math

import torch

from . import N_CASES, check, generators



# ---- the reference solutions ------------------------------------------------------------

def ideal_denoise(x, data, sigma):
    """The ideal denoiser's guess of the clean points: x (B, D), data (N, D), sigma a number -> (B, D).

    Weights w_bi = softmax_i(-||x_b - data_i||^2 / (2 sigma^2)), then the weighted average of the data.
    """
    d2 = torch.cdist(x.double(), data.double()) ** 2                                # (B, N)
    w = torch.softmax(-d2 / (2 * sigma ** 2), dim=1)
    return (w @ data.double()).to(x.dtype)


def ddim_step(x, eps, sigma, sigma_next):
    """One DDIM step: remove the predicted noise down to level sigma_next, add nothing."""
    return x - (sigma - sigma_next) * eps


def ddpm_step(x, eps, sigma, sigma_next, z):
    """One DDPM step: sigma' = sigma_next^2 / sigma, eta = sqrt(sigma_next^2 - sigma'^2),
    x - (sigma - sigma') * eps + eta * z (z: fresh standard noise, given)."""
    sigma_p = sigma_next ** 2 / sigma
    eta = math.sqrt(sigma_next ** 2 - sigma_p ** 2)
    return x - (sigma - sigma_p) * eps + eta * z


def guide(eps_cond, eps_uncond, cfg_scale):
    """Classifier-free guidance: eps_uncond + cfg_scale * (eps_cond - eps_uncond)."""
    return eps_uncond + cfg_scale * (eps_cond - eps_uncond)


# ---- random inputs -------------------------------------------------------------------------

def _ideal_cases(seed):
    gen, rng = generators(seed)
    data = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    cases = [(torch.tensor([[1.0, 0.0], [0.2, 0.1]]), data, 1.0)]   # half-way: an even average
    while len(cases) < N_CASES:
        b, n, d = rng.randint(1, 6), rng.randint(2, 12), rng.randint(1, 6)
        data = torch.randn((n, d), generator=gen)
        x = data[torch.randint(0, n, (b,), generator=gen)] + torch.randn((b, d), generator=gen)
        cases.append((x, data, round(rng.uniform(0.3, 3.0), 3)))
    return cases


def _step_cases(seed, with_z=False):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        shape = rng.choice([(rng.randint(1, 5), 2), (rng.randint(1, 3), 1, rng.randint(2, 8), rng.randint(2, 8))])
        sigma = round(rng.uniform(0.1, 20.0), 3)
        sigma_next = round(sigma * rng.uniform(0.05, 0.9), 4)
        x = sigma * torch.randn(shape, generator=gen)
        eps = torch.randn(shape, generator=gen)
        case = (x, eps, sigma, sigma_next)
        cases.append(case + (torch.randn(shape, generator=gen),) if with_z else case)
    return cases


def _guide_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        shape = (rng.randint(1, 4), rng.choice([1, 3]), rng.randint(2, 8), rng.randint(2, 8))
        scale = rng.choice([0.0, 1.0, round(rng.uniform(0, 10), 2)])
        cases.append((torch.randn(shape, generator=gen), torch.randn(shape, generator=gen), scale))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_ideal_denoise(fn, seed=None):
    """Check `fn(x, data, sigma)`: x (B, D), data (N, D) -> the softmax-weighted average of the data, (B, D)."""
    return check("ideal_denoise", fn, ideal_denoise, _ideal_cases(seed))


def check_ddim_step(fn, seed=None):
    """Check `fn(x, eps, sigma, sigma_next)` -> x after one DDIM step."""
    return check("ddim_step", fn, ddim_step, _step_cases(seed))


def check_ddpm_step(fn, seed=None):
    """Check `fn(x, eps, sigma, sigma_next, z)` -> x after one DDPM step with fresh noise z."""
    return check("ddpm_step", fn, ddpm_step, _step_cases(seed, with_z=True))


def check_guide(fn, seed=None):
    """Check `fn(eps_cond, eps_uncond, cfg_scale)` -> the classifier-free guided noise estimate."""
    return check("guide", fn, guide, _guide_cases(seed))
