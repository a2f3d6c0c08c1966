"""Where code runs and how big a run is: device, seeds, the run budget, progress bars.

Everything in the course picks its device with `get_device()` and sizes its runs with
`budget()`, so the same notebook runs in a few minutes on a laptop CPU and at full size
on a GPU, without editing a line.
"""
import os
import random
import sys

import numpy as np
import torch

BUDGETS = ("quick", "full")


def get_device(prefer=None):
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    `prefer` (or the environment variable DIFFUSION_COURSE_DEVICE) overrides the choice,
    e.g. "cpu" to run on the CPU even when a GPU is present.
    """
    name = prefer if prefer is not None else os.environ.get("DIFFUSION_COURSE_DEVICE")
    if name is None or str(name).strip() == "":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}: expected 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but this machine has no CUDA GPU; "
                           "use 'cpu' or unset DIFFUSION_COURSE_DEVICE")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} was asked for, but MPS is not available here; use 'cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}: expected 'cpu', 'cuda' or 'mps'")
    return device


def seed_everything(seed=0):
    """Seed Python's, NumPy's and torch's random generators (all devices) for a repeatable run."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def budget(device=None):
    """'quick' on a CPU (a few minutes per chapter) or 'full' on a GPU.

    The environment variable DIFFUSION_COURSE_BUDGET ('quick' or 'full') overrides it.
    """
    name = os.environ.get("DIFFUSION_COURSE_BUDGET", "").strip().lower()
    if name:
        if name not in BUDGETS:
            raise ValueError(f"DIFFUSION_COURSE_BUDGET={name!r}: expected one of {BUDGETS}")
        return name
    device = torch.device(device) if device is not None else get_device()
    return "full" if device.type == "cuda" else "quick"


def sized(quick, full, device=None):
    """Pick `quick` or `full` by the current budget: `steps = sized(300, 20_000)`."""
    return full if budget(device) == "full" else quick


def progress(iterable=None, total=None, desc=None, **kwargs):
    """A tqdm progress bar (a widget in Jupyter, text in a terminal).

    Set DIFFUSION_COURSE_PROGRESS=0 to turn bars off (the book's committed runs do, so
    that their saved outputs stay readable and comparable).
    """
    off = os.environ.get("DIFFUSION_COURSE_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off")
    kwargs.setdefault("disable", off)
    kwargs.setdefault("dynamic_ncols", True)
    if "ipykernel" in sys.modules:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, **kwargs)
