"""Text to image without the painter: the same recipe on 64x64x3 pixels, for the same CPU time.

Chapter 7's "latent versus pixels": why does Stable Diffusion denoise 8x8x4 latents and not the
pictures? This recipe trains a U-Net of about the same size as text2image's (2.8M parameters
against 3.1M; 64 -> 32 -> 16 -> 8, cross-attention at 16x16 and 8x8) on the pictures themselves
(`pipeline.PixelSpace`: "latents" that are the pixels in [-1, 1]), with the same data, captions,
frozen text encoder, loss and sampler, and gives it the CPU time that text2image's 16,000 steps
took. text2image's card says 4,468 s for its 16,000 steps (0.28 s a step, batch 64, with its data
and the VAE's encoding); a pixel step takes 2.7-2.9 s on the same 2-core CPU, about ten times as
much, so the same time buys 1,600 steps (the card records the seconds they took). The EMA
decay is 0.995 instead of 0.999 so that it still averages over a small share of this shorter
run. The card's metrics are text2image's, on the same prompts.

    python -m diffusion_course train text2image_pixels
"""
from . import defaults, training_settings
from .text2image import HALF, fit, reevaluate  # noqa: F401  (HALF, reevaluate: as text2image's)

NAME = "t2i_shapes_pixels"


def run(out, device, steps=1600, batch_size=64, lr=5e-4, channels=24, num_res_blocks=1, p_uncond=0.1,
        p_partial=0.3, p_two=0.5, sigma_kind="mixed", sigma_min=0.01, sigma_max=80.0, ema_decay=0.995, seed=0,
        text_encoder="clip_shapes", vae="pixels", eval_n=200, eval_steps=30, eval_cfg_scale=4.0):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    unet, metrics, _ = fit(out, device, settings, steps, eval_n, eval_steps, eval_cfg_scale)
    return unet, metrics


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
