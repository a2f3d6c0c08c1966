"""Noise levels and schedules against their closed forms, computed independently here."""
import math

import numpy as np
import pytest
import torch

from diffusion_course import noise


def test_ddpm_schedule_matches_closed_form():
    betas = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - betas)                       # DDPM, t = 1..1000
    want = np.sqrt(1 / alpha_bar - 1)[::-1]                 # largest noise first
    got = noise.ddpm_schedule(1000).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert 157.0 < got[0] < 157.8 and abs(got[-1] - 0.01) < 1e-4   # the well-known end points


def test_cosine_schedule_matches_closed_form():
    n, s = 1000, 0.008
    f = lambda t: math.cos((t / n + s) / (1 + s) * math.pi / 2) ** 2
    got = noise.cosine_schedule(n).double().flip(0)         # got[t-1] is sigma at step t
    for t in (1, 10, 500, 900, 990):                        # where no beta is clipped
        alpha_bar = f(t) / f(0)
        assert got[t - 1].item() == pytest.approx(math.sqrt(1 / alpha_bar - 1), rel=1e-5)
    assert torch.isfinite(got).all()                         # the clipped last step stays finite


def test_loglinear_schedule_is_geometric():
    sig = noise.loglinear_schedule(11, sigma_min=0.01, sigma_max=100.0).double()
    assert sig[0].item() == pytest.approx(100.0) and sig[-1].item() == pytest.approx(0.01)
    ratios = sig[1:] / sig[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 10 ** -0.4), rtol=1e-5, atol=0)


@pytest.mark.parametrize("name", ["loglinear", "ddpm", "cosine"])
def test_schedules_strictly_decrease(name):
    sig = noise.schedule(name, steps=25)
    assert sig.shape == (26,)
    assert (sig[1:] < sig[:-1]).all() and (sig > 0).all()


def test_subsample_keeps_ends():
    table = noise.ddpm_schedule(1000)
    sub = noise.subsample(table, 10)
    assert len(sub) == 11 and sub[0] == table[0] and sub[-1] == table[-1]
    assert (sub[1:] < sub[:-1]).all()


def test_alpha_bar_conversions():
    sigma = torch.tensor([0.0, 0.5, 1.0, 3.0])
    ab = noise.sigma_to_alpha_bar(sigma)
    torch.testing.assert_close(ab, 1 / (1 + sigma ** 2))
    assert ab[2].item() == pytest.approx(0.5)                # sigma = 1: half signal, half noise
    torch.testing.assert_close(noise.alpha_bar_to_sigma(ab), sigma, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(noise.snr(torch.tensor([0.5, 2.0])), torch.tensor([4.0, 0.25]))


def test_sigma_form_and_ddpm_form_agree():
    """x_t = sqrt(ab) x0 + sqrt(1 - ab) eps equals x_sigma / sqrt(1 + sigma^2)."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    sigma = torch.tensor([0.1, 1.0, 5.0, 50.0])
    ab = noise.sigma_to_alpha_bar(sigma)[:, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    torch.testing.assert_close(noise.to_unit_variance(noise.add_noise(x0, sigma, eps), sigma), x_t)


def test_add_noise_per_item_and_statistics():
    x0 = torch.zeros(2, 1, 100, 100)
    x0[1] = 1.0
    sigma = torch.tensor([0.5, 2.0])
    x = noise.add_noise(x0, sigma, generator=torch.Generator().manual_seed(0))
    assert x.shape == x0.shape
    assert x[0].mean().item() == pytest.approx(0.0, abs=0.02) and x[0].std().item() == pytest.approx(0.5, rel=0.03)
    assert x[1].mean().item() == pytest.approx(1.0, abs=0.08) and x[1].std().item() == pytest.approx(2.0, rel=0.03)
    eps = torch.randn_like(x0)
    torch.testing.assert_close(noise.add_noise(x0, 0.3, eps), x0 + 0.3 * eps)


def test_training_sigmas_range_and_spread():
    g = torch.Generator().manual_seed(0)
    s = noise.training_sigmas(20000, 0.01, 100.0, generator=g)
    assert s.min() >= 0.01 and s.max() <= 100.0
    # log-uniform: the mean of log10(sigma) is the midpoint, 0, and each decade gets a quarter
    assert s.log10().mean().item() == pytest.approx(0.0, abs=0.05)
    assert ((s > 1) & (s < 10)).float().mean().item() == pytest.approx(0.25, abs=0.02)
    ln = noise.training_sigmas(20000, 1e-3, 1e3, kind="lognormal", generator=g)
    assert ln.log().mean().item() == pytest.approx(-1.2, abs=0.05)
    # mixed, with a narrow log-normal at sigma = 2: half the draws land within 3 std (a factor
    # e^0.15) of 2, and the other half spread log-uniformly, a quarter of them in each decade
    mix = noise.training_sigmas(20000, 0.01, 100.0, kind="mixed", p_mean=math.log(2.0), p_std=0.05, generator=g)
    near = (mix.log() - math.log(2.0)).abs() < 0.15
    assert near.float().mean().item() == pytest.approx(0.5 + 0.5 * 0.3 / math.log(1e4), abs=0.02)
    assert ((mix > 10) & (mix < 100)).float().mean().item() == pytest.approx(0.125, abs=0.015)


@pytest.mark.parametrize("call, match", [
    (lambda: noise.loglinear_schedule(1), "n must be an integer >= 2"),
    (lambda: noise.loglinear_schedule(10, sigma_min=5.0, sigma_max=1.0), "sigma_min < sigma_max"),
    (lambda: noise.ddpm_schedule(10, beta_start=0.1, beta_end=0.01), "beta_start < beta_end"),
    (lambda: noise.schedule("karras"), "unknown schedule"),
    (lambda: noise.schedule("ddpm", steps=0), "steps must be a positive integer"),
    (lambda: noise.subsample(noise.ddpm_schedule(10), 10), "steps must be an integer from 1 to 9"),
    (lambda: noise.add_noise(torch.zeros(3, 2), torch.ones(2)), "one value per batch item"),
    (lambda: noise.add_noise(torch.zeros(3, 2), -1.0), "sigma must be >= 0"),
    (lambda: noise.add_noise(torch.zeros(3, 2), 1.0, eps=torch.zeros(2, 2)), "eps has shape"),
    (lambda: noise.alpha_bar_to_sigma(torch.tensor([0.0])), "alpha_bar must lie in"),
    (lambda: noise.training_sigmas(4, kind="uniform"), "unknown kind"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
