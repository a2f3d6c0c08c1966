"""One sampler for DDPM, DDIM and the accelerated sampler: noise in, data out, step by step.

Start from pure noise at the largest sigma, x = sigmas[0] * eps, and walk down the schedule.
At each step (sigma -> sigma_next) the model predicts the noise eps in x, and

    eps_avg = gam * eps + (1 - gam) * eps_prev          (gam = 1: just eps)            (1)
    sigma'  = (sigma_next / sigma^mu) ^ (1 / (1 - mu))                                  (2)
    eta     = sqrt(sigma_next^2 - sigma'^2)                                             (3)
    x      <- x - (sigma - sigma') * eps_avg + eta * z,    z ~ N(0, I)                  (4)

Step (4) removes some predicted noise (down to level sigma') and adds back fresh noise of
size eta, landing exactly at total noise level sigma_next. Read as optimization, x - sigma*eps
is a step along the gradient of the (smoothed) distance to the data (Permenter & Yuan), and
the two knobs are the classic step rules:
    mu = 0,   gam = 1:  DDIM (Song et al.): deterministic, sigma' = sigma_next, eta = 0.
    mu = 1/2, gam = 1:  DDPM (Ho et al.): sigma' = sigma_next^2 / sigma; fresh noise each step.
    mu = 0,   gam = 2:  the accelerated sampler of Permenter & Yuan: eps_avg = 2 eps - eps_prev
                        extrapolates the noise estimate (a step along where it is heading,
                        not momentum's running average) and needs fewer steps.
With classifier-free guidance (Ho & Salimans) the model is run on the conditional and the
unconditional inputs in one batch, and eps = eps_uncond + cfg_scale * (eps_cond - eps_uncond).

Two higher-order rules (chapter 8) use the same interface (solver=...). DDIM is Euler's method on
the sampling ODE dx/dsigma = eps(x, sigma), with error proportional to the step (first order);
these two err like the step squared (second order):
    heun      (Karras et al. 2022, Alg. 1): an Euler step to x', then the step again with the
              average of the slopes at both ends:
              x <- x - (sigma - sigma_next) * (eps(x, sigma) + eps(x', sigma_next)) / 2.      (5)
              Two network evaluations a step (one on a last step to sigma_next = 0).
    dpmpp_2m  (Lu et al. 2022, DPM-Solver++(2M), in the sigma form): DDIM's step written with
              the guess x0 = x - sigma * eps is x <- (sigma_next / sigma) x + (1 - sigma_next / sigma) x0;
              this rule replaces x0 by a line through this step's and the previous step's x0,
              D = (1 + 1/(2r)) x0 - x0_prev / (2r),   r = ln(sigma_prev / sigma) / ln(sigma / sigma_next),  (6)
              one evaluation a step, like DDIM (its first step is DDIM's). Where the accelerated
              sampler extrapolates eps with a fixed weight, this extrapolates x0, weighted by the
              steps' lengths in log sigma.
"""
import math
from dataclasses import dataclass

import torch

from .checks import check_finite, weights_of

DDPM = dict(gam=1.0, mu=0.5)
DDIM = dict(gam=1.0, mu=0.0)
ACCELERATED = dict(gam=2.0, mu=0.0)
HEUN = dict(solver="heun")
DPMPP_2M = dict(solver="dpmpp_2m")
SAMPLERS = {"ddpm": DDPM, "ddim": DDIM, "accelerated": ACCELERATED, "heun": HEUN, "dpmpp_2m": DPMPP_2M}
SOLVERS = (None, "heun", "dpmpp_2m")        # None: the (gam, mu) rules of eqs. (1)-(4)


@dataclass
class Step:
    """What one sampling step saw and did (yielded by `sample`)."""
    i: int                 # step number, 0 .. steps-1
    sigma: float           # noise level of x before the step
    sigma_next: float      # noise level of x after the step
    x: torch.Tensor        # the sample after the step, at noise level sigma_next
    x0: torch.Tensor       # the model's guess of the clean data, x_before - sigma * eps
    eps: torch.Tensor      # the (guided) noise prediction used for x0


def guided_eps(model, x, sigma, cond=None, cfg_scale=1.0, null_cond=None):
    """The model's noise prediction, with classifier-free guidance when cfg_scale != 1.

    Guidance runs ONE batched pass on [x, x] with [cond, null_cond] and mixes
    eps = eps_uncond + cfg_scale * (eps_cond - eps_uncond): cfg_scale = 1 is the conditional
    model, 0 the unconditional one, larger values push further towards the condition.
    sigma: a number, or one noise level per sample (B,), which is repeated for the doubled batch.
    x is given to the model in the model's own dtype and on its device; eps comes back like x.
    """
    device, dtype = weights_of(model)
    x_in = x.to(device=device, dtype=dtype)
    cond, null_cond = _like_model(cond, device, dtype), _like_model(null_cond, device, dtype)
    if cond is None or cfg_scale == 1.0:
        eps = model(x_in, sigma, cond) if cond is not None else model(x_in, sigma)
        return eps.to(x.dtype)
    if null_cond is None:
        null_cond = model.null_cond(cond)
    if isinstance(sigma, torch.Tensor) and sigma.ndim == 1:
        sigma = torch.cat([sigma, sigma])                       # one per sample, for both halves
    eps_cond, eps_uncond = model(torch.cat([x_in, x_in]), sigma, cat_cond(cond, null_cond)).to(x.dtype).chunk(2)
    return eps_uncond + cfg_scale * (eps_cond - eps_uncond)


def _validate(model, sigmas, shape, x, gam, mu, cond, cfg_scale, null_cond, solver=None):
    if not isinstance(sigmas, torch.Tensor):
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32)
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of steps + 1 noise levels (steps >= 1), got shape "
                         f"{tuple(sigmas.shape)}; e.g. noise.schedule('loglinear', steps=50)")
    if not torch.isfinite(sigmas).all() or (sigmas[:-1] <= sigmas[1:]).any() or sigmas[-1] < 0 or sigmas[0] <= 0:
        raise ValueError("sigmas must be finite, positive and strictly decreasing (largest noise first, the last "
                         f"may be 0), got {sigmas.tolist()[:6]}{' ...' if len(sigmas) > 6 else ''}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: expected None (the gam, mu rules), 'heun' or 'dpmpp_2m'")
    if not 0.0 <= mu < 1.0:
        raise ValueError(f"mu must be in [0, 1) (0: DDIM, 0.5: DDPM), got {mu!r}")
    if not math.isfinite(gam) or gam <= 0:
        raise ValueError(f"gam must be a positive number (1: plain, 2: accelerated), got {gam!r}")
    if not isinstance(cfg_scale, (int, float)) or not math.isfinite(cfg_scale) or cfg_scale < 0:
        raise ValueError(f"cfg_scale must be a number >= 0 (1 = no guidance, typical 1-7), got {cfg_scale!r}")
    if (x is None) == (shape is None):
        raise ValueError("give exactly one of shape (to start from pure noise) or x (a noisy start at sigmas[0])")
    if shape is not None:
        if not all(isinstance(s, int) and s > 0 for s in shape) or len(shape) < 2:
            raise ValueError(f"shape must be a tuple of positive ints like (B, C, H, W), got {shape!r}")
        config = getattr(model, "config", None) or {}
        if "in_channels" in config:                                        # an image model
            if len(shape) != 4 or shape[1] != config["in_channels"]:
                raise ValueError(f"this model makes images of shape (B, {config['in_channels']}, H, W), "
                                 f"got shape {tuple(shape)}")
        elif "dim" in config and tuple(shape[1:]) != (config["dim"],):      # the MLP of 2-D points
            raise ValueError(f"this model makes points of shape (B, {config['dim']}), got shape {tuple(shape)}")
    if x is not None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (a noisy start at sigmas[0]), got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        check_finite(x, "the starting x")
    batch = shape[0] if shape is not None else len(x)
    if cond is not None:
        parts = cond if isinstance(cond, tuple) else (cond,)
        if not all(isinstance(c, torch.Tensor) for c in parts) or cond_len(cond) != batch:
            raise ValueError(f"cond must be a tensor (or a (tokens, mask) pair) with one entry per sample "
                             f"({batch}), got {tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__}")
        for c in parts:
            check_finite(c, "cond")
    elif cfg_scale != 1.0:
        raise ValueError(f"cfg_scale={cfg_scale} needs a condition: pass cond (e.g. class labels) or use cfg_scale=1")
    if cond is not None and cfg_scale != 1.0 and null_cond is None and not hasattr(model, "null_cond"):
        raise ValueError("guidance needs an unconditional input: pass null_cond, or give the model a null_cond method")
    return sigmas


def sample(model, sigmas, shape=None, x=None, gam=1.0, mu=0.0, cond=None, cfg_scale=1.0, null_cond=None,
           generator=None, device=None, solver=None):
    """Run the sampler of eqs. (1)-(4), or a higher-order solver (5)-(6), yielding a `Step` after every step.

    model:     obeys model(x, sigma, cond=None) -> eps.
    sigmas:    steps + 1 strictly decreasing noise levels (noise.schedule(...)); the last may be 0.
    shape:     output shape, e.g. (16, 1, 28, 28): start from sigmas[0] * N(0, I);
    x:         or a starting tensor already at noise level sigmas[0] (img2img).
    gam, mu:   the step rule: DDIM (1, 0), DDPM (1, 0.5), accelerated (2, 0); see SAMPLERS.
    solver:    None for the (gam, mu) rules, or 'heun' / 'dpmpp_2m' (eqs. 5, 6; gam and mu unused).
    cond, cfg_scale, null_cond: conditioning and classifier-free guidance (see guided_eps).
    generator: a torch.Generator on the sampling device, for repeatable noise.
    Bad arguments raise ValueError here, at the call, not at the first step. x is kept in float32
    (or x's own float dtype) whatever the model's dtype: the model sees it converted. A step whose
    noise prediction is NaN or infinite stops with FloatingPointError naming the step.
    """
    sigmas = _validate(model, sigmas, shape, x, gam, mu, cond, cfg_scale, null_cond, solver)
    return _steps(model, sigmas, shape, x, gam, mu, cond, cfg_scale, null_cond, generator, device, solver)


@torch.no_grad()
def _steps(model, sigmas, shape, x, gam, mu, cond, cfg_scale, null_cond, generator, device, solver):
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else weights_of(model)[0])
    if x is None:
        x = sigmas[0].item() * torch.randn(shape, generator=generator, device=device)
    x = x.to(device)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()                                   # the sampler's own arithmetic stays in float32
    memory = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i].item(), sigmas[i + 1].item()
        eps_fn = checked_eps_fn(model, cond, cfg_scale, null_cond, i, len(sigmas) - 1)
        x, x0, eps, memory = advance(eps_fn, x, sigma, sigma_next, memory, gam, mu, solver, generator)
        yield Step(i=i, sigma=sigma, sigma_next=sigma_next, x=x, x0=x0, eps=eps)


def checked_eps_fn(model, cond, cfg_scale, null_cond, i, steps):
    """eps_fn(x, sigma) for `advance` at step i of `steps`: the guided noise prediction (guided_eps),
    stopped with FloatingPointError (check_eps) if it holds NaN or inf."""
    def eps_fn(x, sigma):
        eps = guided_eps(model, x, sigma, cond, cfg_scale, null_cond).to(x.dtype)
        check_eps(eps, i, steps, sigma, cfg_scale)
        return eps
    return eps_fn


def advance(eps_fn, x, sigma, sigma_next, memory=None, gam=1.0, mu=0.0, solver=None, generator=None):
    """One step of any rule from noise level sigma to sigma_next: returns (x_next, x0, eps, memory).

    eps_fn(x, sigma) -> the (guided) noise prediction for x at a level; memory: what the previous
    step returned (None at the first step), which the multistep rules need. The loop of `sample`
    and the text-to-image pipeline's loop both call this, so every rule works in both.
    """
    eps = eps_fn(x, sigma)
    x0 = x - sigma * eps
    if solver == "heun":                                                                    # (5)
        x_euler = x - (sigma - sigma_next) * eps
        if sigma_next == 0:
            return x_euler, x0, eps, None
        return x - (sigma - sigma_next) * (eps + eps_fn(x_euler, sigma_next)) / 2, x0, eps, None
    if solver == "dpmpp_2m":                                                                # (6)
        d = x0
        if memory is not None and sigma_next > 0:
            x0_prev, sigma_prev = memory
            r = math.log(sigma_prev / sigma) / math.log(sigma / sigma_next)
            d = (1 + 1 / (2 * r)) * x0 - x0_prev / (2 * r)
        ratio = sigma_next / sigma
        return ratio * x + (1 - ratio) * d, x0, eps, (x0, sigma)
    x, _ = step(x, eps, memory, sigma, sigma_next, gam, mu, generator)                      # (1)-(4)
    return x, x0, eps, eps


def step(x, eps, eps_prev, sigma, sigma_next, gam=1.0, mu=0.0, generator=None):
    """One step of eqs. (1)-(4) from noise level sigma to sigma_next: returns (x_next, x0).

    eps: the (guided) noise prediction for x; eps_prev: the previous step's (None at the first).
    x0 = x - sigma * eps is the model's guess of the clean data at this step.
    """
    eps_avg = eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev               # (1)
    sigma_p = (sigma_next / sigma ** mu) ** (1 / (1 - mu))                                # (2)
    eta = math.sqrt(max(sigma_next ** 2 - sigma_p ** 2, 0.0))                             # (3)
    x0 = x - sigma * eps
    x = x - (sigma - sigma_p) * eps_avg                                                    # (4)
    if eta > 0:
        x = x + eta * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x, x0


def check_eps(eps, i, steps, sigma, cfg_scale=1.0):
    """Stop with FloatingPointError naming step i and the likely cause if eps holds NaN or inf."""
    if not torch.isfinite(eps).all():
        raise FloatingPointError(
            f"step {i} of {steps} (sigma {sigma:.4g}) predicted NaN or infinite noise"
            + (f": cfg_scale={cfg_scale:g} is too large (typical values are 1-7)" if cfg_scale > 20 else
               ": the model's weights or inputs hold NaN, or its dtype cannot hold these values"))


# ---- conditions: class labels (B,), text tokens (B, T, D), or a pair (tokens, mask) -------------

def cond_len(cond):
    """How many samples a condition is for."""
    return len(cond[0]) if isinstance(cond, tuple) else len(cond)


def cat_cond(a, b):
    """Two conditions stacked into one batch (the conditional and the unconditional half)."""
    return tuple(torch.cat([x, y]) for x, y in zip(a, b)) if isinstance(a, tuple) else torch.cat([a, b])


def _like_model(cond, device, dtype):
    """A condition on the model's device; its float parts (text tokens) in the model's dtype."""
    if cond is None:
        return None
    if isinstance(cond, tuple):
        return tuple(_like_model(c, device, dtype) for c in cond)
    return cond.to(device=device, dtype=dtype) if cond.is_floating_point() else cond.to(device)



def generate(model, sigmas, shape=None, sampler="ddim", x=None, cond=None, cfg_scale=1.0, generator=None,
             **kwargs):
    """Run a named sampler ('ddpm', 'ddim', 'accelerated', 'heun' or 'dpmpp_2m') to the end; return the final x.

    Extra keyword arguments (gam, mu, solver, null_cond, device) go to `sample` and override the preset.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    params = dict(SAMPLERS[sampler], **kwargs)
    step = None
    for step in sample(model, sigmas, shape, x=x, cond=cond, cfg_scale=cfg_scale, generator=generator, **params):
        pass
    return step.x
