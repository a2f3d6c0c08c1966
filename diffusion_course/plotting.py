"""Pictures of tensors: `show_images` draws a titled grid from almost any image layout."""
import math

import numpy as np
import torch

MIN_SIDE = 4
ACCEPTED = "(B, C, H, W), (B, H, W, C), (C, H, W), (H, W, C) or (H, W), with C in {1, 3, 4}"


def _to_numpy(images):
    if isinstance(images, torch.Tensor):
        return images.detach().float().cpu().numpy()
    if isinstance(images, (list, tuple)):
        return np.stack([_to_numpy(im) for im in images])
    if isinstance(images, np.ndarray):
        return images.astype(np.float32)
    raise TypeError(f"show_images expects a torch tensor, NumPy array or list of images, got {type(images).__name__}")


def _channels_first(first, last):
    """Is the axis of size `first` the channels? Ties (a 4x4 RGB image) go to the smaller axis."""
    return first in (1, 3, 4) and (last not in (1, 3, 4) or first <= last)


def to_grid_layout(images):
    """Return a float array of shape (B, H, W, C) with C in {1, 3}, values in [0, 1].

    Accepts (B,C,H,W), (B,H,W,C), (C,H,W), (H,W,C) and (H,W). Channels-first is detected
    by a leading size of 1, 3 or 4 next to a larger spatial size. Values in [-1, 1] are mapped
    to [0, 1]; values in [0, 255] (uint8 images) are divided by 255; four channels are
    shown as RGB (the fourth is dropped): to see every channel, pass them as a batch of
    one-channel images, e.g. `x.unsqueeze(1)` for a (C, H, W) tensor.
    """
    x = _to_numpy(images)
    if x.ndim == 2:                                   # (H, W)
        x = x[None, :, :, None]
    elif x.ndim == 3:
        if _channels_first(x.shape[0], x.shape[-1]):
            x = x.transpose(1, 2, 0)[None]            # (C, H, W) -> (1, H, W, C)
        elif x.shape[-1] in (1, 3, 4):
            x = x[None]                               # (H, W, C)
        else:
            x = x[..., None]                          # (B, H, W) grayscale batch
    elif x.ndim == 4:
        if _channels_first(x.shape[1], x.shape[-1]):
            x = x.transpose(0, 2, 3, 1)               # (B, C, H, W) -> (B, H, W, C)
        elif x.shape[-1] not in (1, 3, 4):
            raise ValueError(f"show_images got shape {tuple(x.shape)}: no channel axis of size 1, 3 or 4. "
                             f"It accepts {ACCEPTED}.")
    else:
        raise ValueError(f"show_images got a {x.ndim}-D array of shape {tuple(x.shape)}; it accepts {ACCEPTED}.")
    if min(x.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"show_images got shape {tuple(_to_numpy(images).shape)}, which holds no image of at least "
                         f"{MIN_SIDE}x{MIN_SIDE} pixels. It accepts {ACCEPTED}.")
    if x.shape[-1] == 4:
        x = x[..., :3]
    if not np.isfinite(x).all():
        raise ValueError("show_images got NaN or infinite values; check the computation that made these images")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 and lo >= -1.0 - 1e-3 and hi <= 1.0 + 1e-3:
        x = (x + 1) / 2                               # [-1, 1] -> [0, 1]
    elif hi > 1.0 + 1e-3:
        x = x / 255.0 if hi <= 255 and lo >= 0 else (x - lo) / max(hi - lo, 1e-8)
    elif lo < -1e-6:
        x = (x - lo) / max(hi - lo, 1e-8)
    return np.clip(x, 0.0, 1.0)


def show_images(images, titles=None, nrow=None, title=None, size=1.6, cmap="gray", show=True):
    """Draw images in a grid, optionally with a title per image and one for the figure.

    images: a tensor/array in any layout `to_grid_layout` accepts, or a list of images.
    nrow:   images per row (default: up to 8). size: inches per image.
    Returns the matplotlib Figure when show=False; otherwise shows it and returns None.
    """
    import matplotlib.pyplot as plt

    x = to_grid_layout(images)                        # (B, H, W, C)
    b = x.shape[0]
    if titles is not None and len(titles) != b:
        raise ValueError(f"got {len(titles)} titles for {b} images; give one title per image")
    ncol = min(b, nrow or 8)
    nrows = math.ceil(b / ncol)
    fig, axes = plt.subplots(nrows, ncol, figsize=(size * ncol, size * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < b:
            im = x[i]
            ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap=cmap, vmin=0, vmax=1,
                      interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if show:
        plt.show()
        return None
    return fig
