"""The U-Net denoiser: an image and its noise level in, the predicted noise out.

    eps_hat = unet(x, sigma, cond=None)      x: (B, C, H, W) noisy images in the sigma form

The shape of the network is a "U" (Ronneberger et al.): the image is shrunk level by level
(28x28 -> 14x14 -> 7x7 for MNIST) while its channels grow, so that deep layers see the whole
digit; then it is grown back, and each level on the way up also receives the activations of
the same level on the way down ("skip connections"), so that fine detail is not lost.
Three extra inputs steer every residual block:
    sigma    -> `sinusoidal_embedding` -> an MLP -> added to every block   (how noisy is x?)
    cond     -> a class embedding added to the same vector                 (which digit?)
    context  -> cross-attention at the attention levels                    (which words?)
Class index `num_classes` is the "null" class: no condition, used for classifier-free guidance.

Scaling in and out (the preconditioning of Karras et al. with sigma_data = 1). The network
sees x_in = x / sqrt(1 + sigma^2), which has variance about 1 at every noise level. Its last
layer does not output eps directly but v = (eps - sigma * x0) / sqrt(1 + sigma^2), a mix of
noise and image that also has variance about 1 everywhere, and `forward` turns it into

    eps = (sigma * x_in + v) / sqrt(1 + sigma^2).                                    (1)

Why: at sigma = 80 the clean image is x0 = x - 80 * eps, so a network predicting eps
directly would need it 80 times more accurately than we need x0; through v, an error in
the network's output becomes an error of the same size in x0. With the last layer at zero,
(1) gives eps = sigma * x / (1 + sigma^2), the ideal denoiser of standard Gaussian data:
an untrained U-Net starts from a sensible guess. Train it with `v_loss` below.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_finite, check_input


def sinusoidal_embedding(sigma, dim, scale=4.0, max_period=100.0):
    """Turn noise levels into vectors a network can read: (B,) -> (B, dim).

    A single number is a poor input for a network: it has one "handle". We first take
    t = scale * ln(sigma) (the log makes sigma = 0.01 and sigma = 0.02 as different as 40 and
    80), then write it as sines and cosines at `dim / 2` frequencies from 1 down to
    1/max_period, the recipe of the Transformer's position encoding and DDPM's timestep
    embedding: fast waves tell noise levels apart, slow waves say roughly where sigma is.

    The defaults keep every wave slow: the fastest turns once each time sigma grows about 5x,
    the slowest less than a quarter turn over sigma 0.01 .. 80. DDPM's own numbers (t up to
    1000, max_period 10000) used on ln(sigma) would give waves that turn over between sigma = 1
    and 1.02; EDM-style models use such fast features and sample well, so this is a choice of
    smoothness, not a requirement.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if sigma.ndim == 0:
        sigma = sigma[None]
    if dim % 2 or dim < 2:
        raise ValueError(f"dim must be a positive even number, got {dim!r}")
    half = dim // 2
    t = scale * torch.log(sigma.float().clamp(min=1e-20))                                # (B,)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)  # (half,)
    angles = t[:, None] * freqs[None]                                                     # (B, half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)                      # (B, dim)


def _groups(ch, groups):
    g = min(groups, ch)
    while ch % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, the noise/class embedding added in between,
    and a shortcut: out = x + f(x, emb)."""

    def __init__(self, in_ch, out_ch, emb_dim, groups=8, dropout=0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch, groups), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch, groups), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)         # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, emb):                    # x: (B, C, H, W), emb: (B, E)
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the H*W positions, then (if context_dim) cross-attention to text tokens.

    Self-attention lets every position look at every other one (the two ends of a stroke);
    cross-attention lets every position look at the words of the prompt: its queries come from
    the image, its keys and values from `context` (B, T, context_dim), the text encoder's
    output. `context_mask` (B, T) marks real tokens (True) versus padding (False).
    """

    def __init__(self, ch, heads=4, groups=8, context_dim=None):
        super().__init__()
        if ch % heads:
            raise ValueError(f"channels {ch} must be divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(ch, groups), ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        if context_dim is not None:
            self.norm_x = nn.LayerNorm(ch)
            self.q = nn.Linear(ch, ch)
            self.kv = nn.Linear(context_dim, 2 * ch)
            self.proj_x = nn.Linear(ch, ch)
            nn.init.zeros_(self.proj_x.weight)
            nn.init.zeros_(self.proj_x.bias)
        self.context_dim = context_dim
        self.record = None                        # a list while cross_attention_maps() records

    def _split(self, t):                          # (B, N, C) -> (B, heads, N, C/heads)
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _merge(self, t):                          # (B, heads, N, c) -> (B, N, heads*c)
        b, h, n, c = t.shape
        return t.transpose(1, 2).reshape(b, n, h * c)

    def forward(self, x, context=None, context_mask=None):
        b, c, hgt, wid = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)                    # (B, HW, C)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        h = self.proj(self._merge(a))                                   # (B, HW, C)
        out = x + h.transpose(1, 2).reshape(b, c, hgt, wid)
        if self.context_dim is not None and context is not None:
            h = self.norm_x(out.flatten(2).transpose(1, 2))             # (B, HW, C)
            k, v = self.kv(context.to(h.dtype)).chunk(2, dim=-1)        # (B, T, C) each
            mask = None if context_mask is None else context_mask[:, None, None, :].bool()  # (B, 1, 1, T)
            q, k, v = self._split(self.q(h)), self._split(k), self._split(v)
            if self.record is None:
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:                                 # the same attention, written out to keep its weights
                w = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])                  # (B, heads, HW, T)
                w = (w if mask is None else w.masked_fill(~mask, float("-inf"))).softmax(-1)
                a = w @ v
                self.record.append(w.mean(1).reshape(b, hgt, wid, -1).detach().float().cpu())   # (B, H, W, T)
            out = out + self.proj_x(self._merge(a)).transpose(1, 2).reshape(b, c, hgt, wid)
        return out


@contextmanager
def cross_attention_maps(unet):
    """Keep every cross-attention layer's weights while the block runs (Hertz et al., prompt-to-prompt).

        with cross_attention_maps(unet) as maps:
            unet(x, sigma, (tokens, mask))
        maps[0]          # (B, H, W, T): how much each position of the first layer reads each word

    One entry per layer and call, in call order, averaged over the heads; each (H, W) position's
    weights over the T tokens sum to 1 (padding gets 0).
    """
    layers = [m for m in unet.modules() if isinstance(m, AttentionBlock) and m.context_dim is not None]
    maps = []
    for m in layers:
        m.record = maps
    try:
        yield maps
    finally:
        for m in layers:
            m.record = None


def word_maps(maps, size=64):
    """All recorded maps upsampled to size x size and averaged: (B, T, size, size), one picture per word."""
    if not maps:
        raise ValueError("no cross-attention maps were recorded: call the U-Net inside cross_attention_maps()")
    ups = [F.interpolate(m.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", align_corners=False)
           for m in maps]
    return torch.stack(ups).mean(0)


class UNet(nn.Module):
    """A small U-Net obeying the course contract `unet(x, sigma, cond=None) -> eps`.

    in_channels:     image channels (1 for MNIST, 3 for RGB, 4 for VAE latents).
    channels:        width of the first level; level i has channels * channel_mults[i].
    channel_mults:   one entry per resolution level; each level after the first halves H and W.
    num_res_blocks:  residual blocks per level on the way down (one more on the way up).
    attention_levels: indices of the levels with self-attention (plus always the middle).
    num_classes:     class conditioning with labels 0..num_classes-1; label `num_classes` is
                     the null class (no condition) for classifier-free guidance. None: unconditional.
    context_dim:     width of text tokens for cross-attention (None: no cross-attention).
    Scaling: the network sees x / sqrt(1 + sigma^2) and predicts v, turned into eps by eq. (1)
    of the module docstring, so the same weights work from sigma = 0.01 to sigma = 80.
    """

    def __init__(self, in_channels=1, channels=32, channel_mults=(1, 2, 2), num_res_blocks=2,
                 attention_levels=(2,), num_classes=None, context_dim=None, heads=4, groups=8,
                 dropout=0.0):
        super().__init__()
        channel_mults, attention_levels = tuple(channel_mults), tuple(attention_levels)
        if any(i >= len(channel_mults) or i < 0 for i in attention_levels):
            raise ValueError(f"attention_levels {attention_levels} must index the {len(channel_mults)} levels")
        self.config = dict(in_channels=in_channels, channels=channels, channel_mults=list(channel_mults),
                           num_res_blocks=num_res_blocks, attention_levels=list(attention_levels),
                           num_classes=num_classes, context_dim=context_dim, heads=heads, groups=groups,
                           dropout=dropout)
        self.num_classes, self.context_dim = num_classes, context_dim
        emb_dim = 4 * channels
        self.sigma_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)

        def attn(ch):
            return AttentionBlock(ch, heads, groups, context_dim)

        self.down = nn.ModuleList()               # [(blocks, attns, downsample)] per level
        skips, ch = [channels], channels
        for i, mult in enumerate(channel_mults):
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, channels * mult, emb_dim, groups, dropout))
                ch = channels * mult
                attns.append(attn(ch) if i in attention_levels else nn.Identity())
                skips.append(ch)
            last = i == len(channel_mults) - 1
            down = nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1)
            if not last:
                skips.append(ch)
            self.down.append(nn.ModuleList([blocks, attns, down]))
        self.mid1 = ResBlock(ch, ch, emb_dim, groups, dropout)
        self.mid_attn = attn(ch)
        self.mid2 = ResBlock(ch, ch, emb_dim, groups, dropout)
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(channel_mults))):
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), channels * mult, emb_dim, groups, dropout))
                ch = channels * mult
                attns.append(attn(ch) if i in attention_levels else nn.Identity())
            up = nn.Identity() if i == 0 else nn.Conv2d(ch, ch, 3, padding=1)
            self.up.append(nn.ModuleList([blocks, attns, up]))
        self.norm_out = nn.GroupNorm(_groups(ch, groups), ch)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.levels = len(channel_mults)

    def null_cond(self, cond):
        """The "no condition" input matching `cond`: the null class, or all-zero text tokens (with a
        (tokens, mask) pair: one zero token, the rest padding)."""
        if cond is None:
            return None
        if isinstance(cond, tuple):
            context, mask = cond
            null_mask = torch.zeros_like(mask, dtype=torch.bool)
            null_mask[:, 0] = True
            return torch.zeros_like(context), null_mask
        if not cond.is_floating_point():
            if self.num_classes is None:
                raise ValueError("this U-Net has no class conditioning (num_classes=None)")
            return torch.full_like(cond, self.num_classes)
        return torch.zeros_like(cond)

    def _check(self, x, sigma, cond, context):
        if isinstance(x, torch.Tensor) and (x.ndim != 4 or x.shape[1] != self.config["in_channels"]):
            raise ValueError(f"UNet expects x of shape (B, {self.config['in_channels']}, H, W), got {tuple(x.shape)}")
        check_input(self, x, "x")
        f = 2 ** (self.levels - 1)
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image size {tuple(x.shape[2:])} must be divisible by {f} "
                             f"(the U-Net halves it {self.levels - 1} times)")
        s = torch.as_tensor(sigma)
        if s.ndim > 1 or (s.ndim == 1 and len(s) != x.shape[0]):
            raise ValueError(f"sigma must be a number or hold one noise level per image ({x.shape[0]},), "
                             f"got shape {tuple(s.shape)}")
        check_finite(s.float(), "sigma")
        if not s.is_meta and (s < 0).any():
            raise ValueError("sigma must be >= 0: it is the standard deviation of the noise in x")
        if cond is not None:
            if cond.is_floating_point():
                raise ValueError(f"cond holds {str(cond.dtype).replace('torch.', '')} numbers of shape "
                                 f"{tuple(cond.shape)}: class labels must be integers (use cond.long()); text "
                                 f"tokens are (B, T, D) vectors")
            if self.num_classes is None:
                what = (f"it is text-conditioned: pass the prompt's tokens (B, T, {self.context_dim}) as context"
                        if self.context_dim else "it is unconditional: call it without cond")
                raise ValueError(f"got class labels, but this U-Net takes none (num_classes=None); {what}")
            if cond.shape != (x.shape[0],) or cond.min() < 0 or cond.max() > self.num_classes:
                raise ValueError(f"cond must hold one class label per image, shape ({x.shape[0]},), values "
                                 f"0..{self.num_classes - 1} or {self.num_classes} for 'no class'; "
                                 f"got shape {tuple(cond.shape)}")
        if context is not None:
            if self.context_dim is None:
                raise ValueError("got text tokens, but this U-Net has no cross-attention (context_dim=None)")
            if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[2] != self.context_dim:
                raise ValueError(f"text tokens must have shape ({x.shape[0]}, T, {self.context_dim}), "
                                 f"got {tuple(context.shape)}")
            check_input(self, context, "context")
        elif self.context_dim is not None:
            raise ValueError(f"this U-Net is text-conditioned (context_dim={self.context_dim}): pass the prompt's "
                             f"tokens as context, shape ({x.shape[0]}, T, {self.context_dim}); for 'no prompt' "
                             "pass model.null_cond(context)")

    def forward(self, x, sigma, cond=None, context=None, context_mask=None):
        """x: (B, C, H, W) noisy images, sigma: number or (B,), cond: (B,) labels or (B, T, D) tokens.

        Text tokens may be passed as `cond` (a (B, T, D) float tensor, or a pair (tokens, mask)) or as
        `context`; `context_mask` (B, T) marks real tokens. Returns the predicted noise eps, (B, C, H, W). x (and context) must
        be on the model's device in its dtype, and finite; sigma >= 0 (ValueError otherwise).
        """
        if isinstance(cond, tuple):                                   # (tokens, mask) from a text encoder
            (context, context_mask), cond = cond, None
        if isinstance(cond, torch.Tensor) and cond.is_floating_point() and cond.ndim == 3:
            cond, context = None, cond
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch tensor of shape (B, {self.config['in_channels']}, H, W), "
                            f"got {type(x).__name__}")
        self._check(x, sigma, cond, context)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma                 # (B,)
        emb = self.sigma_mlp(sinusoidal_embedding(sigma, self.config["channels"]).to(x.dtype))  # (B, E)
        if self.class_emb is not None:
            labels = cond if cond is not None else torch.full_like(sigma, self.num_classes, dtype=torch.long)
            emb = emb + self.class_emb(labels)
        scale = (1 + sigma[:, None, None, None] ** 2).sqrt()                            # (B, 1, 1, 1)
        x_in = x / scale
        h = self.conv_in(x_in.to(x.dtype))                                              # (B, ch, H, W)
        hs = [h]
        for blocks, attns, down in self.down:
            for block, at in zip(blocks, attns):
                h = block(h, emb)
                h = at(h, context, context_mask) if isinstance(at, AttentionBlock) else h
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb), context, context_mask), emb)
        for blocks, attns, up in self.up:
            for block, at in zip(blocks, attns):
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
                h = at(h, context, context_mask) if isinstance(at, AttentionBlock) else h
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        v = self.conv_out(F.silu(self.norm_out(h)))                                     # (B, C, H, W)
        return (sigma[:, None, None, None] * x_in + v.float()) / scale                  # eps, eq. (1)


def v_loss(eps_hat, eps, sigma):
    """The training loss for a U-Net: mean squared error of v, written with eps.

    v - v_hat = (eps - eps_hat) * sqrt(1 + sigma^2) by eq. (1), so this is the plain MSE
    weighted by (1 + sigma^2): every noise level counts as much as every other, instead of
    the high noise levels (whose eps is easy but whose x0 matters) counting almost nothing.
    eps_hat, eps: (B, C, H, W); sigma: (B,).
    """
    w = 1 + sigma.reshape(-1, *([1] * (eps.ndim - 1))).float() ** 2                   # (B, 1, 1, 1)
    return (w * (eps_hat.float() - eps.float()) ** 2).mean()
