"""`python -m diffusion_course bench`: training and sampling speed and memory on this device.

Prints one table. Each standard configuration is timed in the course's default mode (bf16
autocast on a GPU, fp32 on a CPU) and again in reference modes measured in the same run
(fp32 instead of bf16, channels_last instead of the default layout, optionally
torch.compile), so the "vs default" column is a ratio of two numbers from this machine, now.
Speed targets live here, not in tests. The achieved arithmetic rate (GFLOP/s) is the FLOPs of one
call, counted by torch's FLOP counter (matrix products and convolutions, forward and backward),
divided by its measured time; on a GPU whose bf16 peak is known (or given with --peak-tflops) the
table adds its share of that peak.

    python -m diffusion_course bench                 # GPU: full sizes; CPU: small, quick sizes
    python -m diffusion_course bench --iters 50 --batch 512 --compile
"""
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .recipes import mnist
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


def recipe_model():
    """The U-Net exactly as the mnist recipe (and the shipped mnist_unet) builds it, from its defaults."""
    d = mnist.DEFAULTS
    return make_model(d["channels"], d["num_res_blocks"], d["dropout"])


def train_step(device, batch, bf16, channels_last, compile):
    """One training step of the mnist recipe's U-Net (forward, backward, AdamW), as a function to time."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = recipe_model().to(device, memory_format=fmt).train()
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
    return step


def sample_run(device, batch, steps, bf16, channels_last, compile, cfg_scale=2.0):
    """Sampling `batch` digits with `steps` DDIM steps and classifier-free guidance (2 passes in 1 batch)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = recipe_model().to(device, memory_format=fmt).eval()
    forward = torch.compile(model) if compile else model
    y = torch.arange(batch, device=device) % 10
    null = torch.full_like(y, 10)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    @torch.no_grad()
    def run(n_steps=steps):
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(batch, 1, 28, 28, device=device, generator=gen).contiguous(memory_format=fmt) * 80.0
        with autocast:
            generate(forward, sampling_sigmas(n_steps), x=x, sampler="ddim", cond=y, cfg_scale=cfg_scale,
                     null_cond=null, generator=gen, device=device)
    return run


# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets, by device name.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 756.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0,
                    "RTX 3090": 71.0}


def bf16_peak_tflops(device):
    """The device's dense bf16 peak in TFLOP/s from BF16_PEAK_TFLOPS, or None (a CPU, an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def count_flops(fn):
    """FLOPs of one call of fn, counted by torch (matrix products and convolutions; forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _timed(device, fn, repeats):
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return time.perf_counter() - t0


def interleaved(device, fns, per_round, rounds, warmup):
    """Seconds per call of each function, timed in alternation: round after round, each function runs
    `per_round` times in turn, so that a machine that speeds up or slows down during the run (another
    job, the clock, the heat) affects every mode alike and their ratios stay fair."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    total = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            total[i] += _timed(device, fn, per_round)
    return [t / (per_round * rounds) for t in total]


def peak_memory(device, fn):
    """Peak GPU memory of one call of fn ('n/a' on a CPU, whose allocations torch does not trace)."""
    _reset_memory(device)
    fn()
    _sync(device)
    return _peak_memory(device)


def bench(device=None, batch=None, iters=None, sample_steps=None, compile=False, rounds=3, print_fn=print,
          peak_tflops=None):
    """Measure every row and print the table; returns the rows as dicts.

    batch, iters, sample_steps: positive integers (None: the device's default). Each task's modes
    are timed interleaved (`interleaved`), `rounds` rounds of `iters` training steps or one
    sampling run each, so the "vs default" ratio compares numbers taken in the same conditions.
    peak_tflops: the device's peak for the "of peak" column (default: BF16_PEAK_TFLOPS by device name).
    """
    for name, v in (("batch", batch), ("iters", iters), ("sample_steps", sample_steps), ("rounds", rounds)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"{name} must be a positive integer (or None for the default), got {v!r}")
    device = get_device(device)
    gpu = device.type == "cuda"
    batch = batch or (256 if gpu else 32)
    iters = iters or (10 if gpu else 2)
    sample_steps = sample_steps or (50 if gpu else 5)
    sample_batch = 4 * batch if gpu else batch
    warmup = 5 if gpu else 1
    if gpu:
        torch.backends.cudnn.benchmark = True
    from .checkpoint import hardware
    d = mnist.DEFAULTS
    print_fn(f"device: {hardware(device)}; torch {torch.__version__}")
    print_fn(f"model: the mnist recipe's U-Net (channels {d['channels']}, num_res_blocks {d['num_res_blocks']}: "
             f"{sum(p.numel() for p in recipe_model().parameters()):,} parameters), 28x28 digits")
    modes = _modes(device, compile)
    peak = peak_tflops or bf16_peak_tflops(device)
    rows = []
    for task in ("train", "sample"):
        if task == "train":
            fns = [train_step(device, batch, bf16, cl, comp) for _, bf16, cl, comp in modes]
            seconds = interleaved(device, fns, iters, rounds, warmup)
            speeds = [batch / s for s in seconds]
            what = f"train, batch {batch}"
        else:
            fns = [sample_run(device, sample_batch, sample_steps, bf16, cl, comp) for _, bf16, cl, comp in modes]
            seconds = interleaved(device, fns, 1, rounds, warmup=1)
            speeds = [sample_batch / s for s in seconds]
            what = f"sample, ddim {sample_steps} steps, cfg 2, batch {sample_batch}"
        flops = count_flops(fns[0]) / (batch if task == "train" else sample_batch)    # per image, any mode
        for (name, *_), fn, speed in zip(modes, fns, speeds):
            rate = flops * speed / 1e9
            rows.append(dict(task=what, mode=name, images_per_s=speed, vs_default=speed / speeds[0],
                             flops_per_image=flops, gflops_per_s=rate,
                             of_peak=rate / (peak * 1e3) if peak and "bf16" in name else None,
                             peak_memory=peak_memory(device, fn)))
    width = max(len(r["task"]) for r in rows)
    print_fn(f"{'task':{width}s}  {'mode':20s} {'images/s':>10s} {'vs default':>10s} {'GFLOP/s':>9s} "
             f"{'of peak':>8s} {'peak memory':>12s}")
    for r in rows:
        share = f"{r['of_peak']:8.1%}" if r["of_peak"] is not None else f"{'n/a':>8s}"
        print_fn(f"{r['task']:{width}s}  {r['mode']:20s} {r['images_per_s']:10.1f} {r['vs_default']:9.2f}x "
                 f"{r['gflops_per_s']:9.1f} {share} {r['peak_memory']:>12s}")
    print_fn(f"FLOPs per image: train {rows[0]['flops_per_image'] / 1e6:.1f} M (forward and backward), sample "
             f"{rows[-1]['flops_per_image'] / 1e6:.1f} M; 'of peak': against "
             + (f"{peak:g} TFLOP/s bf16" if peak else "no known peak (a CPU, or pass --peak-tflops)"))
    train_speed = rows[0]["images_per_s"]
    est = d["steps"] * d["batch_size"] / train_speed
    print_fn(f"estimated training time of `train mnist` at its defaults ({d['steps']} steps x "
             f"{d['batch_size']}) in the default mode: {est / 60:.1f} min, without evaluation")
    return rows


def add_parser(subparsers):
    from .__main__ import whole_number
    p = subparsers.add_parser("bench", help="training and sampling speed and memory on this device")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--batch", type=whole_number(1), default=None,
                   help="training batch (default: 256 on GPU, 32 on CPU)")
    p.add_argument("--iters", type=whole_number(1), default=None,
                   help="timed training steps per mode and round (default: 10 on GPU, 2 on CPU)")
    p.add_argument("--sample-steps", type=whole_number(1), default=None,
                   help="sampling steps (default: 50 on GPU, 5 on CPU)")
    p.add_argument("--rounds", type=whole_number(1), default=3, help="interleaved timing rounds (default: 3)")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to start)")
    from .__main__ import finite_float
    p.add_argument("--peak-tflops", type=finite_float(0.001), default=None,
                   help="the device's bf16 peak in TFLOP/s for the 'of peak' column (default: known GPUs by name)")
    p.set_defaults(func=main)
    return p


def main(args):
    bench(args.device, args.batch, args.iters, args.sample_steps, args.compile, args.rounds,
          peak_tflops=args.peak_tflops)
