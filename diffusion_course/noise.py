"""Noise as sigma: how much noise is added, and the schedules that say how much at each step.

The whole course writes a noisy image as

    x_sigma = x0 + sigma * eps          eps ~ N(0, I), sigma >= 0                  (1)

`sigma` is the standard deviation of the added noise, in the units of the data (MNIST
pixels live in [-1, 1]; for data of standard deviation 1, such as scaled latents, sigma = 1
is as much noise as signal, and for MNIST, whose pixels spread less, it is more). The DDPM paper writes
the same thing in its "alpha-bar" form, x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps,
which is (1) divided by sqrt(1 + sigma^2); the two are linked by

    alpha_bar = 1 / (1 + sigma^2)        sigma = sqrt(1 / alpha_bar - 1)           (2)

A *schedule* is a decreasing tensor of sigmas: the noise levels a sampler visits, from
almost pure noise (sigma_max) down to almost clean (sigma_min). Samplers take such a tensor
explicitly; there are no hidden integer timesteps.
"""
import math

import torch

from .checks import check_finite


def _check_n(n, name="n"):
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"{name} must be an integer >= 2 (a schedule needs a start and an end), got {n!r}")


def _check_range(sigma_min, sigma_max):
    if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min!r}, "
                         f"sigma_max={sigma_max!r}")


# ---- conversions between the sigma form and the DDPM alpha-bar form --------------------------

def _float(t):
    """A float tensor, keeping float64 if given (precision matters near alpha_bar = 1)."""
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def sigma_to_alpha_bar(sigma):
    """alpha_bar = 1 / (1 + sigma^2): the fraction of signal variance left (eq. 2)."""
    sigma = _float(sigma)
    return 1.0 / (1.0 + sigma ** 2)


def alpha_bar_to_sigma(alpha_bar):
    """sigma = sqrt(1 / alpha_bar - 1), for alpha_bar in (0, 1] (eq. 2)."""
    alpha_bar = _float(alpha_bar)
    if ((alpha_bar <= 0) | (alpha_bar > 1)).any():
        raise ValueError("alpha_bar must lie in (0, 1]; 0 would mean infinite noise")
    return (1.0 / alpha_bar - 1.0).sqrt()


def snr(sigma):
    """Signal-to-noise ratio of x_sigma: signal variance over noise variance, 1 / sigma^2."""
    return 1.0 / _float(sigma) ** 2


def to_unit_variance(x, sigma):
    """x_sigma / sqrt(1 + sigma^2): the DDPM-form x_t, whose variance stays near 1 for data of
    variance near 1. The U-Net feeds this to its first layer."""
    return x / (1.0 + _per_item(sigma, x) ** 2).sqrt()


# ---- schedules: decreasing tensors of sigmas ----------------------------------------------

def loglinear_schedule(n=1000, sigma_min=0.01, sigma_max=80.0):
    """n sigmas evenly spaced in log(sigma), from sigma_max down to sigma_min.

    Each step removes the same *fraction* of the noise, which suits images: the coarse shapes
    are decided at high sigma, the fine detail at low sigma, and both get as many steps.
    """
    _check_n(n)
    _check_range(sigma_min, sigma_max)
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n)


def ddpm_schedule(n=1000, beta_start=1e-4, beta_end=0.02):
    """The DDPM schedule of Ho et al. (linear betas), mapped to sigmas, largest first.

    DDPM adds noise in n small steps with variances beta_1..beta_n (linear in t); after t
    steps the signal left is alpha_bar_t = prod_{s<=t} (1 - beta_s), so by eq. (2)
    sigma_t = sqrt(1 / alpha_bar_t - 1). With the defaults sigma runs from about 157 down to 0.01.
    """
    _check_n(n)
    if not 0 < beta_start < beta_end < 1:
        raise ValueError(f"need 0 < beta_start < beta_end < 1, got {beta_start!r}, {beta_end!r}")
    betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)
    return alpha_bar_to_sigma(alpha_bar).flip(0).to(torch.get_default_dtype())


def cosine_schedule(n=1000, s=0.008, max_beta=0.999):
    """The cosine schedule of Nichol & Dhariwal, mapped to sigmas, largest first.

    alpha_bar(t) = cos^2(pi/2 * (t/n + s) / (1 + s)) / cos^2(pi/2 * s / (1 + s)), t = 1..n,
    with each step's beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} clipped at max_beta (as in the
    paper) so that the last sigma stays finite.
    """
    _check_n(n)
    t = torch.arange(n + 1, dtype=torch.float64) / n
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)
    return alpha_bar_to_sigma(alpha_bar).flip(0).to(torch.get_default_dtype())


def flow_schedule(n=1000, sigma_min=0.01, sigma_max=80.0):
    """n sigmas at evenly spaced times t = sigma / (1 + sigma) of flow matching's straight path (flow.py),
    from sigma_max down to sigma_min: the usual sampling grid of flow models (rectified flow, SD3)."""
    _check_n(n)
    _check_range(sigma_min, sigma_max)
    t = torch.linspace(sigma_max / (1 + sigma_max), sigma_min / (1 + sigma_min), n, dtype=torch.float64)
    return (t / (1 - t)).to(torch.get_default_dtype())


SCHEDULES = {"loglinear": loglinear_schedule, "ddpm": ddpm_schedule, "cosine": cosine_schedule,
             "flow": flow_schedule}


def subsample(sigmas, steps):
    """Pick steps + 1 sigmas from a long schedule, evenly by index, keeping both ends.

    A sampler with `steps` steps visits steps + 1 noise levels: it starts at sigmas[0] and
    each step moves to the next one. `subsample(ddpm_schedule(1000), 50)` is the 50-step
    version of the DDPM schedule.
    """
    sigmas = torch.as_tensor(sigmas)
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 noise levels, got shape {tuple(sigmas.shape)}")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps < len(sigmas):
        raise ValueError(f"steps must be an integer from 1 to {len(sigmas) - 1} for a schedule of "
                         f"{len(sigmas)} sigmas, got {steps!r}")
    idx = torch.linspace(0, len(sigmas) - 1, steps + 1).round().long()
    return sigmas[idx]


def schedule(name="loglinear", steps=50, **kwargs):
    """steps + 1 decreasing sigmas of a named schedule ('loglinear', 'ddpm', 'cosine' or 'flow').

    For 'loglinear' and 'flow' the levels are spaced exactly; 'ddpm' and 'cosine' are subsampled from
    their 1000-step tables (`n` in kwargs changes the table length).
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}: expected one of {', '.join(SCHEDULES)}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if name in ("loglinear", "flow"):
        return SCHEDULES[name](steps + 1, **kwargs)
    return subsample(SCHEDULES[name](**kwargs), steps)


# ---- noising ------------------------------------------------------------------------------

def _per_item(sigma, x):
    """sigma as a tensor that broadcasts over x: a number, or one sigma per batch item -> (B, 1, 1, ...)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        return sigma
    if sigma.ndim == 1 and len(sigma) == x.shape[0]:
        return sigma.view(-1, *([1] * (x.ndim - 1)))
    if sigma.shape == x.shape:
        return sigma
    raise ValueError(f"sigma must be a number or hold one value per batch item ({x.shape[0]}), "
                     f"got shape {tuple(sigma.shape)} for x of shape {tuple(x.shape)}")


def add_noise(x0, sigma, eps=None, generator=None):
    """x_sigma = x0 + sigma * eps (eq. 1). Returns x_sigma.

    x0:    clean data, (B, ...) e.g. (B, C, H, W).
    sigma: a number, or a tensor of shape (B,) with one noise level per batch item.
    eps:   the noise, same shape as x0; drawn from N(0, I) with `generator` if not given
           (pass your own eps when you need it afterwards, as training does).
    """
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got {type(x0).__name__}")
    check_finite(x0, "x0")
    s = _per_item(sigma, x0)
    check_finite(s, "sigma")
    if (s < 0).any():
        raise ValueError("sigma must be >= 0: it is the standard deviation of the added noise")
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps has shape {tuple(eps.shape)}, expected the shape of x0 {tuple(x0.shape)}")
    else:
        check_finite(eps, "eps")
    return x0 + s * eps


SIGMA_KINDS = ("loguniform", "lognormal", "mixed", "flow")


def training_sigmas(batch, sigma_min=0.01, sigma_max=80.0, kind="loguniform", p_mean=-1.2, p_std=1.2,
                    generator=None, device=None):
    """Draw one training noise level per batch item, shape (batch,).

    kind="loguniform": log(sigma) uniform between log(sigma_min) and log(sigma_max), so every
        octave of noise gets the same training effort (the default; it matches sampling on a
        log-linear schedule).
    kind="lognormal": log(sigma) ~ N(p_mean, p_std^2), clipped to [sigma_min, sigma_max]
        (Karras et al.'s choice, which concentrates on the middle noise levels).
    kind="mixed": each draw is log-uniform or, with probability 1/2, log-normal as above: every
        octave keeps some training, and the band around exp(p_mean) gets extra.
    kind="flow": t = sigma / (1 + sigma) uniform between its values at sigma_min and sigma_max, as
        rectified flow draws it (flow.py): ln sigma = logit t is logistic, centred on sigma = 1.
    """
    _check_range(sigma_min, sigma_max)
    if kind == "loguniform":
        u = torch.rand(batch, generator=generator, device=device)
        return torch.exp(math.log(sigma_min) + u * (math.log(sigma_max) - math.log(sigma_min)))
    if kind == "lognormal":
        z = torch.randn(batch, generator=generator, device=device)
        return torch.exp(p_mean + p_std * z).clamp(sigma_min, sigma_max)
    if kind == "mixed":
        uniform = training_sigmas(batch, sigma_min, sigma_max, "loguniform", generator=generator, device=device)
        normal = training_sigmas(batch, sigma_min, sigma_max, "lognormal", p_mean, p_std, generator, device)
        return torch.where(torch.rand(batch, generator=generator, device=device) < 0.5, normal, uniform)
    if kind == "flow":
        lo, hi = sigma_min / (1 + sigma_min), sigma_max / (1 + sigma_max)
        t = lo + (hi - lo) * torch.rand(batch, generator=generator, device=device)
        return (t / (1 - t)).clamp(sigma_min, sigma_max)
    raise ValueError(f"unknown kind {kind!r}: expected 'loguniform', 'lognormal', 'mixed' or 'flow'")
