"""The diffusion transformer obeys the course contract: shapes, conditioning, the null class, the
Gaussian ideal denoiser at initialisation, patches in the right places, guidance and checkpoints."""
import pytest
import torch

from diffusion_course import noise, sampling
from diffusion_course.checkpoint import load_model, save_checkpoint
from diffusion_course.dit import DiT, attention_maps


def small(**kw):
    torch.manual_seed(0)
    return DiT(**dict(dict(in_channels=1, image_size=8, patch_size=2, dim=16, depth=2, heads=2, num_classes=10), **kw))


def test_shapes_and_the_gaussian_ideal_denoiser_at_initialisation():
    dit = small()
    x, sigma = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 1.0, 20.0])
    eps = dit(x, sigma, torch.tensor([0, 5, 10]))
    assert eps.shape == x.shape
    torch.testing.assert_close(eps, sigma[:, None, None, None] * x / (1 + sigma[:, None, None, None] ** 2))


def test_the_condition_changes_the_answer_once_trained_and_the_null_class_is_no_class():
    dit = small()
    for p in dit.parameters():                                        # as if trained: nothing at zero
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 8, 8)
    a, b = dit(x, 1.0, torch.tensor([3, 3])), dit(x, 1.0, torch.tensor([4, 4]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(dit(x, 1.0, dit.null_cond(torch.tensor([3, 4]))), dit(x, 1.0))
    torch.testing.assert_close(dit(x, torch.tensor([1.0, 1.0]), torch.tensor([3, 3])), a)   # number or (B,)


def test_each_output_patch_comes_from_its_token():
    """With depth 0 and the output layer set to copy, unpatchify(out(patchify(x))) is x: patches go back
    where they came from (a wrong reshape would scramble them)."""
    dit = small(depth=0, num_classes=None, dim=4, patch_size=2)
    with torch.no_grad():
        dit.patchify.weight.copy_(torch.eye(4).reshape(4, 1, 2, 2))   # token = the patch's 4 pixels
        dit.patchify.bias.zero_()
        dit.position.zero_()
        dit.out.weight.copy_(torch.eye(4))
        dit.norm_out = torch.nn.Identity()
    x = torch.randn(2, 1, 8, 8)
    sigma = 1.0                                                      # eps = (x_in + v) / sqrt(2), v = x_in
    torch.testing.assert_close(dit(x, sigma), 2 * x / 2)


def test_samplers_guidance_and_checkpoints_work_unchanged(tmp_path):
    dit = small()
    for p in dit.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    gen = lambda: torch.Generator().manual_seed(0)                   # noqa: E731
    sigmas = noise.schedule("loglinear", 4)
    out = sampling.generate(dit, sigmas, (2, 1, 8, 8), "heun", cond=torch.tensor([1, 2]), cfg_scale=3.0,
                            generator=gen())
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()
    save_checkpoint(tmp_path / "dit", dit)
    again = load_model(str(tmp_path / "dit"))
    torch.testing.assert_close(sampling.generate(again, sigmas, (2, 1, 8, 8), "heun", cond=torch.tensor([1, 2]),
                                                 cfg_scale=3.0, generator=gen()), out)


@pytest.mark.parametrize("call, message", [
    (lambda d: d(torch.randn(2, 1, 6, 6), 1.0), r"shape \(B, 1, 8, 8\)"),
    (lambda d: d(torch.randn(2, 1, 8, 8), torch.ones(3)), "one noise level per image"),
    (lambda d: d(torch.randn(2, 1, 8, 8), -1.0), "sigma must be >= 0"),
    (lambda d: d(torch.randn(2, 1, 8, 8), 1.0, torch.tensor([0, 11])), "one integer class label per image"),
    (lambda d: DiT(image_size=30, patch_size=4), "divisible by patch_size"),
])
def test_bad_calls_get_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(small())


def test_attention_maps_are_the_attention_the_blocks_use():
    torch.manual_seed(0)
    dit = DiT(image_size=8, patch_size=2, dim=32, depth=3, heads=4, num_classes=10).eval()
    for p in dit.parameters():                     # leave the zero start: attention must matter
        p.data.add_(0.05 * torch.randn_like(p))
    x, sigma, cond = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 2.0]), torch.tensor([1, 7])
    with torch.no_grad():
        plain = dit(x, sigma, cond)
        with attention_maps(dit) as maps:
            recorded = dit(x, sigma, cond)
    assert len(maps) == 3 and maps[0].shape == (2, 16, 16)
    torch.testing.assert_close(torch.stack(maps).sum(-1), torch.ones(3, 2, 16))
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-4)   # the written-out attention is SDPA's
    assert all(block.record is None for block in dit.blocks)           # recording stops with the block


def text_dit(**kw):
    torch.manual_seed(0)
    return DiT(**dict(dict(in_channels=1, image_size=8, patch_size=2, dim=16, depth=2, heads=2, context_dim=6), **kw))


def test_a_text_dit_reads_real_tokens_only_and_starts_as_the_gaussian_ideal_denoiser():
    dit = text_dit()
    x, sigma = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 3.0])
    tokens, mask = torch.randn(2, 4, 6), torch.tensor([[True, True, False, False], [True, True, True, False]])
    torch.testing.assert_close(dit(x, sigma, (tokens, mask)),
                               sigma[:, None, None, None] * x / (1 + sigma[:, None, None, None] ** 2))
    for p in dit.parameters():                                        # as if trained: nothing at zero
        p.data.add_(0.05 * torch.randn_like(p))
    out = dit(x, sigma, (tokens, mask))
    padded = tokens.clone()
    padded[~mask] = 100.0                                             # whatever padding holds is not read
    torch.testing.assert_close(dit(x, sigma, (padded, mask)), out)
    changed = tokens.clone()
    changed[0, 1] += 1.0                                              # a real word is
    assert not torch.allclose(dit(x, sigma, (changed, mask))[0], out[0])
    torch.testing.assert_close(dit(x, sigma, (changed, mask))[1], out[1])
    torch.testing.assert_close(dit(x, sigma, context=tokens, context_mask=mask), out)
    null, null_mask = dit.null_cond((tokens, mask))                   # "no prompt", as the U-Net's
    assert (null == 0).all() and null_mask.tolist() == [[True, False, False, False]] * 2


def test_a_text_dit_learns_to_draw_what_the_prompt_says():
    """Two prompts, two pictures (ink on the left, ink on the right): after 300 steps the DiT's
    guess of x0 from pure noise puts the ink where each prompt asks, which it can only learn
    through cross-attention (nothing else tells the two apart)."""
    from diffusion_course.unet import v_loss
    dit = text_dit(dim=32)
    prompts = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(1))          # (2 prompts, T, 6)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    left = torch.cat([torch.ones(1, 8, 4), -torch.ones(1, 8, 4)], dim=-1)               # (1, 8, 8)
    pictures = torch.stack([left, -left])                                                 # (2, 1, 8, 8)
    opt = torch.optim.Adam(dit.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(2)
    for _ in range(300):
        which = torch.randint(0, 2, (32,), generator=gen)
        sigma = torch.exp(torch.randn(32, generator=gen) * 1.2)
        eps = torch.randn(32, 1, 8, 8, generator=gen)
        loss = v_loss(dit(pictures[which] + sigma[:, None, None, None] * eps, sigma,
                          (prompts[which], mask[which])), eps, sigma)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = 5.0 * torch.randn(2, 1, 8, 8, generator=gen)
        x0 = x - 5.0 * dit(x, 5.0, (prompts, mask))                                      # (2, 1, 8, 8)
    ink_left = x0[..., :4].mean((1, 2, 3)) - x0[..., 4:].mean((1, 2, 3))
    assert ink_left[0] > 1.0 and ink_left[1] < -1.0, ink_left


def test_a_text_dit_is_a_text_to_image_pipelines_denoiser():
    from diffusion_course import shapes
    from diffusion_course.pipeline import TextToImage
    from diffusion_course.text import TextEncoder
    from diffusion_course.vae import VAE
    torch.manual_seed(0)
    text = TextEncoder(shapes.vocabulary(partial=True), dim=8, depth=1, heads=2).eval()
    dit = text_dit(in_channels=4, context_dim=8)
    for p in dit.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    pipe = TextToImage(dit, text, VAE(width=8, enc_blocks=1, dec_blocks=1).eval())
    prompts = ["a red circle left of a blue square", "a big green shape"]
    out = pipe(prompts, num_inference_steps=4, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    z = sampling.generate(dit, noise.schedule("loglinear", 4, sigma_min=pipe.sigma_min, sigma_max=pipe.sigma_max),
                          (2, 4, 8, 8), "ddim", cond=pipe.encode_prompt(prompts), cfg_scale=3.0,
                          generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, pipe.decode(z))


@pytest.mark.parametrize("call, message", [
    (lambda d: d(torch.randn(2, 1, 8, 8), 1.0), r"text-conditioned \(context_dim=6\)"),
    (lambda d: d(torch.randn(2, 1, 8, 8), 1.0, (torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool))),
     r"shape \(2, T, 6\)"),
    (lambda d: d(torch.randn(2, 1, 8, 8), 1.0, (torch.randn(2, 3, 6), torch.ones(2, 4, dtype=torch.bool))),
     r"mask must have shape \(2, 3\)"),
    (lambda d: d(torch.randn(2, 1, 8, 8), 1.0, torch.tensor([1, 2])), "pass the prompt as"),
])
def test_bad_text_calls_get_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(text_dit())
