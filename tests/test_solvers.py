"""The higher-order step rules (sampling.py eqs. 5-6) against exact answers: the sampling ODE of a
Gaussian has a closed-form solution, and the error of each rule must fall at the order it claims
(first for DDIM = Euler, second for Heun and DPM-Solver++(2M)) as the steps double."""
import math

import pytest
import torch

from diffusion_course import noise, sampling
from diffusion_course.ideal import IdealDenoiser

MU, S = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.5          # data ~ N(MU, S^2 I)
SIGMA_MIN, SIGMA_MAX = 0.01, 80.0
CLAIMED = {"ddim": 1, "heun": 2, "dpmpp_2m": 2}


class Gaussian(torch.nn.Module):
    """The exact denoiser of N(MU, S^2 I): eps = sigma (x - MU) / (S^2 + sigma^2)."""
    calls = 0

    def forward(self, x, sigma, cond=None):
        Gaussian.calls += 1
        return sigma * (x - MU) / (S ** 2 + sigma ** 2)


def exact_end(x_start, sigma):
    """The ODE dx/dsigma = eps(x, sigma) for Gaussian data, solved: x - MU scales like sqrt(S^2 + sigma^2)."""
    return MU + math.sqrt((S ** 2 + sigma ** 2) / (S ** 2 + SIGMA_MAX ** 2)) * (x_start - MU)


def errors(model, x_start, target, name, steps, sigma_min=SIGMA_MIN):
    out = []
    for n in steps:
        sigmas = noise.schedule("loglinear", n, sigma_min=sigma_min, sigma_max=SIGMA_MAX).double()
        out.append((sampling.generate(model, sigmas, x=x_start.clone(), sampler=name) - target).norm(dim=1).mean())
    return out


def orders(errs):
    return [math.log2(a / b) for a, b in zip(errs, errs[1:])]


@pytest.mark.parametrize("name", list(CLAIMED))
def test_each_rule_converges_to_the_closed_form_at_its_order(name):
    x_start = SIGMA_MAX * torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errs = errors(Gaussian(), x_start, exact_end(x_start, SIGMA_MIN), name, (32, 64, 128))
    assert errs[-1] < (2e-2 if CLAIMED[name] == 1 else 1e-3)          # it gets there
    for order in orders(errs):
        assert abs(order - CLAIMED[name]) < 0.2, (name, orders(errs))


@pytest.mark.parametrize("name", list(CLAIMED))
def test_the_orders_hold_on_a_mixture_with_its_exact_denoiser(name):
    """Three points: the ideal denoiser is exact and sharply curved; the reference is Heun at 4,096 steps."""
    ideal = IdealDenoiser(torch.tensor([[1.0, 1.0], [-1.0, 0.5], [0.3, -1.2]], dtype=torch.float64))
    x_start = SIGMA_MAX * torch.randn(128, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fine = noise.schedule("loglinear", 4096, sigma_min=0.05, sigma_max=SIGMA_MAX).double()
    reference = sampling.generate(ideal, fine, x=x_start.clone(), sampler="heun")
    for order in orders(errors(ideal, x_start, reference, name, (64, 128, 256), sigma_min=0.05)):
        assert abs(order - CLAIMED[name]) < 0.2, name


def test_heun_costs_two_evaluations_a_step_and_dpmpp_one_and_starts_as_ddim():
    sigmas = noise.schedule("loglinear", 10).double()
    x_start = 80.0 * torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for name, calls in (("ddim", 10), ("heun", 20), ("dpmpp_2m", 10)):
        Gaussian.calls = 0
        sampling.generate(Gaussian(), sigmas, x=x_start.clone(), sampler=name)
        assert Gaussian.calls == calls, name
    with_zero = torch.cat([sigmas[:-1], torch.zeros(1, dtype=torch.float64)])      # a last step to sigma = 0
    Gaussian.calls = 0
    sampling.generate(Gaussian(), with_zero, x=x_start.clone(), sampler="heun")
    assert Gaussian.calls == 19                                                    # Euler on the last step
    first = lambda name: next(iter(sampling.sample(Gaussian(), sigmas, x=x_start.clone(),  # noqa: E731
                                                   **sampling.SAMPLERS[name]))).x
    torch.testing.assert_close(first("dpmpp_2m"), first("ddim"))


def test_an_unknown_solver_is_refused_at_the_call():
    with pytest.raises(ValueError, match="unknown solver 'rk4'"):
        sampling.sample(Gaussian(), noise.schedule("loglinear", 4), shape=(2, 2), solver="rk4")
