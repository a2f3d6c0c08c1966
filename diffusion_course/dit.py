"""A diffusion transformer (DiT, Peebles & Xie 2023): the U-Net's job done by a transformer.

    eps_hat = dit(x, sigma, cond=None)        the same contract as unet.UNet

The picture is cut into p x p patches, and each patch becomes one token, a vector of width
`dim` (like a word in chapter 5's text tower):

    x (B, C, H, W) -> patches (B, N, C*p*p) -> linear -> (B, N, dim) + a learned position each
    -> depth x block -> linear -> patches back into a picture (B, C, H, W) = v -> eps

Every block lets each patch look at every other one (self-attention) and then think alone (an
MLP). Where the U-Net adds the noise level to its activations, a DiT block *modulates* them:
from the condition vector c (the noise level's embedding plus the class's) a small layer makes
a shift, a scale and a gate for each half of the block (adaLN-Zero):

    h = x + gate1 * attention(layernorm(x) * (1 + scale1) + shift1)
    y = h + gate2 * mlp(layernorm(h) * (1 + scale2) + shift2)

The gates start at zero, so every block starts as the identity, and the last layer starts at
zero too: as with the U-Net, the untrained DiT outputs v = 0, which gives eps = sigma * x /
(1 + sigma^2), the ideal denoiser of standard Gaussian data (unet.py, eq. 1). The noise-level
scaling in and out is the U-Net's, so samplers, guidance, training and checkpoints all work
unchanged. Class index `num_classes` is the null class ("no class") for classifier-free guidance.

Text (context_dim): a prompt's tokens enter as in the U-Net, by cross-attention, one layer per
block between the self-attention and the MLP, as PixArt-alpha does (Chen et al. 2023): the
patches ask (queries), the words answer (keys and values); its output layer starts at zero too.
Stable Diffusion 3 instead joins text and patch tokens in one sequence (Esser et al. 2024).
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_finite, check_input
from .unet import sinusoidal_embedding


class DiTBlock(nn.Module):
    """Self-attention and an MLP, each modulated by the condition vector c and gated (adaLN-Zero);
    with context_dim, cross-attention to text tokens between the two."""

    def __init__(self, dim, heads, mlp_ratio=4, context_dim=None):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))     # c -> 2 x (shift, scale, gate)
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)
        if context_dim is not None:
            self.norm_x = nn.LayerNorm(dim)
            self.q_x = nn.Linear(dim, dim)
            self.kv_x = nn.Linear(context_dim, 2 * dim)
            self.proj_x = nn.Linear(dim, dim)
            nn.init.zeros_(self.proj_x.weight)    # starts as "ignore the prompt"
            nn.init.zeros_(self.proj_x.bias)
        self.record = None                        # a list while attention_maps() records

    def _split(self, t):                          # (B, N, D) -> (B, heads, N, D/heads)
        b, n, d = t.shape
        return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def cross_attention(self, h, context, mask):  # (B, N, D), (B, T, Dc), (B, T) -> (B, N, D)
        b, n, d = h.shape
        k, v = self.kv_x(context.to(h.dtype)).chunk(2, dim=-1)                   # (B, T, D) each
        mask = None if mask is None else mask[:, None, None, :].bool()           # (B, 1, 1, T)
        a = F.scaled_dot_product_attention(self._split(self.q_x(h)), self._split(k), self._split(v),
                                           attn_mask=mask)                       # (B, heads, N, D/heads)
        return self.proj_x(a.transpose(1, 2).reshape(b, n, d))

    def attention(self, h):                       # (B, N, D) -> (B, N, D)
        b, n, d = h.shape
        q, k, v = (self._split(t) for t in self.qkv(h).chunk(3, -1))
        if self.record is None:
            a = F.scaled_dot_product_attention(q, k, v)                          # (B, heads, N, D/heads)
        else:                                     # the same attention, written out to keep its weights
            w = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)   # (B, heads, N, N)
            self.record.append(w.mean(1).detach().float().cpu())                 # (B, N, N)
            a = w @ v
        return self.proj(a.transpose(1, 2).reshape(b, n, d))

    def forward(self, x, c, context=None, context_mask=None):   # x: (B, N, D), c: (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.attention(self.norm1(x) * (1 + scale1) + shift1)
        if context is not None:
            x = x + self.cross_attention(self.norm_x(x), context, context_mask)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class DiT(nn.Module):
    """A transformer obeying the course contract `dit(x, sigma, cond=None) -> eps`.

    in_channels, image_size: the pictures it denoises, (B, in_channels, image_size, image_size).
    patch_size: p; image_size must be divisible by it; N = (image_size / p)^2 tokens.
    dim, depth, heads, mlp_ratio: the transformer's width, number of blocks, attention heads and
                 MLP width (mlp_ratio * dim).
    num_classes: class conditioning with labels 0..num_classes-1 and the null class num_classes;
                 None: no classes.
    context_dim: width of text tokens for cross-attention (None: no text). A text-conditioned DiT
                 is called as the U-Net is: dit(x, sigma, (tokens (B, T, context_dim), mask (B, T))).
    """

    def __init__(self, in_channels=1, image_size=28, patch_size=4, dim=128, depth=4, heads=4, mlp_ratio=4,
                 num_classes=None, context_dim=None):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be divisible by patch_size {patch_size}")
        if dim % heads or dim % 2:
            raise ValueError(f"dim {dim} must be even and divisible by heads {heads}")
        self.config = dict(in_channels=in_channels, image_size=image_size, patch_size=patch_size, dim=dim,
                           depth=depth, heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes,
                           context_dim=context_dim)
        self.num_classes, self.p, self.grid = num_classes, patch_size, image_size // patch_size
        self.patchify = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)   # one linear map per patch
        self.position = nn.Parameter(0.02 * torch.randn(1, self.grid ** 2, dim))     # (1, N, D), learned
        self.sigma_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.class_emb = nn.Embedding(num_classes + 1, dim) if num_classes else None
        self.blocks = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio, context_dim) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False)
        self.modulation_out = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))     # c -> (shift, scale)
        self.out = nn.Linear(dim, patch_size * patch_size * in_channels)
        for layer in (self.modulation_out[1], self.out):                            # zero: v = 0 at the start
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def null_cond(self, cond):
        """The "no condition" input matching cond, for classifier-free guidance: the null class, or
        (for text) the U-Net's empty prompt, all-zero tokens of which only the first is real."""
        if cond is None:
            return None
        if isinstance(cond, tuple):
            context, mask = cond
            null_mask = torch.zeros_like(mask, dtype=torch.bool)
            null_mask[:, 0] = True
            return torch.zeros_like(context), null_mask
        if self.num_classes is None:
            raise ValueError("this DiT has no class conditioning (num_classes=None)")
        return torch.full_like(cond, self.num_classes)

    def _check(self, x, sigma, cond, context, context_mask):
        c, s = self.config["in_channels"], self.config["image_size"]
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DiT expects x of shape (B, {c}, {s}, {s}) (its patch positions are learned for that "
                             f"size), got {got}")
        check_input(self, x, "x")
        sig = torch.as_tensor(sigma)
        if sig.ndim > 1 or (sig.ndim == 1 and len(sig) != len(x)):
            raise ValueError(f"sigma must be a number or hold one noise level per image ({len(x)},), "
                             f"got shape {tuple(sig.shape)}")
        check_finite(sig.float(), "sigma")
        if (sig < 0).any():
            raise ValueError("sigma must be >= 0: it is the standard deviation of the noise in x")
        if cond is not None:
            if self.num_classes is None:
                raise ValueError("got class labels, but this DiT takes none (num_classes=None): " + (
                    "pass the prompt as (tokens, mask)" if self.config["context_dim"] else "call it without cond"))
            if not isinstance(cond, torch.Tensor) or cond.is_floating_point() or cond.shape != (len(x),) or \
                    cond.min() < 0 or cond.max() > self.num_classes:
                raise ValueError(f"cond must hold one integer class label per image, shape ({len(x)},), values "
                                 f"0..{self.num_classes - 1} or {self.num_classes} for 'no class'")
        dc = self.config["context_dim"]
        if context is None and dc is not None:
            raise ValueError(f"this DiT is text-conditioned (context_dim={dc}): pass the prompt as (tokens "
                             f"({len(x)}, T, {dc}), mask ({len(x)}, T)); for 'no prompt' pass model.null_cond(...)")
        if context is not None:
            if dc is None:
                raise ValueError("got text tokens, but this DiT has no cross-attention (context_dim=None)")
            if not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[0] != len(x) \
                    or context.shape[2] != dc:
                got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
                raise ValueError(f"text tokens must have shape ({len(x)}, T, {dc}), got {got}")
            check_input(self, context, "context")
            if context_mask is not None and tuple(context_mask.shape) != tuple(context.shape[:2]):
                raise ValueError(f"the token mask must have shape {tuple(context.shape[:2])} (True for a real "
                                 f"token, False for padding), got {tuple(context_mask.shape)}")

    def forward(self, x, sigma, cond=None, context=None, context_mask=None):
        """x: (B, C, H, W) noisy pictures, sigma: a number or (B,), cond: (B,) class labels or a text
        prompt's (tokens (B, T, context_dim), mask (B, T)) -> eps (B, C, H, W). The tokens may also
        come as `context` and `context_mask`, as in the U-Net."""
        if isinstance(cond, tuple):                                   # (tokens, mask) from a text encoder
            (context, context_mask), cond = cond, None
        self._check(x, sigma, cond, context, context_mask)
        b, ch, p, g = x.shape[0], self.config["in_channels"], self.p, self.grid
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        sigma = sigma.expand(b) if sigma.ndim == 0 else sigma                                   # (B,)
        c = self.sigma_mlp(sinusoidal_embedding(sigma, self.config["dim"]).to(x.dtype))         # (B, D)
        if self.class_emb is not None:
            c = c + self.class_emb(cond if cond is not None else torch.full((b,), self.num_classes, device=x.device))
        scale = (1 + sigma[:, None, None, None] ** 2).sqrt()                                    # (B, 1, 1, 1)
        x_in = x / scale
        h = self.patchify(x_in.to(x.dtype)).flatten(2).transpose(1, 2) + self.position         # (B, N, D)
        for block in self.blocks:
            h = block(h, c, context, context_mask)
        shift, scl = self.modulation_out(c)[:, None].chunk(2, dim=-1)
        v = self.out(self.norm_out(h) * (1 + scl) + shift)                                      # (B, N, p*p*C)
        v = v.reshape(b, g, g, ch, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, ch, g * p, g * p)  # unpatchify
        return (sigma[:, None, None, None] * x_in + v.float()) / scale                          # eps, unet.py eq. (1)


@contextmanager
def attention_maps(dit):
    """Keep every block's self-attention weights while the DiT runs: what each patch looks at.

        with attention_maps(dit) as maps:
            dit(x, sigma, cond)
        maps[0]          # (B, N, N): how much each of the N patches reads each other one, first block

    One entry per block and call, in call order, averaged over the heads; each row sums to 1. Patch
    n sits at row n // (image_size / patch_size), column n % (image_size / patch_size) of the grid.
    """
    maps = []
    for block in dit.blocks:
        block.record = maps
    try:
        yield maps
    finally:
        for block in dit.blocks:
            block.record = None
