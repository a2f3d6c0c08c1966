"""diffusion_course: every part of Stable Diffusion, built from scratch and tested.

The package behind the book *Diffusion from Scratch*. Each file holds one idea; the
chapters import from here and check their inline versions against it.
"""
__version__ = "0.1.0"

from .runtime import budget, get_device, progress, seed_everything, sized
from .plotting import show_images
from .data import load_mnist

__all__ = ["__version__", "budget", "get_device", "progress", "seed_everything", "sized",
           "show_images", "load_mnist"]
