"""Class-conditional MNIST U-Net with classifier-free guidance (sigma form, trained on v, samples eps).

Data: the first 9,000 images of the MNIST *test* split (the 10,000 digits that ship offline;
the 60,000-image train split needs a download), held on the device; the last 1,000 are held
out: neither this U-Net nor the classifier behind the metrics ever sees them. Noise levels are
drawn "mixed" (`noise.training_sigmas`): half log-uniformly in [sigma_min, sigma_max], so every
octave of noise is trained, and half log-normally around sigma = 2.2 (`MIDDLE_SIGMAS`), the
middle band where a digit's shape is decided. 6,000-step runs measured DDIM at 50 steps at FD
0.23 with log-uniform levels only against 0.11 with mixed ones (n = 1,000, against the whole
test split, the reference used at the time, which included the training digits).
10% of the labels are replaced by the null class 10, so the same network also learns the
unconditional model that classifier-free guidance needs. The checkpoint holds the EMA weights.
Length: 18,000 steps of 32 images (about 45 minutes on a 2-core CPU).

    python -m diffusion_course train mnist
    python -m diffusion_course evaluate mnist     # the card's metrics again, for the shipped weights

Metrics (when the `mnist_classifier` checkpoint is available, else recorded as skipped), all
against the 1,000 held-out digits: class accuracy and the Fréchet distance of samples from
DDPM, DDIM and the accelerated sampler at 5-50 steps without guidance, each next to its floor
(real digits against real digits) with standard errors over `eval_draws` draws of `eval_n`
digits (`metrics.fd_report`); the accuracy of guided samples (DDIM, 50 steps, eval_cfg_scale);
a summary against the targets (guided accuracy >= 95%, the accelerated sampler at 10 steps
within 10% of the FD of DDIM at 50 steps); and the largest difference between samples from the
fp32 and the fp16-rounded weights (the checkpoint is fp16). The evaluation resumes too: each
finished measurement is kept in `<out>.eval.state.json` until the card has them all.
"""

import hashlib
import json
import math
import os
from pathlib import Path

import torch

from ..checkpoint import _atomic, half_rounded
from ..data import load_mnist
from ..distributed import share
from ..flow import flow_matching_loss
from ..noise import add_noise, schedule, training_sigmas
from ..sampling import generate
from ..train import train
from ..unet import UNet, v_loss
from . import defaults, training_settings

NAME = "mnist_unet"
HALF = True
N_TRAIN = 9000                          # images [0, 9000) train, [9000, 10000) are held out
HELDOUT = "MNIST test split, images 9000-9999 (never seen by the U-Net or the classifier)"
HELDOUT_N = 400                         # the most digits per set: 2 disjoint class-matched sets of 40 per class
NULL = 10                               # the null class: "any digit"
MIDDLE_SIGMAS = dict(p_mean=math.log(2.2), p_std=0.6)   # the extra training levels of sigma_kind="mixed"


def sampling_sigmas(steps, sigma_min=0.01, sigma_max=80.0):
    """The sampling schedule used for this model: `steps` log-linear steps from sigma_max to sigma_min."""
    return schedule("loglinear", steps, sigma_min=sigma_min, sigma_max=sigma_max)


def make_model(channels=16, num_res_blocks=1, dropout=0.1):
    """The architecture of the shipped checkpoint: 28 -> 14 -> 7, attention at 7x7, 10 classes + null."""
    return UNet(in_channels=1, channels=channels, channel_mults=(1, 2, 2), num_res_blocks=num_res_blocks,
                attention_levels=(2,), num_classes=10, dropout=dropout)


def diffusion_loss(model, x0, labels, gen, sigma_min=0.01, sigma_max=80.0, p_uncond=0.1, sigma_kind="loguniform",
                   objective="v"):
    """The training objective: noise x0 at a random sigma, ask the model for the noise, and
    score the answer with `unet.v_loss` (the squared error weighted by 1 + sigma^2, so that
    the high noise levels, where the digit's overall shape is decided, count too).

    x0: (B, 1, 28, 28), labels: (B,). A fraction p_uncond of the labels becomes the null class.
    objective="flow" scores it with `flow.flow_matching_loss` instead (weight (1 + sigma)^2): with
    sigma_kind="flow", that is flow matching (recipe mnist_flow).
    """
    b = len(x0)
    band = MIDDLE_SIGMAS if sigma_kind == "mixed" else {}
    sigma = training_sigmas(b, sigma_min, sigma_max, sigma_kind, generator=gen, device=x0.device, **band)  # (B,)
    eps = torch.randn(x0.shape, generator=gen, device=x0.device)                          # (B, 1, 28, 28)
    drop = torch.rand(b, generator=gen, device=x0.device) < p_uncond
    labels = torch.where(drop, torch.full_like(labels, NULL), labels)
    x = add_noise(x0, sigma, eps)
    if x0.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return (flow_matching_loss if objective == "flow" else v_loss)(model(x, sigma, labels), eps, sigma)


@torch.no_grad()
def sample_digits(model, labels, sampler="ddim", steps=50, cfg_scale=2.0, seed=0, batch_size=1000,
                  sigma_min=0.01, sigma_max=80.0):
    """Generate one digit per label, (N, 1, 28, 28) in [-1, 1], on the model's device, in batches."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    sigmas = sampling_sigmas(steps, sigma_min, sigma_max)
    out = []
    for i in range(0, len(labels), batch_size):
        y = labels[i:i + batch_size].to(device)
        x = sigmas[0].item() * torch.randn((len(y), 1, 28, 28), generator=gen, device=device)
        x = generate(model, sigmas, x=x, sampler=sampler, cond=y, cfg_scale=cfg_scale, generator=gen)
        out.append(x.clamp(-1, 1).float().cpu())
    return torch.cat(out)


def evaluate(model, images, real_labels, n=HELDOUT_N, draws=5, cfg_scale=3.0, seed=0, sigma_min=0.01,
             sigma_max=80.0, samplers=("ddpm", "ddim", "accelerated", "heun", "dpmpp_2m"), grid_steps=(5, 10, 25, 50),
             progress=None):
    """Accuracy and FD of samples, against the held-out digits, for every sampler x steps without
    guidance (each row with its network calls: Heun makes two a step), the accuracy of guided samples,
    and a summary against the recipe's targets.

    images, real_labels: the MNIST test split, (10000, 1, 28, 28) and (10000,); only images
    N_TRAIN on (the held-out digits) are compared with. Each setting draws n * draws digits
    (labels 0-9 in turn, seed `seed`) and `metrics.fd_report` scores them in `draws` blocks of n
    against class-matched held-out sets: FD and its floor, each a mean with its standard error.
    n is at most HELDOUT_N (two disjoint sets of 40 digits per class) and above the classifier's
    64 features. Needs the `mnist_classifier` checkpoint; returns {"skipped": why} without it.

    progress: a JSON file that keeps each entry as it is finished. Evaluating the same weights
    with the same settings again, after an interruption, picks the finished entries up from it.
    """
    from ..checkpoint import load_model
    from ..metrics import fd_report
    try:
        classifier = load_model("mnist_classifier", device=next(model.parameters()).device)
    except FileNotFoundError:
        return {"skipped": "no mnist_classifier checkpoint: train it first (python -m diffusion_course train "
                           "classifier), then rerun this recipe to record accuracy and FD"}
    labels = torch.arange(n * draws) % 10
    held, held_labels = images[N_TRAIN:], real_labels[N_TRAIN:]
    settings = dict(n=n, draws=draws, cfg_scale=cfg_scale, seed=seed, sigma_min=sigma_min, sigma_max=sigma_max)
    once = _resumable(progress, _fingerprint(settings, model.state_dict(), {"images": held, "labels": held_labels}))

    def report(sampler, steps, scale):
        def measure():
            x = sample_digits(model, labels, sampler, steps, scale, seed, sigma_min=sigma_min, sigma_max=sigma_max)
            r = fd_report(classifier, x, held, labels=labels, n=n, draws=draws, real_labels=held_labels,
                          reference=HELDOUT, sampler=sampler, steps=steps, seed=seed)
            return dict(r, cfg_scale=scale, network_calls=steps * (2 if sampler == "heun" else 1))
        return once(f"{sampler} steps={steps} cfg={scale:g}", measure)

    results = {"samplers": {f"{s}_{k}": report(s, k, 1.0) for s in samplers for k in grid_steps}}
    guided = results["guided"] = report("ddim", 50, cfg_scale)
    fast, slow = results["samplers"].get("accelerated_10"), results["samplers"].get("ddim_50")
    results["summary"] = {
        "guided_accuracy": guided["accuracy"], "guided": f"ddim, 50 steps, cfg_scale {cfg_scale:g}, "
                                                         f"{n * draws} digits", "target_guided_accuracy": 0.95,
        "fd_accelerated_10_over_ddim_50": _ratio(fast, slow) if fast and slow else None,
        "target_fd_ratio": 1.10}
    return results


def _ratio(a, b):
    """a["fd"] / b["fd"] with its standard error (first-order propagation of the two FDs' errors)."""
    r = a["fd"] / b["fd"]
    se = r * ((a["fd_se"] / a["fd"]) ** 2 + (b["fd_se"] / b["fd"]) ** 2) ** 0.5 if "fd_se" in a else None
    return {"ratio": round(r, 3), "se": se and round(se, 3)}


def _fingerprint(settings, *named_tensors):
    """A short hash of settings and tensors (the weights, the data): which evaluation this is."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for tensors in named_tensors:
        for name, tensor in sorted(tensors.items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _resumable(path, fingerprint):
    """once(key, compute): compute() the first time a key is asked for, and keep the answer in the
    JSON file `path` (if given) at once, so that a run of the same `fingerprint` started again picks
    up every finished entry. A file from other weights or settings is ignored and replaced."""
    done = {}
    if path and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("fingerprint") == fingerprint:
            done = saved["entries"]
            print(f"evaluation: {len(done)} finished entries picked up from {path}")

    def once(key, compute):
        if key not in done:
            done[key] = compute()
            if path:
                text = json.dumps({"fingerprint": fingerprint, "entries": done})
                _atomic(Path(path), lambda p: p.write_text(text))
        return done[key]
    return once


def fp16_check(model, n=64, steps=50, seed=0, sigma_min=0.01, sigma_max=80.0):
    """Largest pixel difference between DDIM samples from fp32 weights and fp16-rounded weights."""
    half = half_rounded(model)                                         # the weights as the checkpoint stores them
    labels = torch.arange(n) % 10
    a = sample_digits(model, labels, "ddim", steps, 2.0, seed, sigma_min=sigma_min, sigma_max=sigma_max)
    b = sample_digits(half, labels, "ddim", steps, 2.0, seed, sigma_min=sigma_min, sigma_max=sigma_max)
    return {"n": n, "sampler": "ddim", "steps": steps, "cfg_scale": 2.0, "seed": seed,
            "max_abs_diff": round((a - b).abs().max().item(), 4),
            "mean_abs_diff": round((a - b).abs().mean().item(), 5)}


def run(out, device, steps=18000, batch_size=32, lr=1e-3, channels=16, num_res_blocks=1, dropout=0.1,
        p_uncond=0.1, sigma_kind="mixed", sigma_min=0.01, sigma_max=80.0, ema_decay=0.9995, seed=0,
        eval_n=HELDOUT_N, eval_draws=5, eval_cfg_scale=3.0, channels_last=False, compile=False):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    ema, metrics = fit_and_evaluate(out, device, settings, steps, lambda: make_model(channels, num_res_blocks, dropout),
                                    "mnist U-Net", eval_n, eval_draws, eval_cfg_scale, channels_last=channels_last,
                                    compile=compile)
    k, n_steps = (64, 50) if eval_n else (10, 10)           # a development run: a quick look only
    metrics["fp16_weights"] = fp16_check(ema, k, n_steps, seed, sigma_min, sigma_max)
    return ema.cpu(), metrics


def fit_and_evaluate(out, device, s, steps, make, desc, eval_n, eval_draws, eval_cfg_scale, **fit_options):
    """What the mnist, mnist_flow and mnist_dit recipes share: check the evaluation settings (before
    training, not after an hour), load the digits, build the network with make() after seeding (so its
    initial weights follow from the seed), train it (`fit`, with s the recipe's training settings) and
    measure the EMA network (`reevaluate`). Returns (the EMA network, the card's metrics)."""
    _check_eval(eval_n)
    data = load_mnist("test")                                          # (10000, 1, 28, 28) in [-1, 1]
    torch.manual_seed(s["seed"])                                       # the initial weights
    ema, metrics = fit(out, device, s, steps, make(), desc, data, **fit_options)
    metrics["sampling_schedule"] = f"loglinear, sigma {s['sigma_max']} -> {s['sigma_min']}"
    metrics.update(reevaluate(ema, out, eval_n=eval_n, eval_draws=eval_draws, eval_cfg_scale=eval_cfg_scale,
                              seed=s["seed"], sigma_min=s["sigma_min"], sigma_max=s["sigma_max"], data=data))
    return ema, metrics


def fit(out, device, s, steps, model, desc, data, loss=None, channels_last=False, compile=False):
    """Train `model` for `steps` steps on the training digits (images 0 .. N_TRAIN - 1 of data = (images,
    labels)) with a recipe's training settings s (batch_size, lr, ema_decay, seed, and what `diffusion_loss`
    takes: sigma_min, sigma_max, p_uncond, sigma_kind, objective). loss(model, x0, labels, gen) -> scalar
    replaces the diffusion loss (cold diffusion's restoration loss). Returns the EMA model (eval mode)
    and the training metrics."""
    images, labels = data
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x_train = images[:N_TRAIN].to(device).contiguous(memory_format=fmt)
    y_train = labels[:N_TRAIN].to(device)
    model = model.to(device, memory_format=fmt)
    forward = torch.compile(model) if compile else model

    def get_batch(gen):
        i = torch.randint(0, N_TRAIN, (share(s["batch_size"]),), generator=gen, device=device)
        return x_train[i], y_train[i]

    def loss_fn(m, batch, gen):
        if loss is not None:
            return loss(forward, *batch, gen)
        return diffusion_loss(forward, *batch, gen, s["sigma_min"], s["sigma_max"], s["p_uncond"], s["sigma_kind"],
                              s.get("objective", "v"))

    result = train(model, loss_fn, get_batch, steps=steps, lr=s["lr"], ema_decay=s["ema_decay"], seed=s["seed"],
                   device=device, state_path=out, settings=s, desc=desc)
    ema = result.ema.to(memory_format=torch.contiguous_format).eval()
    return ema, {"final_loss": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4),
                 "train_images": f"MNIST test split, images 0-{N_TRAIN - 1}",
                 "train_seconds": round(result.seconds, 1), "resumed_from_step": result.resumed_from}


def reevaluate(model, out, eval_n=HELDOUT_N, eval_draws=5, eval_cfg_scale=3.0, seed=0, sigma_min=0.01,
               sigma_max=80.0, data=None, **training):
    """The card's sample metrics of a trained model: {"samples": evaluate(...)}.

    Called by run() after training, and by `python -m diffusion_course evaluate mnist` on the
    shipped weights (the training settings in `training` are ignored). data: the MNIST test split
    (images, labels) if already loaded. eval_n = 0 is a development run: no evaluation.
    """
    _check_eval(eval_n)
    if eval_n == 0:
        return {"samples": {"skipped": "eval_n=0 (a development run)"}}
    images, labels = data if data is not None else load_mnist("test")
    progress = f"{out}.eval.state.json"                 # finished entries, removed once all are done
    samples = evaluate(model, images, labels, eval_n, eval_draws, eval_cfg_scale, seed, sigma_min, sigma_max,
                       progress=progress)
    if os.path.exists(progress):
        os.remove(progress)
    return {"samples": samples}


def _check_eval(eval_n):
    if eval_n != 0 and not 64 < eval_n <= HELDOUT_N:
        raise ValueError(f"--eval_n must be 0 (no evaluation) or from 65 to {HELDOUT_N}: FD compares sets of "
                         f"eval_n held-out digits, two disjoint class-matched sets of the 1,000, and needs more "
                         f"than the classifier's 64 features; got {eval_n}")


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
