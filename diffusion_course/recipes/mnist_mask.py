"""Cold diffusion on MNIST (chapter 8): a U-Net that fills in hidden pixels, generating from nothing.

The mnist_blur recipe with masking instead of blur (degrade.Mask): severity s hides s / severity_steps
of the pixels, in a fixed random order, behind the background value -1. Fully masked, every start
is the same blank picture, so one class gets one digit: the recipe's `within_class_std` measures it.

    python -m diffusion_course train mnist_mask
    python -m diffusion_course evaluate mnist_mask     # measure the shipped weights again
"""
from ..degrade import Mask
from . import defaults, training_settings
from .mnist import HELDOUT_N
from .mnist_blur import HALF, evaluate, fit_cold, reevaluate_cold  # noqa: F401 (HALF, evaluate: as mnist_blur's)

NAME = "mnist_mask"


def run(out, device, steps=18000, batch_size=32, lr=1e-3, channels=16, num_res_blocks=1, dropout=0.1,
        p_uncond=0.1, severity_steps=20, ema_decay=0.9995, seed=0, eval_n=HELDOUT_N, eval_draws=5):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    return fit_cold(out, device, settings, steps, degradation(settings), eval_n, eval_draws)


def degradation(s):
    """The recipe's degradation, from its settings (a card's or run()'s)."""
    return Mask(s["severity_steps"])


def reevaluate(model, out, eval_n=HELDOUT_N, eval_draws=5, seed=0, **training):
    """The card's sample metrics, for `python -m diffusion_course evaluate mnist_mask`."""
    return reevaluate_cold(model, degradation(training), eval_n, eval_draws, seed)


DEFAULTS = defaults(run)
