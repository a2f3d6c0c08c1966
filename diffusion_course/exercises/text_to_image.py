"""Exercises for chapter 7, "Text to image": guidance with a negative prompt, where img2img
starts for a strength, and the binding score.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs of varied
shapes and answers in one line (see `diffusion_course.exercises.check`). Pass `seed=` to
repeat a run exactly; by default every call draws new inputs.

    >>> from diffusion_course.exercises import text_to_image as ex
    >>> ex.check_negative_guidance(lambda eps_cond, eps_neg, s: eps_neg + s * (eps_cond - eps_neg))
    ✅ negative_guidance: matches the reference on 12 random inputs.
"""
import torch

from . import N_CASES, check, generators
from ..noise import schedule
from ..pipeline import img2img_start
from ..shapes import COLORS, SHAPES


# ---- the reference solutions ------------------------------------------------------------

def negative_guidance(eps_cond, eps_neg, guidance_scale):
    """Classifier-free guidance with a negative prompt: start from the negative prompt's noise
    prediction and go guidance_scale times the way from it to the prompt's.

    eps_cond, eps_neg: (B, C, H, W) the U-Net's eps for the prompt and for the negative prompt.
    """
    return eps_neg + guidance_scale * (eps_cond - eps_neg)


def binding(pred_color, pred_shape, want_color, want_shape):
    """For two-object pictures: is each asked-for color on the asked-for shape, wherever it stands?

    All four are (B, 2) ids (into shapes.COLORS and shapes.SHAPES), one column per object.
    Returns (B,) bool: the picture's two (color, shape) pairs are the prompt's two, in either order.
    """
    same = (pred_color == want_color).all(1) & (pred_shape == want_shape).all(1)
    swapped = (pred_color == want_color.flip(1)).all(1) & (pred_shape == want_shape.flip(1)).all(1)
    return same | swapped


# img2img_start(z0, noise, sigmas, strength) is the package's own: diffusion_course.pipeline.img2img_start


# ---- random inputs -------------------------------------------------------------------------

def _guidance_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 1.0]]), 3.0)]      # 0 + 3 * 1, 1 + 3 * 1
    while len(cases) < N_CASES:
        shape = (rng.randint(1, 4), 4, rng.randint(1, 8), rng.randint(1, 8))
        cases.append((torch.randn(shape, generator=gen), torch.randn(shape, generator=gen),
                       rng.choice([0.0, 1.0, 2.5, 4.0, 7.5])))
    return cases


def _img2img_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        shape = (rng.randint(1, 3), 4, 8, 8)
        steps = rng.choice([1, 2, 5, 10, 30])
        sigmas = schedule("loglinear", steps, sigma_min=0.01, sigma_max=80.0)
        strength = rng.choice([1.0, 0.8, 0.5, 0.3, 0.05, rng.uniform(0.01, 1.0)])
        cases.append((torch.randn(shape, generator=gen), torch.randn(shape, generator=gen), sigmas, strength))
    return cases


def _binding_cases(seed):
    gen, rng = generators(seed)
    want_c, want_s = torch.tensor([[0, 5]]), torch.tensor([[0, 1]])     # a red circle and a blue square
    cases = [(want_c, want_s, want_c, want_s), (want_c.flip(1), want_s.flip(1), want_c, want_s),
             (want_c, want_s.flip(1), want_c, want_s)]                  # right, swapped places, bound wrongly
    while len(cases) < N_CASES:
        b = rng.randint(1, 40)
        want = [torch.randint(len(n), (b, 2), generator=gen) for n in (COLORS, SHAPES)]
        pred = [torch.where(torch.rand(b, 2, generator=gen) < 0.7, w,
                            torch.randint(len(n), (b, 2), generator=gen)) for w, n in zip(want, (COLORS, SHAPES))]
        flip = torch.rand(b, 1, generator=gen) < 0.5
        pred = [torch.where(flip, p.flip(1), p) for p in pred]
        cases.append((pred[0], pred[1], want[0], want[1]))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_negative_guidance(fn, seed=None):
    """Check `fn(eps_cond, eps_neg, guidance_scale)` -> the guided eps with a negative prompt."""
    return check("negative_guidance", fn, negative_guidance, _guidance_cases(seed))


def check_img2img_start(fn, seed=None):
    """Check `fn(z0, noise, sigmas, strength)` -> (the starting latent, the noise levels left to run)."""
    return check("img2img_start", fn, img2img_start, _img2img_cases(seed))


def check_binding(fn, seed=None):
    """Check `fn(pred_color, pred_shape, want_color, want_shape)` -> (B,) bool, each color on its shape."""
    return check("binding", fn, binding, _binding_cases(seed))
