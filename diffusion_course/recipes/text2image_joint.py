"""Text to image with the text encoder trained together with the U-Net (chapter 7's one change).

The same run as `text2image` (same U-Net, data, steps and seed), but the text encoder, started
from the shipped CLIP's text tower, keeps learning from the denoising loss instead of staying
frozen. CLIP's training only asked each whole caption to match its picture, and chapter 5
measured that its text tower cannot tell "a red circle left of a blue square" from the colours
swapped (binding at chance); a text encoder that learns from the denoiser is asked where every
word's colour and shape go. Imagen and Stable Diffusion keep their text encoders frozen; this
recipe measures what unfreezing does on the shapes world.

    python -m diffusion_course train text2image_joint

Writes the U-Net as `t2i_shapes_joint` and its text encoder beside it as `t2i_shapes_joint_text`
(TextToImage.from_pretrained loads both); the metrics are text2image's, on the same prompts, and
`python -m diffusion_course evaluate text2image_joint` measures them again.
"""
from ..checkpoint import save_checkpoint
from ..pipeline import TEXT_ENCODER_SUFFIX
from . import defaults, training_settings
from .text2image import HALF, fit, reevaluate  # noqa: F401  (HALF, reevaluate: as text2image's)

NAME = "t2i_shapes_joint"


def run(out, device, steps=16000, batch_size=64, lr=5e-4, channels=64, num_res_blocks=1, p_uncond=0.1,
        p_partial=0.3, p_two=0.5, sigma_kind="mixed", sigma_min=0.01, sigma_max=80.0, ema_decay=0.999, seed=0,
        text_encoder="clip_shapes", vae="vae_shapes", eval_n=200, eval_steps=30, eval_cfg_scale=4.0):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    unet, metrics, text = fit(out, device, settings, steps, eval_n, eval_steps, eval_cfg_scale, joint=True)
    save_checkpoint(out + TEXT_ENCODER_SUFFIX, text, {
        "recipe": "text2image_joint", "description": f"the text encoder trained together with {out}",
        "settings": {"started_from": text_encoder}})
    return unet, metrics


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
