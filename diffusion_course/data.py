"""Datasets that work offline: MNIST from IDX files (the shapes world lives in shapes.py).

Where MNIST is looked for, in order:
1. the `root` argument, if given;
2. $DIFFUSION_COURSE_DATA (CI points it at the offline copy of the test split);
3. the user cache, $XDG_CACHE_HOME/diffusion_course or ~/.cache/diffusion_course;
4. torchvision's download into that cache, when `download=True` and the machine is online.
In each folder the files may sit directly, under `mnist/`, or under torchvision's `MNIST/raw/`,
gzipped or not. Tests and default runs never download.
"""
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {2049: 1, 2051: 3}                       # labels: 1-D, images: 3-D
SUBDIRS = ("", "mnist", "MNIST/raw")


def cache_dir():
    """The user cache folder where downloads go: $XDG_CACHE_HOME/diffusion_course."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "diffusion_course"


def read_idx(path):
    """Read an IDX file (gzipped or not) into a uint8 NumPy array.

    The header is big-endian: a magic number (2051 images, 2049 labels), then one int32
    per dimension; the rest is the raw uint8 data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path} is not a complete gzip file ({type(e).__name__}: {e}); it is truncated or "
                         "corrupt: delete it and fetch it again") from None
    if len(data) < 8:
        raise ValueError(f"{path} is not an IDX file (only {len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic not in IDX_MAGIC:
        raise ValueError(f"{path} is not an MNIST IDX file: magic number {magic}, expected 2049 or 2051")
    ndim = IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise ValueError(f"{path} is truncated or corrupt: header says {shape} ({expected} bytes), "
                         f"found {len(data) - offset} bytes; delete it and fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _candidate_roots(root):
    if root is not None:
        return [Path(root)]
    roots = []
    if os.environ.get("DIFFUSION_COURSE_DATA"):
        roots.append(Path(os.environ["DIFFUSION_COURSE_DATA"]))
    roots.append(cache_dir())
    return roots


def _find(name, roots):
    for r in roots:
        for sub in SUBDIRS:
            for suffix in (".gz", ""):
                p = r / sub / (name + suffix)
                if p.is_file():
                    return p
    return None


def _download(split):
    """Fetch MNIST through torchvision into the cache. Online-only; never used by tests."""
    from torchvision.datasets import MNIST
    MNIST(root=str(cache_dir()), train=(split == "train"), download=True)


def load_mnist(split="test", root=None, download=True, raw=False):
    """Load MNIST digits and labels.

    split:    "train" (60,000 images; needs a download) or "test" (10,000; ships offline in CI).
    root:     a folder to read from instead of the usual places (see the module docstring).
    download: allow torchvision's download into the cache if the files are nowhere to be found.
    raw:      return uint8 images of shape (N, 28, 28) in [0, 255] instead of the model-ready
              float32 (N, 1, 28, 28) in [-1, 1].
    Returns (images, labels), labels an int64 tensor of shape (N,).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"unknown MNIST split {split!r}: expected 'train' or 'test'")
    roots = _candidate_roots(root)
    names = MNIST_FILES[split]
    paths = [_find(n, roots) for n in names]
    if None in paths and download and root is None:
        try:
            _download(split)
        except Exception as e:  # offline, or the mirror is down
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        else:
            reason = None
        paths = [_find(n, roots) for n in names]
        if None in paths and reason:
            names_missing = [n for n, p in zip(names, paths) if p is None]
            raise FileNotFoundError(_missing_message(split, names_missing, roots) +
                                    f" The download failed too ({reason}).")
    if None in paths:
        missing = [n for n, p in zip(names, paths) if p is None]
        raise FileNotFoundError(_missing_message(split, missing, roots))
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST files disagree: images {images.shape}, labels {labels.shape} "
                         f"({paths[0]}, {paths[1]})")
    x = torch.from_numpy(images.copy())
    y = torch.from_numpy(labels.astype(np.int64))
    if raw:
        return x, y
    return (x.float() / 127.5 - 1.0).unsqueeze(1), y  # (N, 1, 28, 28) in [-1, 1]


def _missing_message(split, missing, roots):
    where = ", ".join(str(r) for r in roots)
    return (f"MNIST {split} split not found: missing {', '.join(m + '(.gz)' for m in missing)} in {where}. "
            f"Set DIFFUSION_COURSE_DATA to a folder holding these IDX files (the repository's CI uses "
            f"../shared/data), or run once with internet access so torchvision can download them.")
