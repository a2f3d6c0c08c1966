"""`python -m diffusion_course bench`: training and sampling speed and memory on this device.

Prints one table. Each standard configuration is timed in the course's default mode (bf16
autocast on a GPU, fp32 on a CPU) and again in reference modes measured in the same run
(fp32 instead of bf16, channels_last instead of the default layout, optionally
torch.compile), so the "vs default" column is a ratio of two numbers from this machine, now.
Speed targets live here, not in tests.

    python -m diffusion_course bench                 # GPU: full sizes; CPU: small, quick sizes
    python -m diffusion_course bench --iters 50 --batch 512 --compile
"""
import time

import torch

from .recipes.mnist import diffusion_loss, make_model, sampling_sigmas
from .runtime import get_device
from .sampling import generate


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device):
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    return "n/a"                                         # torch's CPU allocations are not traced


def _modes(device, compile):
    """(name, bf16, channels_last, compile) for each row; the first row is the default."""
    if device.type == "cuda":
        modes = [("bf16", True, False, False), ("fp32", False, False, False), ("bf16 channels_last", True, True, False)]
        if compile:
            modes.append(("bf16 compiled", True, False, True))
    else:
        modes = [("fp32", False, False, False), ("fp32 channels_last", False, True, False)]
        if compile:
            modes.append(("fp32 compiled", False, False, True))
    return modes


def bench_train(device, batch, iters, warmup, bf16, channels_last, compile):
    """Training images per second of the MNIST U-Net recipe's model (forward, backward, AdamW)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = make_model().to(device, memory_format=fmt).train()
    forward = torch.compile(model) if compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with autocast:
            loss = diffusion_loss(forward, x0, y, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    _reset_memory(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return batch * iters / (time.perf_counter() - t0), _peak_memory(device)


@torch.no_grad()
def bench_sample(device, batch, steps, warmup, bf16, channels_last, compile, cfg_scale=2.0):
    """Finished images per second: `steps` DDIM steps with classifier-free guidance (2 passes in 1 batch)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = make_model().to(device, memory_format=fmt).eval()
    forward = torch.compile(model) if compile else model
    y = torch.arange(batch, device=device) % 10
    null = torch.full_like(y, 10)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def run(n_steps):
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(batch, 1, 28, 28, device=device, generator=gen).contiguous(memory_format=fmt) * 80.0
        with autocast:
            generate(forward, sampling_sigmas(n_steps), x=x, sampler="ddim", cond=y, cfg_scale=cfg_scale,
                     null_cond=null, generator=gen, device=device)

    for _ in range(warmup):
        run(2)
    _sync(device)
    _reset_memory(device)
    t0 = time.perf_counter()
    run(steps)
    _sync(device)
    return batch / (time.perf_counter() - t0), _peak_memory(device)


def bench(device=None, batch=None, iters=None, sample_steps=None, compile=False, print_fn=print):
    """Measure every row and print the table; returns the rows as dicts."""
    device = get_device(device)
    gpu = device.type == "cuda"
    batch = batch or (256 if gpu else 32)
    iters = iters or (30 if gpu else 3)
    sample_steps = sample_steps or (50 if gpu else 5)
    sample_batch = 4 * batch if gpu else batch
    warmup = 5 if gpu else 1
    if gpu:
        torch.backends.cudnn.benchmark = True
    from .checkpoint import hardware
    print_fn(f"device: {hardware(device)}; torch {torch.__version__}")
    print_fn(f"model: the mnist recipe's U-Net ({sum(p.numel() for p in make_model().parameters()):,} parameters), "
             f"28x28 digits")
    rows = []
    for task in ("train", "sample"):
        ref = None
        for name, bf16, cl, comp in _modes(device, compile):
            if task == "train":
                speed, mem = bench_train(device, batch, iters, warmup, bf16, cl, comp)
                what = f"train, batch {batch}"
            else:
                speed, mem = bench_sample(device, sample_batch, sample_steps, warmup, bf16, cl, comp)
                what = f"sample, ddim {sample_steps} steps, cfg 2, batch {sample_batch}"
            ref = ref or speed
            rows.append(dict(task=what, mode=name, images_per_s=speed, vs_default=speed / ref, peak_memory=mem))
    width = max(len(r["task"]) for r in rows)
    print_fn(f"{'task':{width}s}  {'mode':20s} {'images/s':>10s} {'vs default':>10s} {'peak memory':>12s}")
    for r in rows:
        print_fn(f"{r['task']:{width}s}  {r['mode']:20s} {r['images_per_s']:10.1f} {r['vs_default']:9.2f}x "
                 f"{r['peak_memory']:>12s}")
    from .recipes import mnist
    train_speed = rows[0]["images_per_s"]
    est = mnist.DEFAULTS["steps"] * mnist.DEFAULTS["batch_size"] / train_speed
    print_fn(f"estimated training time of `train mnist` at its defaults ({mnist.DEFAULTS['steps']} steps x "
             f"{mnist.DEFAULTS['batch_size']}) in the default mode: {est / 60:.1f} min, without evaluation")
    return rows


def add_parser(subparsers):
    p = subparsers.add_parser("bench", help="training and sampling speed and memory on this device")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--batch", type=int, default=None, help="training batch (default: 256 on GPU, 32 on CPU)")
    p.add_argument("--iters", type=int, default=None, help="timed training steps (default: 30 on GPU, 3 on CPU)")
    p.add_argument("--sample-steps", type=int, default=None, help="sampling steps (default: 50 on GPU, 5 on CPU)")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to start)")
    p.set_defaults(func=main)
    return p


def main(args):
    bench(args.device, args.batch, args.iters, args.sample_steps, args.compile)
