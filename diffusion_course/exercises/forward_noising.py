"""Exercises for the chapter "Forward noising": noising, the alpha-bar form, combined noise, SNR in dB."""
import torch

from . import check


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def add_noise_reference(x0, sigma, eps):
    """x_sigma = x0 + sigma * eps, with sigma of shape (B,): one noise level per image."""
    return x0 + sigma.view(-1, *([1] * (x0.ndim - 1))) * eps


def check_add_noise(fn):
    """fn(x0 (B, C, H, W), sigma (B,), eps (B, C, H, W)) -> x_sigma (B, C, H, W)."""
    cases = []
    for seed, shape in enumerate([(1, 1, 4, 4), (3, 1, 28, 28), (5, 3, 8, 8), (2, 4, 6, 5)]):
        g = _gen(seed)
        x0 = torch.rand(shape, generator=g) * 2 - 1
        sigma = torch.rand(shape[0], generator=g) * 5
        cases.append((x0, sigma, torch.randn(shape, generator=g)))
    return check("add_noise", fn, add_noise_reference, cases)


def sigma_from_alpha_bar_reference(alpha_bar):
    """sigma = sqrt(1 / alpha_bar - 1): DDPM's alpha-bar as a noise level sigma."""
    return (1.0 / alpha_bar - 1.0).sqrt()


def check_sigma_from_alpha_bar(fn):
    """fn(alpha_bar (N,) in (0, 1]) -> sigma (N,)."""
    cases = [(torch.tensor([1.0, 0.5, 0.2, 0.01]),)]
    cases += [(torch.rand(n, generator=_gen(10 + n)) * 0.999 + 0.001,) for n in (1, 7, 50)]
    return check("sigma_from_alpha_bar", fn, sigma_from_alpha_bar_reference, cases)


def combined_sigma_reference(sigmas):
    """The sigma of noise added in several independent steps: variances add, sqrt(sum sigma_k^2)."""
    return sigmas.pow(2).sum().sqrt()


def check_combined_sigma(fn):
    """fn(sigmas (K,)) -> one sigma (a 0-D tensor): the total noise of K steps of noise."""
    cases = [(torch.tensor([0.5, 0.5, 0.5, 0.5]),), (torch.tensor([3.0, 4.0]),)]
    cases += [(torch.rand(k, generator=_gen(20 + k)) * 2,) for k in (1, 10, 1000)]
    return check("combined_sigma", fn, combined_sigma_reference, cases)


def snr_db_reference(sigma, signal_var=1.0):
    """Signal-to-noise ratio in decibels: 10 log10(signal_var / sigma^2)."""
    return 10 * torch.log10(signal_var / sigma ** 2)


def check_snr_db(fn):
    """fn(sigma (N,), signal_var (float)) -> SNR in dB (N,)."""
    cases = [(torch.tensor([1.0, 10.0, 0.1]), 1.0), (torch.tensor([0.5, 2.0]), 0.4)]
    cases += [(torch.rand(n, generator=_gen(30 + n)) * 20 + 0.01, 0.1 + n / 10) for n in (3, 20)]
    return check("snr_db", fn, snr_db_reference, cases)
