"""Exercises for the chapter "Forward noising": noising, the alpha-bar form, combined noise, SNR in dB.

Each check runs a few hand-picked cases, then N_CASES fresh random ones (repeatable with `seed=`).
"""
import torch

from . import N_CASES, check, generators


def add_noise_reference(x0, sigma, eps):
    """x_sigma = x0 + sigma * eps, with sigma of shape (B,): one noise level per image."""
    return x0 + sigma.view(-1, *([1] * (x0.ndim - 1))) * eps


def _add_noise_cases(seed):
    gen, rng = generators(seed)
    cases = []
    for shape in [(1, 1, 4, 4), (3, 1, 28, 28)] + [(rng.randint(1, 5), rng.choice([1, 3, 4]), rng.randint(2, 12),
                                                    rng.randint(2, 12)) for _ in range(N_CASES)]:
        x0 = torch.rand(shape, generator=gen) * 2 - 1
        sigma = torch.rand(shape[0], generator=gen) * 5
        cases.append((x0, sigma, torch.randn(shape, generator=gen)))
    return cases


def check_add_noise(fn, seed=None):
    """fn(x0 (B, C, H, W), sigma (B,), eps (B, C, H, W)) -> x_sigma (B, C, H, W)."""
    return check("add_noise", fn, add_noise_reference, _add_noise_cases(seed))


def sigma_from_alpha_bar_reference(alpha_bar):
    """sigma = sqrt(1 / alpha_bar - 1): DDPM's alpha-bar as a noise level sigma."""
    return (1.0 / alpha_bar - 1.0).sqrt()


def _alpha_bar_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([1.0, 0.5, 0.2, 0.01]),)]
    return cases + [(torch.rand(rng.randint(1, 50), generator=gen) * 0.999 + 0.001,) for _ in range(N_CASES)]


def check_sigma_from_alpha_bar(fn, seed=None):
    """fn(alpha_bar (N,) in (0, 1]) -> sigma (N,)."""
    return check("sigma_from_alpha_bar", fn, sigma_from_alpha_bar_reference, _alpha_bar_cases(seed))


def combined_sigma_reference(sigmas):
    """The sigma of noise added in several independent steps: variances add, sqrt(sum sigma_k^2)."""
    return sigmas.pow(2).sum().sqrt()


def _combined_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([0.5, 0.5, 0.5, 0.5]),), (torch.tensor([3.0, 4.0]),)]
    sizes = [rng.choice([1, 2, 1000]) if rng.random() < 0.3 else rng.randint(3, 100) for _ in range(N_CASES)]
    return cases + [(torch.rand(k, generator=gen) * 2,) for k in sizes]


def check_combined_sigma(fn, seed=None):
    """fn(sigmas (K,)) -> one sigma (a 0-D tensor): the total noise of K steps of noise."""
    return check("combined_sigma", fn, combined_sigma_reference, _combined_cases(seed))


def snr_db_reference(sigma, signal_var=1.0):
    """Signal-to-noise ratio in decibels: 10 log10(signal_var / sigma^2)."""
    return 10 * torch.log10(signal_var / sigma ** 2)


def _snr_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([1.0, 10.0, 0.1]), 1.0), (torch.tensor([0.5, 2.0]), 0.4)]
    return cases + [(torch.rand(rng.randint(1, 20), generator=gen) * 20 + 0.01, round(rng.uniform(0.1, 2.0), 3))
                    for _ in range(N_CASES)]


def check_snr_db(fn, seed=None):
    """fn(sigma (N,), signal_var (float)) -> SNR in dB (N,)."""
    return check("snr_db", fn, snr_db_reference, _snr_cases(seed))
