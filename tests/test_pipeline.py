"""The text-to-image pipeline against a hand-written loop, its guidance, img2img, inpainting and bad calls.

The parts are tiny and untrained (random weights): what is tested is the plumbing, which must
be exact whatever the weights are. How well a trained pipeline obeys its prompts is measured by
the adherence metrics, not here.
"""
import pytest
import torch

from diffusion_course import shapes
from diffusion_course.noise import schedule
from diffusion_course.pipeline import TextToImage
from diffusion_course.sampling import generate
from diffusion_course.text import TextEncoder
from diffusion_course.unet import UNet
from diffusion_course.vae import VAE
from test_unet import randomized

PROMPTS = ["a red circle left of a blue square", "a big green shape"]


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    text = TextEncoder(shapes.vocabulary(partial=True), dim=8, depth=1, heads=2).eval()
    unet = randomized(UNet(in_channels=4, channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,),
                           groups=4, heads=2, context_dim=8), seed=1)
    with torch.no_grad():                                 # keep the random U-Net's outputs of a sane size
        unet.conv_out.weight.mul_(0.05)
    vae = VAE(width=8, enc_blocks=1, dec_blocks=1).eval()
    return TextToImage(unet, text, vae)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "accelerated", "heun", "dpmpp_2m"])
def test_pipeline_equals_a_hand_written_loop(pipe, sampler):
    out = pipe(PROMPTS, num_inference_steps=6, guidance_scale=3.0, sampler=sampler, generator=gen(), return_steps=True)
    cond = pipe.encode_prompt(PROMPTS)
    sigmas = schedule("loglinear", 6, sigma_min=pipe.sigma_min, sigma_max=pipe.sigma_max)
    z = generate(pipe.unet, sigmas, (2, 4, 8, 8), sampler, cond=cond, cfg_scale=3.0, generator=gen())
    torch.testing.assert_close(out.latents, z)
    torch.testing.assert_close(out.images, pipe.decode(z))
    assert out.images.shape == (2, 3, 64, 64) and out.images.min() >= 0 and out.images.max() <= 1
    assert len(out.x0) == 6 and out.x0[0].shape == (2, 3, 64, 64) and out.sigmas[0] == pytest.approx(80.0)


class Spy(torch.nn.Module):
    """Wraps the U-Net and records the conditions of every call."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.config, self.calls = unet, unet.config, []

    def forward(self, x, sigma, cond=None):
        self.calls.append(cond)
        return self.unet(x, sigma, cond)

    def null_cond(self, cond):
        return self.unet.null_cond(cond)


def test_guidance_scale_1_is_the_conditional_model_alone(pipe):
    spy = Spy(pipe.unet)
    plain = TextToImage(spy, pipe.text_encoder, pipe.vae)
    a = plain(PROMPTS, num_inference_steps=4, guidance_scale=1.0, generator=gen())
    assert all(len(c[0]) == 2 for c in spy.calls)                   # never the doubled batch
    z = generate(pipe.unet, schedule("loglinear", 4), (2, 4, 8, 8), cond=pipe.encode_prompt(PROMPTS),
                 generator=gen())
    torch.testing.assert_close(a, pipe.decode(z))


def test_a_negative_prompt_changes_only_the_unconditional_branch(pipe):
    spy = Spy(pipe.unet)
    plain = TextToImage(spy, pipe.text_encoder, pipe.vae)
    plain(PROMPTS, num_inference_steps=2, guidance_scale=4.0, generator=gen())
    plain(PROMPTS, negative_prompt="something red", num_inference_steps=2, guidance_scale=4.0, generator=gen())
    (c_plain, m_plain), (c_neg, m_neg) = spy.calls[0], spy.calls[2]
    torch.testing.assert_close(c_plain[:2], c_neg[:2])                        # the conditional half: the same
    assert torch.equal(m_plain[:2], m_neg[:2])
    null, negative = pipe.unet.null_cond(pipe.encode_prompt(PROMPTS)), pipe.encode_prompt(["something red"] * 2)
    torch.testing.assert_close(c_plain[2:], null[0])                          # "no prompt" ...
    torch.testing.assert_close(c_neg[2:], negative[0])                        # ... replaced by the negative
    assert torch.equal(m_neg[2:], negative[1])


def test_the_empty_prompt_is_no_prompt(pipe):
    context, mask = pipe.encode_prompt(["", "a red circle"])
    null_context, null_mask = pipe.unet.null_cond((context, mask))
    torch.testing.assert_close(context[0], null_context[0])
    assert torch.equal(mask[0], null_mask[0]) and mask[1].sum() == 3


def test_strength_1_is_text_to_image_and_a_tiny_strength_keeps_the_picture(pipe):
    image = (shapes.make_scenes(2, seed=3).images + 1) / 2                     # (2, 3, 64, 64) in [0, 1]
    t2i = pipe(PROMPTS, num_inference_steps=8, generator=gen(), return_steps=True)
    full = pipe(PROMPTS, image=image, strength=1.0, num_inference_steps=8, generator=gen(), return_steps=True)
    torch.testing.assert_close(full.latents, t2i.latents)
    kept = pipe(PROMPTS, image=image, strength=0.01, num_inference_steps=30, generator=gen(), return_steps=True)
    z0 = pipe.vae.encode(image * 2 - 1)
    diff = (kept.latents - z0).abs()                                            # one small step from the input
    assert len(kept.x0) == 1 and diff.mean() < 0.02 and diff.max() < 0.1       # (noise of sigma 0.014 at the start)
    half = pipe(PROMPTS, image=image, strength=0.5, num_inference_steps=8, generator=gen(), return_steps=True)
    assert len(half.x0) == 4 and half.sigmas[0] < 1.0                          # the noisiest half is skipped


def test_inpainting_leaves_the_unmasked_latent_untouched(pipe):
    image = (shapes.make_scenes(2, seed=4).images + 1) / 2
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 8:30, 20:50] = 1                                                  # repaint this box
    out = pipe(PROMPTS, image=image, mask=mask, strength=1.0, num_inference_steps=5, generator=gen(),
               return_steps=True)
    z0 = pipe.vae.encode(image * 2 - 1)
    keep = torch.nn.functional.max_pool2d(mask, 8)[0, 0] == 0                   # latent cells without a masked pixel
    assert torch.equal(out.latents[:, :, keep], z0[:, :, keep])
    assert not torch.allclose(out.latents[:, :, ~keep], z0[:, :, ~keep])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(prompt="a red dog"), ValueError, r"unknown word 'dog'"),
    (dict(prompt="a red circel"), ValueError, r"did you mean 'circle' for 'circel'"),
    (dict(prompt="a red circle " * 10), ValueError, r"more than max_len=24"),
    (dict(prompt=[]), ValueError, r"empty list"),
    (dict(prompt=3), TypeError, r"prompt must be a string"),
    (dict(guidance_scale=float("nan")), ValueError, r"guidance_scale must be a finite number >= 0"),
    (dict(guidance_scale=-1), ValueError, r"guidance_scale must be a finite number >= 0"),
    (dict(num_inference_steps=0), ValueError, r"num_inference_steps must be a positive integer"),
    (dict(num_images_per_prompt=2.5), ValueError, r"num_images_per_prompt must be a positive integer"),
    (dict(sampler="euler"), ValueError, r"unknown sampler 'euler'"),
    (dict(strength=0.0, image=torch.rand(3, 64, 64)), ValueError, r"strength must be in \(0, 1\]"),
    (dict(strength=1.5, image=torch.rand(3, 64, 64)), ValueError, r"strength must be in \(0, 1\]"),
    (dict(image=torch.rand(3, 32, 32)), ValueError, r"image must have shape \(B, 3, 64, 64\)"),
    (dict(image=torch.rand(3, 64, 64) * 255), ValueError, r"expected \[0, 1\] .* for \[0, 255\] x / 255"),
    (dict(image=torch.rand(3, 64, 64), mask=torch.ones(1, 1, 32, 32)), ValueError, r"mask must have shape"),
    (dict(mask=torch.ones(1, 1, 64, 64)), ValueError, r"mask needs image"),
    (dict(negative_prompt=["a", "b", "c"]), ValueError, r"negative_prompt must be one string or one per prompt"),
])
def test_bad_calls_get_clear_errors(pipe, kwargs, error, message):
    kwargs = dict(dict(prompt="a red circle", num_inference_steps=2), **kwargs)
    with pytest.raises(error, match=message):
        pipe(**kwargs)


def test_parts_that_do_not_fit_are_refused(pipe):
    with pytest.raises(ValueError, match="reads text vectors of width 8, the text encoder writes 16"):
        TextToImage(pipe.unet, TextEncoder(dim=16, depth=1, heads=2), pipe.vae)


def test_the_pipeline_works_in_the_models_own_dtype(pipe):
    """A bf16 U-Net and VAE (as on a GPU to save memory): the sampler's arithmetic stays float32."""
    import copy
    half = TextToImage(copy.deepcopy(pipe.unet).bfloat16(), pipe.text_encoder, copy.deepcopy(pipe.vae).bfloat16())
    image = (shapes.make_scenes(1, seed=4).images + 1) / 2
    out = half(PROMPTS[:1], num_inference_steps=3, guidance_scale=3.0, generator=gen(), image=image, strength=0.5,
               return_steps=True)
    ref = pipe(PROMPTS[:1], num_inference_steps=3, guidance_scale=3.0, generator=gen(), image=image, strength=0.5,
               return_steps=True)
    assert out.latents.dtype == torch.float32 and torch.isfinite(out.images).all()
    assert (out.images - ref.images).abs().mean() < 0.05
