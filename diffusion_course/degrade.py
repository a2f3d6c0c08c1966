"""Cold diffusion (Bansal et al. 2022): undo degradations other than noise.

Diffusion destroys a picture by adding noise and learns to undo it. Must it be noise? Cold
diffusion takes any degradation D(x0, s) whose severity s runs from 0 (the picture) to `steps`
(nothing left), trains a restoration network R(x_s, s) ~ x0 on pairs (D(x0, s), x0), and
generates by walking the severity down. Two degradations here, both deterministic:

    Blur:  D(x0, s) is x0 blurred by a Gaussian whose width grows geometrically from std_min to
           std_max pixels (blurring is heat spreading: Rissanen et al. 2023). At the end the picture
           is nearly its mean: one grey level.
    Mask:  D(x0, s) hides the first s / steps of the pixels, in a fixed random order, behind
           `fill` (the background). At the end nothing is left.

Two samplers, from a fully degraded x_T:

    naive     x_{s-1} = D(R(x_s, s), s - 1)                                   (Alg. 1)
    improved  x_{s-1} = x_s - D(R(x_s, s), s) + D(R(x_s, s), s - 1)            (Alg. 2)

The naive one re-degrades the network's guess, so its errors pile up. The improved one moves x
only by the *difference* between two severities of the guess: if D(x, s) = x + s * d for some
direction d, the guess cancels out and the walk is exact whatever the network says (the
paper's section 3.3); for blur and masking it is close to that. With no randomness anywhere,
the same start always gives the same picture: generation needs random starts, and these
degradations' ends hold little room for them (one grey level for blur, nothing for masking).

The restoration network here is the course's U-Net, whose noise-level input carries the
severity s / steps and whose output is read as what the degradation did: R(x_s, s) = x_s -
unet(x_s, s / steps) (`restore`).
"""
import math
from dataclasses import dataclass, field

import torch


def gaussian_blur(x, std):
    """x blurred by a Gaussian of standard deviation `std` pixels (a number or one per picture, (B,)),
    with mirrored edges: x is (B, C, N, N).

    Computed in the cosine basis (DCT-II) of the picture, where such a blur multiplies frequency
    (k, l) by exp(-std^2 (pi^2 / 2) ((k / N)^2 + (l / N)^2)): exact for any width, the mean kept,
    and two blurs make one whose variance is the sum (the heat equation).
    """
    n = x.shape[-1]
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (k[None, :] + 0.5) * k[:, None] / n)                # (K, N): row k = frequency k
    basis[0] /= math.sqrt(2)
    dct = (basis * math.sqrt(2 / n)).to(x)                                          # orthonormal: dct @ dct.T = I
    f2 = ((math.pi * k / n) ** 2).to(x)                                             # (K,) angular frequency^2
    std = torch.as_tensor(std).to(x).reshape(-1, 1, 1, 1)                           # (B or 1, 1, 1, 1)
    gain = torch.exp(-0.5 * std ** 2 * (f2[:, None] + f2[None, :]))                 # (B, 1, K, K)
    return dct.T @ ((dct @ x @ dct.T) * gain) @ dct                                 # (B, C, N, N)


@dataclass(frozen=True)
class Blur:
    """D(x0, s): a Gaussian blur whose width grows geometrically with the severity, from std_min pixels
    at s = 1 to std_max at s = steps (none at s = 0): each step removes about the same share of the
    detail that is left, as the log-linear noise schedule does for noise."""
    steps: int = 20
    std_min: float = 0.3
    std_max: float = 20.0
    size: int = 28

    def std(self, s):
        """The blur's standard deviation in pixels at severity s (a number or a tensor)."""
        s = torch.as_tensor(s, dtype=torch.float64)
        ratio = self.std_max / self.std_min
        std = self.std_min * ratio ** ((s - 1).clamp(min=0) / max(self.steps - 1, 1))
        return torch.where(s > 0, std, torch.zeros_like(std))

    def __call__(self, x0, s):
        """x0: (B, C, H, W) with H = W = size; s: a number or (B,) severities in 0..steps. Returns x_s."""
        _check(x0, s, self.steps, self.size)
        std = self.std(s)
        return torch.where(std.to(x0.device).reshape(-1, 1, 1, 1) > 0, gaussian_blur(x0, std), x0)   # s = 0: x0 itself


@dataclass(frozen=True)
class Mask:
    """D(x0, s): the first round(s / steps * H * W) pixels of a fixed random order (seeded) set to `fill`.

    The hidden sets are nested: what severity s hides stays hidden at s + 1.
    """
    steps: int = 20
    size: int = 28
    fill: float = -1.0
    seed: int = 0
    rank: torch.Tensor = field(init=False, repr=False, compare=False)             # when each pixel hides

    def __post_init__(self):
        order = torch.randperm(self.size ** 2, generator=torch.Generator().manual_seed(self.seed))
        rank = torch.empty(self.size ** 2, dtype=torch.long)
        rank[order] = torch.arange(self.size ** 2)
        object.__setattr__(self, "rank", rank)                   # frozen: set once, here

    def hidden(self, s, device=None):
        """(B or 1, 1, H, W) True where severity s hides the pixel."""
        count = (torch.as_tensor(s, dtype=torch.float32) / self.steps * self.size ** 2).round().reshape(-1, 1)
        return (self.rank.to(device)[None] < count.to(device)).reshape(-1, 1, self.size, self.size)

    def __call__(self, x0, s):
        """x0: (B, C, H, W) with H = W = size; s: a number or (B,) severities in 0..steps. Returns x_s."""
        _check(x0, s, self.steps, self.size)
        return torch.where(self.hidden(s, x0.device), torch.full_like(x0, self.fill), x0)


DEGRADATIONS = {"blur": Blur, "mask": Mask}


def _check(x0, s, steps, size):
    if not isinstance(x0, torch.Tensor) or x0.ndim != 4 or tuple(x0.shape[2:]) != (size, size):
        got = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"x0 must be pictures (B, C, {size}, {size}), got {got}")
    s = torch.as_tensor(s)
    if s.ndim > 1 or (s.ndim == 1 and len(s) != len(x0)) or (s < 0).any() or (s > steps).any():
        raise ValueError(f"severity s must be a number or one per picture ({len(x0)},), from 0 to {steps}")


def restore(model, x_s, s, steps, cond=None):
    """R(x_s, s) = x_s - model(x_s, s / steps, cond): the network's guess of the clean picture."""
    level = torch.as_tensor(s, dtype=torch.float32, device=x_s.device) / steps
    out = model(x_s, level, cond) if cond is not None else model(x_s, level)
    return x_s - out


def restoration_loss(model, x0, degrade, generator=None, cond=None):
    """Bansal et al.'s training loss: mean |R(D(x0, s), s) - x0| with s uniform in 1..steps, (B,) per picture."""
    s = torch.randint(1, degrade.steps + 1, (len(x0),), generator=generator, device=x0.device)
    return (restore(model, degrade(x0, s), s, degrade.steps, cond) - x0).abs().mean()


@torch.no_grad()
def cold_sample(model, degrade, x_start, improved=True, cond=None, restorer=None):
    """Walk the severity from degrade.steps down to 0, from x_start (fully degraded pictures, (B, C, H, W)).

    improved=True: Alg. 2 (x - D(x0_hat, s) + D(x0_hat, s - 1)); False: Alg. 1 (D(x0_hat, s - 1)).
    restorer(x, s) -> x0_hat replaces the network (for tests and the chapter's oracle). Returns x_0.
    """
    steps, x = degrade.steps, x_start
    guess = restorer or (lambda x, s: restore(model, x, s, steps, cond))
    for s in range(steps, 0, -1):
        x0_hat = guess(x, s)
        x = x - degrade(x0_hat, s) + degrade(x0_hat, s - 1) if improved else degrade(x0_hat, s - 1)
    return x
