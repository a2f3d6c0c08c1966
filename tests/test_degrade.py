"""Cold diffusion's degradations against hand computations (blur as a known Gaussian kernel, masks as
known sets) and its samplers against exact answers (an oracle restorer; the improved sampler's
exactness for additive degradations, which the naive one lacks)."""
import math

import pytest
import torch

from diffusion_course.degrade import Blur, Mask, cold_sample, gaussian_blur, restoration_loss
from diffusion_course.unet import UNet


def test_blur_spreads_a_point_into_the_gaussian_of_its_width_and_keeps_the_mean():
    point = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    point[0, 0, 14, 14] = 1.0
    std = 1.9
    out = gaussian_blur(point, std)[0, 0]
    r = torch.arange(28, dtype=torch.float64) - 14
    kernel = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * std ** 2))
    torch.testing.assert_close(out, kernel / kernel.sum(), atol=2e-4, rtol=0)  # the sampled Gaussian
    assert math.isclose(out.sum().item(), 1.0, rel_tol=1e-9)                 # mass kept
    assert math.isclose((out * r[:, None] ** 2).sum().item(), std ** 2, rel_tol=0.01)   # its variance


def test_blurs_add_up_like_the_heat_equation_and_end_at_the_mean():
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(gaussian_blur(x, 1.2), 1.6), gaussian_blur(x, 2.0))   # 1.44 + 2.56 = 4
    flat = gaussian_blur(x, 200.0)
    torch.testing.assert_close(flat, x.mean((2, 3), keepdim=True).expand_as(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(gaussian_blur(x, torch.tensor([0.5, 3.0]))[1:], gaussian_blur(x[1:], 3.0))


def test_the_blur_schedule_grows_geometrically_from_none():
    blur, x = Blur(steps=5, std_min=0.5, std_max=8.0), torch.rand(2, 1, 28, 28, dtype=torch.float64)
    assert blur.std(0).item() == 0 and torch.equal(blur(x, 0), x)
    want = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64)        # doubling at every step
    torch.testing.assert_close(blur.std(torch.arange(1, 6)), want)
    torch.testing.assert_close(blur(x, torch.tensor([2, 5]))[1:], gaussian_blur(x[1:], 8.0))


def test_masks_hide_known_nested_sets_and_nothing_else():
    mask, x = Mask(steps=4, size=28, fill=-1.0, seed=3), torch.rand(1, 1, 28, 28)
    sizes = [mask.hidden(s).sum().item() for s in range(5)]
    assert sizes == [0, 196, 392, 588, 784]                           # round(s / 4 * 784)
    for s in range(4):
        assert (mask.hidden(s) <= mask.hidden(s + 1)).all()          # nested
    out = mask(x, 2)
    hidden = mask.hidden(2)
    assert (out[hidden] == -1.0).all() and torch.equal(out[~hidden], x[~hidden])
    assert not torch.equal(Mask(seed=4).hidden(10), Mask(seed=3).hidden(10))


@pytest.mark.parametrize("degrade", [Blur(steps=6), Mask(steps=6)])
def test_with_an_oracle_restorer_both_samplers_return_the_picture(degrade):
    x0 = torch.rand(3, 1, 28, 28, dtype=torch.float64) * 2 - 1
    oracle = lambda x, s: x0                                          # noqa: E731
    for improved in (True, False):
        torch.testing.assert_close(cold_sample(None, degrade, degrade(x0, 6), improved, restorer=oracle), x0)


def test_the_improved_sampler_is_exact_for_an_additive_degradation_whatever_the_network_says():
    """D(x, s) = x + s d (Bansal et al., section 3.3): x_{s-1} = x_s - d, so x_0 = x0 even with a bad guess."""
    d = torch.randn(1, 1, 28, 28, dtype=torch.float64)

    class Shift:
        steps = 5

        def __call__(self, x, s):
            return x + s * d

    x0 = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    wrong = lambda x, s: torch.zeros_like(x) + 0.3 * s               # noqa: E731  a poor restorer
    start = Shift()(x0, 5)
    torch.testing.assert_close(cold_sample(None, Shift(), start, improved=True, restorer=wrong), x0)
    naive = cold_sample(None, Shift(), start, improved=False, restorer=wrong)
    assert (naive - x0).abs().mean() > 0.5                            # the naive walk keeps the bad guess


def test_the_restoration_loss_trains_the_course_unet():
    torch.manual_seed(0)
    unet = UNet(in_channels=1, channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=())
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    loss = restoration_loss(unet, x0, Blur(steps=4), generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() > 0 and unet.conv_out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("call, message", [
    (lambda: Blur()(torch.rand(2, 1, 32, 32), 1), r"\(B, C, 28, 28\)"),
    (lambda: Mask(steps=4)(torch.rand(2, 1, 28, 28), 5), "from 0 to 4"),
    (lambda: Blur()(torch.rand(2, 1, 28, 28), torch.tensor([1, 2, 3])), "one per picture"),
])
def test_bad_severities_and_sizes_get_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
