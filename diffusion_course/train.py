"""One training loop for every model in the course (U-Net, CLIP, VAE, classifiers).

    run = train(model, loss_fn, get_batch, steps=2000)
    run.losses        # one float per step
    run.ema           # the exponential moving average of the weights (what we sample with)

What it does each step, in order:
    batch = get_batch(gen)                           # the data, drawn with the loop's own generator
    loss  = loss_fn(model, batch, gen)               # under bf16 autocast on CUDA
    loss.backward(); clip grad norm; AdamW step      # with a linear warm-up of the learning rate
    ema  <- ema + (1 - decay) * (model - ema)
Every `save_every` steps (and on Ctrl-C) the whole state (weights, EMA, optimizer, generator,
step, loss history) goes to `state_path`; calling `train` again with the same `state_path`
resumes from there and gives bit-for-bit the same result as an uninterrupted run. Nothing
in a step depends on the total number of steps (the learning rate is constant after its
warm-up), so a finished run can also be continued: calling again with a larger `steps`
gives the same result as a run started with that many steps.
A loss that becomes NaN or infinite stops the run with a message saying what to try.
"""
import copy
import math
import time
from dataclasses import dataclass, field

import torch

from .checkpoint import load_state, save_state
from .runtime import get_device, progress


@dataclass
class TrainRun:
    model: torch.nn.Module
    ema: torch.nn.Module
    losses: list = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int = 0


@torch.no_grad()
def ema_update(ema, model, decay):
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (buffers are copied)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def train(model, loss_fn, get_batch, steps, lr=1e-3, weight_decay=0.0, warmup=100, ema_decay=0.999,
          grad_clip=1.0, seed=0, device=None, state_path=None, save_every=500, desc="training",
          amp=True):
    """Train `model` for `steps` optimizer steps and return a TrainRun.

    loss_fn(model, batch, gen) -> scalar loss tensor; get_batch(gen) -> batch. `gen` is a
    torch.Generator on `device`, seeded by `seed` and saved with the state, so that the data
    order and the noise are reproducible and resumable.
    amp: bf16 autocast on CUDA (ignored elsewhere).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if lr <= 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
    device = get_device(device)                   # a name, a torch.device or None (the best available)
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator(device=device).manual_seed(seed)
    losses, start, seconds_before = [], 0, 0.0

    saved = load_state(state_path) if state_path else None
    if saved is not None:
        if saved["step"] > steps:
            raise ValueError(f"{state_path} holds a run already at step {saved['step']}, past the {steps} steps "
                             "asked for: ask for at least that many steps, or use another state_path to start "
                             "over")
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["gen"])
        losses, start = list(saved["losses"]), saved["step"]
        seconds_before = float(saved.get("seconds", 0.0))

    def snapshot(step):
        save_state(state_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                "gen": gen.get_state(), "losses": losses, "step": step, "steps": steps,
                                "seconds": seconds_before + time.perf_counter() - t0})

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")
    t0, step = time.perf_counter(), start
    bar = progress(range(start, steps), total=steps, initial=start, desc=desc)
    try:
        for step in bar:
            gen_before = gen.get_state()          # to rewind an interrupted step
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))
            batch = get_batch(gen)
            with autocast:
                loss = loss_fn(model, batch, gen)
            value = loss.item()
            if not math.isfinite(value):
                last = f"{losses[-1]:.4g}" if losses else "none"
                raise FloatingPointError(
                    f"the loss became {value} at step {step} (last finite loss: {last}). The weights are "
                    f"unusable from here: lower the learning rate (lr={lr:g}), check the data for NaNs, "
                    f"or keep grad_clip on" + (f"; the last good state is in {state_path}" if state_path else ""))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
            losses.append(value)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            if state_path and (step + 1) % save_every == 0 and step + 1 < steps:
                snapshot(step + 1)
    except KeyboardInterrupt:
        if state_path:
            if len(losses) == step:               # the step in flight had not finished: rewind it
                gen.set_state(gen_before)
            snapshot(len(losses))
            print(f"\ninterrupted at step {len(losses)}; the state is saved in {state_path}: "
                  "call again with the same arguments to resume")
        raise
    finally:
        bar.close()
    if state_path:
        snapshot(steps)
    model.eval()
    return TrainRun(model=model, ema=ema, losses=losses, steps=steps,
                    seconds=seconds_before + time.perf_counter() - t0, resumed_from=start)
