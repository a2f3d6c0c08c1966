"""Flow matching in the sigma form (flow.py): Euler on the flow ODE is DDIM, the loss is the eps error
weighted by (1 + sigma)^2, the straight path of a single point is followed exactly in one step, and
the training and sampling grids are uniform in t."""
import math

import torch

from diffusion_course import flow, noise, sampling
from diffusion_course.ideal import IdealDenoiser


def test_euler_on_the_flow_ode_is_ddim_on_the_flow_schedule():
    torch.manual_seed(0)
    ideal = IdealDenoiser(torch.randn(20, 3, dtype=torch.float64))
    sigmas = noise.schedule("flow", 12, sigma_min=0.02, sigma_max=50.0).double()
    ts = flow.sigma_to_t(sigmas)
    x_start = 50.0 * torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ddim = sampling.generate(ideal, sigmas, x=x_start.clone(), sampler="ddim")
    x_t = flow.euler(ideal, ts, x_start / (1 + sigmas[0]))                  # x_t = x_sigma / (1 + sigma)
    torch.testing.assert_close(x_t * (1 + sigmas[-1]), ddim, rtol=1e-5, atol=1e-5)   # sample() feeds the
    # ideal denoiser in its buffers' float32, flow.euler in float64: equal to float32 rounding


def test_the_flow_matching_loss_is_the_velocity_error():
    g = torch.Generator().manual_seed(2)
    x0, eps, eps_hat = (torch.randn(8, 1, 4, 4, generator=g) for _ in range(3))
    sigma = noise.training_sigmas(8, kind="flow", generator=g)
    x_sigma = x0 + sigma[:, None, None, None] * eps
    v = eps - x0                                                             # eq. (2)
    v_hat = (1 + sigma[:, None, None, None]) * eps_hat - x_sigma             # eq. (4)
    torch.testing.assert_close(flow.flow_matching_loss(eps_hat, eps, sigma), ((v_hat - v) ** 2).mean())


def test_one_data_point_is_reached_in_a_single_euler_step():
    """The exact denoiser of one point makes every path straight: one step lands where 100 do."""
    point = torch.tensor([[0.5, -2.0]], dtype=torch.float64)
    ideal = IdealDenoiser(point)
    x_start = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t_end = 0.01
    one = flow.euler(ideal, torch.tensor([0.99, t_end], dtype=torch.float64), x_start)
    many = flow.euler(ideal, torch.linspace(0.99, t_end, 101, dtype=torch.float64), x_start)
    torch.testing.assert_close(one, many)
    noise_part = (x_start - 0.01 * point) / 0.99                             # x_start = 0.01 x0 + 0.99 eps
    torch.testing.assert_close(one, (1 - t_end) * point + t_end * noise_part)


def test_training_and_sampling_grids_are_uniform_in_t():
    sigmas = noise.schedule("flow", 4, sigma_min=0.01, sigma_max=80.0).double()
    t = flow.sigma_to_t(sigmas)
    torch.testing.assert_close(t[:-1] - t[1:], torch.full((4,), (t[0] - t[-1]).item() / 4, dtype=torch.float64))
    assert math.isclose(sigmas[0].item(), 80.0, rel_tol=1e-5) and math.isclose(sigmas[-1].item(), 0.01, rel_tol=1e-4)
    draws = flow.sigma_to_t(noise.training_sigmas(100_000, kind="flow", generator=torch.Generator().manual_seed(4)))
    lo, hi = 0.01 / 1.01, 80 / 81
    assert abs(draws.mean().item() - (lo + hi) / 2) < 0.005                  # mean of a uniform
    assert abs((draws < 0.5).float().mean().item() - (0.5 - lo) / (hi - lo)) < 0.005
