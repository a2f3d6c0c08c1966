"""The course's U-Net beside the U-Nets people use: diffusers' UNet2DModel and smalldiffusion's Unet.

    pip install .[bench]                       # diffusers and smalldiffusion (optional)
    python tools/bench_peers.py                # CPU: small sizes; GPU: bf16, larger batches
    python tools/bench_peers.py --batch 64 --rounds 5

Each peer is built like the mnist recipe's U-Net (28x28 digits, one channel, widths c, 2c, 2c,
one residual block per level, attention at the 7x7 level, 10 classes and a null class, GroupNorm
with 8 groups) with its
width c chosen so that its parameter count is the closest to ours. Then, timed interleaved after a
warm-up (diffusion_course.bench.interleaved: round after round, each network in turn, so that a
machine that slows down affects all alike): a training step (forward, backward, AdamW on the
noise-prediction MSE) and a sampling call (one no-grad forward of a guided batch, 2 x batch). It
prints images per second and each one's ratio to the course's U-Net, measured in the same run.
A benchmark, not a test: its numbers depend on the machine.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffusion_course.bench import interleaved, recipe_model  # noqa: E402
from diffusion_course.runtime import get_device  # noqa: E402


def count(model):
    return sum(p.numel() for p in model.parameters())


def diffusers_unet(c):
    from diffusers import UNet2DModel
    return UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(c, 2 * c, 2 * c),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                       attention_head_dim=max(c // 2, 1), num_class_embeds=11, dropout=0.1)


def smalldiffusion_unet(c):
    """smalldiffusion's Unet normalizes with 32 groups, which needs c >= 32 (over 1M parameters at these
    levels); here it gets the 8 groups the other two use (only the group count differs)."""
    from smalldiffusion import Unet, model_unet
    norm = model_unet.Normalize
    model_unet.Normalize = lambda ch: torch.nn.GroupNorm(num_groups=8, num_channels=ch, eps=1e-6, affine=True)
    try:
        embed = torch.nn.Embedding(11, 4 * c)                     # the class, added to the noise embedding
        return Unet(in_dim=28, in_ch=1, out_ch=1, ch=c, ch_mult=(1, 2, 2), embed_ch_mult=4, num_res_blocks=1,
                    attn_resolutions=(7,), dropout=0.1, cond_embed=embed)
    finally:
        model_unet.Normalize = norm


def matched(build, target, widths=range(8, 33)):
    """The width c (a multiple of 8, for 8 norm groups) whose parameter count is closest to target."""
    c = min((w for w in widths if w % 8 == 0), key=lambda w: abs(count(build(w)) - target))
    return build(c), c


def calls(name, model):
    """net(x, sigma, y) -> predicted noise, whatever the library's calling convention."""
    if name == "diffusers":
        return lambda x, sigma, y: model(x, sigma, class_labels=y).sample
    return lambda x, sigma, y: model(x, sigma, y)


def train_step(net, model, device, batch, bf16):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 11, (batch,), device=device)
    sigma = torch.rand(batch, device=device) * 10
    eps = torch.randn_like(x0)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = (net(x0 + sigma.view(-1, 1, 1, 1) * eps, sigma, y).float() - eps).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def sample_call(net, device, batch, bf16):
    x = torch.randn(2 * batch, 1, 28, 28, device=device)
    y = torch.arange(2 * batch, device=device) % 11
    sigma = torch.full((2 * batch,), 1.0, device=device)

    @torch.no_grad()
    def call():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            net(x, sigma, y)
    return call


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--batch", type=int, default=None, help="default: 256 on a GPU, 32 on a CPU")
    p.add_argument("--iters", type=int, default=None, help="calls per network and round (default 10 GPU, 3 CPU)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    try:
        import diffusers  # noqa: F401
        import smalldiffusion  # noqa: F401
    except ImportError as e:
        sys.exit(f"error: {e.name} is not installed: pip install .[bench] (diffusers and smalldiffusion)")
    device = get_device(args.device)
    gpu = device.type == "cuda"
    batch, iters = args.batch or (256 if gpu else 32), args.iters or (10 if gpu else 3)
    torch.manual_seed(0)
    ours = recipe_model()
    target = count(ours)
    models = {"diffusion_course": (ours, 16)}
    models["diffusers"] = matched(diffusers_unet, target)
    models["smalldiffusion"] = matched(smalldiffusion_unet, target)
    from importlib.metadata import version
    print(f"device: {device}; torch {torch.__version__} ({torch.get_num_threads()} threads); diffusers "
          f"{version('diffusers')}; smalldiffusion {version('smalldiffusion')}; batch {batch}; "
          f"{'bf16' if gpu else 'fp32'}; {args.rounds} rounds "
          f"of {iters} calls, interleaved, after a warm-up")
    nets = {name: calls(name, m.to(device)) for name, (m, _) in models.items()}
    rows = {}
    for task in ("train step", "sampling call"):
        fns = [train_step(nets[n], models[n][0].train(), device, batch, gpu) if task == "train step"
               else sample_call(nets[n], device, batch, gpu) for n in models]
        if task == "sampling call":
            for m, _ in models.values():
                m.eval()
        seconds = interleaved(device, fns, iters, args.rounds, warmup=2)
        images = batch if task == "train step" else 2 * batch
        rows[task] = [images / t for t in seconds]
    print(f"{'network':18}{'width c':>8}{'parameters':>12}{'train img/s':>13}{'ratio':>7}"
          f"{'sample img/s':>14}{'ratio':>7}")
    for i, (name, (m, c)) in enumerate(models.items()):
        tr, sa = rows["train step"][i], rows["sampling call"][i]
        print(f"{name:18}{c:>8}{count(m):>12,}{tr:>13.0f}{tr / rows['train step'][0]:>7.2f}"
              f"{sa:>14.0f}{sa / rows['sampling call'][0]:>7.2f}")


if __name__ == "__main__":
    main()
