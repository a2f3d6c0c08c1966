# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
# Set-up for Google Colab (does nothing elsewhere): fetch the course package and its checkpoints.
import sys
if "google.colab" in sys.modules:
    !git clone -q --depth 1 https://github.com/diffusion-from-scratch/diffusion-from-scratch /content/diffusion-from-scratch
    sys.path.insert(0, "/content/diffusion-from-scratch")

# %% [markdown]
# # The latent VAE: a painter that works from a 48x smaller sketch
#
# Stable Diffusion never denoises a 512x512 picture. It denoises a **latent**: a
# 64x64x4 block of numbers, 48 times smaller than the 512x512x3 image, and only at the very
# end does a *decoder* paint the picture from it. That decoder is the "painter" of this
# book's map; with its partner, the *encoder*, it forms a **variational autoencoder (VAE)**
# {cite}`kingma2014auto`, and the trick of running diffusion on its latents is what made
# Stable Diffusion cheap enough to run on a home computer {cite}`rombach2022high`.
#
# **What you will learn**
#
# - what an *autoencoder* is, and what the word *variational* adds (in plain words);
# - the *reparameterization trick*, the one line that lets a network learn to draw random numbers;
# - the *KL term*, measured in bits: how much information each latent number carries;
# - the *latent scale factor* (Stable Diffusion's mysterious `0.18215`) and how to measure your own;
# - what the four latent channels look like, and what happens between two latents;
# - how the KL weight trades sharpness against a latent that a diffusion model can use;
# - **is a 64x64x4 latent enough for a 512x512x3 image?** Reconstruction quality against the
#   compression factor, and how many bits per latent number are really needed;
# - how much cheaper one denoising step is in the latent space than in pixels, measured.

# %%
import math
import textwrap
import time

import matplotlib.pyplot as plt
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_course import budget, get_device, seed_everything, show_images, sized
from diffusion_course.checkpoint import load_model, read_card
from diffusion_course.exercises import latent_vae as ex
from diffusion_course.recipes import vae as recipe
from diffusion_course.shapes import BACKGROUND, RGB, make_scenes, render, sample_attributes
from diffusion_course.train import train
from diffusion_course.unet import AttentionBlock, UNet
from diffusion_course.vae import VAE, kl_divergence, psnr, quantize, reparameterize, ssim, vae_loss

seed_everything(0)
torch.set_printoptions(precision=3, sci_mode=False)
device = get_device()
print("budget:", budget())

# %% [markdown]
# ## 1. Why squeeze the picture at all?
#
# A diffusion model runs its denoiser (the U-Net) many times per image, typically 20 to 50
# steps, and each step processes every number of the canvas. Fewer numbers, cheaper steps.
# Here is how many numbers each canvas holds:

# %%
canvases = {"Stable Diffusion image": (3, 512, 512), "its latent": (4, 64, 64),
            "our shapes scene": (3, 64, 64), "our latent": (4, 8, 8)}
for name, (c, h, w) in canvases.items():
    print(f"{name:23s} {h:>3} x {w:>3} x {c} = {c * h * w:>7,} numbers")
print("compression:", 3 * 512 * 512 / (4 * 64 * 64), "and", 3 * 64 * 64 / (4 * 8 * 8))

# %% [markdown]
# The shapes world of this course has 64x64 scenes, so our VAE squeezes them to 8x8x4:
# the same factor 48 as Stable Diffusion, at a size a laptop can train and run. Each side
# shrinks by the **downsampling factor** $f = 8$ (64 / 8 = 8), so there are $f^2 = 64$ times
# fewer positions, and each position has 4 channels instead of 3 colours: $64 \cdot \frac{3}{4} = 48$.
#
# Here are a few scenes, drawn from a seed that the VAE never saw during training:

# %%
scenes = make_scenes(8, seed=recipe.EVAL_SEED)                   # (8, 3, 64, 64) in [-1, 1]
print(tuple(scenes.images.shape), scenes.images.dtype)
show_images(scenes.images, titles=[textwrap.fill(c, 26) for c in scenes.captions], nrow=4, size=2.3)

# %% [markdown]
# ## 2. An autoencoder in plain words
#
# An **autoencoder** is two networks back to back:
#
# - the **encoder** squeezes the image into a few numbers, the **latent** (Latin for
#   "hidden": nobody tells the network what to put there);
# - the **decoder** paints the image back from those numbers alone.
#
# Training asks only one thing: the painting should match the original. Because the latent is
# a narrow **bottleneck**, the pair must discover a compact description of the scenes, the way
# you could describe one of the scenes above in a dozen words instead of 12,288 pixel values.
#
# The course ships a trained one (`vae_shapes`, made by `python -m diffusion_course train vae`).
# Here is one scene going through it:

# %%
vae = load_model("vae_shapes")                                   # rebuilt from its card, in eval mode
card = read_card("vae_shapes")
x = scenes.images[:1]                                            # (1, 3, 64, 64)
with torch.no_grad():
    z = vae.encode(x)                                            # (1, 4, 8, 8)
    x_hat = vae.decode(z)                                        # (1, 3, 64, 64)
print("image", tuple(x.shape), "-> latent", tuple(z.shape), "-> image", tuple(x_hat.shape))


# %% tags=["hide-input"] jupyter={"source_hidden": true}
def show_pipeline(x, z, x_hat):
    """scene -> encoder -> 4 latent channels -> decoder -> decoded scene, in one row."""
    fig, axes = plt.subplots(1, 8, figsize=(12.5, 2.5),
                             gridspec_kw={"width_ratios": [1.5, 0.55, 1, 1, 1, 1, 0.55, 1.5]})
    axes[0].imshow(((x[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
    axes[0].set_title("scene\n64 x 64 x 3 = 12,288 numbers", fontsize=9)
    for k in range(4):
        axes[2 + k].imshow(z[0, k], cmap="RdBu_r", vmin=-3, vmax=3)
        axes[2 + k].set_title(f"latent channel {k}\n8 x 8", fontsize=9)
    axes[7].imshow(((x_hat[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
    axes[7].set_title("decoded\n(the painter's copy)", fontsize=9)
    for ax, word in ((axes[1], "encoder"), (axes[6], "decoder")):
        ax.axis("off")
        ax.text(0.5, 0.5, f"{word}\n⟶", ha="center", va="center", fontsize=10, transform=ax.transAxes)
    for ax in axes[[0, 2, 3, 4, 5, 7]]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("the 4 x 8 x 8 = 256 numbers in the middle are all the decoder gets "
                 "(blue: negative, red: positive)", y=0.03, fontsize=9)
    plt.show()


show_pipeline(x, z, x_hat)

# %% [markdown]
# The latent is still a small picture: a conv network keeps *where* things are, so the
# object's region of the 8x8 grid is where the latent values stand out. What the 4 channels
# mean is the network's own invention; we look at them more closely in section 7.
#
# ## 3. From autoencoder to *variational* autoencoder
#
# A plain autoencoder maps each image to one point. Nothing forces nearby points to mean
# similar images, and points between the training images may decode to garbage. That is
# bad news for a diffusion model, which will hand the decoder latents it *invented*, never
# exactly the encoder's.
#
# A **VAE** makes two changes:
#
# 1. The encoder outputs, for every latent number, a small bell curve (a Gaussian) instead of
#    a point: a **mean** $\mu$ ("about here") and a **variance** $\sigma^2$ ("give or take
#    this much"). During training the decoder receives a random draw
#    $z \sim \mathcal N(\mu, \sigma^2)$, so it learns to paint the same scene from anywhere
#    in that little cloud: nearby latents must mean similar images.
# 2. A penalty, the **KL term**, pulls every bell curve towards the standard bell
#    $\mathcal N(0, 1)$. It stops the encoder from cheating by shrinking the clouds to points
#    or pushing them far apart, and it measures how much information the latent carries.
#
# The network outputs $\log \sigma^2$ (the *log-variance*) rather than $\sigma$: any real
# number is a valid log-variance, while $\sigma$ would have to be kept positive.
#
# ### The reparameterization trick
#
# Training needs gradients: how would the loss change if $\mu$ or $\sigma$ moved a little?
# "Draw a random number from $\mathcal N(\mu, \sigma^2)$" has no such handle. The trick is to
# draw the randomness *first*, from a fixed standard bell, and then shift and stretch it:
#
# $$z = \mu + \sigma \cdot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, 1), \qquad \sigma = e^{\frac{1}{2}\log \sigma^2}.$$
#
# Now $z$ is ordinary arithmetic on $\mu$ and $\sigma$: $\partial z / \partial \mu = 1$ and
# $\partial z / \partial \sigma = \varepsilon$. Compare with PyTorch's own sampler, which gives
# no gradient at all:

# %%
mean = torch.tensor([0.5], requires_grad=True)
logvar = torch.tensor([-1.0], requires_grad=True)
eps = torch.randn(1)

z_direct = torch.normal(mean, torch.exp(0.5 * logvar))           # sample directly
z_direct.backward()
print("direct sampling:   dz/dmean =", mean.grad.item(), " dz/dlogvar =", logvar.grad.item())

mean.grad, logvar.grad = None, None
z_trick = mean + torch.exp(0.5 * logvar) * eps                   # the reparameterization trick
z_trick.backward()
print("reparameterized:   dz/dmean =", mean.grad.item(), " dz/dlogvar =", round(logvar.grad.item(), 4),
      " (by hand: 0.5 * sigma * eps =", round((0.5 * torch.exp(0.5 * logvar) * eps).item(), 4), ")")

# %% [markdown]
# The package's `reparameterize` is the same line, drawing $\varepsilon$ from a generator:

# %%
g = torch.Generator().manual_seed(0)
mean, logvar = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
torch.testing.assert_close(reparameterize(mean, logvar, torch.Generator().manual_seed(1)),
                           mean + torch.exp(0.5 * logvar) * eps)
print("reparameterize matches mean + exp(logvar / 2) * eps")

# %% [markdown]
# ### The KL term, in bits
#
# The **Kullback-Leibler divergence** (KL) measures how different one bell curve is from
# another. From the encoder's bell $\mathcal N(\mu, \sigma^2)$ to the standard bell it has a
# short formula, one per latent number:
#
# $$\mathrm{KL} = \tfrac{1}{2}\left(\mu^2 + \sigma^2 - 1 - \log \sigma^2\right) \text{ nats}.$$
#
# It is zero exactly when $\mu = 0$ and $\sigma = 1$: then the latent number is pure noise
# and says nothing about the image. A narrow bell at a definite place pins the number
# down, and that costs: each halving of $\sigma$ adds about one **bit** (divide nats by
# $\ln 2$ to get bits). This is not just an analogy: with a suitable coding scheme, the KL is
# the number of bits it takes to transmit the latent ("bits-back coding"). So the KL is the
# VAE's information budget, in the same units as a file size.

# %%
def kl_by_hand(mean, logvar):
    return 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar)       # nats, one per latent number


torch.testing.assert_close(kl_divergence(mean, logvar), kl_by_hand(mean, logvar))
for mu, sigma in [(0.0, 1.0), (0.0, 0.5), (0.0, 0.25), (2.0, 0.25), (0.0, 0.01)]:
    m, lv = torch.tensor(mu), torch.tensor(2 * math.log(sigma))
    print(f"mean {mu:4.1f}, sigma {sigma:5.2f}:  KL = {kl_by_hand(m, lv).item():6.3f} nats = "
          f"{kl_by_hand(m, lv).item() / math.log(2):6.3f} bits")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
mus = torch.linspace(-3, 3, 121)
fig, ax = plt.subplots(figsize=(6, 3.2))
for sigma in (1.0, 0.5, 0.25, 0.1):
    bits = kl_by_hand(mus, torch.full_like(mus, 2 * math.log(sigma))) / math.log(2)
    ax.plot(mus, bits, label=f"sigma = {sigma}")
ax.set_xlabel("mean of the encoder's bell curve")
ax.set_ylabel("KL (bits)")
ax.set_title("The price of a latent number: far from 0 or narrow costs bits")
ax.legend()
plt.show()

# %% [markdown]
# The training loss adds the two wishes, both counted per pixel value of the image:
#
# $$\text{loss} = \underbrace{\operatorname{mean}|x - \hat x|}_{\text{paint it back (L1)}} + \beta \cdot \underbrace{\frac{\sum \mathrm{KL}}{C \cdot H \cdot W}}_{\text{stay close to } \mathcal N(0, 1)}$$
#
# The KL is summed over all the latent numbers of an image and divided by the image's
# number of pixel values ($3 \cdot 64 \cdot 64$), so information is charged per image, at the
# same price whatever the size of the latent. The **KL weight** $\beta$ (`kl_weight`) sets the
# exchange rate: how many units of pixel error one nat of information is worth. We use the
# L1 error (mean absolute difference) because it keeps edges sharper than the squared error;
# Stable Diffusion's VAE adds a perceptual loss and an adversarial loss on top, which we skip.
#
# ## 4. The real thing: the package's VAE
#
# `diffusion_course.vae.VAE` is a small convolutional network: each stride-2 convolution halves
# the height and width while the channels grow; the decoder mirrors it with upsampling. The
# downsampling factor and the latent channels are arguments.

# %%
print(vae.config)
n_enc = sum(p.numel() for p in vae.encoder.parameters())
n_dec = sum(p.numel() for p in vae.decoder.parameters())
print(f"parameters: encoder {n_enc:,}, decoder {n_dec:,} (the painter gets more)")
h = scenes.images[:1]
with torch.no_grad():
    for layer in vae.encoder:
        h = layer(h)
        if (isinstance(layer, torch.nn.Conv2d) and layer.stride == (2, 2)) or layer is vae.encoder[-1]:
            print(f"  {type(layer).__name__:6s} stride {layer.stride[0]} -> {tuple(h.shape)}")
print("the last", h.shape[1], "channels split into mean", tuple(h[:, :4].shape), "and logvar", tuple(h[:, 4:].shape))

# %% [markdown]
# The loss written inline gives the same number as the package's `vae_loss`, when both draw
# the same noise:

# %%
x = scenes.images[:4]
loss = vae_loss(vae, x, torch.Generator().manual_seed(0), kl_weight=0.01)
with torch.no_grad():
    mean, logvar = vae.moments(x)                                 # (4, 4, 8, 8) each
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))
    x_hat = vae.decoder(z)
    kl_per_pixel = kl_by_hand(mean, logvar).sum() / len(x) / (3 * 64 * 64)     # nats per pixel value
    by_hand = (x_hat - x).abs().mean() + 0.01 * kl_per_pixel
torch.testing.assert_close(loss.detach(), by_hand)
print(f"loss {loss.item():.4f} = L1 {(x_hat - x).abs().mean().item():.4f} + 0.01 x KL {kl_per_pixel.item():.4f} "
      f"nats per pixel value ({kl_by_hand(mean, logvar).mean().item() / math.log(2):.2f} bits per latent value)")

# %% [markdown]
# ### Watching one learn
#
# Training is the course's usual loop (`train`), fed with fresh scenes every step. In the
# default run we can only afford a few dozen steps of a *small* VAE (width 8 instead of 16,
# so about 4 times cheaper per step); on a GPU this cell trains longer by itself. The shipped
# checkpoint had thousands of steps (the first line below reads them from its card).

# %%
print(f"shipped vae_shapes: {card['settings']['steps']:,} steps of {card['settings']['batch_size']} scenes, "
      f"{card['metrics']['train_seconds'] / 60:.0f} min on {card['hardware']}")
demo_steps = sized(30, 1500)


def new_scenes(gen, n=8):
    return render(sample_attributes(n, generator=gen))            # (n, 3, 64, 64), drawn on gen's device


torch.manual_seed(0)
small = VAE(width=8, enc_blocks=1, dec_blocks=1)
run = train(small, lambda m, x, g: vae_loss(m, x, g, kl_weight=0.01), new_scenes, steps=demo_steps, lr=3e-3,
            warmup=10, device=device, desc="small VAE")
small = run.model.cpu().eval()
print(f"{demo_steps} steps; loss {run.losses[0]:.3f} -> {sum(run.losses[-10:]) / 10:.3f}")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
with torch.no_grad():
    rec_small = small.decode(small.encode(scenes.images[:4])).clamp(-1, 1)
    rec_big = vae.decode(vae.encode(scenes.images[:4])).clamp(-1, 1)
fig, ax = plt.subplots(figsize=(4.5, 2.4))
ax.plot(run.losses)
ax.set_xlabel("step")
ax.set_ylabel("loss")
ax.set_title(f"small VAE, {demo_steps} steps")
plt.show()
show_images(torch.cat([scenes.images[:4], rec_small, rec_big]), nrow=4, size=1.7,
            titles=["original"] * 4 + [f"small, {demo_steps} steps"] * 4 + ["shipped vae_shapes"] * 4)

# %% [markdown]
# A few dozen steps learn the dark background and a vague blob where objects tend to be;
# sharp edges take thousands of steps. That is why the rest of the chapter uses the shipped
# checkpoint for the headline results, and the numbers its training command measured for the
# experiments that need many trained models.
#
# ## 5. How good is the painter?
#
# **PSNR** (peak signal-to-noise ratio) is the standard score of a reconstruction:
#
# $$\mathrm{PSNR} = 10 \log_{10} \frac{(\text{range of the pixel values})^2}{\text{mean squared error}} \text{ dB}.$$
#
# Our pixels live in $[-1, 1]$, a range of 2. Each 10 dB means 10 times less squared error;
# 30 dB means a typical error of about 3% of the range. **SSIM** (structural similarity)
# compares local brightness, contrast and structure instead, from -1 to 1 (identical). A
# hand-checked case first: an error of 0.1 on every pixel gives $10 \log_{10}(4 / 0.01) = 26.0$ dB.

# %%
a = torch.zeros(1, 3, 8, 8)
print("PSNR of a uniform 0.1 error:", round(psnr(a + 0.1, a).item(), 2), "dB; by hand:",
      round(10 * math.log10(4 / 0.01), 2))

n_eval = sized(48, 500)
test = make_scenes(n_eval, seed=recipe.EVAL_SEED).images           # held-out scenes
test_hat = recipe.reconstruct(vae, test)
p, s = psnr(test_hat, test), ssim(test_hat, test)
print(f"on {n_eval} held-out scenes: PSNR {p.mean():.1f} dB (worst {p.min():.1f}), SSIM {s.mean():.3f}")
t = card["metrics"]["test"]
print(f"the card, on {t['n']} held-out scenes: PSNR {t['psnr_db']:.1f} dB, SSIM {t['ssim']:.3f}; "
      f"fp16 weights: {card['metrics']['fp16_weights_psnr_db']:.1f} dB")
h = card["metrics"]["heldout_pairs"]
print(f"scenes with colour+shape pairs never seen in training: PSNR {h['psnr_db']:.1f} dB")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
order = p.argsort()
picks = torch.cat([order[:3], order[len(order) // 2 - 1:len(order) // 2 + 1], order[-3:]])   # worst, middle, best
err = (test_hat[picks] - test[picks]).abs().mean(1, keepdim=True)             # (8, 1, 64, 64)
show_images(torch.cat([test[picks], test_hat[picks], (4 * err).clamp(0, 1).expand(-1, 3, -1, -1) * 2 - 1]),
            nrow=8, size=1.5, titles=[f"{p[i]:.1f} dB" for i in picks] + ["decoded"] * 8 + ["error x 4"] * 8,
            title="original / decoded / error (bright = large): the three worst, two middle, three best")

# %% [markdown]
# The errors sit on the edges of the shapes, where one pixel goes from background to
# colour: the 8x8 latent must encode *exactly* where each edge falls, to a fraction of a pixel.
# Flat areas come back almost perfectly.
#
# ## 6. The latent scale factor: where 0.18215 comes from
#
# A diffusion model adds noise of a known size $\sigma$ to its canvas and assumes the clean
# data has a spread of about 1 (chapter 3). Latents come out of the encoder at whatever
# scale the training happened to settle on. Stable Diffusion's authors measured the standard
# deviation of their VAE's latents on data, about 5.5, and multiplied every latent by its
# inverse, **0.18215**, before diffusion (and divided by it before decoding).
#
# We do the same: `measure_scale` encodes 2,000 scenes and stores a shift (their mean) and a
# scale (one over their standard deviation) in the model's `config`, so the checkpoint's card
# carries them: `encode` returns $(z - \text{shift}) \cdot \text{scale}$ and `decode` undoes it.

# %%
print(f"shift {vae.shift:.4f}, scale {vae.scale:.4f} (measured {card['metrics']['scale_measured_on']})")
with torch.no_grad():
    raw = torch.cat([vae.moments(test[i:i + 16])[0] for i in range(0, len(test), 16)])   # unscaled means
    scaled = vae.encode(test)
print(f"raw latents:    mean {raw.mean():6.3f}, std {raw.std():.3f}")
print(f"scaled latents: mean {scaled.mean():6.3f}, std {scaled.std():.3f}   (on held-out scenes)")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
axes[0].hist(raw.flatten(), bins=80, color="0.5")
axes[0].set_title("raw latent values")
axes[1].hist(scaled.flatten(), bins=80, color="tab:blue", density=True, label="scaled latents")
grid = torch.linspace(-4, 4, 200)
axes[1].plot(grid, torch.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi), "k--", label="N(0, 1)")
axes[1].set_xlim(-4.5, 4.5)
axes[1].legend(fontsize=8)
axes[1].set_title("after shift and scale")
plt.show()

# %% [markdown]
# After scaling, the latents have mean 0 and standard deviation 1, like the noise the
# diffusion model adds. They are not a perfect bell curve: that is fine, the diffusion
# model's job is to learn their actual shape.
#
# ## 7. The four latent channels, as pictures
#
# What do the channels encode? An experiment: draw one large shape, move it from left to
# right, then change only its colour, and watch the latent.

# %%
def one_object(color, shape, x_pos, y_pos=32.0, size=1):
    """Attributes of scenes with a single object (see shapes.sample_attributes for the format)."""
    n = len(color)
    nan = torch.full((n, 1), float("nan"))
    return {"n_objects": torch.ones(n, dtype=torch.long), "relation": torch.full((n,), -1),
            "color": torch.stack([torch.tensor(color), torch.full((n,), -1)], 1),
            "shape": torch.stack([torch.tensor(shape), torch.full((n,), -1)], 1),
            "size": torch.stack([torch.full((n,), size), torch.full((n,), -1)], 1),
            "x": torch.cat([torch.tensor(x_pos, dtype=torch.float32)[:, None], nan], 1),
            "y": torch.cat([torch.full((n, 1), y_pos), nan], 1)}


moving = render(one_object([0] * 4, [0] * 4, [16.0, 27.0, 38.0, 49.0]))          # a red circle moving right
colours = render(one_object([0, 3, 5, 7], [0] * 4, [32.0] * 4))                  # red, green, blue, white
with torch.no_grad():
    z_moving, z_colours = vae.encode(moving), vae.encode(colours)
print("latent of each scene:", tuple(z_moving.shape))


# %% tags=["hide-input"] jupyter={"source_hidden": true}
def show_channels(images, latents, title):
    n = len(images)
    fig, axes = plt.subplots(n, 5, figsize=(7.5, 1.55 * n))
    for i in range(n):
        axes[i, 0].imshow(((images[i].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
        for k in range(4):
            axes[i, 1 + k].imshow(latents[i, k], cmap="RdBu_r", vmin=-3, vmax=3)
            if i == 0:
                axes[i, 1 + k].set_title(f"channel {k}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.show()


show_channels(moving, z_moving, "moving the object: its mark in the latent moves with it")
show_channels(colours, z_colours, "changing only the colour: the same place, different values per channel")

# %% [markdown]
# Two things to see. The latent is *spatial*: the object's footprint in the 8x8 grids
# follows it across the image, so a diffusion model can still think of "left" and "above"
# in the latent. And the colour is spread over the channels as a code: different colours
# give different patterns of values in the same place. No channel was told to mean
# anything; this arrangement is what the VAE found useful.
#
# Is the latent *smooth*? Walk in a straight line from the latent of one scene to another's
# and decode every stop, and compare with simply cross-fading the pixels:

# %%
a, b = scenes.images[1:2], scenes.images[2:3]
ts = torch.linspace(0, 1, 7)
with torch.no_grad():
    za, zb = vae.encode(a), vae.encode(b)
    latent_path = torch.cat([vae.decode((1 - t) * za + t * zb) for t in ts]).clamp(-1, 1)
pixel_path = torch.cat([(1 - t) * a + t * b for t in ts])

palette = torch.cat([torch.tensor([BACKGROUND]), RGB]) * 2 - 1                 # the 9 colours of the world


def on_palette(images, tol=0.15):
    """Fraction of pixels within `tol` of one of the world's 9 colours (real scenes: nearly all)."""
    d = (images.permute(0, 2, 3, 1)[..., None, :] - palette).abs().amax(-1)       # (B, H, W, 9)
    return (d.amin(-1) < tol).float().mean((1, 2))


print("t:                ", [round(t.item(), 2) for t in ts])
print("on-palette, latent:", [round(v, 2) for v in on_palette(latent_path).tolist()])
print("on-palette, pixels:", [round(v, 2) for v in on_palette(pixel_path).tolist()])

# %% tags=["hide-input"] jupyter={"source_hidden": true}
show_images(torch.cat([latent_path, pixel_path]), nrow=7, size=1.5,
            titles=[f"latent t={t:.2f}" for t in ts] + [f"pixels t={t:.2f}" for t in ts])

# %% [markdown]
# In a running notebook you can walk the path yourself, and also store the latent with
# fewer bits per value (section 9 measures what that costs); the static figure above shows
# the walk for the printed book.

# %% tags=["nbval-ignore-output", "remove-output"]
import ipywidgets as widgets


def walk(first=1, second=2, t=0.5, bits="float"):
    pair = scenes.images[[first, second]]
    with torch.no_grad():
        za, zb = vae.encode(pair).chunk(2)
        z = (1 - t) * za + t * zb
        z = z if bits == "float" else quantize(z, int(bits), limit=5.0)
        picture = vae.decode(z).clamp(-1, 1)
    show_images(torch.cat([pair[:1], picture, pair[1:]]), size=2.2,
                titles=[f"scene {first}", f"decoded at t = {t:.2f}, {bits} latent", f"scene {second}"])


widgets.interact(walk, first=widgets.IntSlider(1, 0, len(scenes) - 1),
                 second=widgets.IntSlider(2, 0, len(scenes) - 1),
                 t=widgets.FloatSlider(value=0.5, min=0, max=1, step=0.05),
                 bits=widgets.Dropdown(options=["float", "1", "2", "3", "4", "6", "8"], value="float"));

# %% [markdown]
# The two paths differ in kind. The cross-fade is a double exposure: both scenes at partial
# strength, in washed-out shades the world never uses. The latent path goes through the
# decoder, which paints what it learned to paint, so in-between latents tend to come out as
# objects (sometimes in another of the world's colours, sometimes shrinking or fading) rather
# than as see-through ghosts. The "on-palette" score puts a number on it: the fraction of
# pixels that have one of the world's nine colours (a real scene scores close to 1; its only
# off-palette pixels are the anti-aliased edges). Where the latent path scores higher, the
# decoder is pulling the in-between latents towards things it knows how to paint.
#
# ## 8. The KL weight: too little, too much
#
# The KL weight $\beta$ sets how much the VAE may store. To see its effect we need several
# VAEs, each trained for a while, which is too much for a notebook's default run. The recipe
# that made the shipped checkpoint therefore also trained seven *shorter runs* (the same
# network, with fewer steps than the shipped one; the cell prints how many) and recorded what
# it measured in the card. On a GPU this notebook trains them again itself.

# %%
settings = card["settings"]
if budget() == "full":                                              # GPU: measure them here
    sweep = recipe.sweep(device, settings["sweep_steps"], settings["sweep_width"], settings["sweep_batch_size"])
    source = "trained just now"
else:
    sweep = card["metrics"]["sweep"]
    source = f"from the card of vae_shapes ({card['hardware']})"
print(f"{len(sweep)} shorter runs ({sweep[0]['steps']} steps of {sweep[0]['batch_size']} scenes each), {source}")
kl_rows = sorted([r for r in sweep if r["factor"] == 8], key=lambda r: r["kl_weight"])
print(f"{'KL weight':>9} {'PSNR':>5} {'bits/value':>10} {'bits per channel':>20} {'enc. noise':>10} {'nudge cost':>10}")
for r in kl_rows:
    channels = " ".join(f"{b:4.1f}" for b in r["kl_bits_per_channel"])
    print(f"{r['kl_weight']:>9g} {r['psnr_db']:>5.1f} {r['kl_bits_per_latent_value']:>10.2f} {channels:>20} "
          f"{r['encoder_noise_std']:>10.2f} {r['psnr_db'] - r['psnr_db_nudged']:>7.2f} dB")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
w = [max(r["kl_weight"], 1e-3) for r in kl_rows]
axes[0].semilogx(w, [r["psnr_db"] for r in kl_rows], "o-", label="decode(encode(x))")
axes[0].semilogx(w, [r["psnr_db_nudged"] for r in kl_rows], "s--",
                 label=f"latent nudged by noise of std {kl_rows[0]['nudge']}")
axes[0].set_ylabel("PSNR (dB)")
axes[0].legend(fontsize=8)
axes[1].semilogx(w, [r["kl_bits_per_latent_value"] for r in kl_rows], "o-", color="tab:purple")
axes[1].set_ylabel("KL (bits per latent value)")
for ax in axes:
    ax.set_xlabel("KL weight (0 drawn at 0.001)")
fig.suptitle(f"factor 8, {kl_rows[0]['steps']} training steps each: what the KL weight buys and costs")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the table from the bottom (the heaviest weight) up:
#
# - **Too much KL.** Storing information is so expensive that the encoder stops using the
#   latent: the bits fall towards 0 and whole channels switch off (a channel at 0 bits outputs
#   the standard bell curve for every image, so it carries nothing; this is called
#   *posterior collapse*). The decoder then paints one average, blurry scene whatever the
#   input, and the PSNR falls to the score of that average scene. Moderate weights switch off
#   channels one by one: the VAE keeps only the information that pays for itself.
# - **No KL.** Nothing limits the bits, and every channel stores the most. The encoder's bell
#   curves narrow (the "enc. noise" column is their $\sigma$ in units of the latent's spread;
#   for a switched-off channel it is large, because that channel's spread is tiny), so the
#   decoder is trained on nearly exact points.
# - **The nudge cost** stands in for what a diffusion model will do to the decoder: the latents
#   it generates are never exactly an encoder's output, so we add noise of standard deviation
#   0.3 to the latent and record the PSNR lost. A decoder that has only seen exact points has
#   no reason to be forgiving; one trained on wider clouds has learned to be. Read this column
#   top to bottom.
#
# So the weight is a dial between two failures: too high and the latent forgets the picture
# (blur); too low and the VAE spends bits it does not need on a latent whose decoder has only
# ever seen exact points. In our world the low end costs little: dropping the KL altogether
# buys a fraction of a dB and spends far more bits, which is why a small weight, 0.01 here,
# is a safe choice.
# Stable Diffusion sits at the very low end: its weight, in this same per-pixel convention,
# was $10^{-6}$, just enough to stop the latent values from drifting without bound. Its
# latents still came out with a standard deviation of about 5.5, which is exactly why it
# needed the scale factor of section 6.
#
# ## 9. Is a 64x64x4 latent enough for a 512x512x3 image?
#
# Three measurements answer it for our world: quality against the compression factor, the
# same for the best *linear* compression with the same number of values, and how many bits
# each latent value really needs.
#
# ### Quality against the compression factor
#
# The same shorter runs trained VAEs with $f = 4$ (a 16x16x4 latent, 12 times fewer numbers),
# $f = 8$ (8x8x4, 48 times) and $f = 16$ (4x4x4, 192 times). As a baseline, **PCA**
# (principal component analysis) is the best possible *linear* encoder-decoder pair for
# the squared error: it keeps the $k$ directions along which a set of training scenes
# varies most, and the latent is the $k$ coordinates along them. It needs no training, only
# one matrix factorization, so we compute it right here.

# %%
train_flat = make_scenes(sized(1200, 3000), seed=1).images.flatten(1)       # (N, 12288), not the test seed
center = train_flat.mean(0)
X = train_flat - center
# The principal directions are the right singular vectors of X. With fewer scenes than pixels it is
# cheaper to get them from the N x N matrix of dot products between scenes: X X^T = U S^2 U^T.
eigvals, U = torch.linalg.eigh((X @ X.T).double())                        # ascending order
U, S = U.flip(1).float(), eigvals.flip(0).clamp_min(1e-6).sqrt().float()
Vh = (U.T @ X) / S[:, None]                                                # (N, 12288): rows = directions


def pca_reconstruct(images, k):
    codes = (images.flatten(1) - center) @ Vh[:k].T                   # (N, k): the "latent"
    return (codes @ Vh[:k] + center).view_as(images).clamp(-1, 1)


def pca_psnr(images, k):
    return psnr(pca_reconstruct(images, k), images).mean().item()


f_rows = sorted([r for r in sweep if r["kl_weight"] == recipe.DEFAULTS["kl_weight"]], key=lambda r: r["factor"])
print(f"{'factor':>6} {'latent':>9} {'compression':>12} {'VAE PSNR':>9} {'PCA PSNR':>9}")
for r in f_rows:
    k = 12288 // round(r["compression"])
    print(f"{r['factor']:>6} {'x'.join(map(str, r['latent_shape'])):>9} {r['compression']:>11g}x "
          f"{r['psnr_db']:>9.1f} {pca_psnr(test, k):>9.1f}")
print(f"shipped vae_shapes (f=8, {card['settings']['steps']} steps of {card['settings']['batch_size']} scenes): "
      f"{card['metrics']['test']['psnr_db']:.1f} dB")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
ks = [16, 32, 64, 128, 256, 512, 1024]
fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.semilogx([12288 / k for k in ks], [pca_psnr(test, k) for k in ks], "s--", color="0.5", label="PCA (linear)")
ax.semilogx([r["compression"] for r in f_rows], [r["psnr_db"] for r in f_rows], "o-",
            label=f"VAEs, {f_rows[0]['steps']} steps each")
ax.semilogx([48], [card["metrics"]["test"]["psnr_db"]], "*", ms=14, color="tab:red", label="shipped vae_shapes")
ax.set_xticks([12, 48, 192, 768], ["12", "48", "192", "768"])
ax.set_xlabel("compression factor (pixel values / latent values)")
ax.set_ylabel("PSNR on held-out scenes (dB)")
ax.legend(fontsize=8)
plt.show()

# %% tags=["hide-input"] jupyter={"source_hidden": true}
show_images(torch.cat([test[:6], pca_reconstruct(test[:6], 256), test_hat[:6]]), nrow=6, size=1.5,
            titles=["original"] * 6 + ["PCA, 256 values"] * 6 + ["VAE, 256 values"] * 6)

# %% [markdown]
# Both curves fall as the squeeze tightens. With the same 256 numbers, compare the two
# rows of pictures: PCA can only add up fixed patterns, so it paints ghostly, smeared
# shapes with halos (our scenes are mostly flat background, which is why its PSNR is
# not worse), while the nonlinear VAE can say "a small red circle *here*" and paint crisp
# edges. The shorter runs show the trend across factors; the shipped VAE shows what longer
# training of the f = 8 model reaches. (The PCA numbers are measured on the held-out scenes
# of section 5, the VAE numbers on the recipe's 500 held-out scenes.)
#
# ### How many bits does a latent value need?
#
# A latent value is stored as a 32-bit float, but surely it does not need all 32 bits. Round
# every (scaled) latent value to one of $2^k$ evenly spaced levels and decode. The levels
# span -5 to 5: the scaled latents have spread 1, but their tails are heavier than a bell
# curve's (the histogram of section 6), and clipping the rare large values costs more than
# coarser levels.

# %%
LIMIT = 5.0
n_bits = sized(16, 200)
x_q = test[:n_bits]
with torch.no_grad():
    z_q = vae.encode(x_q)
    full = psnr(vae.decode(z_q).clamp(-1, 1), x_q).mean().item()
    bit_rows = [(k, psnr(vae.decode(quantize(z_q, k, LIMIT)).clamp(-1, 1), x_q).mean().item())
                for k in (1, 2, 3, 4, 6, 8)]
print(f"latent values beyond +-3: {(z_q.abs() > 3).float().mean():.1%}, beyond +-{LIMIT:g}: "
      f"{(z_q.abs() > LIMIT).float().mean():.1%}")
for k, value in bit_rows:
    print(f"{k} bits per value: PSNR {value:5.1f} dB   ({256 * k:>5,} bits = {256 * k // 8:>4} bytes per scene)")
print(f"32-bit floats:    PSNR {full:5.1f} dB   ({256 * 32:>5,} bits)")
kl_card = card["metrics"]["test"]["kl_bits_per_latent_value"]
print(f"the encoder's own information estimate (KL): {kl_card:.2f} bits per value")
print(f"the scene itself: 12,288 values x 8 bits = {12288 * 8:,} bits")

# %% tags=["hide-input"] jupyter={"source_hidden": true}
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.plot([k for k, _ in bit_rows], [v for _, v in bit_rows], "o-", label="quantized latent")
ax.axhline(full, color="0.4", ls="--", label="32-bit float latent")
ax.set_xlabel("bits per latent value")
ax.set_ylabel("PSNR (dB)")
ax.legend(fontsize=8)
plt.show()
with torch.no_grad():
    row = [vae.decode(quantize(z_q[:1], k, LIMIT)).clamp(-1, 1) for k in (1, 2, 3, 4)]
    row.append(vae.decode(z_q[:1]).clamp(-1, 1))
show_images(torch.cat([x_q[:1]] + row), titles=["original", "1 bit", "2 bits", "3 bits", "4 bits", "float"], size=1.7)

# %% [markdown]
# A few bits per value recover nearly all of the float quality: the 256 numbers of our
# latent hold on the order of a kilobit, about 1% of the raw scene's bits. The KL, the
# encoder's own information budget, lands in the same few-bits range.
#
# **The answer to the question.** Yes, for pictures like these: a latent 48 times smaller
# keeps what matters, because an image is mostly redundancy (flat areas, smooth edges) and
# the latent stores *descriptions*, a few bits each, not pixels. The squeeze has a price,
# and it shows up exactly where you would expect: in the finest details (here the edges;
# in photos, small text and faces). Real photos have far more detail than our shapes:
# Stable Diffusion's own VAE reconstructs COCO photos at about 23.4 dB PSNR (its model card
# reports 23.4 for the original kl-f8 autoencoder and 24.5 after fine-tuning the decoder),
# well below what our simple world allows, which is why Stable Diffusion's decoder is a
# large network trained with perceptual and adversarial losses, and why later models moved
# to 16-channel latents for sharper text.
#
# ## 10. Diffusion in the latent versus in pixels: the cost of one step
#
# Now the payoff. Take one U-Net (the course's `UNet`, the same settings both times) and
# run one denoising step on a 64x64x3 scene and on its 8x8x4 latent. We count the
# floating-point operations (FLOPs: one multiply or add each) with PyTorch's `FlopCounterMode`,
# the **activations** (the numbers the layers produce, which training must keep in memory,
# attention maps included), and the time.

# %%
def make_unet(channels_in):
    return UNet(in_channels=channels_in, channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)).eval()


def count(model, *inputs):
    """FLOPs and activations (numbers output by the leaf layers, plus attention maps) of one call."""
    total = 0

    def leaf(module, args, out):
        nonlocal total
        total += out.numel()

    def attention(module, args):
        nonlocal total
        b, c, h, w = args[0].shape
        total += b * module.heads * (h * w) ** 2                   # one (HW x HW) map per head

    hooks = [m.register_forward_hook(leaf) for m in model.modules() if not list(m.children())]
    hooks += [m.register_forward_pre_hook(attention) for m in model.modules() if isinstance(m, AttentionBlock)]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    for hk in hooks:
        hk.remove()
    return counter.get_total_flops(), total


def median_time(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


costs = {}
for name, shape in {"pixels 64x64x3": (1, 3, 64, 64), "latent 8x8x4": (1, 4, 8, 8)}.items():
    net, x_in = make_unet(shape[1]), torch.randn(shape)
    costs[name] = count(net, x_in, torch.ones(1))
    print(f"{name:15s} {costs[name][0] / 1e9:7.3f} GFLOPs, {costs[name][1] / 1e6:6.2f} M activations")
ratio = costs["pixels 64x64x3"][0] / costs["latent 8x8x4"][0]
print(f"one step in pixels costs {ratio:.0f}x the FLOPs of one step in the latent")

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    net_px, net_lat = make_unet(3), make_unet(4)
    t_px = median_time(lambda: net_px(torch.randn(1, 3, 64, 64), torch.ones(1)))
    t_lat = median_time(lambda: net_lat(torch.randn(1, 4, 8, 8), torch.ones(1)))
    t_dec = median_time(lambda: vae.decode(torch.randn(1, 4, 8, 8)), repeats=3)
print(f"one U-Net step on {device.type}: pixels {1000 * t_px:.1f} ms, latent {1000 * t_lat:.1f} ms "
      f"({t_px / t_lat:.0f}x); one VAE decode: {1000 * t_dec:.1f} ms")

# %% [markdown]
# The latent step is cheaper roughly in proportion to the number of positions: 64x64 = 4,096
# against 8x8 = 64, a factor 64 (the small U-Net's fixed costs and the attention level make
# the measured time ratio smaller or larger than that; the timings depend on your machine).
#
# At Stable Diffusion's size the gap widens, because self-attention compares every position
# with every other, so its cost grows with the *square* of the number of positions. We can
# count the FLOPs of a 512x512 step without computing it, on PyTorch's `meta` device (tensors
# with a shape but no numbers):

# %%
with torch.device("meta"):
    big = {"pixels 512x512x3": count(make_unet(3), torch.randn(1, 3, 512, 512), torch.ones(1)),
           "latent 64x64x4": count(make_unet(4), torch.randn(1, 4, 64, 64), torch.ones(1)),
           "VAE decoder 64x64x4 -> 512x512x3": count(VAE(**{**vae.config, "shift": 0.0, "scale": 1.0}).decoder,
                                                    torch.randn(1, 4, 64, 64))}
for name, (flops, acts) in big.items():
    print(f"{name:33s} {flops / 1e9:9.1f} GFLOPs, {acts / 1e6:9.1f} M activations")
steps = 50
pixel_total = steps * big["pixels 512x512x3"][0]
latent_total = steps * big["latent 64x64x4"][0] + big["VAE decoder 64x64x4 -> 512x512x3"][0]
print(f"{steps} steps: pixels {pixel_total / 1e12:.1f} TFLOPs; latent + one decode {latent_total / 1e12:.2f} TFLOPs "
      f"({pixel_total / latent_total:.0f}x less)")

# %% [markdown]
# With the same small U-Net, 50 steps at 512x512 in pixels cost two orders of magnitude more
# than 50 steps on the 64x64x4 latent plus one decode, and the attention maps alone
# would need gigabytes of memory. The decoder runs once per image, so its cost is shared
# by all the steps. That is the whole case for latent diffusion: let the VAE do the
# pixel-level painting once, and spend the many denoising steps on a small canvas that
# holds only what the picture *is*.
#
# ## Exercises
#
# Write each function in its cell, run it, then run the checker below it: it tries your
# function on fresh random inputs and answers in one line. The reference solution is in
# the collapsed cell after each checker.
#
# **1. `reparameterize`**: given the encoder's `mean` and `logvar` and standard normal
# noise `eps` (all the same shape), return a sample $z = \mu + \sigma \varepsilon$. Careful:
# the network outputs the log of the *variance*.

# %%
def reparameterize_mine(mean, logvar, eps):
    """mean, logvar, eps: same shape -> z = mean + sigma * eps."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex.check_reparameterize(reparameterize_mine)


# %% tags=["hide-input"] jupyter={"source_hidden": true}
def reparameterize_solution(mean, logvar, eps):
    return mean + torch.exp(0.5 * logvar) * eps                    # sigma = sqrt(var) = exp(logvar / 2)


ex.check_reparameterize(reparameterize_solution)


# %% [markdown]
# **2. `kl_per_value`**: the KL divergence from $\mathcal N(\mu, \sigma^2)$ to
# $\mathcal N(0, 1)$ in nats, for every latent value: $\frac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$,
# given `mean` and `logvar`.

# %%
def kl_per_value(mean, logvar):
    """mean, logvar: same shape -> KL in nats, same shape."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex.check_kl_per_value(kl_per_value)


# %% tags=["hide-input"] jupyter={"source_hidden": true}
def kl_per_value_solution(mean, logvar):
    return 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar)


ex.check_kl_per_value(kl_per_value_solution)


# %% [markdown]
# **3. `psnr_per_image`**: the PSNR in dB of each pair of images `x[b]`, `y[b]`, shapes
# `(B, C, H, W)`, pixels in $[-1, 1]$ (so the range is 2). Return a `(B,)` tensor: one
# number per image, the mean squared error taken over that image only.

# %%
def psnr_per_image(x, y):
    """x, y: (B, C, H, W) in [-1, 1] -> (B,) PSNR in dB."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex.check_psnr(psnr_per_image)


# %% tags=["hide-input"] jupyter={"source_hidden": true}
def psnr_per_image_solution(x, y):
    mse = (x - y).pow(2).flatten(1).mean(1)                        # (B,)
    return 10 * torch.log10(2.0 ** 2 / mse)


ex.check_psnr(psnr_per_image_solution)


# %% [markdown]
# **4. `quantize_latent`**: split $[-\text{limit}, \text{limit}]$ into $2^{\text{bits}}$ equal
# bins and replace every value of `z` by the centre of its bin (values beyond the ends go to
# the end bins). With `bits=1, limit=3` every value becomes -1.5 or 1.5. This is how the
# bits experiment of section 9 stored the latent in `bits` bits per value.

# %%
def quantize_latent(z, bits, limit):
    """z: any shape -> same shape, each value replaced by its bin's centre."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex.check_quantize(quantize_latent)


# %% tags=["hide-input"] jupyter={"source_hidden": true}
def quantize_latent_solution(z, bits, limit):
    step = 2 * limit / 2 ** bits                                   # width of one bin
    i = torch.floor((z.clamp(-limit, limit) + limit) / step).clamp(0, 2 ** bits - 1)   # bin number
    return -limit + (i + 0.5) * step


ex.check_quantize(quantize_latent_solution)

# %% [markdown]
# ## Summary
#
# - An **autoencoder** squeezes an image through a small **latent** and paints it back; a
#   **VAE** makes the encoder output a bell curve per latent value and decodes random draws
#   from it, so that nearby latents mean similar images.
# - The **reparameterization trick**, $z = \mu + \sigma\varepsilon$, moves the randomness into
#   $\varepsilon$ so gradients reach $\mu$ and $\sigma$; sampling directly gives no gradient.
# - The **KL term** $\frac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$ is the information the latent
#   carries, in nats (divide by $\ln 2$ for bits). Its weight trades sharpness (too much KL:
#   blur) against a latent that is tame and forgiving of small errors (no KL: a decoder that
#   only knows exact points).
# - The **latent scale factor** (Stable Diffusion's 0.18215) is measured from data so that
#   latents have spread 1, like the diffusion noise; our checkpoint stores its own in its card.
# - **Is 64x64x4 enough for 512x512x3?** For our world: an 8x8x4 latent (the same factor 48)
#   reconstructs held-out scenes at the PSNR printed in section 5, far above the best linear
#   code of the same size, and a few bits per latent value suffice. The price is paid in
#   fine detail, which is why Stable Diffusion's VAE reaches only about 23-25 dB on photos.
# - One denoising step on the latent costs about 64 times fewer FLOPs than on the pixels
#   here, and over 100 times fewer at Stable Diffusion's size, where attention's quadratic
#   cost bites: the reason latent diffusion runs on a home computer.
#
# Next: the full pipeline, where a text encoder, a U-Net in this latent space and this
# VAE's decoder come together into a text-to-image model.
