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


class WebSlider:
    """Precomputed frames behind HTML range sliders: an interactive figure that works on a web page with
    no kernel (the way matplotlib's animation HTML does). Made by `web_slider`; shown as HTML by Jupyter
    and by the rendered book. Its text form (what nbval compares) names the controls and frame count."""

    _count = 0

    def __init__(self, controls, frames, fmt):
        self.controls, self.frames, self.fmt = controls, frames, fmt   # {name: values}, [data URI], {name: fmt}
        WebSlider._count += 1
        self.id = f"dc-slider-{WebSlider._count}"

    def __repr__(self):
        parts = [f"{name} ({len(v)}: {self.fmt[name].format(v[0])} .. {self.fmt[name].format(v[-1])})"
                 for name, v in self.controls.items()]
        return f"WebSlider over {', '.join(parts)}: {len(self.frames)} frames"

    def _repr_html_(self):
        import html
        import json
        labels = {name: [self.fmt[name].format(v) for v in values] for name, values in self.controls.items()}
        inputs = "".join(
            f'<label style="margin-right:1.5em">{html.escape(name)} '
            f'<input type="range" min="0" max="{len(values) - 1}" step="1" value="0" data-name="{html.escape(name)}" '
            f'style="vertical-align:middle"> <output>{html.escape(labels[name][0])}</output></label>'
            for name, values in self.controls.items())
        script = (f"(function() {{ var root = document.getElementById('{self.id}'); "
                  f"var frames = {json.dumps(self.frames)}; var labels = {json.dumps(list(labels.values()))}; "
                  "var inputs = root.querySelectorAll('input[type=range]'); "
                  "function update() { var k = 0; inputs.forEach(function(el, i) { "
                  "k = k * labels[i].length + Number(el.value); "
                  "el.nextElementSibling.textContent = labels[i][Number(el.value)]; }); "
                  "root.querySelector('img').src = frames[k]; } "
                  "inputs.forEach(function(el) { el.addEventListener('input', update); }); })();")
        return (f'<div class="dc-slider" id="{self.id}"><div>{inputs}</div>'
                f'<img src="{self.frames[0]}" alt="{html.escape(repr(self))}" style="max-width:100%">'
                f'<script>{script}</script></div>')


def web_slider(draw, fmt="{:g}", dpi=72, **controls):
    """An interactive figure for the web page: `draw` is called for every combination of the controls'
    values, and the page shows the matching picture as the sliders move, with no kernel.

        web_slider(show_sigma, sigma=[0.1, 0.5, 1, 2, 5])     # draw(sigma=...) for each value

    draw(**values) draws with matplotlib as a live ipywidgets callback does (show_images, plt.show(): the
    drawing happens off screen here); its last figure is kept as a PNG at `dpi`. controls: name ->
    list of values (at least one each; the frames are all their combinations, so keep them few, the
    page carries every frame). fmt: how values are written beside the slider, one format or a dict by name.
    Returns a WebSlider, which Jupyter and the book display as HTML.
    """
    import base64
    import io
    import itertools
    import warnings

    import matplotlib.pyplot as plt

    if not controls:
        raise ValueError("give at least one control, e.g. web_slider(draw, sigma=[0.1, 1.0, 10.0])")
    for name, values in controls.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"control {name!r} needs a non-empty list of values, got {values!r}")
    fmts = fmt if isinstance(fmt, dict) else {name: fmt for name in controls}
    frames = []
    backend = plt.get_backend()
    plt.switch_backend("agg")                      # plt.show() inside draw() then draws off screen
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            for combo in itertools.product(*controls.values()):
                draw(**dict(zip(controls, combo)))
                if not plt.get_fignums():
                    raise ValueError(f"draw({dict(zip(controls, combo))}) drew no matplotlib figure")
                buf = io.BytesIO()
                plt.figure(plt.get_fignums()[-1]).savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
                plt.close("all")
                frames.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    finally:
        plt.switch_backend(backend)
    return WebSlider({name: list(values) for name, values in controls.items()}, frames, fmts)
