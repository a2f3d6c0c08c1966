"""Class-conditional MNIST U-Net with classifier-free guidance (sigma form, trained on v, samples eps).

Data: the first 9,000 images of the MNIST *test* split (the 10,000 digits that ship offline;
the 60,000-image train split needs a download), held on the device; the last 1,000 are held
out and never seen in training. Noise levels are drawn "mixed" (`noise.training_sigmas`): half
log-uniformly in [sigma_min, sigma_max], so every octave of noise is trained, and half
log-normally around sigma = 2.2 (`MIDDLE_SIGMAS`), the band where `evaluate`'s DDPM-band
experiment found the deterministic samplers going wrong. Against log-uniform levels only
(`--sigma_kind loguniform`, the recipe's default until that experiment) 6,000-step runs
measured DDIM at 50 steps at FD 0.23 against 0.11, the accelerated sampler at 10 steps 0.26
against 0.13, and DDPM at 10 steps 0.11 against 0.10 (n = 1,000, class-matched floor 0.034).
Karras et al.'s log-normal levels alone (`--sigma_kind lognormal`) measured much worse at
this size (FD 0.58 against 0.28 for DDIM at 50, with the earlier, unmatched FD reference).
10% of the labels are replaced by the null class 10, so the same network also learns the
unconditional model that classifier-free guidance needs. The checkpoint holds the EMA weights.
Length: 18,000 steps of 32 images (about 45 minutes on a 2-core CPU). Continuing the same run
(the learning rate is constant after warm-up) measured DDIM at 50 steps at FD 0.107 after
6,000 steps, 0.075 after 12,000 and 0.061 after 18,000 (n = 1,000, seed 0, no guidance).
Twice the width (`--channels 32`, 4x the parameters, about 2 hours here) measured 0.050, and
10 accelerated steps 0.058 against 0.071: better samples, the same ratio between the two.

    python -m diffusion_course train mnist

Metrics (when the `mnist_classifier` checkpoint is available, else recorded as skipped):
class accuracy and the Fréchet distance (with its floor, see metrics.py) of samples from
DDIM, the accelerated sampler and DDPM at 5-50 steps without guidance; of DDIM at 50 steps
with guidance scales 1-5; of DDIM at 50 steps with DDPM's step rule in one band of noise
levels (where does fresh noise help?); of DDIM at 200 steps (near the model's exact path,
where the deterministic samplers head with more steps); each with its n, reference split,
sampler, steps, seed and cfg_scale. Then how close DDIM and the accelerated sampler get to
that exact path at each number of steps (`path_error`); a summary against the targets
(guided accuracy >= 95%, accelerated at 10 steps within 10% of the FD of DDIM at 50, without
guidance and, as the chapters sample, with guidance at eval_cfg_scale), with DDIM at 50
steps repeated with another seed to show how much FD moves by chance alone at this n; and
the largest difference between samples from the fp32 and the fp16-rounded weights (the
checkpoint is fp16). The evaluation resumes too: each finished measurement is kept in
`<out>.eval.state.json` until the card has them all.
"""

import hashlib
import itertools
import json
import math
import os
from pathlib import Path

import torch

from ..checkpoint import _atomic, half_rounded
from ..data import load_mnist
from ..noise import add_noise, schedule, training_sigmas
from ..sampling import SAMPLERS, generate
from ..train import train
from ..unet import UNet, v_loss
from . import defaults, training_settings

NAME = "mnist_unet"
HALF = True
N_TRAIN = 9000                          # images [0, 9000) train, [9000, 10000) are held out
NULL = 10                               # the null class: "any digit"
MIDDLE_SIGMAS = dict(p_mean=math.log(2.2), p_std=0.6)   # the extra training levels of sigma_kind="mixed"
DDPM_BANDS = {"high": (5.0, 80.0), "middle": (1.0, 5.0), "low": (0.0, 1.0)}   # sigma bands for evaluate()


def sampling_sigmas(steps, sigma_min=0.01, sigma_max=80.0):
    """The sampling schedule used for this model: `steps` log-linear steps from sigma_max to sigma_min."""
    return schedule("loglinear", steps, sigma_min=sigma_min, sigma_max=sigma_max)


def make_model(channels=16, num_res_blocks=1, dropout=0.1):
    """The architecture of the shipped checkpoint: 28 -> 14 -> 7, attention at 7x7, 10 classes + null."""
    return UNet(in_channels=1, channels=channels, channel_mults=(1, 2, 2), num_res_blocks=num_res_blocks,
                attention_levels=(2,), num_classes=10, dropout=dropout)


def diffusion_loss(model, x0, labels, gen, sigma_min=0.01, sigma_max=80.0, p_uncond=0.1, sigma_kind="loguniform"):
    """The training objective: noise x0 at a random sigma, ask the model for the noise, and
    score the answer with `unet.v_loss` (the squared error weighted by 1 + sigma^2, so that
    the high noise levels, where the digit's overall shape is decided, count too).

    x0: (B, 1, 28, 28), labels: (B,). A fraction p_uncond of the labels becomes the null class.
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
    return v_loss(model(x, sigma, labels), eps, sigma)


@torch.no_grad()
def sample_digits(model, labels, sampler="ddim", steps=50, cfg_scale=2.0, seed=0, batch_size=1000,
                  sigma_min=0.01, sigma_max=80.0, ddpm_band=None, gam=None):
    """Generate one digit per label, (N, 1, 28, 28) in [-1, 1], on the model's device, in batches.

    gam: overrides the sampler's extrapolation (DDIM's 1, the accelerated sampler's 2; values
    between blend the two).
    ddpm_band = (lo, hi): an experiment on where fresh noise helps. Steps that start at a sigma
    in (lo, hi] use DDPM's step rule, the others DDIM's (only with sampler="ddim").
    """
    if ddpm_band is not None and sampler != "ddim":
        raise ValueError(f"ddpm_band mixes DDPM steps into DDIM: use it with sampler='ddim', not {sampler!r}")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    sigmas = sampling_sigmas(steps, sigma_min, sigma_max)
    out = []
    for i in range(0, len(labels), batch_size):
        y = labels[i:i + batch_size].to(device)
        x = sigmas[0].item() * torch.randn((len(y), 1, 28, 28), generator=gen, device=device)
        for rule, part in _segments(sigmas, sampler, ddpm_band):
            extra = {} if gam is None or rule == "ddpm" else {"gam": gam}
            x = generate(model, part, x=x, sampler=rule, cond=y, cfg_scale=cfg_scale, generator=gen, **extra)
        out.append(x.clamp(-1, 1).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def path_error(model, steps=(5, 10, 25, 50), samplers=("ddim", "accelerated"), n=100, exact_steps=1000, seed=0,
               sigma_min=0.01, sigma_max=80.0, gams=(), gam_steps=10):
    """How far the deterministic samplers land from the model's exact path, at each number of steps.

    DDIM and the accelerated sampler add no noise after the start: from the same starting noise,
    with more and more steps, both approach one answer, the end of the model's exact path (its
    probability-flow ODE). Both run here from the same noise (`seed`, labels 0-9 in turn, no
    guidance), and each result is scored by its RMS pixel distance (pixels in [-1, 1]) to DDIM
    at `exact_steps`. At the same number of steps, the smaller distance follows the path more
    closely. The accelerated sampler also runs with `exact_steps`: its distance to DDIM there
    (`exact_check`) shows how well the two agree on the answer. DDPM has no place here: its
    fresh noise at every step leaves the path by design. `gams`: also the distance at
    `gam_steps` steps for each of these extrapolations (1 is DDIM, 2 the accelerated sampler).
    Every sampler here is DDIM's step rule with some gam, so each (steps, gam) is sampled once.
    A distance has no side; `ink` gives one: the mean brightness of the digits in [0, 1] (0 is
    a black image), so a sampler that lands short of the path (thinner, fainter strokes) and
    one that overshoots it (bolder strokes) can be told apart, and compared with real digits.

    Returns {"n", "seed", "exact", "exact_check", "exact_ink", "steps": [...], "rms": {sampler:
    [distance per steps]}, "ink": {sampler: [ink per steps]}, "gam_steps", "gams": [...],
    "gam_rms": [distance per gam], "gam_ink": [ink per gam]}.
    """
    bad = [s for s in samplers if s not in ("ddim", "accelerated")]
    if bad:
        raise ValueError(f"path_error compares deterministic samplers ('ddim', 'accelerated'); {bad[0]!r} adds "
                         "fresh noise at every step, so it has no single path to be measured against")
    if not all(isinstance(k, int) and 1 <= k for k in list(steps) + [exact_steps]):
        raise ValueError(f"steps and exact_steps must be positive integers, got {tuple(steps)} and {exact_steps!r}")
    labels = torch.arange(n) % 10

    runs = {}

    def run(k, gam):                 # DDIM's step rule with this extrapolation, each setting sampled once
        if (k, gam) not in runs:
            runs[k, gam] = sample_digits(model, labels, "ddim", k, 1.0, seed, sigma_min=sigma_min,
                                         sigma_max=sigma_max, gam=gam)
        return runs[k, gam]

    def rms(k, gam):
        return round((run(k, gam) - run(exact_steps, 1.0)).pow(2).mean().sqrt().item(), 4)

    def ink(k, gam):
        return round(mean_ink(run(k, gam)), 4)

    gam_of = {s: SAMPLERS[s]["gam"] for s in samplers}
    return {"n": n, "seed": seed, "exact": f"ddim, {exact_steps} steps, same starting noise, no guidance",
            "exact_check": rms(exact_steps, SAMPLERS["accelerated"]["gam"]), "exact_ink": ink(exact_steps, 1.0),
            "steps": list(steps), "rms": {s: [rms(k, g) for k in steps] for s, g in gam_of.items()},
            "ink": {s: [ink(k, g) for k in steps] for s, g in gam_of.items()},
            "gam_steps": gam_steps, "gams": list(gams), "gam_rms": [rms(gam_steps, g) for g in gams],
            "gam_ink": [ink(gam_steps, g) for g in gams]}


def mean_ink(images):
    """Mean brightness of digits in [-1, 1], as a number in [0, 1]: 0 for black images, about
    0.13 for MNIST's white strokes on black. Bolder or more strokes give more ink."""
    return (images.float().mean().item() + 1) / 2


def _segments(sigmas, sampler, ddpm_band):
    """Cut the schedule into segments of consecutive steps that share a step rule: [(rule, sigmas)]."""
    if ddpm_band is None:
        return [(sampler, sigmas)]
    lo, hi = ddpm_band
    rules = ["ddpm" if lo < s <= hi else sampler for s in sigmas[:-1].tolist()]   # one per step
    segments, start = [], 0
    for rule, steps in itertools.groupby(rules):
        n = len(list(steps))
        segments.append((rule, sigmas[start:start + n + 1]))
        start += n
    return segments


def evaluate(model, images, real_labels, n=1000, cfg_scale=2.0, seed=0, sigma_min=0.01, sigma_max=80.0,
             grid_steps=(5, 10, 25, 50), cfg_scales=(1.0, 2.0, 3.0, 5.0), exact_steps=200, path_n=100,
             gams=(1.0, 1.25, 1.5, 1.75, 2.0), progress=None):
    """Accuracy and FD (with floor) of samples: every sampler x steps without guidance, then a
    guidance sweep with DDIM at 50 steps, DDIM at 50 steps with DDPM's steps in one band of
    noise levels (`DDPM_BANDS`: where does fresh noise help?), DDIM at `exact_steps` (close to
    the model's exact path: the FD the deterministic samplers approach with many steps) and
    `path_error` for path_n digits (how close each of them gets to that path), 10 steps with
    each extrapolation in `gams` (from DDIM's 1 to the accelerated sampler's 2: FD against
    closeness to the path), and a summary against the recipe's targets.

    images, real_labels: the real digits and their classes, for FD; the real sets behind FD
    and its floor have the class counts of the samples (labels 0-9 in turn). Each entry also
    has a `heldout` FD against the images the U-Net never saw (N_TRAIN on, n = 400 at most,
    as many as those 1,000 allow with two disjoint class-matched sets).
    Needs the `mnist_classifier` checkpoint; returns {"skipped": why} without it. Every entry
    records n, its reference split, sampler, steps, seed and cfg_scale.

    progress: a JSON file that keeps each entry as it is finished (the whole evaluation takes
    about an hour on a 2-core CPU). Evaluating the same weights with the same settings again,
    after an interruption, picks the finished entries up from it instead of sampling them again.
    """
    from ..checkpoint import load_model
    from ..metrics import fd_report
    try:
        classifier = load_model("mnist_classifier", device=next(model.parameters()).device)
    except FileNotFoundError:
        return {"skipped": "no mnist_classifier checkpoint: train it first (python -m diffusion_course train "
                           "classifier), then rerun this recipe to record accuracy and FD"}
    labels = torch.arange(n) % 10
    reference = "MNIST test split, all 10,000 images (the U-Net trained on the first 9,000)"

    settings = dict(n=n, cfg_scale=cfg_scale, seed=seed, sigma_min=sigma_min, sigma_max=sigma_max, path_n=path_n)
    once = _resumable(progress, _fingerprint(settings, model.state_dict(), {"images": images, "labels": real_labels}))

    def report(sampler, steps, scale, seed=seed, ddpm_band=None, gam=None):
        key = f"{sampler} steps={steps} cfg={scale:g} seed={seed} ddpm_band={ddpm_band} gam={gam}"
        return once(key, lambda: _report(sampler, steps, scale, seed, ddpm_band, gam))

    def _report(sampler, steps, scale, seed, ddpm_band, gam):
        x = sample_digits(model, labels, sampler, steps, scale, seed, sigma_min=sigma_min, sigma_max=sigma_max,
                          ddpm_band=ddpm_band, gam=gam)
        r = fd_report(classifier, x, images, labels=labels, n=n, sampler=sampler, steps=steps, seed=seed,
                      reference=reference, real_labels=real_labels)
        r["cfg_scale"] = scale
        if ddpm_band:
            r["ddpm_band"] = list(ddpm_band)
        if gam is not None:
            r["gam"] = gam
        held = fd_report(classifier, x, images[N_TRAIN:], labels=labels, n=min(n, 400), real_labels=real_labels[
            N_TRAIN:], reference="MNIST test split, held-out images 9000-9999")
        r["heldout"] = {k: held[k] for k in ("fd", "fd_floor", "fd_floor_range", "n", "reference")}
        return r

    results = {"samplers": {}, "guidance": {}}
    for sampler in ("ddim", "accelerated", "ddpm"):
        for steps in grid_steps:
            results["samplers"][f"{sampler}_{steps}"] = report(sampler, steps, 1.0)
    for scale in cfg_scales:                     # each setting is sampled once: scale 1 is ddim_50 above
        results["guidance"][f"ddim_50_cfg{scale:g}"] = report("ddim", 50, scale)
    guided = report("ddim", 50, cfg_scale)
    guided_fast = results["guided_accelerated_10"] = report("accelerated", 10, cfg_scale)
    fast, slow = results["samplers"].get("accelerated_10"), results["samplers"].get("ddim_50")
    again = report("ddim", 50, 1.0, seed + 1) if slow else None       # the same setting, other random numbers
    # Where does DDPM's fresh noise help? DDIM at 50 steps, with DDPM's step rule in one band of sigma.
    results["ddpm_bands"] = {name: report("ddim", 50, 1.0, ddpm_band=band) for name, band in DDPM_BANDS.items()}
    # Where do the deterministic samplers converge to, and how fast?
    exact = results["exact_path"] = report("ddim", exact_steps, 1.0)
    path_steps = tuple(grid_steps) + (exact_steps,)
    results["path_error"] = once(f"path_error steps={path_steps} gams={tuple(gams)}", lambda: path_error(
        model, path_steps, n=min(n, path_n), seed=seed, sigma_min=sigma_min, sigma_max=sigma_max, gams=gams,
        gam_steps=10))
    results["gam_sweep"] = [report("ddim", 10, 1.0, gam=g) for g in gams]   # FD against the same gams
    results["summary"] = {
        "guided_accuracy": guided["accuracy"], "guided": f"ddim, 50 steps, cfg_scale {cfg_scale:g}, n {n}",
        "target_guided_accuracy": 0.95,
        "fd_accelerated_10_over_ddim_50": round(fast["fd"] / slow["fd"], 3) if fast and slow else None,
        "fd_accelerated_10_over_ddim_50_guided": round(guided_fast["fd"] / guided["fd"], 3),
        "target_fd_ratio": 1.10,
        "fd_accelerated_10_over_exact_path": round(fast["fd"] / exact["fd"], 3) if fast else None,
        "exact_path": f"ddim, {exact_steps} steps: near the end of the model's exact path, where DDIM and the "
                      "accelerated sampler both head with more steps (path_error measures how near)",
        "fd_ddim_50_other_seed": again and {"fd": again["fd"], "seed": seed + 1, "ratio_to_seed": round(
            again["fd"] / slow["fd"], 3), "why": "seed-to-seed noise of FD at this n: ratios closer to 1 than "
                                                  "this one are not resolved"}}
    return results


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
        p_uncond=0.1, sigma_kind="mixed", sigma_min=0.01, sigma_max=80.0, ema_decay=0.9995, seed=0, eval_n=1000,
        eval_cfg_scale=3.0, channels_last=False, compile=False):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    images, labels = load_mnist("test")                                # (10000, 1, 28, 28) in [-1, 1]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x_train = images[:N_TRAIN].to(device).contiguous(memory_format=fmt)
    y_train = labels[:N_TRAIN].to(device)

    def get_batch(gen):
        i = torch.randint(0, N_TRAIN, (batch_size,), generator=gen, device=device)
        return x_train[i], y_train[i]

    torch.manual_seed(seed)                                            # the initial weights
    model = make_model(channels, num_res_blocks, dropout).to(device, memory_format=fmt)
    forward = torch.compile(model) if compile else model

    def loss_fn(m, batch, gen):
        return diffusion_loss(forward, *batch, gen, sigma_min, sigma_max, p_uncond, sigma_kind)

    result = train(model, loss_fn, get_batch, steps=steps, lr=lr, ema_decay=ema_decay, seed=seed,
                   device=device, state_path=out, settings=settings, desc="mnist U-Net")
    ema = result.ema.to(memory_format=torch.contiguous_format).eval()
    metrics = {"final_loss": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4),
               "train_images": f"MNIST test split, images 0-{N_TRAIN - 1}",
               "sampling_schedule": f"loglinear, sigma {sigma_max} -> {sigma_min}",
               "train_seconds": round(result.seconds, 1), "resumed_from_step": result.resumed_from}
    if eval_n > 0:
        progress = f"{out}.eval.state.json"             # finished entries, removed once all are done
        metrics["samples"] = evaluate(ema, images, labels, eval_n, eval_cfg_scale, seed, sigma_min, sigma_max,
                                      progress=progress)
        metrics["fp16_weights"] = fp16_check(ema, min(64, eval_n), 50, seed, sigma_min, sigma_max)
        if os.path.exists(progress):
            os.remove(progress)
    else:                                      # a development run: a quick look only
        metrics["samples"] = {"skipped": "eval_n=0 (a development run)"}
        metrics["fp16_weights"] = fp16_check(ema, 10, 10, seed, sigma_min, sigma_max)
    return ema.cpu(), metrics


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
