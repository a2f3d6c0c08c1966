"""The latent autoencoder ("the painter"): squeeze an image into a small latent and paint it back.

Stable Diffusion does not denoise pixels. A variational autoencoder (VAE) first shrinks a
512x512x3 image into a 64x64x4 latent (48 times fewer numbers), the U-Net denoises latents,
and the VAE's decoder paints the final latent back into pixels. Here the same shapes at
course size: a 64x64x3 scene becomes an 8x8x4 latent, the same factor 48.

    mean, logvar = encoder(x)                 # (B, 4, 8, 8) each: a Gaussian per latent value
    z = mean + exp(logvar / 2) * eps          # the reparameterization trick, eps ~ N(0, I)
    x_hat = decoder(z)                        # (B, 3, 64, 64)
    loss = recon(x_hat, x) + kl_weight * KL(N(mean, var) || N(0, 1)) / (pixel values)

The KL term is what makes it a *variational* autoencoder: it charges each latent value for
the information it carries (in nats; divide by ln 2 for bits), keeping the latent smooth and
near the origin so that a diffusion model can learn it. `encode` / `decode` also apply the
latent scale factor measured from data, z_scaled = (z - shift) * scale, so that latents have
unit variance: the role that 0.18215 plays in Stable Diffusion (Rombach et al. 2022).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_input


def _norm(c):
    return nn.GroupNorm(math.gcd(8, c), c)          # 8 groups when c allows (c = 8, 16, ...), fewer otherwise


class ResBlock(nn.Module):
    """norm -> SiLU -> conv -> norm -> SiLU -> conv, plus the input (through a 1x1 conv if the width changes)."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.body = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.body(x)


class VAE(nn.Module):
    """A KL-regularized convolutional autoencoder.

    in_channels:     3 for RGB scenes (1 for MNIST).
    latent_channels: channels of the latent (4, as in Stable Diffusion).
    factor:          the downsampling factor f, a power of 2: an HxW image becomes an (H/f)x(W/f) latent.
    width:           channels at full resolution; each halving of the size doubles them, up to 4 * width.
    enc_blocks, dec_blocks: residual blocks per resolution in the encoder / decoder (the decoder
                     does the painting, so it gets more).
    shift, scale:    the latent normalization, z_scaled = (z - shift) * scale. Set them from data
                     with `measure_scale`; they live in `config`, so the checkpoint card carries them.
    """

    def __init__(self, in_channels=3, latent_channels=4, factor=8, width=16, enc_blocks=1, dec_blocks=2,
                 shift=0.0, scale=1.0):
        super().__init__()
        if not isinstance(factor, int) or factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of 2 (1, 2, 4, 8, 16, ...), got {factor!r}")
        for name, v in (("in_channels", in_channels), ("latent_channels", latent_channels), ("width", width)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.config = dict(in_channels=in_channels, latent_channels=latent_channels, factor=factor, width=width,
                           enc_blocks=enc_blocks, dec_blocks=dec_blocks, shift=float(shift), scale=float(scale))
        self.factor, self.in_channels, self.latent_channels = factor, in_channels, latent_channels
        n = int(math.log2(factor))                                   # number of halvings
        ch = [width * min(2 ** i, 4) for i in range(n + 1)]          # channels at each resolution

        enc = [nn.Conv2d(in_channels, ch[0], 3, padding=1)]
        for i in range(n):
            enc += [ResBlock(ch[i], ch[i]) for _ in range(enc_blocks)]
            enc += [nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1)]  # halve H and W
        enc += [ResBlock(ch[n], ch[n]) for _ in range(enc_blocks)]
        enc += [_norm(ch[n]), nn.SiLU(), nn.Conv2d(ch[n], 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec = [nn.Conv2d(latent_channels, ch[n], 3, padding=1)]
        dec += [ResBlock(ch[n], ch[n]) for _ in range(dec_blocks)]
        for i in reversed(range(n)):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i + 1], ch[i], 3, padding=1)]
            dec += [ResBlock(ch[i], ch[i]) for _ in range(dec_blocks)]
        dec += [_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def shift(self):
        return self.config["shift"]

    @property
    def scale(self):
        return self.config["scale"]

    def latent_shape(self, image_shape):
        """(B, C, H, W) of an image batch -> (B, latent_channels, H/f, W/f) of its latent."""
        b, _, h, w = image_shape
        return (b, self.latent_channels, h // self.factor, w // self.factor)

    def _check_image(self, x):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the VAE expects images of shape (B, {self.in_channels}, H, W), got {got}")
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            f = self.factor
            raise ValueError(f"image size {h}x{w} is not divisible by the VAE's downsampling factor {f}: "
                             f"crop or resize to a multiple of {f} (e.g. {max(f, h // f * f)}x{max(f, w // f * f)})")

    def moments(self, x):
        """The encoder's Gaussian per latent value: mean and log-variance, each (B, latent_channels, H/f, W/f)."""
        self._check_image(x)
        check_input(self, x, "images", image_range=True)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def forward(self, x, gen=None):
        """Training pass: x (B, C, H, W) -> (x_hat, mean, logvar), decoding a *sampled* latent."""
        mean, logvar = self.moments(x)
        z = reparameterize(mean, logvar, gen)
        return self.decoder(z), mean, logvar

    def encode(self, x, sample=False, gen=None):
        """Images (B, C, H, W) in [-1, 1] -> scaled latents (B, latent_channels, H/f, W/f).

        sample=False returns the mean (deterministic); sample=True draws from the encoder's Gaussian.
        """
        mean, logvar = self.moments(x)
        z = reparameterize(mean, logvar, gen) if sample else mean
        return (z - self.shift) * self.scale

    def decode(self, z):
        """Scaled latents (B, latent_channels, h, w) -> images (B, C, h*f, w*f), roughly in [-1, 1]."""
        if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.shape[1] != self.latent_channels:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"decode expects latents of shape (B, {self.latent_channels}, h, w), got {got}; "
                             "make them with vae.encode(images)")
        check_input(self, z, "z")
        return self.decoder(z / self.scale + self.shift)


def reparameterize(mean, logvar, gen=None):
    """z = mean + sigma * eps with sigma = exp(logvar / 2), eps ~ N(0, I).

    Sampling written this way keeps the randomness in eps, so gradients flow to mean and logvar.
    """
    eps = torch.randn(mean.shape, generator=gen, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_divergence(mean, logvar):
    """KL( N(mean, exp(logvar)) || N(0, 1) ) per latent value, in nats (same shape as mean).

    = 0.5 * (mean^2 + var - 1 - log var): zero exactly when the encoder outputs N(0, 1), i.e.
    when the latent value says nothing about the image.
    """
    return 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar)


def kl_bits(mean, logvar):
    """The mean KL per latent value in bits (a float): roughly how much information each value carries."""
    return (kl_divergence(mean.float(), logvar.float()).mean() / math.log(2)).item()


def edge_map(x, threshold=0.05):
    """(B, C, H, W) images -> (B, 1, H, W): 1 where the 3x3 neighbourhood of a pixel changes colour
    (an object's outline, in the shapes world), 0 on flat background and flat object insides."""
    spread = F.max_pool2d(x, 3, 1, 1) + F.max_pool2d(-x, 3, 1, 1)       # max - min around each pixel
    return (spread.amax(1, keepdim=True) > threshold).to(x.dtype)


def vae_loss(model, x, gen=None, kl_weight=1e-2, recon="l1", edge_weight=0.0):
    """recon(x_hat, x) + kl_weight * KL, both per pixel value of the image.

    recon: "l1" (mean absolute error; keeps edges sharper) or "mse" (mean squared error),
    averaged over the pixel values. edge_weight > 0 counts the pixels on objects' outlines
    (`edge_map`) 1 + edge_weight times, in a weighted mean: a small shape is mostly outline, and
    its corners are what tell a plus from a diamond, yet they are a few pixels of 4,096. KL: summed over the latent values of an image and divided
    by its number of pixel values (C*H*W), in nats: the "per dimension" convention of
    likelihood models, so that a nat of information has the same price whatever the latent's
    size (a VAE with factor 16 is not charged more per nat than one with factor 4). Stable
    Diffusion's weight in this convention was 1e-6. Returns the scalar loss (for `train`).
    """
    x_hat, mean, logvar = model(x, gen)
    if recon == "l1":
        err = (x_hat.float() - x.float()).abs()                          # (B, C, H, W)
    elif recon == "mse":
        err = (x_hat.float() - x.float()).pow(2)
    else:
        raise ValueError(f"recon must be 'l1' or 'mse', got {recon!r}")
    if edge_weight:
        w = 1 + edge_weight * edge_map(x.float())                        # (B, 1, H, W)
        rec = (w * err).sum() / (w.sum() * x.shape[1])
    else:
        rec = err.mean()
    kl = kl_divergence(mean.float(), logvar.float()).flatten(1).sum(1).mean() / x[0].numel()
    return rec + kl_weight * kl


@torch.no_grad()
def measure_scale(model, images, batch_size=256):
    """Set model's latent shift and scale so that `encode(images)` has mean 0 and variance 1.

    Stable Diffusion measured the standard deviation of its latents once and stored its inverse,
    0.18215; we do the same on our data. images: (N, C, H, W) in [-1, 1]. Returns (shift, scale).
    """
    model.config.update(shift=0.0, scale=1.0)
    z = torch.cat([model.encode(images[i:i + batch_size]).float() for i in range(0, len(images), batch_size)])
    shift, std = z.mean().item(), z.std().item()
    if not std > 0:
        raise ValueError("the latents of these images do not vary (std 0); train the VAE first or pass more images")
    model.config.update(shift=shift, scale=1.0 / std)
    return shift, 1.0 / std


def psnr(x, y, data_range=2.0):
    """Peak signal-to-noise ratio per image, in dB: 10 * log10(data_range^2 / MSE).

    x, y: (B, C, H, W). data_range is max - min of the pixel scale: 2 for images in [-1, 1]
    (the course's convention), 1 for [0, 1], 255 for uint8. Returns a (B,) tensor; identical
    images give inf. 30 dB means a typical error of about 3% of the range.
    """
    if x.shape != y.shape:
        raise ValueError(f"psnr needs two batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def ssim(x, y, data_range=2.0, window=11, sigma=1.5):
    """Structural similarity per image (B,), with the usual 11x11 Gaussian window (Wang et al. 2004).

    1 means identical; it compares local means, contrasts and correlations rather than raw
    errors, so it notices blur and structure more than PSNR does.
    """
    if x.shape != y.shape:
        raise ValueError(f"ssim needs two batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.float(), y.float()
    c = x.shape[1]
    t = torch.arange(window, dtype=torch.float32, device=x.device) - (window - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = (g / g.sum())
    k = (g[:, None] * g[None, :]).expand(c, 1, window, window)       # (C, 1, win, win)

    def blur(a):
        return F.conv2d(a, k, groups=c)                              # "valid" windows only

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def quantize(z, bits, limit=5.0):
    """Round each latent value to the centre of one of 2**bits equal bins tiling [-limit, limit].

    Storing a value this way costs exactly `bits` bits. Values beyond +-limit go to the end bins.
    Scaled latents have unit variance but heavier tails than a Gaussian (about 1% lie beyond
    +-3), so the default range is +-5.
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    if not limit > 0:
        raise ValueError(f"limit must be a positive number, got {limit!r}")
    levels = 2 ** bits
    step = 2 * limit / levels
    i = torch.floor((z.clamp(-limit, limit) + limit) / step).clamp(0, levels - 1)  # which bin: 0..levels-1
    return -limit + (i + 0.5) * step                                                 # the bin's centre
