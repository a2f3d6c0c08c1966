"""Why do the DiT's samples get worse with more DDPM steps? (chapter 8, section 1)

    OMP_NUM_THREADS=1 python tools/ch8_switch.py     # about 10 minutes on one CPU thread

Hands one range of noise levels to the U-Net: the DiT above sigma = 1 and the U-Net below,
then the other way round, and measures FD of DDPM samples at 10 and 50 steps as the recipes do
(2,000 digits, n = 400 x 5 draws against the held-out digits; the shipped mnist_dit and
mnist_unet, seed 0). The DiT alone goes from 0.21 to 0.29 on its card, the U-Net alone from
0.20 to 0.16. Measured (2-core CPU, one thread): DiT above / U-Net below 0.178 +- 0.014 ->
0.178 +- 0.009; U-Net above / DiT below 0.199 +- 0.013 -> 0.198 +- 0.006.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffusion_course import load_mnist                                          # noqa: E402
from diffusion_course.checkpoint import load_model                               # noqa: E402
from diffusion_course.metrics import fd_report                                   # noqa: E402
from diffusion_course.recipes.mnist import HELDOUT, N_TRAIN, sample_digits       # noqa: E402


class Switch(torch.nn.Module):
    """`high` denoises at noise levels >= sigma_switch, `low` below: one model to the samplers."""

    def __init__(self, high, low, sigma_switch=1.0):
        super().__init__()
        self.high, self.low, self.sigma_switch = high, low, sigma_switch

    def forward(self, x, sigma, cond=None):                      # x: (B, 1, 28, 28), cond: (B,)
        sigma = torch.as_tensor(sigma, dtype=torch.float32).expand(len(x))
        out = torch.empty_like(x)
        for model, pick in ((self.high, sigma >= self.sigma_switch), (self.low, sigma < self.sigma_switch)):
            if pick.any():
                out[pick] = model(x[pick], sigma[pick], None if cond is None else cond[pick])
        return out

    def null_cond(self, cond):
        return self.high.null_cond(cond)


def main():
    torch.set_num_threads(1)
    images, labels = load_mnist("test")
    unet, dit, judge = load_model("mnist_unet"), load_model("mnist_dit"), load_model("mnist_classifier")
    wanted = torch.arange(2000) % 10
    for name, model in (("DiT above 1, U-Net below", Switch(dit, unet)),
                        ("U-Net above 1, DiT below", Switch(unet, dit))):
        for steps in (10, 50):
            x = sample_digits(model, wanted, "ddpm", steps, cfg_scale=1.0, seed=0)
            r = fd_report(judge, x, images[N_TRAIN:], labels=wanted, n=400, draws=5,
                          real_labels=labels[N_TRAIN:], reference=HELDOUT)
            print(f"{name}: DDPM {steps:2} steps  FD {r['fd']:.3f} +- {r['fd_se']:.3f}  "
                  f"accuracy {r['accuracy']:.3f}", flush=True)


if __name__ == "__main__":
    main()
