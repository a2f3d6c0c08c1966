"""Write book/08_beyond.ipynb from the cells below (outputs are made by tools/execute_notebooks.py).

    python tools/build_ch8.py                    # a fresh, unexecuted notebook: then execute it
    python tools/build_ch8.py --markdown-only    # only the text changed: keep the executed outputs

Sections 1, 2 and 4 compare checkpoints made by the recipes mnist_dit, mnist_flow, mnist_blur and
mnist_mask with the shipped mnist_unet; section 3's table is mnist_unet's card.
"""
from notebook_builder import code, exercise, md, write


code('''
# Set-up for Google Colab (does nothing elsewhere): fetch the course package and its checkpoints.
import sys
if "google.colab" in sys.modules:
    !git clone -q --depth 1 https://github.com/diffusion-from-scratch/diffusion-from-scratch /content/diffusion-from-scratch
    sys.path.insert(0, "/content/diffusion-from-scratch")
''', ["remove-cell"])

md('''
# Beyond: transformers, straight paths, faster solvers, and other ways to destroy a picture

Stable Diffusion 1 (chapter 7's blueprint) is from 2022. The large image models since then
changed three of its parts and kept the rest: the U-Net became a **transformer**
{cite}`peebles2023scalable`, the noise path became a **straight line** trained by flow
matching {cite}`lipman2023flow,liu2023flow,esser2024scaling`, and sampling takes fewer,
smarter steps with **higher-order solvers** {cite}`karras2022elucidating,lu2022dpmsolverpp`.
A fourth question is older: must the destruction be *noise* at all
{cite}`bansal2023cold`?

Each idea is a small change to the contracts this book has used since chapter 4: a noise
level sigma, a model `model(x, sigma, cond) -> eps`, one family of samplers. So each can be
tested the way the book tests everything: on the same digits, at the same cost, against
the held-out digits that no network here has seen.

**What you will learn**

- how a **diffusion transformer** (DiT) cuts a picture into patches, conditions every block
  on the noise level, and how it compares with the U-Net at the same size and training time;
- that **flow matching** is diffusion with two changes (which noise levels it trains on and
  how it weighs them), and that its Euler sampler *is* DDIM;
- what "first order" and "second order" mean for a sampler, measured on a problem whose exact
  answer we know, and what **Heun** and **DPM-Solver++** buy on MNIST, counted in network calls;
- **cold diffusion**: undoing blur or masks instead of noise, why the naive sampler fails, and
  what noise gives that these do not.
''')

code('''
import math

import matplotlib.pyplot as plt
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_course import (budget, get_device, load_mnist, seed_everything,
                              show_images, sized)
from diffusion_course import flow, noise, sampling
from diffusion_course.checkpoint import load_model, read_card
from diffusion_course.degrade import Blur, Mask, cold_sample
from diffusion_course.dit import DiT
from diffusion_course.exercises import beyond as ex
from diffusion_course.ideal import IdealDenoiser
from diffusion_course.recipes import mnist, mnist_dit

seed_everything(0)
device = get_device()
print("budget:", budget())
# (10000, 1, 28, 28) in [-1, 1]; the last 1,000 are held out
images, labels = load_mnist("test")


def gflops(model, *args):
    """GFLOPs of one call, counted by PyTorch (the same on every machine)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*args)
    return counter.get_total_flops() / 1e9
''')

md('''
## 1. A transformer as the denoiser

The U-Net of chapter 4 looks at a picture through small windows (3 x 3 convolutions) and
sees more of it only by shrinking it, level after level. A **transformer** does what chapter
5's text tower did with words: it turns the input into a sequence of **tokens** and lets every
token look at every other one, from the first layer on. For a picture, a token is a
**patch**: cut the 28 x 28 digit into 4 x 4 squares, and each of the 7 x 7 = 49 squares, its
16 pixels, becomes one vector {cite}`dosovitskiy2021image`.
''')

code('''
digit = images[[7]]                              # (1, 1, 28, 28)
p = 4
# a 7 x 7 grid of 4 x 4 patches
patches = digit.unfold(2, p, p).unfold(3, p, p)  # (1, 1, 7, 7, 4, 4)
# one row of 16 pixels per token
tokens = patches.reshape(1, 49, p * p)           # (1, 49, 16)
print("digit", tuple(digit.shape), "-> patches", tuple(patches.shape),
      "-> tokens", tuple(tokens.shape))
fig, axes = plt.subplots(7, 7, figsize=(3.6, 3.6))
for i, ax in enumerate(axes.flat):
    ax.imshow(patches[0, 0, i // 7, i % 7], cmap="gray", vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("49 tokens of 16 pixels each", fontsize=10)
plt.show()
''')

md('''
The DiT of {cite}`peebles2023scalable` (`diffusion_course/dit.py`) then works like this:

1. **Patchify**: one linear map turns each patch's 16 pixels into a vector of width 64 (the
   same map for every patch), and a learned **position** vector is added to each, so the
   network knows where the patch was.
2. **Blocks**: each block lets every patch attend to every other (self-attention, chapter 5)
   and then passes each patch through a small MLP on its own.
3. **Unpatchify**: a last linear map turns each token back into 16 pixels, put back in place.

How does the noise level get in? The U-Net *added* its embedding to the activations. A DiT
block **modulates** them: from the condition vector $c$ (the noise level's embedding plus
the class's) a small layer makes a shift, a scale and a gate for each half of the block,

$$ h = x + g_1 \\odot \\operatorname{attention}\\big(\\operatorname{LN}(x)\\,(1 + s_1) + b_1\\big), \\qquad
   y = h + g_2 \\odot \\operatorname{MLP}\\big(\\operatorname{LN}(h)\\,(1 + s_2) + b_2\\big). $$

The gates $g$ start at **zero** ("adaLN-Zero"), so every block starts as "do nothing", and
the last layer starts at zero too. With the U-Net's scaling in and out (chapter 4), an
untrained DiT is then exactly the ideal denoiser of standard Gaussian data,
$\\hat\\varepsilon = \\sigma x / (1 + \\sigma^2)$, the same sensible start as the U-Net:
''')

code('''
unet_card = read_card("mnist_unet")
dit_card = read_card("mnist_dit")
fresh = mnist_dit.make_model()  # the recipe's DiT, untrained
x, sigma = torch.randn(4, 1, 28, 28), torch.tensor([0.1, 1.0, 5.0, 80.0])
torch.testing.assert_close(fresh(x, sigma, torch.arange(4)),
                           sigma[:, None, None, None] * x
                           / (1 + sigma[:, None, None, None] ** 2))
print("untrained DiT = the Gaussian ideal denoiser: checked")
unet = load_model("mnist_unet", device=device)
dit = load_model("mnist_dit", device=device)
x1 = torch.zeros(1, 1, 28, 28, device=device)
for name, model, c in (("U-Net", unet, unet_card), ("DiT", dit, dit_card)):
    print(
        f"{name:6}: {c['parameters'] / 1e3:5.0f}k parameters, "
        f"{gflops(model, x1, 1.0, torch.tensor([3], device=device)) * 1e3:5.1f}"
        " MFLOPs per digit per call")
''')

md('''
The two networks are about the same size, but the DiT does about a quarter of the U-Net's
arithmetic per digit: its blocks work on 49 tokens, while the U-Net's first and last
convolutions visit all 784 pixels. On a CPU a training step costs about a quarter too, so in
the same training time the DiT takes more than three times as many steps. How many depends on
the machine (the ratio was 3.3 on one CPU thread and 3.7 on two), so the DiT was trained side by
side with the same U-Net (the flow-matching run of section 2), one thread each, on the same
machine at the same time: their training times below are measured under the same conditions.
Both cards are measured the same way, against the 1,000 held-out digits:
''')

code('''
def fd_row(card, key):
    r = card["metrics"]["samples"]["samplers"][key]
    return f"{r['fd']:.3f} +- {r['fd_se']:.3f}"


print(f"{'':26}{'U-Net (mnist_unet)':>22}{'DiT (mnist_dit)':>22}")
rows = [("parameters", lambda c: f"{c['parameters'] / 1e3:.0f}k"),
        ("training steps", lambda c: f"{c['settings']['steps']:,}")]
rows += [(f"FD, DDIM {k} steps", lambda c, k=k: fd_row(c, f"ddim_{k}"))
         for k in (10, 25, 50)]
rows += [("guided accuracy",
          lambda c: f"{c['metrics']['samples']['guided']['accuracy']:.3f}")]
for label, f in rows:
    print(f"{label:26}{f(unet_card):>22}{f(dit_card):>22}")
flow_card = read_card("mnist_flow")
print(f"side by side, one thread each: DiT "
      f"{dit_card['metrics']['train_seconds'] / 60:.0f} min for "
      f"{dit_card['settings']['steps']:,} steps, U-Net "
      f"{flow_card['metrics']['train_seconds'] / 60:.0f} min for "
      f"{flow_card['settings']['steps']:,} steps ({dit_card['hardware']})")
floor = unet_card["metrics"]["samples"]["samplers"]["ddim_50"]
print(f"(FD floor, real digits against real digits: {floor['fd_floor']:.3f}; "
      f"n = {floor['n']} x {floor['draws']} draws)")
''')

code('''
gen = torch.Generator(device=device)
wanted = torch.arange(20, device=device) % 10
sigmas50 = mnist.sampling_sigmas(50)
rows = [sampling.generate(m, sigmas50, (20, 1, 28, 28), "ddim", cond=wanted,
                          cfg_scale=3.0, generator=gen.manual_seed(0))
        .clamp(-1, 1).cpu() for m in (unet, dit)]
show_images(torch.cat(rows), nrow=10, size=0.9,
            title="top two rows: U-Net; bottom two: DiT (DDIM 50, guidance 3)")
''')

md('''
What does a patch look at? Every block of the DiT can record its attention weights: for each
token, how much it reads every other one. Below, for one digit at three noise levels, the
weights of the middle patch (the cross marks it) in the first and the last block:
''')

code('''
from diffusion_course.dit import attention_maps

x0 = images[[9003]].to(device)                         # a held-out digit
eps = torch.randn(x0.shape,
                  generator=torch.Generator().manual_seed(1)).to(device)
levels = (5.0, 1.0, 0.2)
fig, axes = plt.subplots(2, 4, figsize=(8.4, 4.4))
axes[0, 0].imshow(x0[0, 0].cpu(), cmap="gray")
axes[0, 0].set_title("the digit", fontsize=9)
axes[1, 0].axis("off")
for j, s in enumerate(levels, start=1):
    with attention_maps(dit) as maps, torch.no_grad():
        dit(x0 + s * eps, s, torch.tensor([int(labels[9003])], device=device))
    for row, layer in enumerate((0, len(maps) - 1)):
        # the middle token's weights over the 49 patches
        a = maps[layer][0, 24].reshape(7, 7)
        axes[row, j].imshow(a, cmap="magma")
        axes[row, j].plot(3, 3, "c+", ms=10)
        axes[row, j].set_title(f"σ = {s:g}, block {layer + 1}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
''')

md(DIT_FINDINGS := '''
(findings: written from the measured cards)
''')

md('''
## 2. Flow matching: a straight path

Flow matching {cite}`lipman2023flow`, also called **rectified flow** {cite}`liu2023flow` (the
training of Stable Diffusion 3 {cite}`esser2024scaling`), writes the way from a picture to
noise as a straight line, with a time $t$ from 0 (the picture) to 1 (pure noise),

$$ x_t = (1 - t)\\,x_0 + t\\,\\varepsilon, $$

and trains the network to predict the **velocity** along it, $v = \\mathrm{d}x_t/\\mathrm{d}t
= \\varepsilon - x_0$. It looks like a new kind of model. Divide the line by $1 - t$:

$$ \\frac{x_t}{1 - t} = x_0 + \\frac{t}{1 - t}\\,\\varepsilon = x_\\sigma
   \\quad\\text{with}\\quad \\sigma = \\frac{t}{1 - t}. $$

It is the noisy picture of chapter 3, $x_\\sigma = x_0 + \\sigma\\varepsilon$, only **scaled
down** by $1 + \\sigma$. The straight path visits the same pictures as diffusion; here is one
digit along both:
''')

code('''
ts = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
sig = flow.t_to_sigma(ts)
e = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
# the straight path
x_t = (1 - ts[:, None, None, None]) * digit + ts[:, None, None, None] * e
# chapter 3's noisy digit
x_sigma = digit + sig[:, None, None, None] * e
torch.testing.assert_close(x_t * (1 + sig[:, None, None, None]), x_sigma)
print("x_t * (1 + sigma) = x_sigma at every t: the same pictures, scaled")
show_images(torch.cat([x_t,
                       x_sigma / x_sigma.abs().amax((1, 2, 3), keepdim=True)])
            .clamp(-1, 1), nrow=6, size=1.3,
            titles=[f"t = {t:g}" for t in ts.tolist()]
                   + [f"σ = {s:.2g}" for s in sig.tolist()],
            title="top: x_t on the straight path; bottom: x_σ, scaled to fit")
''')

md('''
So what *is* new? A network that predicts the noise also predicts the velocity: with
$\\hat x_0 = x_\\sigma - \\sigma\\hat\\varepsilon$,

$$ \\hat v - v = (1 + \\sigma)\\,(\\hat\\varepsilon - \\varepsilon), $$

and flow matching's loss $\\lVert \\hat v - v\\rVert^2$ is the noise error weighted by
$(1 + \\sigma)^2$, where the course's `v_loss` weighs it by $1 + \\sigma^2$ (`flow.py` has the
algebra). Only two things differ, then:

1. **Which noise levels training draws.** Flow matching draws $t$ uniformly; the course draws
   $\\ln\\sigma$ uniformly, plus extra around $\\sigma = 2.2$ (chapter 4).
2. **How it weighs their errors**: $(1 + \\sigma)^2$ against $1 + \\sigma^2$, which differ by
   at most a factor of 2 (at $\\sigma = 1$).
''')

code('''
g = torch.Generator().manual_seed(0)
draws = {"course (mixed)":
             noise.training_sigmas(200_000, kind="mixed", generator=g,
                                   p_mean=math.log(2.2), p_std=0.6),
         "flow matching (t uniform)":
             noise.training_sigmas(200_000, kind="flow", generator=g)}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for name, s in draws.items():
    axes[0].hist(s.log10().numpy(), bins=80, density=True, histtype="step",
                 lw=1.5, label=name)
    print(f"{name:27}: share of training at sigma < 0.1: "
          f"{(s < 0.1).float().mean():.2f}, "
          f"at sigma > 10: {(s > 10).float().mean():.2f}")
axes[0].set_xlabel("log10 σ")
axes[0].set_title("which noise levels training sees", fontsize=10)
axes[0].legend(fontsize=8)
grid = torch.logspace(-2, 2, 200)
axes[1].loglog(grid, 1 + grid ** 2, label="course: 1 + σ²")
axes[1].loglog(grid, (1 + grid) ** 2, label="flow matching: (1 + σ)²")
axes[1].set_xlabel("σ")
axes[1].set_title("the weight of the noise error", fontsize=10)
axes[1].legend(fontsize=8)
plt.show()
''')

md('''
And what is the same? The sampler. Flow models sample with **Euler's method** on the
velocity, $x_{t'} = x_t + (t' - t)\\,\\hat v$, usually at evenly spaced times. Rewrite that step
with $\\sigma$ and $\\hat\\varepsilon$ and it becomes $x_{\\sigma'} = x_\\sigma + (\\sigma' -
\\sigma)\\,\\hat\\varepsilon$: **DDIM's step**. On the exact denoiser of 100 digits:
''')

code('''
ideal = IdealDenoiser(images[:100])
sigmas = noise.schedule("flow", 20)  # 20 steps evenly spaced in t
start = sigmas[0] * torch.randn(8, 1, 28, 28,
                                generator=torch.Generator().manual_seed(2))
by_flow = (flow.euler(ideal, flow.sigma_to_t(sigmas), start / (1 + sigmas[0]))
           * (1 + sigmas[-1]))
by_ddim = sampling.generate(ideal, sigmas, x=start, sampler="ddim")
torch.testing.assert_close(by_flow, by_ddim, atol=1e-5, rtol=0)
print("Euler on the flow = DDIM, to float rounding")
''')

md('''
So the question flow matching answers is a training question: do its noise levels and
weights give a better network? The recipe `python -m diffusion_course train mnist_flow`
trains the U-Net of chapter 4, the same steps and everything else equal, with only those two
changes. Its card, beside the shipped U-Net's:
''')

code('''
flow_card = read_card("mnist_flow")
flow_unet = load_model("mnist_flow", device=device)
print(f"{'FD against held-out digits':30}{'diffusion (mnist_unet)':>24}"
      f"{'flow matching (mnist_flow)':>28}")
for sampler in ("ddim", "accelerated"):
    for k in (5, 10, 25, 50):
        print(f"{f'{sampler}, {k} steps':30}"
              f"{fd_row(unet_card, f'{sampler}_{k}'):>24}"
              f"{fd_row(flow_card, f'{sampler}_{k}'):>28}")
print(f"{'guided accuracy':30}"
      f"{unet_card['metrics']['samples']['guided']['accuracy']:>24.3f}"
      f"{flow_card['metrics']['samples']['guided']['accuracy']:>28.3f}")
''')

md('''
Flow matching's promise is **straighter paths**: if the sampler's path from noise to digit
were a straight line, one Euler step would land where a hundred do. We measure how far the
one-step digit lands from the hundred-step one, from the same starting noise, for both
networks (the same sampler and schedule for both):
''')

code('''
n = sized(200, 1000)
start = 80.0 * torch.randn(
    n, 1, 28, 28, generator=torch.Generator().manual_seed(4)).to(device)
cls = torch.arange(n, device=device) % 10
for name, model in (("diffusion", unet), ("flow matching", flow_unet)):
    ends = {k: sampling.generate(model, noise.schedule("flow", k), x=start,
                                 sampler="ddim", cond=cls)
            for k in (1, 4, 100)}
    gap = {k: (ends[k] - ends[100]).flatten(1).norm(dim=1) for k in (1, 4)}
    print(f"{name:14}: distance to the 100-step digit after 1 step "
          f"{gap[1].mean():.1f} +- {gap[1].std() / n ** 0.5:.1f}, "
          f"after 4 steps {gap[4].mean():.1f} +- {gap[4].std() / n ** 0.5:.1f}"
          f"  (n = {n})")
''', ["nbval-ignore-output"])

md(FLOW_FINDINGS := '''
(findings: written from the measured cards)
''')

md('''
## 3. Faster solvers: first order and second order

Sampling solves an equation: as $\\sigma$ falls, the picture moves along
$\\mathrm{d}x/\\mathrm{d}\\sigma = \\hat\\varepsilon(x, \\sigma)$ (DDIM's step is Euler's method
for it, section 2). Euler's method assumes the slope stays what it was at the start of the
step, so its error shrinks in proportion to the step: halve the steps' size, halve the error.
That is **first order**. Two classic fixes make the error shrink like the step *squared*
(**second order**), so that halving the step quarters the error:

- **Heun** {cite}`karras2022elucidating`: take the Euler step, ask the network for the slope
  where it landed, and redo the step with the average of the two slopes. Two network calls a
  step.
- **DPM-Solver++(2M)** {cite}`lu2022dpmsolverpp`: DDIM's step moves towards the guess
  $\\hat x_0$; this one moves towards a line drawn through this step's and the previous
  step's guesses, extrapolated. One network call a step, like DDIM.

Both are in `sampling.py` as `sampler="heun"` and `sampler="dpmpp_2m"`. On data whose exact
answer we know, Gaussian data, where the sampling path has a closed form, the orders can be
measured: the error against the number of network calls, on log-log axes, falls with slope
$-1$ for first order and $-2$ for second order.
''')

code('''
mu, s = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.5  # data ~ N(mu, s^2)


class Gaussian(torch.nn.Module):
    def forward(self, x, sigma, cond=None):
        return sigma * (x - mu) / (s ** 2 + sigma ** 2)  # its exact denoiser


x_start = 80.0 * torch.randn(256, 2, generator=torch.Generator().manual_seed(0),
                             dtype=torch.float64)
exact = mu + (math.sqrt((s ** 2 + 0.01 ** 2) / (s ** 2 + 80.0 ** 2))
              * (x_start - mu))                     # the path's end, exactly
calls_per_step = {"ddim": 1, "accelerated": 1, "heun": 2, "dpmpp_2m": 1}
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for name, per in calls_per_step.items():
    steps = [8, 16, 32, 64, 128]
    err = [(sampling.generate(Gaussian(),
                              noise.schedule("loglinear", k).double(),
                              x=x_start, sampler=name) - exact)
           .norm(dim=1).mean().item() for k in steps]
    order = math.log2(err[-2] / err[-1])
    ax.loglog([per * k for k in steps], err, "o-",
              label=f"{name}: order {order:.1f}")
    print(f"{name:12} error at {steps[-1]} steps {err[-1]:.1e}, "
          f"measured order {order:.2f}")
ax.set_xlabel("network calls")
ax.set_ylabel("distance to the exact end")
ax.legend(fontsize=8)
plt.show()
''')

md(SOLVER_FINDINGS := '''
(findings on MNIST: written from the re-measured mnist_unet card)
''')

md('''
## 4. Other degradations: blur and masks

Does the destruction have to be noise? **Cold diffusion** {cite}`bansal2023cold` takes any
degradation $D(x_0, s)$ whose severity $s$ runs from 0 (the picture) to $S$ (nothing left),
trains a network $R(x_s, s) \\approx x_0$ to undo it, and generates by walking the severity
down. `degrade.py` has two: **blur** (a Gaussian that widens step by step, like heat
spreading {cite}`rissanen2023generative`) and **masking** (pixels hidden in a fixed random
order):
''')

code('''
blur, mask = Blur(steps=20), Mask(steps=20)
levels = [0, 2, 5, 10, 15, 20]
show_images(torch.cat([blur(digit, s) for s in levels]
                      + [mask(digit, s) for s in levels]).clamp(-1, 1),
            nrow=6, size=1.1,
            titles=[f"blur, s = {s}" for s in levels]
                   + [f"mask, s = {s}" for s in levels])
print("blur's width in pixels:",
      ", ".join(f"s = {s}: {blur.std(s):.1f}" for s in levels))
torch.testing.assert_close(blur(digit, 20).mean(), digit.mean())
print("the blurred digit keeps its mean ink at every severity")
''')

md('''
Two samplers walk from $x_S$ down to $x_0$. The **naive** one asks for the clean picture and
degrades it again, one severity less: $x_{s-1} = D(\\hat x_0, s - 1)$. The **improved** one
moves $x$ only by the *difference* between two severities of the guess:

$$ x_{s-1} = x_s - D(\\hat x_0, s) + D(\\hat x_0, s - 1). $$

Why does that help? The naive step throws $x_s$ away and keeps only the guess, so every
error of the network stays in the picture. The improved step keeps $x_s$ and moves it as far
as one severity step moves the guess; if the degradation were a shift, $D(x, s) = x + s\\,d$,
the guess would cancel out and the walk would be exact whatever the network says (the tests
check this). Both samplers, with the restoration networks that `mnist_blur` and `mnist_mask`
trained (the U-Net of chapter 4, as long as it was trained):
''')

code('''
blur_card, mask_card = read_card("mnist_blur"), read_card("mnist_mask")
restorers = {"blur": (load_model("mnist_blur", device=device), blur),
             "mask": (load_model("mnist_mask", device=device), mask)}
starts = {name: torch.cat([d(images[i:i + 1], d.steps)
                           for i in range(10)]).to(device)
          for name, (_, d) in restorers.items()}
wanted = torch.arange(10, device=device)
pictures, titles = [], []
for name, (model, d) in restorers.items():
    for improved in (False, True):
        pictures.append(cold_sample(model, d, starts[name], improved,
                                    cond=wanted).clamp(-1, 1).cpu())
        titles += [f"{name}, {'improved' if improved else 'naive'}"] + [""] * 9
show_images(torch.cat(pictures), nrow=10, size=0.9, titles=titles)
''')

code('''
print(f"{'':24}{'FD (held-out)':>18}{'floor':>8}{'accuracy':>10}"
      f"{'spread in a class':>19}")
u = unet_card["metrics"]["samples"]["samplers"]["ddim_50"]
print(f"{'noise (mnist_unet)':24}{u['fd']:>11.3f} +- {u['fd_se']:.3f}"
      f"{u['fd_floor']:>8.3f}{u['accuracy']:>10.3f}{'':>19}")
for name, c in (("blur", blur_card), ("mask", mask_card)):
    m = c["metrics"]["samples"]
    for kind in ("naive", "improved"):
        r = m[kind]
        print(f"{f'{name}, {kind}':24}{r['fd']:>11.3f} +- {r['fd_se']:.3f}"
              f"{r['fd_floor']:>8.3f}{r['accuracy']:>10.3f}"
              f"{r['within_class_std']:>19.3f}")
print(f"{'real held-out digits':24}{'':>18}{'':>8}{'':>10}"
      f"{blur_card['metrics']['samples']['real_within_class_std']:>19.3f}")
''')

md(COLD_FINDINGS := '''
(findings: written from the measured cards)
''')

md('''
## 5. A map of the field

| idea | where it is used |
|---|---|
| latent diffusion with a U-Net and a frozen text encoder (chapter 7) | Stable Diffusion 1 and 2, SDXL {cite}`rombach2022high` |
| a transformer as the denoiser (section 1) | DiT {cite}`peebles2023scalable`, Stable Diffusion 3 {cite}`esser2024scaling`, most video models |
| flow matching, rectified flow (section 2) | Stable Diffusion 3 {cite}`esser2024scaling` and its successors |
| higher-order and multistep solvers (section 3) | DPM-Solver++ {cite}`lu2022dpmsolverpp` and Heun {cite}`karras2022elucidating`: the usual samplers of open pipelines |
| fewer steps by distillation | consistency models {cite}`song2023consistency`: one to four network calls |
| degradations other than noise (section 4) | research: cold diffusion {cite}`bansal2023cold`, inverse heat dissipation {cite}`rissanen2023generative` |
''')

md('''
## Exercises

Each exercise has a checker that runs your function against the package's answer on fresh
random inputs. A hidden cell after each holds one solution.

**1. `patchify`**: cut pictures `(B, C, H, W)` into `p x p` patches, one token per patch, as
the DiT's first layer sees them: return `(B, N, C * p * p)` with the `N = (H / p) * (W / p)`
patches in reading order (row by row), each token listing its patch channel by channel, each
channel row by row. (Hint: `x.unfold(2, p, p).unfold(3, p, p)` gives `(B, C, H/p, W/p, p, p)`.)
''')

exercise("patchify", "x, p",
         "(B, C, H, W), patch size p -> tokens (B, N, C * p * p), reading order.", '''
    b, c, h, w = x.shape
    patches = x.unfold(2, p, p).unfold(3, p, p)       # (B, C, H/p, W/p, p, p)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
''')

md('''
**2. `velocity`**: flow matching's velocity from the course's noise estimate (section 2):
given `eps_hat` and `x_sigma`, both `(B, C, H, W)`, and the noise levels `sigma` `(B,)`,
return $\\hat v = (1 + \\sigma)\\,\\hat\\varepsilon - x_\\sigma$.
''')

exercise("velocity", "eps_hat, x_sigma, sigma",
         "(B, C, H, W), (B, C, H, W), (B,) -> (B, C, H, W) the velocity v_hat.", '''
    return (1 + sigma.view(-1, 1, 1, 1)) * eps_hat - x_sigma
''')

md('''
**3. `heun_step`**: one Heun step from `sigma` to `sigma_next` (section 3): an Euler (DDIM)
step to a trial point, then the step again from `x` with the average of the two slopes.
`eps_fn(x, sigma)` is the network's noise estimate.
''')

exercise("heun_step", "x, sigma, sigma_next, eps_fn",
         "x (B, C, H, W), two noise levels, eps_fn(x, sigma) -> x at sigma_next.", '''
    eps = eps_fn(x, sigma)
    x_trial = x - (sigma - sigma_next) * eps                # the Euler step
    return x - (sigma - sigma_next) * (eps + eps_fn(x_trial, sigma_next)) / 2
''')

md('''
**4. `cold_step`**: cold diffusion's improved step from severity `s` to `s - 1` (section 4):
given the current picture `x`, the network's guess `x0_hat` and the degradation `degrade`
(called as `degrade(x0, s)`), return $x - D(\\hat x_0, s) + D(\\hat x_0, s - 1)$.
''')

exercise("cold_step", "x, x0_hat, degrade, s",
         "x, x0_hat: (B, C, H, W); severity s -> the picture at severity s - 1.", '''
    return x - degrade(x0_hat, s) + degrade(x0_hat, s - 1)
''')

md('''
## Summary

- A **diffusion transformer** cuts the picture into patches, lets every patch attend to every
  other from the first block on, and brings the noise level in by modulating each block
  (adaLN-Zero), starting as "do nothing". It obeys the same contract as the U-Net, so nothing
  else in the book changes.
- **Flow matching** is diffusion seen at another scale: $x_t = x_\\sigma / (1 + \\sigma)$. It
  changes which noise levels training visits and how it weighs them; its Euler sampler is DDIM.
- A sampler's **order** says how fast its error falls with the step: measured on Gaussian
  data, DDIM is first order, Heun and DPM-Solver++ second. Count **network calls**, not steps.
- **Cold diffusion** undoes deterministic degradations; the improved sampler moves by
  differences of the guess, which cancels much of the network's error. Without noise, the
  variety must come from the starts, and blur and masks leave little room there.
''')

write("book/08_beyond.ipynb")
