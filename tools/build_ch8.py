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
from diffusion_course.recipes import mnist, mnist_blur, mnist_dit

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
print(f"trained side by side on {dit_card['hardware']}:\\n"
      f"  DiT {dit_card['metrics']['train_seconds'] / 60:.0f} min for "
      f"{dit_card['settings']['steps']:,} steps, U-Net "
      f"{flow_card['metrics']['train_seconds'] / 60:.0f} min for "
      f"{flow_card['settings']['steps']:,} steps")
floor = unet_card["metrics"]["samples"]["samplers"]["ddim_50"]
print(f"(FD floor, real digits against real digits: {floor['fd_floor']:.3f}; "
      f"n = {floor['n']} x {floor['draws']} draws)")
''')

md('''
Is that a verdict, or a snapshot? Perhaps the DiT only learns more slowly and would catch up.
Each model's run was also stopped on the way (the same training command with fewer steps; a
run continued to more steps is the same run), and every stop measured the same way. The time
axis is each stop's steps at the seconds per step of the two full runs above:
''')

code('''
import json

from diffusion_course.checkpoint import REPO_ROOT

curve = json.loads(
    (REPO_ROOT / "checkpoints" / "curves" / "dit_vs_unet.json").read_text())
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
print(f"{'':7}{'steps':>8}{'minutes':>9}{'FD, DDIM 10':>16}{'guided acc.':>13}")
for name, label in (("unet", "U-Net"), ("dit", "DiT")):
    stops = curve["models"][name]["stops"]
    t = [r["minutes"] for r in stops]
    ax1.errorbar(t, [r["fd"] for r in stops], [2 * r["fd_se"] for r in stops],
                 marker="o", capsize=3, label=label)
    ax2.plot(t, [r["guided_accuracy"] for r in stops], marker="o", label=label)
    for r in stops:
        print(f"{label:7}{r['steps']:>8,}{r['minutes']:>9.0f}"
              f"{r['fd']:>9.3f} +- {r['fd_se']:.3f}"
              f"{r['guided_accuracy']:>13.3f}")
floor = curve["models"]["unet"]["stops"][0]["fd_floor"]
ax1.axhline(floor, color="gray", ls=":", label="floor (real digits)")
ax1.set(xscale="log", yscale="log",
        xlabel="training minutes (one CPU thread)",
        ylabel="FD (lower is better)", title="FD, DDIM 10 steps (± 2 SE)")
ax2.set(xscale="log", xlabel="training minutes (one CPU thread)",
        ylabel="accuracy", title="guided accuracy (DDIM 50, scale 3)")
ax1.legend(fontsize=8)
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()
''')

md(CURVE_FINDINGS := '''
**The U-Net is ahead at every stop, and the DiT is catching up.** After about ten minutes the
U-Net's digits are already close to real ones (FD 0.32 ± 0.02) while the DiT's are not (5.2 ±
0.1): without guidance it draws speckled scribbles, which guidance turns into rough but readable
digits (accuracy 0.98). The DiT then improves much
faster: its FD falls twentyfold while the U-Net's falls by half, and the gap shrinks from 16
times to 2.6 times (at about 35 minutes) to 1.5 times (0.26 ± 0.02 against 0.17 ± 0.01 at the
end). The DiT needed between 4 and 11 times the U-Net's ten minutes to draw digits as close to
real ones. Would it overtake with more time? The U-Net has nearly stopped improving (0.19 →
0.17 over the last tripling of time) and the DiT has not (0.49 → 0.26), but three points do not
say where two curves cross, so we do not claim it. Guided accuracy tells the two apart only at
the first stop: guidance makes readable digits long before they look real, which is why FD is
the measure here. (These stops were measured by `tools/ch8_curve.py`, which made the runs with
the recipes' own training command and wrote `checkpoints/curves/dit_vs_unet.json`, read above.)
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

md('''
Is one digit typical? Over 200 held-out digits at $\\sigma = 1$, how much of each patch's
attention lands on itself, on its four nearest patches (up, down, left, right), and how far
away it looks on average (in patches; "spread evenly" is a patch that reads all 49 alike):
''')

code('''
x0_held = images[9000:9200].to(device)                    # (200, 1, 28, 28)
y_held = labels[9000:9200].to(device)
e = torch.randn(x0_held.shape,
                generator=torch.Generator().manual_seed(0)).to(device)
grid = torch.arange(49, device=device)
row, col = grid // 7, grid % 7
# (49, 49): how many patches apart two patches are (across plus up/down)
apart = (row[:, None] - row[None]).abs() + (col[:, None] - col[None]).abs()
with attention_maps(dit) as maps, torch.no_grad():
    dit(x0_held + 1.0 * e, 1.0, y_held)
evenly = torch.full((1, 49, 49), 1 / 49, device=device)
print(f"{'':16}{'on itself':>10}{'on its 4 nearest':>18}{'mean distance':>15}")
for name, a in [("spread evenly", evenly)] + [
        (f"block {i + 1}", m) for i, m in enumerate(maps)]:
    print(f"{name:16}{(a * (apart == 0)).sum(-1).mean():10.2f}"
          f"{(a * (apart == 1)).sum(-1).mean():18.2f}"
          f"{(a * apart).sum(-1).mean():15.2f}")
''')

md('''
Where does the DiT lose? One way to look: give both networks the same 200 held-out digits,
noised to the same levels with the same noise, and measure how far each one's guess of the
clean digit, $\\hat x_0 = x_\\sigma - \\sigma\\hat\\varepsilon$, lands from the truth (the
root mean square over pixels; pixels run from -1 to 1). And the speed of one call, measured
here and now (so it differs from machine to machine):
''')

code('''
levels = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0)
print(f"{'x0 error at sigma =':20}" + "".join(f"{s:>7g}" for s in levels))
mse = {}                                         # (levels, 200): per digit
for name, model in (("U-Net", unet), ("DiT", dit)):
    with torch.no_grad():
        mse[name] = torch.stack([
            (s * (model(x0_held + s * e, s, y_held) - e)).pow(2).mean((1, 2, 3))
            for s in levels]).cpu()
    print(f"{name:20}" + "".join(f"{v:7.3f}" for v in mse[name].mean(1).sqrt()))
ratio = (mse["DiT"].mean(1) / mse["U-Net"].mean(1)).sqrt()
# its error bar: the same ratio on 1,000 resamples of the 200 digits
pick = torch.randint(0, 200, (1000, 200),
                     generator=torch.Generator().manual_seed(0))
boot = (mse["DiT"][:, pick].mean(-1) / mse["U-Net"][:, pick].mean(-1)).sqrt()
print(f"{'DiT / U-Net':20}" + "".join(f"{r:7.2f}" for r in ratio))
print(f"{'  ± 2 SE (n = 200)':20}"
      + "".join(f"{2 * b:7.2f}" for b in boot.std(1)))
''')

code('''
import time

batch = torch.randn(256, 1, 28, 28, device=device)
cond = torch.arange(256, device=device) % 10
for name, model in (("U-Net", unet), ("DiT", dit)):
    with torch.no_grad():
        model(batch, 1.0, cond)                                    # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            model(batch, 1.0, cond)
            times.append(time.perf_counter() - t0)
    print(f"{name:6}: {256 / min(times):7.0f} digits per second"
          f" per network call on {device}")
''', ["nbval-ignore-output"])

md(DIT_FINDINGS := '''
**Which wins here: the U-Net.** At about the same size (321k parameters against 281k) and the
same training time, side by side on one machine (112 minutes for the DiT's 60,000 steps, 102 for
the U-Net's 18,000), the DiT's digits are as recognisable when guided (accuracy 1.00 for both),
but further from real digits: FD 0.26 ± 0.02 against 0.17 ± 0.01 at 10 DDIM steps. More steps do
not help it; they hurt (DDPM: 0.21 ± 0.01 at 10 steps, 0.29 ± 0.01 at 50, where the U-Net goes
from 0.20 to 0.16). The per-level error above shows only a small gap: the DiT's guess is 4 to 8%
further off (± 1%) at every level up to σ = 2, where a digit's strokes are decided, and as good
above.
Why its samples get worse with more steps we have measured but not explained. It is not one
range of noise levels: handing either half to the U-Net (the DiT above σ = 1 and the U-Net
below, or the other way round) removes the growth (DDPM 10 → 50 steps: 0.18 → 0.18 and 0.20 →
0.20, ± 0.01; `tools/ch8_switch.py`), so it takes the DiT's errors at both ends together.

**Why, at this scale.** A convolution builds in two facts about pictures: nearby pixels belong
together, and a stroke looks the same wherever it is. A transformer starts knowing neither:
every patch may read every other one, and where a patch sits is only a learned vector. It must
learn locality from the data, and the attention table shows that it did: its last block puts
about two thirds of each patch's attention on the four nearest patches (the plus-shaped maps in the
figure), where attention spread evenly would put 0.07, while its first blocks look across the
whole digit. Learning what the U-Net is given costs data and steps (the curve: the DiT needed
several times the U-Net's training time to reach the same FD); with 9,000 digits and two hours
of one CPU thread, the built-in assumption wins.

**What changes at scale.** With enough data and compute, the assumptions a convolution builds in
stop helping, and a transformer keeps improving as it gets more compute, in a steady way:
Peebles & Xie measured sample quality improving steadily with a DiT's GFLOPs
{cite}`peebles2023scalable`. Transformers also take text and other inputs as more tokens and
spread over many GPUs with well-worn tools. That is why Stable Diffusion 3
{cite}`esser2024scaling` and most video models are transformers, and why a digit model of 300k
parameters is not where they shine.
''')

md('''
**And a prompt?** A class is one vector, so it simply joins the noise level in $c$. A prompt is
a sequence of word vectors, and it gets into a DiT the way it got into chapter 7's U-Net: a DiT
made with `context_dim` has in every block a **cross-attention** layer between the
self-attention and the MLP, in which the patches ask and the words answer, as in PixArt-α
{cite}`chen2024pixart` (Stable Diffusion 3 instead puts word tokens and patch tokens into one
sequence {cite}`esser2024scaling`). Such a DiT takes the U-Net's place in chapter 7's
`TextToImage` unchanged (the package's tests check it); this chapter stays with digits.
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
            titles=[f"t = {t:g}\\nσ = {s:.2g}"
                    for t, s in zip(ts.tolist(), sig.tolist())] + [""] * 6,
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
print(f"{'share of training steps':27}{'sigma < 0.1':>13}{'sigma > 10':>13}")
for name, s in draws.items():
    axes[0].hist(s.log10().numpy(), bins=80, density=True, histtype="step",
                 lw=1.5, label=name)
    print(f"{name:27}{(s < 0.1).float().mean():13.2f}"
          f"{(s > 10).float().mean():13.2f}")
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
flow_unet = load_model("mnist_flow", device=device)  # its card: section 1
print(f"{'FD (held-out digits)':24}{'diffusion (mnist_unet)':>24}"
      f"{'flow (mnist_flow)':>22}")
for sampler in ("ddim", "accelerated"):
    for k in (5, 10, 25, 50):
        print(f"{f'{sampler}, {k} steps':24}"
              f"{fd_row(unet_card, f'{sampler}_{k}'):>24}"
              f"{fd_row(flow_card, f'{sampler}_{k}'):>22}")
print(f"{'guided accuracy':24}"
      f"{unet_card['metrics']['samples']['guided']['accuracy']:>24.3f}"
      f"{flow_card['metrics']['samples']['guided']['accuracy']:>22.3f}")
''')

md('''
Flow matching's promise is **straighter paths**: if the sampler's path from noise to digit
were a straight line, one Euler step would land where fifty do. We measure how far the
one-step digit lands from the 50-step one, from the same starting noise, for both
networks (the same sampler and schedule for both):
''')

code('''
n = sized(100, 1000)
start = 80.0 * torch.randn(
    n, 1, 28, 28, generator=torch.Generator().manual_seed(4)).to(device)
cls = torch.arange(n, device=device) % 10
print(f"{'distance to the 50-step digit':30}{'after 1 step':>15}"
      f"{'after 4 steps':>15}")
for name, model in (("diffusion", unet), ("flow matching", flow_unet)):
    ends = {k: sampling.generate(model, noise.schedule("flow", k), x=start,
                                 sampler="ddim", cond=cls)
            for k in (1, 4, 50)}
    gap = {k: (ends[k] - ends[50]).flatten(1).norm(dim=1) for k in (1, 4)}
    print(f"{name:30}" + "".join(f"{gap[k].mean():9.1f} +- "
                                 f"{gap[k].std() / n ** 0.5:.1f}"
                                 for k in (1, 4)))
print(f"(n = {n} starting noises, the same for both networks)")
''', ["nbval-ignore-output"])

md(FLOW_FINDINGS := '''
**What flow matching changed here: nothing we can measure.** Its FD is within about one standard
error of the diffusion-trained U-Net's at every sampler and step count (0.166 ± 0.004 against
0.172 ± 0.006 at 10 DDIM steps). It is a little lower in most rows, but the rows are not
independent evidence: they share one network and one set of seeds. Guided, both draw the asked-for digit
every time. And the paths are **not straighter**: one step lands as far from the 50-step digit
for both (11.4), four steps about as far (4.6 against 4.9, ± 0.2 each).

That is what the algebra above predicts. The sampler's path is the solution of one equation,
the same for both networks; what the training objective changes is only how well the network
learns each noise level, and both learned them about equally well. The straight lines of flow
matching are the paths of the *training pairs* (one picture, one noise); the path a sample
follows is an average over every picture that could have made that noise, and it curves.
Rectified flow {cite}`liu2023flow` straightens it with a second step, **reflow**: generate pairs
(noise, the sample it leads to) with the first model and train again on those, whose straight
lines the sampler can then follow. What large models took from flow matching is mostly the
simplicity: one line, one velocity target, with a carefully chosen distribution of $t$
{cite}`esser2024scaling`.
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

md('''
On MNIST there is no exact answer to compare with, but there are the held-out digits. The
shipped U-Net's card measures every sampler at 5, 10, 25 and 50 steps, without guidance, each
point 5 x 400 digits against the held-out ones (chapter 4's table, with the two new rules).
What a step costs is a network call, so the x axis counts calls: Heun's points sit twice as
far right as their steps.
''')

code('''
rows = unet_card["metrics"]["samples"]["samplers"]
print(f"{'sampler':12}{'steps':>6}{'calls':>6}{'FD':>17}{'accuracy':>10}")
for r in rows.values():
    print(f"{r['sampler']:12}{r['steps']:6d}{r['network_calls']:6d}"
          f"{r['fd']:>10.3f} ± {r['fd_se']:.3f}{r['accuracy']:>10.1%}")
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, marker in zip(("ddpm", "ddim", "accelerated", "heun", "dpmpp_2m"),
                        "so^Dv"):
    pts = sorted((r["network_calls"], r["fd"], r["fd_se"])
                 for r in rows.values() if r["sampler"] == name)
    ax.errorbar([c for c, _, _ in pts], [f for _, f, _ in pts],
                yerr=[2 * e for _, _, e in pts], marker=marker, capsize=3,
                label=name)
floor = rows["ddim_50"]
ax.axhspan(floor["fd_floor"] - 2 * floor["fd_floor_se"],
           floor["fd_floor"] + 2 * floor["fd_floor_se"], color="0.85",
           label="floor (real vs real)")
ax.set_xscale("log")
ax.set_xticks([5, 10, 20, 25, 50, 100], ["5", "10", "20", "25", "50", "100"])
ax.minorticks_off()
ax.set_ylim(0, None)
ax.set_xlabel("network calls")
ax.set_ylabel("FD, lower is better")
ax.set_title("the shipped U-Net, no guidance (bars: ± 2 standard errors)",
             fontsize=10)
ax.legend(fontsize=8)
plt.show()
''')

md(SOLVER_FINDINGS := '''
**On the exact problem, second order wins by far**: at 128 steps, Heun and DPM-Solver++ land 30
to 60 times closer to the exact end than DDIM, and their errors fall four times for each doubling
of the steps where DDIM's falls two times (measured orders 2.0 and 1.0, as claimed).

**On MNIST, hardly at all.** From 10 network calls on, every sampler lands between FD 0.16 and
0.21, and Heun at 20 calls (0.190 ± 0.003) is no better than DDIM at 10 (0.172 ± 0.006). Only
at the fewest calls does a second-order rule show: at 5 calls DPM-Solver++ scores 0.176 ± 0.006
against DDIM's 0.197 ± 0.006 (the accelerated sampler, also multistep, 0.176 too). The reason is
the network: the exact-problem plot measures the *solver's* error with a perfect denoiser, and
with this small U-Net that error is soon smaller than the network's own, which no solver can
remove. Large models, whose networks are far better, are where the solvers' order pays, and
why DPM-Solver++ with 20 to 30 steps is a common choice in open pipelines.
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
      f"{'in-class spread':>18}")
u = unet_card["metrics"]["samples"]["samplers"]["ddim_50"]
# noise's spread, measured here: 50 digits per class, DDIM 10 steps
cls = torch.arange(500) % 10
x_noise = sampling.generate(
    unet, mnist.sampling_sigmas(10), (500, 1, 28, 28), "ddim",
    cond=cls.to(device),
    generator=torch.Generator(device=device).manual_seed(0))
x_noise = x_noise.clamp(-1, 1).cpu()
spread = (mnist_blur.within_class_std(x_noise, cls),
          mnist_blur.within_class_std_se(x_noise, cls))
print(f"{'noise (mnist_unet)':24}{u['fd']:>11.3f} +- {u['fd_se']:.3f}"
      f"{u['fd_floor']:>8.3f}{u['accuracy']:>10.3f}"
      f"{spread[0]:>9.3f} +- {spread[1]:.3f}")
for name, c in (("blur", blur_card), ("mask", mask_card)):
    m = c["metrics"]["samples"]
    for kind in ("naive", "improved"):
        r = m[kind]
        print(f"{f'{name}, {kind}':24}{r['fd']:>11.3f} +- {r['fd_se']:.3f}"
              f"{r['fd_floor']:>8.3f}{r['accuracy']:>10.3f}"
              f"{r['within_class_std']:>9.3f}"
              f" +- {r['within_class_std_se']:.3f}")
m = blur_card["metrics"]["samples"]
print(f"{'real held-out digits':24}{'':>18}{'':>8}{'':>10}"
      f"{m['real_within_class_std']:>9.3f}"
      f" +- {m['real_within_class_std_se']:.3f}")
''')

md(COLD_FINDINGS := '''
The FD and accuracy of the cold rows come from the cards (5 x 400 digits each, from 2,000 starts);
the noise row's spread was measured just now on 500 digits. Each spread has its standard error
beside it (the spread of 200 bootstrap resamples of the digits of each class).

**Blur: the improved sampler is what makes it work.** The naive sampler's digits are mostly
smudged boxes (FD 6.6 ± 0.2; the classifier reads the asked-for digit in 53% of them). The
improved one draws recognisable digits (accuracy 0.94), but still far from real ones: FD
0.63 ± 0.04, against 0.18 for noise with the same U-Net, the same digits and the same number of
training steps. The naive step blurs its own guess again, error included, and throws the
current picture away, so each step's error becomes the next step's input and they pile up. The
improved step keeps the picture and moves it only by the *difference* between two blurs of the
guess, in which most of the guess's error cancels.

**Masks: both samplers work, and both draw the same digit every time.** Fully masked, every
start is the same blank picture; a network and a sampler without randomness then give one
picture per class: the spread within a class is exactly 0, where real digits have 0.30. Its FD
(0.91) is what one neat digit per class costs: FD measures variety as well as looks. Blur keeps
a little variety (0.21) only because its starts differ in their grey level, the mean ink of the
digit they were blurred from.

**What noise gives.** Noise diffusion starts every digit from 784 fresh random numbers, and its
digits vary the most of the three: 0.255 within a class (real digits 0.300, blur 0.212, masks 0),
and with standard errors of 0.003 at most, each difference is more than ten times its error bar.
A deterministic degradation erases a picture down to almost nothing (one grey level for blur, nothing at all for masks), so its
starts carry almost no randomness, and no sampler can turn nothing into variety. To get variety
back, the start itself must be random: for blur, Bansal et al. draw its grey levels from a
distribution fitted to the blurred training pictures {cite}`bansal2023cold`. Noise is the
degradation whose end is pure randomness, which is why it stayed.
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
