"""The sampler family against known answers: the ideal denoiser of a few points, Gaussian data."""
import math

import pytest
import torch

from diffusion_course import noise, sampling
from diffusion_course.ideal import IdealDenoiser
from diffusion_course.unet import UNet


class GaussianDenoiser(torch.nn.Module):
    """The ideal denoiser of Gaussian data N(m, diag(v)), in closed form:
    E[x0 | x] = m + v / (v + sigma^2) * (x - m), eps = (x - E[x0 | x]) / sigma."""

    def __init__(self, m, v):
        super().__init__()
        self.m, self.v = torch.as_tensor(m), torch.as_tensor(v)

    def forward(self, x, sigma, cond=None):
        x0 = self.m + self.v / (self.v + sigma ** 2) * (x - self.m)
        return (x - x0) / sigma


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_ddim_with_ideal_denoiser_ends_on_the_data():
    data = torch.tensor([[-1.5, 0.0], [0.0, 1.0], [1.5, -0.5], [0.2, -1.2]])
    model = IdealDenoiser(data)
    sigmas = torch.cat([noise.schedule("loglinear", 30, sigma_min=0.01, sigma_max=20.0), torch.zeros(1)])
    x = sampling.generate(model, sigmas, (64, 2), "ddim", generator=gen(0))
    dist = torch.cdist(x.double(), data.double()).min(1).values
    assert dist.max() < 1e-4                                  # every sample is one of the 4 points
    hits = torch.cdist(x.double(), data.double()).argmin(1).bincount(minlength=4)
    assert (hits > 0).all()                                   # and all 4 points are reached


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "accelerated"])
def test_samplers_reproduce_gaussian_mean_and_variance(sampler):
    m, v = torch.tensor([0.5, -1.0]), torch.tensor([0.25, 1.0])
    n = 10000
    sigmas = noise.schedule("loglinear", 1000, sigma_min=0.01, sigma_max=80.0)
    x = sampling.generate(GaussianDenoiser(m, v), sigmas, (n, 2), sampler, generator=gen(1))
    # standard errors: mean sqrt(v/n) <= 0.01, variance v*sqrt(2/n) ~ 1.4%; allow 4 of them
    torch.testing.assert_close(x.mean(0), m, atol=4 * math.sqrt(1 / n), rtol=0)
    torch.testing.assert_close(x.var(0), v + 0.01 ** 2, rtol=0.06, atol=0)


def test_ddim_converges_to_the_exact_flow_at_first_order():
    """For Gaussian data the DDIM ODE has the solution x(s) = m + (x - m) sqrt(v + s^2) / sqrt(v + s0^2).
    Doubling the steps must halve DDIM's error (Euler's method), and the accelerated sampler must do
    better than DDIM at few steps."""
    m, v = torch.tensor([0.5, -1.0]), torch.tensor([0.25, 1.0])
    model = GaussianDenoiser(m, v)
    x_start = 80.0 * torch.randn(8, 2, generator=gen(2))
    exact = m + (x_start - m) * (v + 0.01 ** 2).sqrt() / (v + 80.0 ** 2).sqrt()

    def err(steps, sampler):
        sig = noise.schedule("loglinear", steps, sigma_min=0.01, sigma_max=80.0)
        return (sampling.generate(model, sig, x=x_start.clone(), sampler=sampler) - exact).abs().max().item()

    ratio = err(80, "ddim") / err(40, "ddim")
    assert 0.4 < ratio < 0.6
    assert err(10, "accelerated") < 0.6 * err(10, "ddim")


def test_one_step_formulas_by_hand():
    """With a model that always predicts eps = e, one step is x - (sigma - sigma') e + eta z."""
    e = torch.tensor([[0.3, -0.2]])
    model = lambda x, sigma, cond=None: e.expand_as(x)
    x0 = torch.tensor([[1.0, 2.0]])
    s, s_next = 2.0, 0.5
    ddim = next(sampling.sample(model, torch.tensor([s, s_next]), x=x0.clone(), **sampling.DDIM))
    torch.testing.assert_close(ddim.x, x0 - (s - s_next) * e)
    torch.testing.assert_close(ddim.x0, x0 - s * e)
    # DDPM: sigma' = s_next^2 / s, eta = s_next * sqrt(1 - s_next^2 / s^2), then fresh noise z
    ddpm = next(sampling.sample(model, torch.tensor([s, s_next]), x=x0.clone(), generator=gen(5), **sampling.DDPM))
    z = torch.randn(1, 2, generator=gen(5))
    s_p, eta = s_next ** 2 / s, s_next * math.sqrt(1 - s_next ** 2 / s ** 2)
    torch.testing.assert_close(ddpm.x, x0 - (s - s_p) * e + eta * z)


def test_accelerated_extrapolates_the_noise_estimate():
    """gam = 2: the first step is a DDIM step; later steps use 2 eps - eps_prev."""
    model = lambda x, sigma, cond=None: x * sigma / (1 + sigma ** 2)   # eps of N(0, I) data
    sig = torch.tensor([4.0, 2.0, 1.0])
    x = torch.tensor([[1.0, -3.0]])
    steps = list(sampling.sample(model, sig, x=x.clone(), **sampling.ACCELERATED))
    e1 = model(x, 4.0)
    x1 = x - 2.0 * e1
    torch.testing.assert_close(steps[0].x, x1)
    e2 = model(x1, 2.0)
    torch.testing.assert_close(steps[1].x, x1 - 1.0 * (2 * e2 - e1))
    torch.testing.assert_close(steps[1].eps, e2)


def test_step_records():
    model = IdealDenoiser(torch.randn(5, 1, 4, 4, generator=gen(3)))
    sig = noise.schedule("loglinear", 6, sigma_max=10.0)
    steps = list(sampling.sample(model, sig, (3, 1, 4, 4), generator=gen(0)))
    assert [s.i for s in steps] == list(range(6))
    assert [s.sigma for s in steps] == pytest.approx(sig[:-1].tolist())
    assert [s.sigma_next for s in steps] == pytest.approx(sig[1:].tolist())
    assert all(s.x.shape == s.x0.shape == (3, 1, 4, 4) for s in steps)
    torch.testing.assert_close(steps[-1].x, sampling.generate(model, sig, (3, 1, 4, 4), "ddim", generator=gen(0)))


def test_seeded_sampling_is_repeatable():
    model = IdealDenoiser(torch.randn(7, 2, generator=gen(4)))
    sig = noise.schedule("loglinear", 10, sigma_max=10.0)
    for sampler in ("ddim", "ddpm", "accelerated"):
        a = sampling.generate(model, sig, (16, 2), sampler, generator=gen(9))
        b = sampling.generate(model, sig, (16, 2), sampler, generator=gen(9))
        assert torch.equal(a, b)
    c = sampling.generate(model, sig, (16, 2), "ddpm", generator=gen(10))
    assert not torch.equal(a, c)


def test_guidance_is_one_batched_mix():
    data = torch.randn(12, 3, generator=gen(6))
    labels = torch.arange(12) % 3
    model = IdealDenoiser(data, labels)
    x = torch.randn(4, 3, generator=gen(7))
    cond = torch.tensor([0, 1, 2, 1])
    e_c, e_u = model(x, 1.3, cond), model(x, 1.3, torch.full_like(cond, 3))
    calls = []
    counting = lambda x, sigma, cond=None: calls.append(len(x)) or model(x, sigma, cond)
    counting.null_cond = model.null_cond
    for scale in (0.0, 1.0, 2.5, 7.0):
        got = sampling.guided_eps(counting, x, 1.3, cond, scale)
        torch.testing.assert_close(got, e_u + scale * (e_c - e_u))
    assert calls == [8, 4, 8, 8]                               # one batched pass when guiding
    torch.testing.assert_close(sampling.guided_eps(model, x, 1.3, cond, 1.0), e_c)   # scale 1 = conditional
    sig = noise.schedule("loglinear", 5, sigma_max=10.0)
    a = sampling.generate(model, sig, (4, 3), "ddpm", cond=cond, cfg_scale=1.0, generator=gen(8))
    b = sampling.generate(lambda x, s, c=None: model(x, s, cond), sig, (4, 3), "ddpm", generator=gen(8))
    torch.testing.assert_close(a, b)


def test_guidance_with_explicit_null_cond():
    data, labels = torch.randn(6, 2, generator=gen(11)), torch.tensor([0, 0, 0, 1, 1, 1])
    model = IdealDenoiser(data, labels)
    x, cond = torch.randn(2, 2, generator=gen(12)), torch.tensor([0, 1])
    a = sampling.guided_eps(model, x, 0.8, cond, 3.0)
    b = sampling.guided_eps(model, x, 0.8, cond, 3.0, null_cond=torch.tensor([2, 2]))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigmas=torch.tensor([1.0])), "steps >= 1"),
    (dict(sigmas=torch.tensor([1.0, 2.0, 0.5])), "strictly decreasing"),
    (dict(sigmas=torch.tensor([1.0, 1.0])), "strictly decreasing"),
    (dict(shape=(2, 3, 8, 8)), r"shape \(B, 1, H, W\)"),
    (dict(shape=(2, 8, 8)), r"shape \(B, 1, H, W\)"),
    (dict(cfg_scale=-1.0, cond=torch.tensor([0, 1])), "cfg_scale must be a number >= 0"),
    (dict(cfg_scale=3.0), "needs a condition"),
    (dict(mu=1.0), r"mu must be in \[0, 1\)"),
    (dict(gam=0.0), "gam must be a positive number"),
    (dict(x=torch.zeros(2, 1, 8, 8)), "exactly one of shape"),
    (dict(cond=torch.tensor([0, 1, 2])), "one entry per sample"),
])
def test_bad_inputs_raise_at_the_call(kwargs, match):
    model = UNet(channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=3, groups=4)
    args = dict(sigmas=noise.schedule("loglinear", 3), shape=(2, 1, 8, 8))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sampling.sample(model, **args)                         # raises before the first step


def test_unknown_sampler_name():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        sampling.generate(lambda x, s: x, noise.schedule("loglinear", 3), (1, 2), "euler")
