"""Text to image on the shapes world: a latent U-Net that reads a frozen text encoder through cross-attention.

Like Stable Diffusion, only the denoiser is trained here. Every step draws fresh scenes
(split="train": the HELD_OUT color+shape pairs never appear) with captions, some of them
partial ("a red shape left of a circle", p_partial); the frozen VAE encodes the pictures into
scaled 8x8x4 latents, the frozen text tower of the shipped CLIP turns each caption into one
vector per word and a padding mask, and the U-Net learns to predict the noise in noised
latents (the course's v-loss), reading the words through cross-attention. A share p_uncond of
the captions is dropped (the U-Net's null condition) so that the same network also knows "no
prompt", which classifier-free guidance needs.

    python -m diffusion_course train text2image

Metrics (adherence.py; every entry records its n, seed, sampler, steps and guidance scale):
what the judge reads back from pictures made for held-out single-object prompts, for
two-object prompts (binding, relation) and for partial prompts, beside the judge's own
accuracy on real scenes; FD (in the judge's feature space, 3 draws of 400 pictures, with
standard errors) and CLIP score against real scenes, each beside its floor; and the time to
make 4 pictures of the intro's prompt.

    python -m diffusion_course evaluate text2image     # the card's metrics again, for the shipped weights
"""
import time

import torch
import torch.nn as nn

from ..adherence import adherence, judge_accuracy, prompts_for, realism
from ..checkpoint import load_model
from ..distributed import share
from ..noise import add_noise, training_sigmas
from ..pipeline import PIXELS, TextToImage, load_painter
from ..shapes import make_scenes
from ..train import train
from ..unet import UNet, v_loss
from . import defaults, training_settings

NAME = "t2i_shapes"
HALF = True
INTRO_PROMPT = "a red circle to the left of a blue square"
REALISM_N, REALISM_DRAWS = 400, 3       # FD needs n above the judge's 256 features; 3 draws give an error bar


def make_unet(context_dim, latent_channels=4, channels=64, num_res_blocks=1, heads=4, pixels=False):
    """The latent U-Net: 8x8 -> 4x4, self- and cross-attention at both sizes (3.1M parameters by default).

    A 1.2M-parameter one (channels=40) trained 8000 steps drew only blobs (shape right for 23-31% of
    prompts, unconditional samples blobs too); a wider U-Net costs little more per step here, where
    encoding the batch with the VAE takes 40% of the time.
    pixels=True: the U-Net of a pixel-space model (recipe text2image_pixels), 64 -> 32 -> 16 -> 8 with
    attention at 16x16 and 8x8 only (at 64x64 one attention layer compares 4,096 positions with each other)."""
    mults, attention = ((1, 2, 4, 4), (2, 3)) if pixels else ((1, 2), (0, 1))
    return UNet(in_channels=latent_channels, channels=channels, channel_mults=mults, num_res_blocks=num_res_blocks,
                attention_levels=attention, context_dim=context_dim, heads=heads)


def run(out, device, steps=16000, batch_size=64, lr=5e-4, channels=64, num_res_blocks=1, p_uncond=0.1,
        p_partial=0.3, p_two=0.5, sigma_kind="mixed", sigma_min=0.01, sigma_max=80.0, ema_decay=0.999, seed=0,
        text_encoder="clip_shapes", vae="vae_shapes", eval_n=200, eval_steps=30, eval_cfg_scale=4.0):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    unet, metrics, _ = fit(out, device, settings, steps, eval_n, eval_steps, eval_cfg_scale)
    return unet, metrics


class Joint(nn.Module):
    """The U-Net and the text encoder as one model, for training both together (recipe text2image_joint)."""

    def __init__(self, unet, text):
        super().__init__()
        self.unet, self.text = unet, text
        self.config = {"unet": unet.config, "text": text.config}


def fit(out, device, s, steps, eval_n, eval_steps, eval_cfg_scale, joint=False):
    """Train the latent U-Net with settings `s` (a recipe's run arguments); joint=True also trains the
    text encoder (started from the shipped CLIP's text tower). Returns (EMA U-Net, metrics, EMA text encoder)."""
    text = load_model(s["text_encoder"], device=device).text.requires_grad_(joint)   # frozen, as in SD
    painter = load_painter(s["vae"], device=device).requires_grad_(False)
    torch.manual_seed(s["seed"])                                                   # the initial weights
    unet = make_unet(text.dim, painter.latent_channels, s["channels"], s["num_res_blocks"],
                     pixels=s["vae"] == PIXELS).to(device)
    batch_size, p_uncond = s["batch_size"], s["p_uncond"]

    def read(text_encoder, captions, drop):
        """Captions -> the U-Net's condition (tokens (B, T, D), mask (B, T)); dropped ones become "no prompt"."""
        context, _, mask = text_encoder.encode(captions, device=device)
        null_context, null_mask = unet.null_cond((context, mask))
        return torch.where(drop[:, None, None], null_context, context), torch.where(drop[:, None], null_mask, mask)

    @torch.no_grad()
    def get_batch(gen):
        scenes = make_scenes(share(batch_size), split="train", p_two=s["p_two"], generator=gen, device=device,
                             p_partial=s["p_partial"])
        z0 = painter.encode(scenes.images)                                         # (B, 4, 8, 8), unit variance
        drop = torch.rand(len(z0), generator=gen, device=device) < p_uncond     # caption dropout
        if joint:                                      # the words are read in loss_fn, where gradients flow
            return z0, scenes.captions, drop
        return z0, read(text, scenes.captions, drop)

    def loss_fn(model, batch, gen):
        z0, cond = batch[0], batch[1]
        if joint:
            cond, model = read(model.text, batch[1], batch[2]), model.unet
        sigma = training_sigmas(len(z0), s["sigma_min"], s["sigma_max"], s["sigma_kind"], generator=gen,
                                device=device)                                     # (B,)
        eps = torch.randn(z0.shape, generator=gen, device=device)
        return v_loss(model(add_noise(z0, sigma, eps), sigma, cond), eps, sigma)

    model = Joint(unet, text) if joint else unet
    result = train(model, loss_fn, get_batch, steps=steps, lr=s["lr"], ema_decay=s["ema_decay"], seed=s["seed"],
                   device=device, state_path=out, settings=s, desc="text2image U-Net" + (" + text" if joint else ""))
    ema = result.ema.eval()
    ema_unet, ema_text = (ema.unet, ema.text) if joint else (ema, text)
    metrics = {"final_loss": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4),
               "train_seconds": round(result.seconds, 1), "resumed_from_step": result.resumed_from}
    if eval_n > 0:
        pipe = TextToImage(ema_unet, ema_text, painter, s["sigma_min"], s["sigma_max"])
        metrics.update(evaluate(pipe, eval_n, eval_steps, eval_cfg_scale))
    return ema_unet.cpu(), metrics, ema_text.cpu()


@torch.no_grad()
def evaluate(pipe, n=200, steps=30, cfg_scale=4.0, seed=0):
    """Adherence on held-out prompts (single objects, pairs, partial), the judge's own accuracy, and speed."""
    judge = load_model("shapes_attributes", device=pipe.device)
    call = dict(num_inference_steps=steps, guidance_scale=cfg_scale, sampler="ddim")
    sets = {"heldout_single": prompts_for(n, seed=50_000, p_two=0.0),
            "heldout_pairs": prompts_for(n, seed=50_001, p_two=1.0),
            "partial": prompts_for(n, seed=50_002, split="train", p_two=0.3, p_partial=1.0)}
    out = {name: adherence(pipe, prompts, judge, seed=seed, **call) for name, prompts in sets.items()}
    out["judge_on_real_scenes"] = judge_accuracy(judge, n=1000, seed=40_000, split="heldout", p_two=0.5)
    out["realism"] = realism(pipe, judge, load_model("clip_shapes", device=pipe.device), REALISM_N, REALISM_DRAWS,
                             seed=50_003, **call)
    gen = torch.Generator(device=pipe.device).manual_seed(seed)
    pipe(INTRO_PROMPT, num_inference_steps=2, generator=gen)                          # warm-up
    t0 = time.perf_counter()
    pipe(INTRO_PROMPT, num_images_per_prompt=4, generator=gen, **call)
    out["seconds_for_4_images"] = {"seconds": round(time.perf_counter() - t0, 2), "prompt": INTRO_PROMPT, **call}
    return out


def reevaluate(model, out, eval_n=200, eval_steps=30, eval_cfg_scale=4.0, **training):
    """The card's metrics for a trained checkpoint at `out` (its card names the text encoder and VAE;
    `model` is its U-Net, already loaded): `python -m diffusion_course evaluate text2image`."""
    if eval_n == 0:
        return {}
    pipe = TextToImage.from_pretrained(out, device=next(model.parameters()).device)
    return evaluate(pipe, eval_n, eval_steps, eval_cfg_scale)


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
