"""The U-Net: shapes, conditioning paths, input scaling, the sigma embedding and bad inputs."""
import math

import pytest
import torch

from diffusion_course.checkpoint import load_model, save_checkpoint
from diffusion_course.mlp import MLPDenoiser
from diffusion_course.unet import UNet, sinusoidal_embedding

SMALL = dict(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), groups=4, heads=2)


def randomized(model, seed=0):
    """Give every weight a random value: the zero-initialised output layers would hide differences."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_sinusoidal_embedding_values():
    sigma = torch.tensor([1.0, math.exp(1 / 4)])             # t = 4 ln(sigma) = 0 and 1
    emb = sinusoidal_embedding(sigma, 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    freqs = torch.tensor([1.0, 100 ** -0.25, 0.1, 100 ** -0.75])       # 100^(-i/4), by hand
    torch.testing.assert_close(emb[1], torch.cat([torch.sin(freqs), torch.cos(freqs)]))
    with pytest.raises(ValueError, match="positive even number"):
        sinusoidal_embedding(sigma, 7)


def test_sinusoidal_embedding_is_smooth_in_sigma():
    """Every wave turns slowly enough that a 2% change of sigma barely moves the vector, while a
    doubling moves it clearly: the network gets no feature it could only fit noise to."""
    e = sinusoidal_embedding(torch.tensor([1.0, 1.02, 2.0, 80.0]), 32)
    cos = torch.nn.functional.cosine_similarity(e[:1], e[1:])
    assert cos[0] > 0.999 and cos[1] < 0.9 and cos[2] < cos[1], cos


@pytest.mark.parametrize("kwargs, size", [
    (dict(), 28),
    (dict(channel_mults=(1, 2, 2, 4), attention_levels=(2, 3)), 32),
    (dict(in_channels=4, channel_mults=(1,), attention_levels=(0,)), 6),
])
def test_output_shape_equals_input_shape(kwargs, size):
    cfg = dict(SMALL, **kwargs)
    model = randomized(UNet(**cfg))
    c = cfg.get("in_channels", 1)
    x = torch.randn(3, c, size, size)
    assert model(x, torch.tensor([0.1, 1.0, 10.0])).shape == (3, c, size, size)
    assert model(x, 2.0).shape == (3, c, size, size)         # one sigma for the whole batch


def test_untrained_unet_is_the_ideal_denoiser_of_gaussian_data():
    """With the last layer at zero (v = 0), eps = sigma x / (1 + sigma^2): E[eps | x] for x0 ~ N(0, I)."""
    model = UNet(**SMALL, num_classes=3)
    x, sigma = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 1.0, 30.0])
    s = sigma[:, None, None, None]
    torch.testing.assert_close(model(x, sigma), s * x / (1 + s ** 2))


def test_output_is_eps_from_v():
    """eps = (sigma x_in + v) / sqrt(1 + sigma^2), and v_loss is the MSE of v."""
    from diffusion_course.unet import v_loss
    model = randomized(UNet(**SMALL))
    seen = []
    model.conv_out.register_forward_hook(lambda m, inp, out: seen.append(out))
    x, sigma = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 20.0])
    eps_hat = model(x, sigma)
    s = sigma[:, None, None, None]
    v = seen[0]
    torch.testing.assert_close(eps_hat, (s * x / (1 + s ** 2).sqrt() + v) / (1 + s ** 2).sqrt())
    x0, eps = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    v_true = (eps - s * x0) / (1 + s ** 2).sqrt()             # the v of x = x0 + sigma eps
    eps_from_v = (s * (x0 + s * eps) / (1 + s ** 2).sqrt() + v_true) / (1 + s ** 2).sqrt()
    torch.testing.assert_close(eps_from_v, eps)               # eq. (1) inverts v exactly
    assert v_loss(eps_hat, eps, sigma).item() == pytest.approx(((1 + s ** 2) * (eps_hat - eps) ** 2).mean().item())


def test_config_rebuilds(tmp_path):
    model = randomized(UNet(**SMALL, num_classes=3))
    save_checkpoint(tmp_path / "u", model, {"recipe": "test"})
    back = load_model(tmp_path / "u")
    x, s, y = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 3.0]), torch.tensor([0, 2])
    assert back.config == model.config
    torch.testing.assert_close(back(x, s, y), model(x, s, y))


def test_class_conditioning_and_null_class():
    model = randomized(UNet(**SMALL, num_classes=3))
    x = torch.randn(2, 1, 8, 8)
    a = model(x, 1.0, torch.tensor([0, 0]))
    b = model(x, 1.0, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    null = model(x, 1.0, torch.tensor([3, 3]))
    torch.testing.assert_close(model(x, 1.0), null)          # no cond = the null class
    assert torch.equal(model.null_cond(torch.tensor([0, 2])), torch.tensor([3, 3]))


def test_cross_attention_to_text_tokens():
    model = randomized(UNet(**SMALL, context_dim=6))
    x = torch.randn(2, 1, 8, 8)
    g = torch.Generator().manual_seed(1)
    ctx = torch.randn(2, 5, 6, generator=g)
    out = model(x, 1.0, ctx)                                  # tokens as cond ...
    torch.testing.assert_close(out, model(x, 1.0, context=ctx))   # ... or as context
    assert not torch.allclose(out, model(x, 1.0, torch.randn(2, 5, 6, generator=g)))
    mask = torch.tensor([[True, True, True, False, False]] * 2)
    ctx2 = ctx.clone()
    ctx2[:, 3:] = 100.0                                       # change only the padding tokens
    torch.testing.assert_close(model(x, 1.0, context=ctx, context_mask=mask),
                               model(x, 1.0, context=ctx2, context_mask=mask))
    torch.testing.assert_close(model(x, 1.0, context=ctx, context_mask=torch.ones(2, 5, dtype=torch.bool)), out)
    torch.testing.assert_close(model.null_cond(ctx), torch.zeros_like(ctx))


def test_input_is_scaled_to_unit_variance():
    model = randomized(UNet(**SMALL))
    seen = []
    model.conv_in.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    x = torch.randn(2, 1, 8, 8)
    sigma = torch.tensor([0.5, 7.0])
    model(x, sigma)
    torch.testing.assert_close(seen[0], x / (1 + sigma[:, None, None, None] ** 2).sqrt())


def test_channels_last_gives_the_same_answer():
    model = randomized(UNet(**SMALL, num_classes=3))
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    want = model(x, 0.7, y)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.contiguous(memory_format=torch.channels_last), 0.7, y)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_mlp_denoiser():
    mlp = MLPDenoiser(hidden=16, depth=2)
    x = torch.randn(5, 2)
    assert mlp(x, torch.rand(5)).shape == (5, 2) and mlp(x, 0.5).shape == (5, 2)
    with pytest.raises(ValueError, match=r"points of shape \(B, 2\)"):
        mlp(torch.randn(5, 3), 1.0)


@pytest.mark.parametrize("make, call, match", [
    (lambda: UNet(**SMALL), lambda m: m(torch.randn(2, 3, 8, 8), 1.0), r"expects x of shape \(B, 1, H, W\)"),
    (lambda: UNet(**SMALL), lambda m: m(torch.randn(2, 1, 7, 7), 1.0), "must be divisible by 2"),
    (lambda: UNet(**SMALL), lambda m: m(torch.randn(2, 1, 8, 8), 1.0, torch.tensor([0, 1])), "unconditional"),
    (lambda: UNet(**SMALL, num_classes=3), lambda m: m(torch.randn(2, 1, 8, 8), 1.0, torch.tensor([0, 4])),
     "values 0..2 or 3"),
    (lambda: UNet(**SMALL), lambda m: m(torch.randn(2, 1, 8, 8), 1.0, torch.randn(2, 3, 4)), "no cross-attention"),
    (lambda: UNet(channels=8, attention_levels=(5,)), lambda m: None, "must index the 3 levels"),
])
def test_bad_inputs(make, call, match):
    with pytest.raises(ValueError, match=match):
        call(make())


def test_cross_attention_maps_are_the_weights_the_unet_uses():
    from diffusion_course.unet import cross_attention_maps, word_maps
    model = randomized(UNet(**SMALL, context_dim=6))
    x, ctx = torch.randn(2, 1, 8, 8), torch.randn(2, 5, 6)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    plain = model(x, 1.0, (ctx, mask))
    with cross_attention_maps(model) as maps:
        recorded = model(x, 1.0, (ctx, mask))
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-4)      # the written-out attention is SDPA's
    assert len(maps) == 4 and maps[0].shape == (2, 4, 4, 5)               # level 1: 1 down, middle, 2 up
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 4, 4))
    assert maps[0][0, ..., 3:].abs().max() == 0                           # padding is never read
    assert all(m.record is None for m in model.modules() if hasattr(m, "record"))   # recording stops
    assert word_maps(maps, 16).shape == (2, 5, 16, 16)
