"""Flow matching (rectified flow), written in the course's sigma form: what is new, what is the same.

Flow matching (Lipman et al. 2023; Liu et al. 2023, "rectified flow") joins each data point to
its noise by a straight line and asks a network for the velocity along it:

    x_t = (1 - t) x0 + t eps,     t in [0, 1]                                          (1)
    v   = dx_t / dt = eps - x0,   L = E || v_hat - v ||^2                              (2)

with t drawn uniformly (Liu et al.) or logit-normally (Esser et al. 2024, Stable Diffusion 3).
Divide (1) by 1 - t: x_t / (1 - t) = x0 + t / (1 - t) eps is the course's noisy picture, so

    sigma = t / (1 - t),    t = sigma / (1 + sigma),    x_t = x_sigma / (1 + sigma).   (3)

The path visits the same noisy pictures as diffusion, seen at another scale. A network that
predicts eps predicts a velocity too (x0_hat = x_sigma - sigma eps_hat in (2)):

    v_hat = (1 + sigma) eps_hat - x_sigma = (1 + sigma) (eps_hat - x_t),
    v_hat - v = (1 + sigma) (eps_hat - eps),                                           (4)

so the flow-matching loss is the squared error of eps weighted by (1 + sigma)^2, where the
course's `unet.v_loss` weights it by 1 + sigma^2. What is new is therefore only (a) which noise
levels training draws: t uniform means ln sigma = logit t follows a logistic distribution, and
SD3's logit-normal t means ln sigma ~ N(0, 1) (noise.training_sigmas kinds "flow" and "lognormal"
with p_mean=0, p_std=1); and (b) that weight. What is the same: the network, its contract, and
the sampler. Euler's method on the flow ODE dx_t/dt = v,

    x_t' = x_t + (t' - t) v_hat,                                                       (5)

rewritten with (3) and (4), is x_sigma' = x_sigma + (sigma' - sigma) eps_hat: DDIM's step.
Sampling with t evenly spaced, as flow models do, is DDIM on noise.schedule("flow", steps).
"""
import torch

from .noise import _per_item


def sigma_to_t(sigma):
    """t = sigma / (1 + sigma) (eq. 3): 0 for clean data, towards 1 for pure noise."""
    return sigma / (1 + sigma)


def t_to_sigma(t):
    """sigma = t / (1 - t) (eq. 3), for t in [0, 1)."""
    return t / (1 - t)


def velocity(model, x_t, t, cond=None):
    """The velocity v_hat (eq. 4) of a course model (model(x, sigma, cond) -> eps) at a point x_t of the
    straight path, t a number in (0, 1) or one per sample (B,). Returns (B, ...) like x_t."""
    sigma = t_to_sigma(torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device))
    x_sigma = x_t * (1 + _per_item(sigma, x_t))
    eps = model(x_sigma, sigma, cond) if cond is not None else model(x_sigma, sigma)
    return (1 + _per_item(sigma, x_t)) * (eps - x_t)


def flow_matching_loss(eps_hat, eps, sigma):
    """The flow-matching loss (eq. 2) from a course model's eps: mean of (1 + sigma)^2 (eps_hat - eps)^2
    (eq. 4). eps_hat, eps: (B, C, H, W); sigma: (B,). Compare unet.v_loss, weighted 1 + sigma^2."""
    w = (1 + sigma.reshape(-1, *([1] * (eps.ndim - 1))).float()) ** 2                     # (B, 1, 1, 1)
    return (w * (eps_hat.float() - eps.float()) ** 2).mean()


@torch.no_grad()
def euler(model, ts, x_t, cond=None):
    """Euler's method on the flow ODE (eq. 5) over the times ts (decreasing, in (0, 1)), from x_t at
    ts[0]; returns x_t at ts[-1]. The same as sampling.generate(..., "ddim") on t_to_sigma(ts), with
    x_sigma = x_t * (1 + sigma) at both ends: the flow sampler written as flow papers write it."""
    for t, t_next in zip(ts[:-1], ts[1:]):
        x_t = x_t + (t_next - t) * velocity(model, x_t, t, cond)
    return x_t
