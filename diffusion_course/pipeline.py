"""Text to image: the three boxes of Stable Diffusion, put together.

    pipe = TextToImage.from_pretrained("t2i_shapes")
    images = pipe("a red circle to the left of a blue square", guidance_scale=4.0,
                  generator=torch.Generator().manual_seed(0))          # (1, 3, 64, 64) in [0, 1]

What happens inside, box by box (Rombach et al. 2022):
    prompt  -> tokenizer -> text encoder      one vector per word (B, T, D) and a padding mask (B, T)
    noise   -> latent U-Net, step by step     (B, 4, 8, 8) latents; every step the U-Net reads the
                                              words through cross-attention and predicts the noise,
                                              and one step of the course's sampler removes some of it
    latents -> VAE decoder                    (B, 3, 64, 64) pixels

Classifier-free guidance (Ho & Salimans) runs the U-Net on the prompt and on "no prompt" in one
batch and pushes away from the second: eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond).
A negative prompt takes the place of "no prompt", so the picture is pushed away from it.
img2img starts from a noised version of a given picture instead of pure noise (the larger the
strength, the more noise, the less of the picture is kept; Meng et al., SDEdit), and inpainting
also puts the given picture back outside the mask after every step.
The call follows diffusers' pipelines: pipe(prompt, negative_prompt=..., num_inference_steps=...,
guidance_scale=..., generator=..., num_images_per_prompt=..., image=..., strength=..., mask=...).
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .checks import check_finite, to_model, weights_of
from .noise import schedule
from .runtime import progress
from .sampling import SAMPLERS, advance, checked_eps_fn


TEXT_ENCODER_SUFFIX = "_text"         # a jointly trained text encoder's checkpoint: the U-Net's name + this
PIXELS = "pixels"                     # the painter setting of a model that denoises pictures, not latents


class PixelSpace(torch.nn.Module):
    """No painter: the "latents" of a pixel-space model are the pictures themselves, (B, 3, 64, 64) in
    [-1, 1], so encode and decode return their input. It stands where the VAE stands, so that the same
    pipeline, recipe and metrics serve chapter 7's latent-versus-pixels comparison."""
    latent_channels, factor = 3, 1

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(()))      # no weights; it says which device it lives on

    def latent_shape(self, image_shape):
        return tuple(image_shape)

    def encode(self, x):
        return x

    def decode(self, z):
        return z


def load_painter(name, device=None):
    """The painter a text-to-image card names: a VAE checkpoint, or "pixels" for none (PixelSpace)."""
    from .checkpoint import load_model
    return PixelSpace().to(device or "cpu") if name == PIXELS else load_model(name, device=device)


@dataclass
class Generation:
    """Everything one call made (with return_steps=True)."""
    images: torch.Tensor                     # (B, 3, 64, 64) in [0, 1]
    latents: torch.Tensor                    # (B, 4, 8, 8) the final latents, before decoding
    prompts: list                            # the B prompts, one per image
    sigmas: list = field(default_factory=list)   # the noise level before each step
    x0: list = field(default_factory=list)   # each step's guess of the finished picture, decoded: (B, 3, 64, 64)


class TextToImage:
    """A text encoder (frozen), a latent U-Net with cross-attention, a VAE, and the course's sampler.

    unet:          UNet(in_channels=vae.latent_channels, context_dim=text_encoder.dim)
    text_encoder:  text.TextEncoder: prompts -> per-token vectors and a padding mask
    vae:           vae.VAE: its decoder paints latents into pixels (its encoder serves img2img);
                   PixelSpace() for a U-Net that denoises the pictures themselves
    sigma_min, sigma_max: the sampling schedule's ends (log-linear in between), in latent units
    """

    def __init__(self, unet, text_encoder, vae, sigma_min=0.01, sigma_max=80.0):
        if unet.config.get("context_dim") != text_encoder.dim:
            raise ValueError(f"the U-Net reads text vectors of width {unet.config.get('context_dim')}, the text "
                             f"encoder writes {text_encoder.dim}: use the pair they were trained with")
        if unet.config["in_channels"] != vae.latent_channels:
            raise ValueError(f"the U-Net denoises {unet.config['in_channels']}-channel latents, the VAE makes "
                             f"{vae.latent_channels}: use the VAE it was trained with")
        self.unet, self.text_encoder, self.vae = unet.eval(), text_encoder.eval(), vae.eval()
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    @classmethod
    def from_pretrained(cls, name="t2i_shapes", device=None):
        """Load a text-to-image checkpoint and the text encoder and VAE its card names (a U-Net trained
        with its text encoder, by recipe text2image_joint, has that encoder beside it: `<name>_text`)."""
        from .checkpoint import load_model, read_card, resolve
        card = read_card(name)
        settings = card.get("settings", {})
        unet = load_model(name, device=device)
        if card.get("recipe") == "text2image_joint":
            text = load_model(str(resolve(name).with_suffix("")) + TEXT_ENCODER_SUFFIX, device=device)
        else:
            text = load_model(settings.get("text_encoder", "clip_shapes"), device=device).text
        vae = load_painter(settings.get("vae", "vae_shapes"), device=device)
        return cls(unet, text, vae, settings.get("sigma_min", 0.01), settings.get("sigma_max", 80.0))

    @property
    def device(self):
        return weights_of(self.unet)[0]

    @property
    def tokenizer(self):
        return self.text_encoder.tokenizer

    def to(self, device):
        for m in (self.unet, self.text_encoder, self.vae):
            m.to(device)
        return self

    @torch.no_grad()
    def encode_prompt(self, prompts):
        """Prompts -> (tokens (B, T, D), mask (B, T)) on the pipeline's device; the empty prompt ""
        is "no prompt", the U-Net's null condition (one zero token)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompt must be a string or a list of strings")
        empty = [not self.tokenizer.split(p) for p in prompts]
        null = self.unet.null_cond((torch.zeros(len(prompts), self.tokenizer.max_len, self.text_encoder.dim),
                                    torch.ones(len(prompts), self.tokenizer.max_len, dtype=torch.bool)))
        context, mask = null
        if not all(empty):
            said = [p for p, e in zip(prompts, empty) if not e]
            states, _, said_mask = self.text_encoder.encode(said, device=self.device)     # (b, T, D), (b, T)
            rows = torch.tensor([i for i, e in enumerate(empty) if not e])
            context[rows], mask[rows] = states.float().cpu(), said_mask.cpu()
        return context.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def decode(self, latents):
        """Latents (B, 4, 8, 8) -> pictures (B, 3, 64, 64) in [0, 1]."""
        return ((self.vae.decode(to_model(self.vae, latents)).float().clamp(-1, 1) + 1) / 2).cpu()

    @torch.no_grad()
    def __call__(self, prompt, negative_prompt=None, num_inference_steps=30, guidance_scale=4.0, sampler="ddim",
                 generator=None, num_images_per_prompt=1, image=None, strength=0.8, mask=None,
                 return_steps=False):
        """Pictures for a prompt (or a list of prompts: a batch), (B, 3, 64, 64) in [0, 1].

        negative_prompt: what the picture should not show; it replaces "no prompt" in guidance.
        num_inference_steps: sampler steps (from sigma_max, or from the img2img start, to sigma_min).
        guidance_scale: 1 is the plain conditional model, 0 ignores the prompt; typical 2-7.
        sampler: 'ddim', 'ddpm', 'accelerated', 'heun' or 'dpmpp_2m' (sampling.SAMPLERS).
        generator: a torch.Generator on the pipeline's device, for repeatable pictures.
        num_images_per_prompt: pictures per prompt (B = prompts x this).
        image: (B, 3, 64, 64) or (3, 64, 64) in [0, 1], the starting picture of img2img / inpainting;
        strength: in (0, 1], how much noise it gets: 1 ignores it (text to image), near 0 keeps it.
        mask: (B or 1, 1, 64, 64) in {0, 1}, 1 where to paint anew (inpainting, with image); the
              rest of the latent is put back after every step and is the input's, exactly, at the end.
        return_steps: return a Generation with the latents and each step's decoded guess x0.
        """
        if not isinstance(prompt, (str, list, tuple)):
            raise TypeError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt is an empty list; give at least one prompt ('' means no prompt)")
        n = _positive_int(num_images_per_prompt, "num_images_per_prompt")
        steps = _positive_int(num_inference_steps, "num_inference_steps")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) or \
                not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0 (1: no guidance, typical 2-7), "
                             f"got {guidance_scale!r}")
        prompts = [p for p in prompts for _ in range(n)]                                  # B prompts
        b, device = len(prompts), self.device
        cond = self.encode_prompt(prompts)
        negatives = None
        if negative_prompt is not None:
            negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else \
                [p for p in negative_prompt for _ in range(n)]
            if len(negatives) != b:
                raise ValueError(f"negative_prompt must be one string or one per prompt ({len(prompts) // n}), "
                                 f"got {len(negatives) // n}")
        null = self.encode_prompt(negatives) if negatives is not None else self.unet.null_cond(cond)
        shape = self.vae.latent_shape((b, 3, 64, 64))                                    # (B, 4, 8, 8)
        sigmas = schedule("loglinear", steps, sigma_min=self.sigma_min, sigma_max=self.sigma_max)
        noise = torch.randn(shape, generator=generator, device=device)
        z0 = m = None
        if image is not None:
            z0 = self.vae.encode(to_model(self.vae, _image(image, b, device) * 2 - 1)).float()   # (B, 4, 8, 8)
            if not (isinstance(strength, (int, float)) and 0 < strength <= 1):
                raise ValueError(f"strength must be in (0, 1] (1: ignore the image, near 0: keep it), got {strength!r}")
            x, sigmas = img2img_start(z0, noise, sigmas, strength)                       # skip the noisiest steps
        else:
            if mask is not None:
                raise ValueError("mask needs image: inpainting repaints the masked part of a given picture")
            x = sigmas[0].item() * noise                                                 # pure noise
        if mask is not None:
            m = _latent_mask(mask, b, shape, device)                                     # (B, 1, 8, 8), 1 = repaint
        out = Generation(images=None, latents=None, prompts=prompts)
        memory = None
        for i in progress(range(len(sigmas) - 1), desc="denoising", leave=False):         # the denoising loop
            sigma, sigma_next = sigmas[i].item(), sigmas[i + 1].item()
            eps_fn = checked_eps_fn(self.unet, cond, guidance_scale, null, i, len(sigmas) - 1)   # (B, 4, 8, 8)
            x, x0, _, memory = advance(eps_fn, x, sigma, sigma_next, memory, generator=generator, **SAMPLERS[sampler])
            if m is not None:                                # outside the mask: the input, noised to sigma_next
                x = m * x + (1 - m) * (z0 + sigma_next * noise)
            if return_steps:
                out.sigmas.append(sigma)
                out.x0.append(self.decode(x0))
        if m is not None:
            x = m * x + (1 - m) * z0                         # and exactly the input's latent at the end
        out.latents, out.images = x.cpu(), self.decode(x)
        return out if return_steps else out.images


def img2img_start(z0, noise, sigmas, strength):
    """Where img2img starts (Meng et al. 2022, SDEdit): the given latent, noised part of the way.

    z0: (B, 4, 8, 8) the picture's latent; noise: a standard normal draw of its shape; sigmas: the
    full schedule (steps + 1 levels, noisiest first, ending at the smallest); strength in (0, 1]:
    the share of the steps to run, round(strength * steps) and at least one. Returns the start
    z0 + sigma_start * noise and the levels left to run, sigmas[start:]. Strength 1 starts from
    pure noise, sigma_max * noise, exactly like text to image (the picture is not used).
    """
    steps = len(sigmas) - 1
    start = steps - max(1, round(strength * steps))
    sigmas = sigmas[start:]
    x = sigmas[0].item() * noise if strength == 1 else z0 + sigmas[0].item() * noise
    return x, sigmas


def _positive_int(v, name):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


def _image(image, b, device):
    """A starting picture: (3, 64, 64) or (1 or B, 3, 64, 64) in [0, 1] -> (B, 3, 64, 64) on device."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        raise ValueError(f"image must be a tensor (B, 3, 64, 64) or (3, 64, 64) in [0, 1], got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    image = image[None] if image.ndim == 3 else image
    if tuple(image.shape[1:]) != (3, 64, 64) or len(image) not in (1, b):
        raise ValueError(f"image must have shape (B, 3, 64, 64) with B = 1 or {b} (prompts x images per prompt), "
                         f"got {tuple(image.shape)}")
    check_finite(image.float(), "image")
    if image.min() < -0.01 or image.max() > 1.01:
        raise ValueError(f"image values lie in [{image.min():.3g}, {image.max():.3g}], expected [0, 1] (like the "
                         "pipeline's output): for [-1, 1] use (x + 1) / 2, for [0, 255] x / 255")
    return image.float().expand(b, -1, -1, -1).to(device)


def _latent_mask(mask, b, shape, device):
    """A (1 or B, 1, 64, 64) pixel mask -> (B, 1, 8, 8): a latent cell is repainted if any of its pixels is."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4 or tuple(mask.shape[1:]) != (1, 64, 64) or \
            len(mask) not in (1, b):
        raise ValueError(f"mask must have shape (B, 1, 64, 64) with B = 1 or {b}, 1 where to paint anew, got "
                         f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    factor = 64 // shape[-1]
    return F.max_pool2d(mask.float().to(device), factor).clamp(0, 1).expand(b, -1, -1, -1)
