"""The chapter-6 exercise checkers: right answers pass, wrong ones are caught and explained."""
import math

import pytest
import torch

from diffusion_course import vae
from diffusion_course.exercises import describe
from diffusion_course.exercises import latent_vae as ex

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


# ---- the checkers --------------------------------------------------------------------------

@pytest.mark.parametrize("name", CHECKERS)
@pytest.mark.parametrize("seed", [None, 0, 1])
def test_checker_accepts_the_reference(name, seed):
    result = CHECKERS[name](REFERENCES[name], seed=seed)
    assert result, result.message
    assert result.message.startswith("✅") and f"{ex.N_CASES} random inputs" in result.message


@pytest.mark.parametrize("name", CHECKERS)
def test_checker_accepts_another_correct_solution(name):
    result = CHECKERS[name](ALTERNATIVES[name], seed=3)
    assert result, result.message


@pytest.mark.parametrize("name", CHECKERS)
@pytest.mark.parametrize("seed", [0, 7])
def test_checker_rejects_a_mistake_and_names_the_input(name, seed):
    result = CHECKERS[name](MISTAKES[name], seed=seed)
    assert not result
    assert result.message.startswith(f"❌ {name}:"), result.message
    for args in CASES[name](seed):                 # the first case where mistake and reference differ
        if not torch.allclose(MISTAKES[name](*args).double(), REFERENCES[name](*args).double(), atol=1e-4):
            assert f"on input {describe(args)}" in result.message, result.message
            break
    else:
        pytest.fail("the mistake matched the reference on every case")


@pytest.mark.parametrize("name", CHECKERS)
def test_a_stub_is_reported_kindly(name):
    def stub(*args):
        raise NotImplementedError
    result = CHECKERS[name](stub)
    assert not result and result.message.startswith(f"✋ {name}: not written yet")


@pytest.mark.parametrize("name", CASES)
def test_inputs_are_fresh_each_call_and_repeatable_by_seed(name):
    shapes = lambda cases: [tuple(tuple(a.shape) if torch.is_tensor(a) else a for a in args) for args in cases]
    assert shapes(CASES[name](5)) == shapes(CASES[name](5))
    assert torch.equal(CASES[name](5)[-1][0], CASES[name](5)[-1][0])
    assert shapes(CASES[name](None)) != shapes(CASES[name](None))
    assert len(set(shapes(CASES[name](0)))) > ex.N_CASES // 2        # varied inputs, not one repeated
