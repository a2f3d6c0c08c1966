"""One training loop for every model in the course (U-Net, CLIP, VAE, classifiers).

    run = train(model, loss_fn, get_batch, steps=2000)
    run.losses        # one float per step
    run.ema           # the exponential moving average of the weights (what we sample with)

What it does each step, in order:
    batch = get_batch(gen)                           # the data, drawn with the loop's own generator
    loss  = loss_fn(model, batch, gen)               # under bf16 autocast on CUDA
    loss.backward(); clip grad norm; AdamW step      # with a linear warm-up of the learning rate
    ema  <- ema + (1 - decay) * (model - ema)
Every `save_every` steps (and on Ctrl-C) the whole state goes to `state_path`: weights, EMA,
optimizer, the loop's generator and torch's global random state (dropout draws from it), the
step, the loss history and the settings of the run. Calling `train` again with the same
`state_path` resumes from there and gives bit-for-bit the same result as an uninterrupted run,
wherever the interruption landed: a step counts once its optimizer update is made, and an
interruption before that rewinds the step, one after it completes it (a real Ctrl-C is held
back while the update, the EMA and the count change together). A state saved with other
settings is refused, naming them. Nothing in a step depends on the total number of steps (the
learning rate is constant after its warm-up), so a finished run can also be continued: calling
again with a larger `steps` gives the same result as a run started with that many steps.
A loss that becomes NaN or infinite, or explodes (`explode` times the first loss), stops the
run with a message saying what to try.

Under torchrun (distributed.py) the same loop runs data-parallel: each process draws its share of
the batch from its own stream, DistributedDataParallel averages the gradients, the recorded loss is
the whole batch's, and rank 0 saves one state holding every process's random streams; a resume
needs the same number of processes. An interrupted group resumes from its last periodic save.
When training ends, the other ranks exit (SystemExit(0)) and rank 0 returns alone.
"""
import copy
import math
import signal
import threading
import time
from dataclasses import dataclass, field

import torch

from . import distributed
from .checkpoint import check_writable, load_state, save_state
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


def rng_state():
    """torch's global random state on every device in use (dropout and torch.rand without a generator)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    if "mps" in state and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


class _HoldCtrlC:
    """Hold a Ctrl-C back until the end of the block (main thread only), then raise it."""

    def __enter__(self):
        self.caught, self.old = False, None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._catch)
        return self

    def _catch(self, *_):
        self.caught = True

    def __exit__(self, kind, *_):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        if self.caught and kind is None:
            raise KeyboardInterrupt


def _differences(saved, now):
    unset = object()

    def show(v):
        return "not set" if v is unset else repr(v)
    return [f"{k} {show(saved.get(k, unset))} there, {show(now.get(k, unset))} now" for k in sorted(set(saved) | set(now))
            if saved.get(k, unset) != now.get(k, unset)]


def train(model, loss_fn, get_batch, steps, lr=1e-3, weight_decay=0.0, warmup=100, ema_decay=0.999,
          grad_clip=1.0, seed=0, device=None, state_path=None, save_every=500, desc="training",
          amp=True, settings=None, explode=1e4, read_loss_every=None):
    """Train `model` for `steps` optimizer steps and return a TrainRun.

    loss_fn(model, batch, gen) -> scalar loss tensor; get_batch(gen) -> batch. `gen` is a
    torch.Generator on `device`, seeded by `seed` and saved with the state, so that the data
    order and the noise are reproducible and resumable.
    amp: bf16 autocast on CUDA (ignored elsewhere).
    settings: a dict of everything else that shapes the run (a recipe's batch size, noise
        levels, ...), saved with the state; resuming with different settings is refused,
        naming them (the learning-rate settings, the seed and the model's config are always checked).
    explode: stop when the loss grows past `explode` times the first loss (at least 1): a run
        that diverges without ever becoming NaN.
    read_loss_every: read the loss to the CPU and check it every that many steps (default: every step on
        the CPU; every 50 on a GPU, where reading it each step would make the CPU wait for the GPU).
    Under torchrun, get_batch should draw this process's share, `distributed.share(batch_size)`.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(lr, (int, float)) or lr <= 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
    if not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
    device = get_device(device)                   # a name, a torch.device or None (the best available)
    if state_path:
        check_writable(state_path)               # fail now, not at the first save
    run_settings = dict(settings or {}, lr=lr, weight_decay=weight_decay, warmup=warmup, ema_decay=ema_decay,
                        grad_clip=grad_clip, seed=seed, amp=amp, model=type(model).__name__,
                        model_config=getattr(model, "config", None))
    model.to(device).train()
    rank, world = distributed.world()
    net = None
    if world > 1:                                 # every process: the same weights (DDP copies rank 0's)
        torch.manual_seed(distributed.rank_seed(seed))          # its own dropout stream
        net = torch.nn.parallel.DistributedDataParallel(
            distributed.LossModule(model, loss_fn), device_ids=[device.index] if device.type == "cuda" else None)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator(device=device).manual_seed(distributed.rank_seed(seed))
    losses, start, seconds_before = [], 0, 0.0

    saved = load_state(state_path) if state_path else None
    if saved is not None:
        if saved.get("world_size", 1) != world:
            raise ValueError(f"the saved run in {state_path} was trained by {saved.get('world_size', 1)} process(es), "
                             f"this is {world}: resume it with the same number (torchrun --nproc_per_node="
                             f"{saved.get('world_size', 1)}, or without torchrun for 1), or start over elsewhere")
        differ = _differences(saved.get("settings", {}), run_settings)
        if differ:
            raise ValueError(f"the saved run in {state_path} has other settings ({'; '.join(differ)}): resume it "
                             f"with the same settings, or start over elsewhere (another output path, or delete "
                             f"its state file)")
        if saved["step"] > steps:
            raise ValueError(f"{state_path} holds a run already at step {saved['step']}, past the {steps} steps "
                             "asked for: ask for at least that many steps, or use another state_path to start "
                             "over")
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["opt"])
        streams = saved if rank == 0 else saved["other_ranks"][rank - 1]
        gen.set_state(streams["gen"])
        set_rng_state(streams["rng"])
        losses, start = list(saved["losses"]), saved["step"]
        seconds_before = float(saved.get("seconds", 0.0))

    def check(value, at):
        """value (a float), or FloatingPointError if the loss of step `at` is NaN, infinite or exploded."""
        first = losses[0] if losses and at > 0 else value
        if not math.isfinite(value) or abs(value) > explode * max(abs(first), 1.0):
            what = f"became {value}" if not math.isfinite(value) else \
                f"exploded to {value:.3g} (the first loss was {first:.4g})"
            last = f"{losses[at - 1]:.4g}" if at > 0 else "none"
            raise FloatingPointError(
                f"the loss {what} at step {at} (last good loss: {last}). The weights are unusable from "
                f"here: lower the learning rate (lr={lr:g}), check the data for NaNs, or keep grad_clip on"
                + saved_note())
        return value

    # On a GPU, reading the loss each step (.item()) would make the CPU wait for the GPU every step; there
    # the losses stay on the device and are read and checked together every 50 steps (settle).
    read_every = read_loss_every or (50 if device.type == "cuda" else 1)
    deferred = read_every > 1

    read = {"upto": len(losses)}                  # losses[:upto] are read and checked floats

    def settle():
        i = read["upto"]
        if i < len(losses):
            if deferred:
                losses[i:] = [check(v, i + k) for k, v in enumerate(torch.stack(losses[i:]).float().tolist())]
            read["upto"] = len(losses)

    def snapshot(step):
        settle()
        streams = distributed.gather({"gen": gen.get_state().cpu(), "rng": rng_state()})   # every rank calls
        if rank == 0:
            extra = {"world_size": world, "other_ranks": streams[1:]} if world > 1 else {}
            save_state(state_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                    "gen": gen.get_state(), "rng": rng_state(), "losses": losses, "step": step,
                                    "steps": steps, "settings": run_settings,
                                    "seconds": seconds_before + time.perf_counter() - t0, **extra})
        distributed.barrier()                     # no rank reads or goes on before the state is whole

    def saved_note():
        last = load_state(state_path) if state_path else None
        return f"; the last saved state (step {last['step']}) is in {state_path}" if last else ""

    stepped = {"done": False}                     # set by the optimizer itself, right after its update
    hook = opt.register_step_post_hook(lambda *_: stepped.update(done=True))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")
    t0, step, value = time.perf_counter(), start, None
    gen_before, rng_before = gen.get_state(), rng_state()
    bar = progress(range(start, steps), total=steps, initial=start, desc=desc, **({"disable": True} if rank else {}))
    try:
        for step in bar:
            gen_before, rng_before = gen.get_state(), rng_state()      # to rewind an interrupted step
            stepped["done"] = False
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))
            batch = get_batch(gen)
            with autocast:
                loss = net(batch, gen) if net is not None else loss_fn(model, batch, gen)
            value = distributed.mean(loss).detach()              # the whole batch's loss, on every rank
            if not deferred:
                value = check(value.item(), step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            with _HoldCtrlC():                    # the update, the EMA and the count change together
                opt.step()
                ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
                losses.append(value)
            if step % read_every == 0 or step % 50 == 0:        # on a GPU both every 50 steps: one read
                settle()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            if state_path and (step + 1) % save_every == 0 and step + 1 < steps:
                snapshot(step + 1)
        settle()
        if state_path:
            snapshot(steps)
    except KeyboardInterrupt:
        if state_path and world > 1:              # the ranks may stand at different steps: no collective save
            if rank == 0:
                print("\ninterrupted; a group of processes saves only every save_every steps: resume from "
                      f"its last save{saved_note() or ' (none was made yet)'}")
        elif state_path:
            if len(losses) == step:               # the step in flight was not counted yet
                if stepped["done"]:               # the update was made: finish the step
                    ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
                    losses.append(value)
                else:                             # the update was not made: rewind the step
                    gen.set_state(gen_before)
                    set_rng_state(rng_before)
            snapshot(len(losses))
            print(f"\ninterrupted at step {len(losses)}; the state is saved in {state_path}: "
                  "call again with the same arguments to resume")
        raise
    finally:
        hook.remove()
        bar.close()
    model.eval()
    if world > 1 and rank != 0:                   # rank 0 alone evaluates and writes the checkpoint
        distributed.stop()
        raise SystemExit(0)
    return TrainRun(model=model, ema=ema, losses=losses, steps=steps,
                    seconds=seconds_before + time.perf_counter() - t0, resumed_from=start)
