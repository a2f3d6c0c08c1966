"""A diffusion transformer in the U-Net's place (chapter 8): the mnist recipe with dit.DiT.

The same data, loss, noise levels, guidance training and evaluation as the mnist recipe; the
network is a DiT of about the U-Net's size (4 blocks of width 64 over 7x7 patches of 4x4 pixels:
321k parameters against the U-Net's 281k). One DiT step costs less than a third of a U-Net step on
a CPU (49 tokens against convolutions over all 784 pixels: 3.3 times less on one thread, 3.7 on
two), so at equal training time it takes more steps: 60,000 against the U-Net's 18,000. The
shipped card was trained beside mnist_flow (the same U-Net), one thread each, to measure both
under the same conditions:

    OMP_NUM_THREADS=1 python -m diffusion_course train mnist_dit
"""
from ..dit import DiT
from . import defaults, training_settings
from .mnist import HALF, HELDOUT_N, fit_and_evaluate, reevaluate  # noqa: F401 (HALF: as mnist's)

NAME = "mnist_dit"


def make_model(dim=64, depth=4, heads=4, patch_size=4):
    """The DiT of this recipe: 28x28 digits in 4x4 patches, 10 classes and the null class."""
    return DiT(in_channels=1, image_size=28, patch_size=patch_size, dim=dim, depth=depth, heads=heads,
               num_classes=10)


def run(out, device, steps=60000, batch_size=32, lr=5e-4, dim=64, depth=4, heads=4, patch_size=4, p_uncond=0.1,
        sigma_kind="mixed", sigma_min=0.01, sigma_max=80.0, ema_decay=0.9995, seed=0, eval_n=HELDOUT_N,
        eval_draws=5, eval_cfg_scale=3.0):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    ema, metrics = fit_and_evaluate(out, device, settings, steps, lambda: make_model(dim, depth, heads, patch_size),
                                    "mnist DiT", eval_n, eval_draws, eval_cfg_scale)
    return ema.cpu(), metrics


DEFAULTS = defaults(run)
