"""The chapter-6 exercise checkers: right answers pass, wrong ones are caught and explained."""
import math

import pytest
import torch

from diffusion_course import vae
from diffusion_course.exercises import latent_vae as ex
from exercise_contract import ExerciseContract

CASES = {"reparameterize": ex._reparameterize_cases, "kl_per_value": ex._kl_cases,
         "psnr": ex._psnr_cases, "quantize": ex._quantize_cases}
CHECKERS = {"reparameterize": ex.check_reparameterize, "kl_per_value": ex.check_kl_per_value,
            "psnr": ex.check_psnr, "quantize": ex.check_quantize}
REFERENCES = {"reparameterize": ex.reparameterize, "kl_per_value": ex.kl_per_value,
              "psnr": ex.psnr, "quantize": ex.quantize}

# Other correct ways to write each one: the checker must accept them too.
ALTERNATIVES = {
    "reparameterize": lambda mean, logvar, eps: mean + logvar.exp().sqrt() * eps,
    "kl_per_value": lambda mean, logvar: -0.5 * (1 + logvar - mean ** 2 - logvar.exp()),
    "psnr": lambda x, y: 20 * torch.log10(torch.tensor(2.0)) - 10 * torch.log10(((x - y) ** 2).mean((1, 2, 3))),
    "quantize": lambda z, bits, limit: _nearest_centre(z, bits, limit),
}


def _nearest_centre(z, bits, limit):
    step = 2 * limit / 2 ** bits
    centres = torch.linspace(-limit + step / 2, limit - step / 2, 2 ** bits)
    return centres[(z[..., None] - centres).abs().argmin(-1)]


# Typical mistakes a learner makes: each must be rejected.
MISTAKES = {
    "reparameterize": lambda mean, logvar, eps: mean + logvar.exp() * eps,              # variance, not std
    "kl_per_value": lambda mean, logvar: 0.5 * (mean ** 2 + logvar.exp() - logvar),      # forgot the -1
    "psnr": lambda x, y: 10 * torch.log10(1.0 / (x - y).pow(2).flatten(1).mean(1)),     # range 1, not 2
    "quantize": lambda z, bits, limit: torch.round(z.clamp(-limit, limit) * 2 ** bits / (2 * limit))
    * (2 * limit) / 2 ** bits,                                                           # rounds to bin edges
}


# ---- the references against hand-computed values and the package ----------------------------

def test_references_by_hand():
    mean, logvar, eps = ex._reparameterize_cases(0)[0]
    torch.testing.assert_close(ex.reparameterize(mean, logvar, eps), torch.tensor([1.0, 1.0 - 2.0, -2.0 + 0.25]))
    torch.testing.assert_close(ex.kl_per_value(mean, logvar),
                               torch.tensor([0.0, 0.5 * (1 + 4 - 1 - math.log(4)),
                                             0.5 * (4 + 0.25 - 1 - math.log(0.25))]))
    y, x = ex._psnr_cases(0)[0]
    torch.testing.assert_close(ex.psnr(y, x), torch.tensor([10 * math.log10(400), 10 * math.log10(8)]))
    z, bits, limit = ex._quantize_cases(0)[0]
    assert ex.quantize(z, bits, limit).tolist() == [-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]


@pytest.mark.parametrize("seed", [0, 1])
def test_references_match_the_package(seed):
    for mean, logvar in ex._kl_cases(seed):
        torch.testing.assert_close(ex.kl_per_value(mean, logvar), vae.kl_divergence(mean, logvar))
    for x, y in ex._psnr_cases(seed):
        torch.testing.assert_close(ex.psnr(x, y), vae.psnr(x, y))
    for z, bits, limit in ex._quantize_cases(seed):
        torch.testing.assert_close(ex.quantize(z, bits, limit), vae.quantize(z, bits, limit))
    for mean, logvar, eps in ex._reparameterize_cases(seed):
        gen = torch.Generator().manual_seed(seed)
        torch.testing.assert_close(ex.reparameterize(mean, logvar, torch.randn(mean.shape, generator=gen)),
                                   vae.reparameterize(mean, logvar, torch.Generator().manual_seed(seed)))


# ---- the checkers ---------------------------------------------------------------------------

class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES
    ATOL = 1e-4
