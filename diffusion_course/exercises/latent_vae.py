"""Exercises for chapter 6, "The latent VAE": sampling by reparameterization, the KL term,
PSNR, and quantizing a latent to k bits.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs of varied
shapes and answers in one line (see `diffusion_course.exercises.check`). Pass `seed=` to
repeat a run exactly; by default every call draws new inputs.

    >>> from diffusion_course.exercises import latent_vae as ex
    >>> ex.check_reparameterize(lambda mean, logvar, eps: mean + (0.5 * logvar).exp() * eps)
    ✅ reparameterize: matches the reference on 12 random inputs.
"""
import math

import torch

from . import N_CASES, check, generators



# ---- the reference solutions ------------------------------------------------------------

def reparameterize(mean, logvar, eps):
    """A sample z = mean + sigma * eps of N(mean, sigma^2), where sigma = exp(logvar / 2).

    mean, logvar, eps: tensors of the same shape (eps holds standard normal noise).
    """
    return mean + torch.exp(0.5 * logvar) * eps


def kl_per_value(mean, logvar):
    """KL( N(mean, var) || N(0, 1) ) in nats for every latent value: 0.5 (mean^2 + var - 1 - log var)."""
    return 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar)


def psnr(x, y):
    """PSNR in dB of each image pair, for images in [-1, 1] (so the data range is 2).

    x, y: (B, C, H, W) -> (B,): 10 log10(2^2 / MSE), the MSE taken over one image at a time.
    """
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse)


def quantize(z, bits, limit):
    """Round every value of z to the centre of one of 2**bits equal bins that tile [-limit, limit].

    Values outside [-limit, limit] go to the end bins. Bin width: step = 2 * limit / 2**bits;
    bin i covers [-limit + i * step, -limit + (i + 1) * step) and its centre is -limit + (i + 0.5) * step.
    """
    levels = 2 ** bits
    step = 2 * limit / levels
    i = torch.floor((z.clamp(-limit, limit) + limit) / step).clamp(0, levels - 1)
    return -limit + (i + 0.5) * step


# ---- random inputs -------------------------------------------------------------------------

def _latent_shape(rng):
    return rng.choice([(rng.randint(1, 6),), (rng.randint(1, 4), 4, rng.randint(1, 8), rng.randint(1, 8)),
                       (rng.randint(1, 5), rng.randint(1, 5))])


def _gauss_cases(seed, with_eps):
    gen, rng = generators(seed)
    first = (torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.0, math.log(4.0), math.log(0.25)]))
    cases = [first + ((torch.tensor([1.0, -1.0, 0.5]),) if with_eps else ())]
    while len(cases) < N_CASES:
        shape = _latent_shape(rng)
        mean = torch.randn(shape, generator=gen) * rng.choice([0.3, 1.0, 3.0])
        logvar = torch.randn(shape, generator=gen) * 2 - rng.choice([0.0, 3.0])
        cases.append((mean, logvar) + ((torch.randn(shape, generator=gen),) if with_eps else ()))
    return cases


def _reparameterize_cases(seed):
    return _gauss_cases(seed, with_eps=True)


def _kl_cases(seed):
    return _gauss_cases(seed, with_eps=False)


def _psnr_cases(seed):
    gen, rng = generators(seed)
    x = torch.zeros(2, 1, 2, 2)
    y = x.clone()
    y[0] += 0.1                                       # MSE 0.01: 26.02 dB
    y[1, 0, 0] = 1.0                                  # half the pixels off by 1: MSE 0.5, 9.03 dB
    cases = [(y, x)]
    while len(cases) < N_CASES:
        shape = (rng.randint(1, 5), rng.choice([1, 3]), rng.randint(2, 12), rng.randint(2, 12))
        a = torch.rand(shape, generator=gen) * 2 - 1
        b = (a + torch.randn(shape, generator=gen) * rng.choice([0.01, 0.1, 0.5])).clamp(-1, 1)
        cases.append((a, b))
    return cases


def _quantize_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([-5.0, -2.0, -0.1, 0.1, 2.0, 5.0]), 1, 3.0)]     # 2 levels: -1.5 and 1.5
    while len(cases) < N_CASES:
        z = torch.randn(_latent_shape(rng), generator=gen) * rng.choice([0.5, 1.0, 2.0])
        cases.append((z, rng.randint(1, 8), rng.choice([1.0, 2.0, 3.0, 4.0])))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_reparameterize(fn, seed=None):
    """Check `fn(mean, logvar, eps)` -> mean + exp(logvar / 2) * eps."""
    return check("reparameterize", fn, reparameterize, _reparameterize_cases(seed))


def check_kl_per_value(fn, seed=None):
    """Check `fn(mean, logvar)` -> the KL divergence from N(0, 1), in nats, value by value."""
    return check("kl_per_value", fn, kl_per_value, _kl_cases(seed))


def check_psnr(fn, seed=None):
    """Check `fn(x, y)` -> (B,) PSNR in dB of image pairs in [-1, 1]."""
    return check("psnr", fn, psnr, _psnr_cases(seed), atol=1e-4)


def check_quantize(fn, seed=None):
    """Check `fn(z, bits, limit)` -> z rounded to the centres of 2**bits bins tiling [-limit, limit]."""
    return check("quantize", fn, quantize, _quantize_cases(seed))
