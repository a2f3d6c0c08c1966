"""Exercises for chapter 1, "Tensors": layouts, value ranges, broadcasting and slicing.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs of varied
shapes and answers in one line (see `diffusion_course.exercises.check`). Pass `seed=` to
repeat a run exactly; by default every call draws new inputs, so a function that only
works for one shape is caught.

    >>> from diffusion_course.exercises import tensors as ex
    >>> ex.check_hwc_to_chw(lambda x: x.permute(2, 0, 1))
    ✅ hwc_to_chw: matches the reference on 12 random inputs.
"""

import torch

from . import N_CASES, check, generators



# ---- the reference solutions ------------------------------------------------------------

def hwc_to_chw(x):
    """(H, W, C) -> (C, H, W): move the channel axis to the front (PyTorch's image layout)."""
    return x.permute(2, 0, 1)


def normalize(x):
    """uint8 pixels in [0, 255] -> float32 in [-1, 1], the range diffusion models work in."""
    return x.float() / 127.5 - 1.0


def add_noise(x0, sigma, eps):
    """x_sigma = x0 + sigma * eps, one noise level per image.

    x0, eps: (B, C, H, W); sigma: (B,). sigma must be reshaped to (B, 1, 1, 1) so that
    broadcasting pairs image b with sigma[b] (a bare (B,) would line up with W instead).
    """
    return x0 + sigma.view(-1, 1, 1, 1) * eps


def center_crop(x, size):
    """The central size x size square of the last two axes of x, e.g. (C, H, W) -> (C, size, size).

    The crop starts at top = (H - size) // 2 and left = (W - size) // 2: when the margin
    is odd, the extra pixel is left at the bottom and the right.
    """
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


# ---- random inputs -------------------------------------------------------------------------

def _image(rng, gen, shape, uint8=None):
    """A random image tensor: uint8 in [0, 255] or float32 in [0, 1] (half of each by default)."""
    if uint8 is None:
        uint8 = rng.random() < 0.5
    if uint8:
        return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    return torch.rand(shape, generator=gen)


def _hwc_cases(seed):
    rng_t, rng = generators(seed)
    cases = [(_image(rng, rng_t, (2, 3, 3), uint8=False),)]       # small and not square
    while len(cases) < N_CASES:
        h, w, c = rng.randint(2, 40), rng.randint(2, 40), rng.choice([1, 3, 3, 4])
        cases.append((_image(rng, rng_t, (h, w, c)),))
    return cases


def _normalize_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8),)]  # the ends of the range
    while len(cases) < N_CASES:
        shape = rng.choice([(rng.randint(2, 30), rng.randint(2, 30)),                          # (H, W)
                            (rng.randint(2, 20), rng.randint(2, 20), 3),                       # (H, W, C)
                            (rng.randint(1, 5), rng.choice([1, 3]), rng.randint(2, 16), rng.randint(2, 16))])
        cases.append((_image(rng, gen, shape, uint8=True),))
    return cases


def _noise_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        # H and W are larger than B, so a sigma left as (B,) cannot quietly line up with W
        b = rng.randint(2, 6)
        c = rng.choice([1, 3, 4])
        h, w = rng.randint(b + 1, 24), rng.randint(b + 1, 24)
        x0 = torch.rand((b, c, h, w), generator=gen) * 2 - 1
        sigma = torch.rand((b,), generator=gen) * 3
        eps = torch.randn((b, c, h, w), generator=gen)
        cases.append((x0, sigma, eps))
    return cases


def _crop_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.arange(36.0).view(1, 6, 6), 3)]                 # odd margin: 1 above, 2 below
    while len(cases) < N_CASES:
        h, w = rng.randint(4, 40), rng.randint(4, 40)
        size = rng.randint(1, min(h, w))
        lead = rng.choice([(), (3,), (rng.randint(1, 4), rng.choice([1, 3]))])
        cases.append((_image(rng, gen, lead + (h, w)), size))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_hwc_to_chw(fn, seed=None):
    """Check `fn(x)`: an (H, W, C) image tensor -> the same image as (C, H, W)."""
    return check("hwc_to_chw", fn, hwc_to_chw, _hwc_cases(seed))


def check_normalize(fn, seed=None):
    """Check `fn(x)`: uint8 pixels in [0, 255], any shape -> float values in [-1, 1] (0 -> -1, 255 -> 1)."""
    return check("normalize", fn, normalize, _normalize_cases(seed))


def check_add_noise(fn, seed=None):
    """Check `fn(x0, sigma, eps)`: x0 and eps (B, C, H, W), sigma (B,) -> x0 + sigma * eps per image."""
    return check("add_noise", fn, add_noise, _noise_cases(seed))


def check_center_crop(fn, seed=None):
    """Check `fn(x, size)`: the central size x size square of the last two axes of x."""
    return check("center_crop", fn, center_crop, _crop_cases(seed))
