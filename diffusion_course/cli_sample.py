"""`python -m diffusion_course sample`: draw samples from a checkpoint into a PNG grid.

    python -m diffusion_course sample --checkpoint mnist_unet --sampler accelerated --steps 10 \\
        --cfg 3 --labels 0,1,2,3,4,5,6,7,8,9 --seed 0 --out digits.png
"""
import torch

from .checkpoint import load_model, read_card
from .noise import schedule
from .runtime import get_device
from .sampling import SAMPLERS, generate


def parse_labels(text, n, num_classes):
    """'3,1,4' -> tensor([3, 1, 4]); None -> 0, 1, ..., num_classes-1, repeated to n images."""
    if text is None:
        return torch.arange(n) % num_classes
    try:
        labels = torch.tensor([int(t) for t in text.split(",") if t.strip()])
    except ValueError:
        raise ValueError(f"--labels expects comma-separated class numbers like 0,1,2, got {text!r}") from None
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"--labels must be class numbers from 0 to {num_classes - 1}, got {text!r}")
    return labels


def sample_grid(checkpoint="mnist_unet", sampler="ddim", steps=50, cfg_scale=1.0, labels=None, n=16, seed=0,
                out="samples.png", device=None, size=None):
    """Sample images from a checkpoint and write them as a titled grid; returns (images, labels, path)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps!r}")
    if not isinstance(cfg_scale, (int, float)) or not cfg_scale >= 0 or cfg_scale == float("inf"):
        raise ValueError(f"--cfg must be a finite number >= 0 (1 = no guidance), got {cfg_scale}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--n must be a positive integer, got {n!r}")
    from .__main__ import png_path
    out = png_path(out)                                          # what is written is what is reported
    device = get_device(device)
    card = read_card(checkpoint)
    if not str(card.get("model", "")).endswith(".UNet"):
        kind = str(card.get("model", "an unknown model")).rpartition(".")[2]
        raise ValueError(f"{checkpoint} is a {kind}, not a diffusion model: sample a U-Net checkpoint such as "
                         "mnist_unet (see checkpoints/README.md)")
    model = load_model(checkpoint, device=device)
    config, settings = card["config"], card.get("settings", {})
    if config.get("context_dim"):
        raise ValueError(f"{checkpoint} is text-conditioned; sample it from the text-to-image pipeline instead")
    num_classes = config.get("num_classes")
    y = parse_labels(labels, n, num_classes) if num_classes else None
    if y is None and labels is not None:
        raise ValueError(f"{checkpoint} is unconditional: leave out --labels")
    if y is None and cfg_scale != 1.0:
        raise ValueError(f"{checkpoint} is unconditional, so guidance has nothing to steer: use --cfg 1")
    count = len(y) if y is not None else n
    size = size or settings.get("image_size", 28)
    sigmas = schedule("loglinear", steps, sigma_min=settings.get("sigma_min", 0.01),
                      sigma_max=settings.get("sigma_max", 80.0))
    gen = torch.Generator(device=device).manual_seed(seed)
    x = generate(model, sigmas, (count, config["in_channels"], size, size), sampler,
                 cond=None if y is None else y.to(device), cfg_scale=cfg_scale, generator=gen)
    images = x.clamp(-1, 1).float().cpu()
    from .plotting import show_images
    import matplotlib
    matplotlib.use("Agg")
    titles = None if y is None else [str(int(v)) for v in y]
    fig = show_images(images, titles=titles, nrow=min(count, 10), show=False,
                      title=f"{checkpoint}: {sampler}, {steps} steps, cfg {cfg_scale:g}, seed {seed}")
    fig.savefig(out, dpi=100)
    return images, y, out


def add_parser(subparsers):
    from .__main__ import finite_float, whole_number
    p = subparsers.add_parser("sample", help="sample a checkpoint into a PNG grid")
    p.add_argument("--checkpoint", default="mnist_unet", help="checkpoint name or path (default: mnist_unet)")
    p.add_argument("--sampler", default="ddim", choices=list(SAMPLERS), help="step rule (default: ddim)")
    p.add_argument("--steps", type=whole_number(1), default=50, help="number of sampling steps (default: 50)")
    p.add_argument("--cfg", type=finite_float(0), default=1.0,
                   help="classifier-free guidance scale, 1 = none (default: 1)")
    p.add_argument("--labels", default=None, help="comma-separated class labels, e.g. 0,1,2 (default: 0..9 repeated)")
    p.add_argument("--n", type=whole_number(1), default=20, help="number of images when --labels is not given (default: 20)")
    p.add_argument("--seed", type=whole_number(0), default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="samples.png", help="output PNG (default: samples.png)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.set_defaults(func=main)
    return p


def main(args):
    _, y, out = sample_grid(args.checkpoint, args.sampler, args.steps, args.cfg, args.labels, args.n,
                            args.seed, args.out, args.device)
    print(f"wrote {out}: {args.checkpoint}, {args.sampler}, {args.steps} steps, cfg {args.cfg:g}, seed {args.seed}"
          + ("" if y is None else f", labels {','.join(str(int(v)) for v in y)}"))
