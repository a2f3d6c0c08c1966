"""A small MLP denoiser for 2-D points: the U-Net's job in miniature, trained in seconds on a CPU.

    eps_hat = mlp(x, sigma)       x: (B, 2) noisy points, sigma: number or (B,)

The network sees the point scaled to unit variance, x / sqrt(1 + sigma^2), beside a
sinusoidal embedding of sigma (the same one the U-Net uses), and predicts the noise.
"""
import torch
from torch import nn

from .checks import check_finite, check_input
from .unet import sinusoidal_embedding


class MLPDenoiser(nn.Module):
    """dim -> hidden x depth (GELU) -> dim, with the noise level as extra inputs."""

    def __init__(self, dim=2, hidden=128, depth=3, emb_dim=16):
        super().__init__()
        self.config = dict(dim=dim, hidden=hidden, depth=depth, emb_dim=emb_dim)
        layers, width = [], dim + emb_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x, sigma, cond=None):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.config["dim"]:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"MLPDenoiser expects points of shape (B, {self.config['dim']}), got {got}")
        check_input(self, x, "x")
        check_finite(torch.as_tensor(sigma, dtype=torch.float32), "sigma")
        if cond is not None:
            raise ValueError("MLPDenoiser is unconditional: call it without cond")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma = sigma.expand(len(x)) if sigma.ndim == 0 else sigma                    # (B,)
        emb = sinusoidal_embedding(sigma, self.config["emb_dim"]).to(x.dtype)          # (B, E)
        x_in = x / (1 + sigma[:, None] ** 2).sqrt()                                     # (B, dim)
        return self.net(torch.cat([x_in, emb], dim=1))                                  # (B, dim)
