"""Draw the book's map of Stable Diffusion: book/images/sd_map.png (about 1400 x 600 pixels).

    .venv/bin/python tools/draw_sd_map.py [out.png]

Three boxes in plain words (text understander, denoiser on a small latent canvas,
painter), the shapes that flow between them, and the chapter that opens each box. The
thumbnails are drawn here with NumPy: pure noise for the start, and the picture the
intro's example prompt asks for.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "book" / "images" / "sd_map.png"
WIDTH, HEIGHT, DPI = 14, 6, 100          # drawing units; the figure is WIDTH x HEIGHT * DPI pixels

BLUE, ORANGE, GREEN, GRAY = "#dbe8f8", "#fde5c8", "#d9f0d3", "#eeeeee"
EDGE = {BLUE: "#3b6fb6", ORANGE: "#d9822b", GREEN: "#3d8b37", GRAY: "#888888"}


def prompt_picture(size=128):
    """'a red circle to the left of a blue square' on a light background: (size, size, 3) in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.ones((size, size, 3)) * np.array([0.96, 0.95, 0.9])
    img[(x - 0.3) ** 2 + (y - 0.5) ** 2 < 0.16 ** 2] = [0.85, 0.15, 0.15]
    img[(np.abs(x - 0.72) < 0.14) & (np.abs(y - 0.5) < 0.14)] = [0.15, 0.3, 0.85]
    return img


def noise_picture(size=16, seed=0):
    """A standard-normal noise image, squashed into [0, 1] for display: (size, size, 3)."""
    eps = np.random.default_rng(seed).standard_normal((size, size, 3))
    return np.clip((eps + 2) / 4, 0, 1)


def box(ax, x, y, w, h, color, title, subtitle, chapter):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.18",
                                facecolor=color, edgecolor=EDGE[color], lw=2.2))
    ax.text(x + w / 2, y + h * 0.62, title, ha="center", va="center", fontsize=20, weight="bold", color="#222222",
            linespacing=1.1)
    ax.text(x + w / 2, y + h * 0.2, subtitle, ha="center", va="center", fontsize=15, style="italic", color="#444444")
    if chapter:
        ax.text(x + w / 2, y - 0.22, chapter, ha="center", va="top", fontsize=15, color=EDGE[color], linespacing=1.25)


def arrow(ax, start, end, text=None, text_at=None, rad=0.0, color="#555555", va="bottom"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=22, lw=2.2, color=color,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0))
    if text:
        tx, ty = text_at or ((start[0] + end[0]) / 2, max(start[1], end[1]) + 0.12)
        ax.text(tx, ty, text, ha="center", va=va, fontsize=14, color="#333333", linespacing=1.15)


def thumbnail(ax, img, x, y, w, h, label):
    ax.imshow(img, extent=(x, x + w, y, y + h), interpolation="nearest", zorder=3)
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="square,pad=0", fill=False, edgecolor="#555555", lw=1.2,
                                zorder=4))
    ax.text(x + w / 2, y - 0.12, label, ha="center", va="top", fontsize=14, color="#333333", linespacing=1.15)


def draw(out=OUT):
    fig = plt.figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, HEIGHT)
    ax.set_aspect("equal")
    ax.axis("off")

    # the prompt
    ax.add_patch(FancyBboxPatch((0.2, 3.35), 2.0, 1.3, boxstyle="round,pad=0.02,rounding_size=0.15",
                                facecolor="white", edgecolor=EDGE[GRAY], lw=1.6, linestyle="--"))
    ax.text(1.2, 4.0, "\u201ca red circle\nto the left of\na blue square\u201d", ha="center", va="center",
            fontsize=15, style="italic", linespacing=1.2)
    ax.text(1.2, 3.2, "prompt text", ha="center", va="top", fontsize=14, color="#333333")

    # the three boxes
    box(ax, 2.7, 3.2, 2.45, 1.6, BLUE, "text\nunderstander", "(text encoder)", "chapter:\nCLIP contrastive\ntraining")
    box(ax, 6.4, 2.9, 3.0, 2.2, ORANGE, "denoiser\non a small\nlatent canvas", "(U-Net)",
        "chapters:\nForward noising,\nDenoising")
    box(ax, 10.6, 3.2, 1.65, 1.6, GREEN, "painter", "(VAE decoder)", "chapter:\nLatent VAE")

    # what flows between them
    arrow(ax, (2.2, 4.0), (2.7, 4.0))
    arrow(ax, (5.15, 4.0), (6.4, 4.0), "meaning\nas numbers", text_at=(5.78, 4.12))
    arrow(ax, (9.4, 4.0), (10.6, 4.0), "finished\nlatent\n64x64x4", text_at=(10.0, 4.12))
    arrow(ax, (12.25, 4.0), (12.55, 4.0))
    thumbnail(ax, prompt_picture(), 12.55, 3.35, 1.3, 1.3, "image\n512x512x3")

    # the denoising loop: start from noise, repeat
    thumbnail(ax, noise_picture(), 4.1, 0.75, 1.05, 1.05, "")
    ax.text(4.62, 0.62, "start: pure noise\n64x64x4", ha="center", va="top", fontsize=14, color="#333333")
    arrow(ax, (5.15, 1.27), (6.55, 2.9), rad=0.3)
    arrow(ax, (9.0, 5.12), (6.8, 5.12), rad=0.4, color=EDGE[ORANGE])
    ax.text(7.9, 5.62, "repeat ~50 steps: remove a little noise each time", ha="center", va="bottom",
            fontsize=14, color=EDGE[ORANGE])

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor="white")
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw(sys.argv[1] if len(sys.argv) > 1 else OUT))
