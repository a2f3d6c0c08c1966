"""The latent autoencoder: KL against hand computations, shapes, the scale factor, checkpoints, metrics."""
import math

import pytest
import torch

from diffusion_course.checkpoint import load_model, save_checkpoint
from diffusion_course.train import train
from diffusion_course.vae import (VAE, kl_bits, kl_divergence, measure_scale, psnr, quantize, edge_map, reparameterize,
                                  ssim, vae_loss)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one CPU thread is faster than several fighting over a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(**kw):
    kw = {"width": 8, "enc_blocks": 1, "dec_blocks": 1, **kw}
    return VAE(**kw)


def blobs(n, size=32, seed=0):
    """n RGB images in [-1, 1]: one flat-colored square on a flat background each."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone() * 2 - 1
    for i in range(n):
        r, c, s = torch.randint(0, size // 2, (3,), generator=g).tolist()
        x[i, :, r:r + s + 4, c:c + s + 4] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return x


def test_kl_matches_hand_computation():
    mean = torch.tensor([0.0, 1.0, 0.0, -2.0])
    logvar = torch.tensor([0.0, 0.0, math.log(4.0), math.log(0.25)])
    # 0.5 * (mu^2 + var - 1 - log var), value by value
    hand = torch.tensor([0.0, 0.5, 0.5 * (4 - 1 - math.log(4)), 0.5 * (4 + 0.25 - 1 - math.log(0.25))])
    torch.testing.assert_close(kl_divergence(mean, logvar), hand)
    assert kl_bits(mean, logvar) == pytest.approx(hand.mean().item() / math.log(2), rel=1e-6)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(kl_divergence(mean, logvar), torch.distributions.kl_divergence(q, p))


def test_reparameterize_draws_from_the_gaussian():
    mean, logvar = torch.full((200_000,), 1.5), torch.full((200_000,), math.log(0.09))
    z = reparameterize(mean, logvar, torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(1.5, abs=0.005)
    assert z.std().item() == pytest.approx(0.3, rel=0.01)
    again = reparameterize(mean, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


@pytest.mark.parametrize("factor", [4, 8, 16])
def test_encode_decode_shapes(factor):
    vae = tiny(factor=factor).eval()
    x = blobs(2, 64)
    with torch.no_grad():
        z = vae.encode(x)
        assert z.shape == (2, 4, 64 // factor, 64 // factor) == vae.latent_shape(x.shape)
        assert vae.decode(z).shape == x.shape
        x_hat, mean, logvar = vae(x, torch.Generator().manual_seed(0))
    assert x_hat.shape == x.shape and mean.shape == logvar.shape == z.shape


def test_default_is_48x_compression():
    vae = VAE()
    x = torch.zeros(1, 3, 64, 64)
    assert x.numel() / math.prod(vae.latent_shape(x.shape)) == 48


def test_scale_factor_gives_unit_variance_latents():
    torch.manual_seed(0)
    vae = tiny().eval()
    shift, scale = measure_scale(vae, blobs(64, 32, seed=1))
    assert vae.config["shift"] == shift and vae.config["scale"] == scale
    z = vae.encode(blobs(64, 32, seed=2)).detach()            # held-out images of the same kind
    assert z.mean().item() == pytest.approx(0.0, abs=0.15)
    assert z.std().item() == pytest.approx(1.0, abs=0.15)


def test_scale_does_not_change_reconstructions():
    torch.manual_seed(0)
    vae = tiny().eval()
    x = blobs(4, 32)
    with torch.no_grad():
        before = vae.decode(vae.encode(x))
        measure_scale(vae, blobs(32, 32, seed=3))
        assert vae.scale != 1.0
        after = vae.decode(vae.encode(x))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("half", [False, True])
def test_checkpoint_round_trip(tmp_path, half):
    torch.manual_seed(0)
    vae = tiny().eval()
    measure_scale(vae, blobs(16, 32))
    if half:  # fp16 storage: compare against the model with fp16-rounded weights
        vae.load_state_dict({k: v.half().float() for k, v in vae.state_dict().items()})
    save_checkpoint(tmp_path / "vae", vae, half=half)
    loaded = load_model(tmp_path / "vae")
    assert loaded.config == vae.config                         # the scale factor travels in the card
    x = blobs(3, 32, seed=5)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), vae.encode(x))
        assert torch.equal(loaded.decode(vae.encode(x)), vae.decode(vae.encode(x)))


def test_size_not_divisible_by_factor_is_a_clear_error():
    vae = tiny(factor=8)
    with pytest.raises(ValueError, match="not divisible by the VAE's downsampling factor 8"):
        vae.encode(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        vae.encode(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"latents of shape \(B, 4, h, w\)"):
        vae.decode(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="power of 2"):
        VAE(factor=6)


def test_psnr_hand_computed():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 0.1                                                # MSE 0.01
    y[1, :, :2] = 1.0                                          # half the pixels off by 1: MSE 0.5
    # 10 log10(range^2 / MSE): range 2 for [-1, 1] images
    torch.testing.assert_close(psnr(y, x), torch.tensor([10 * math.log10(4 / 0.01), 10 * math.log10(4 / 0.5)]))
    assert psnr(y, x, data_range=1.0)[0].item() == pytest.approx(20.0, rel=1e-5)
    assert psnr(x, x)[0].item() == math.inf
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:1])


def test_ssim_hand_computed():
    x = blobs(2, 32)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    a, b = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), -0.25)
    c1 = (0.01 * 2) ** 2                  # flat images: no contrast, only the luminance term is left
    hand = (2 * 0.5 * -0.25 + c1) / (0.5 ** 2 + 0.25 ** 2 + c1)
    assert ssim(a, b).item() == pytest.approx(hand, rel=1e-5)
    assert ssim(x, x + 0.3 * torch.randn_like(x)).max() < 0.9


def test_quantize():
    z = torch.tensor([-5.0, -2.0, -0.1, 0.1, 2.0, 5.0])
    torch.testing.assert_close(quantize(z, 1, limit=3.0), torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]))
    torch.testing.assert_close(quantize(z, 2, limit=3.0), torch.tensor([-2.25, -2.25, -0.75, 0.75, 2.25, 2.25]))
    torch.testing.assert_close(quantize(z, 1), torch.tensor([-2.5, -2.5, -2.5, 2.5, 2.5, 2.5]))   # default +-5
    w = torch.linspace(-3, 3, 1001)
    for bits in (3, 6):
        q = quantize(w, bits, limit=3.0)
        assert q.unique().numel() == 2 ** bits
        assert (q - w).abs().max() <= 3.0 / 2 ** bits + 1e-6   # at most half a step away
    with pytest.raises(ValueError, match="positive integer"):
        quantize(z, 0)
    with pytest.raises(ValueError, match="limit must be a positive"):
        quantize(z, 2, limit=0)


def test_vae_loss_is_reconstruction_plus_weighted_kl():
    torch.manual_seed(0)
    vae = tiny()
    x = blobs(2, 32)
    loss = vae_loss(vae, x, torch.Generator().manual_seed(7), kl_weight=0.1, recon="mse")
    x_hat, mean, logvar = vae(x, torch.Generator().manual_seed(7))
    # the KL is summed over the latent values and divided by the image's pixel values (3 * 32 * 32)
    hand = (x_hat - x).pow(2).mean() + 0.1 * kl_divergence(mean, logvar).sum() / 2 / (3 * 32 * 32)
    torch.testing.assert_close(loss, hand)
    with pytest.raises(ValueError, match="'l1' or 'mse'"):
        vae_loss(vae, x, recon="l3")


def test_training_reduces_reconstruction_error():
    torch.manual_seed(0)
    x = blobs(8, 16)
    vae = VAE(factor=2, width=8, enc_blocks=1, dec_blocks=1)
    with torch.no_grad():
        before = psnr(vae.decode(vae.encode(x)), x).mean().item()
    run = train(vae, lambda m, b, g: vae_loss(m, b, g, kl_weight=1e-2), lambda g: x, steps=150, lr=3e-3,
                warmup=10, device="cpu", ema_decay=0.0)
    with torch.no_grad():
        after = psnr(run.model.decode(run.model.encode(x)), x).mean().item()
    assert after > before + 8, (before, after)


def test_recipe_trains_measures_and_resumes(tmp_path):
    from diffusion_course.recipes import vae as recipe
    out = str(tmp_path / "vae")
    small = dict(steps=4, batch_size=4, width=8, dec_blocks=1, eval_n=16, scale_n=32, sweep_steps=0)
    model, metrics = recipe.run(out, "cpu", **{**recipe.DEFAULTS, **small})
    assert metrics["latent_shape"] == [4, 8, 8] and metrics["compression"] == 48.0
    assert metrics["scale"] == round(model.config["scale"], 5) and metrics["shift"] == round(model.config["shift"], 5)
    assert set(metrics["test"]) >= {"psnr_db", "ssim", "kl_bits_per_latent_value", "kl_bits_per_channel", "latent_std"}
    assert len(metrics["test"]["kl_bits_per_channel"]) == 4
    assert "sweep" not in metrics
    kept = metrics["judge_roundtrip"]
    assert kept["single"]["n"] == 16 and kept["single"]["shape"]["original"] > 0.9          # the judge reads real scenes
    assert 0 <= kept["pairs"]["scene"]["reconstructed"] <= 1 and "n" in kept["single"]["shape_small"]
    again, _ = recipe.run(out, "cpu", **{**recipe.DEFAULTS, **small})        # resumes: same weights
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_sweep_reports_each_setting():
    from diffusion_course.recipes import vae as recipe
    rows = recipe.sweep("cpu", steps=2, width=8, batch_size=2, runs=[dict(factor=16), dict(kl_weight=1.0)],
                        n_eval=8, scale_n=8, log=None, dec_blocks=1)
    assert [(r["factor"], r["kl_weight"]) for r in rows] == [(16, recipe.DEFAULTS["kl_weight"]), (8, 1.0)]
    assert all(r["edge_weight"] == recipe.DEFAULTS["edge_weight"] and 0 <= r["judge_shape_kept"] <= 1 for r in rows)
    assert rows[0]["latent_shape"] == [4, 4, 4] and rows[0]["compression"] == 192.0
    assert all(math.isfinite(r[k]) for r in rows for k in ("psnr_db", "psnr_db_nudged", "encoder_noise_std"))


def test_edge_map_marks_outlines_only():
    x = -torch.ones(1, 3, 16, 16)
    x[:, :, 4:12, 4:12] = 1.0                                   # an 8x8 square on a flat background
    e = edge_map(x)[0, 0]
    assert e[4, 4] == 1 and e[3, 8] == 1 and e[8, 8] == 0 and e[0, 0] == 0   # outline in, inside and far out
    assert e.sum() == 10 * 10 - 6 * 6                             # the 1-pixel ring on each side of the outline


def test_edge_weight_counts_outline_pixels_more():
    torch.manual_seed(0)
    model = VAE(width=8, enc_blocks=1, dec_blocks=1)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)                  # noqa: E731
    plain = vae_loss(model, x, g(), kl_weight=0.0)
    with torch.no_grad():
        x_hat, _, _ = model(x, g())
    err = (x_hat - x).abs()
    w = 1 + 5 * edge_map(x)
    torch.testing.assert_close(vae_loss(model, x, g(), kl_weight=0.0, edge_weight=5.0), (w * err).sum() / (w.sum() * 3))
    torch.testing.assert_close(plain, err.mean())
