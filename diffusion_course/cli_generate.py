"""`python -m diffusion_course generate`: pictures from a prompt, with the text-to-image pipeline, into a PNG grid.

    python -m diffusion_course generate "a red circle to the left of a blue square" --negative "something green" \\
        --steps 30 --cfg 4 --seed 0 --n 4 --out grid.png
"""
from .sampling import SAMPLERS


def generate_grid(prompt, negative=None, steps=30, cfg=4.0, seed=0, n=4, out="generated.png", checkpoint="t2i_shapes",
                  sampler="ddim", device=None):
    """Make n pictures of `prompt` and write them as a grid; returns (images (n, 3, 64, 64) in [0, 1], path)."""
    import torch

    from .pipeline import TextToImage
    from .runtime import get_device
    from .__main__ import png_path
    out = png_path(out)                                          # what is written is what is reported
    device = get_device(device)
    pipe = TextToImage.from_pretrained(checkpoint, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    images = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=cfg, sampler=sampler,
                  generator=gen, num_images_per_prompt=n)
    import matplotlib
    matplotlib.use("Agg")
    from .plotting import show_images
    fig = show_images(images * 2 - 1, nrow=min(n, 8), show=False,
                      title=f"{prompt!r}" + (f", not {negative!r}" if negative else "") +
                            f": {sampler}, {steps} steps, cfg {cfg:g}, seed {seed}")
    fig.savefig(out, dpi=100)
    return images, out


def add_parser(subparsers):
    from .__main__ import finite_float, whole_number
    p = subparsers.add_parser("generate", help="pictures from a prompt with the text-to-image pipeline")
    p.add_argument("prompt", help="what to paint, e.g. \"a red circle to the left of a blue square\"")
    p.add_argument("--negative", default=None, help="a negative prompt: what the picture should not show")
    p.add_argument("--steps", type=whole_number(1), default=30, help="sampling steps (default: 30)")
    p.add_argument("--cfg", type=finite_float(0), default=4.0, help="guidance scale, 1 = none (default: 4)")
    p.add_argument("--seed", type=whole_number(0), default=0, help="random seed (default: 0)")
    p.add_argument("--n", type=whole_number(1), default=4, help="number of pictures (default: 4)")
    p.add_argument("--sampler", default="ddim", choices=list(SAMPLERS), help="step rule (default: ddim)")
    p.add_argument("--checkpoint", default="t2i_shapes", help="text-to-image checkpoint (default: t2i_shapes)")
    p.add_argument("--out", default="generated.png", help="output PNG (default: generated.png)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.set_defaults(func=main)
    return p


def main(args):
    _, out = generate_grid(args.prompt, args.negative, args.steps, args.cfg, args.seed, args.n, args.out,
                           args.checkpoint, args.sampler, args.device)
    print(f"wrote {out}: {args.n} pictures of {args.prompt!r}, {args.sampler}, {args.steps} steps, cfg {args.cfg:g}, "
          f"seed {args.seed}")
