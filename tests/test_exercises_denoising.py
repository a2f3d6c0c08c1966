"""Chapter 4 exercises: the references agree with the package, and the checkers catch mistakes."""
import math

import torch

from diffusion_course import sampling
from diffusion_course.exercises import denoising as ex
from diffusion_course.ideal import IdealDenoiser
from exercise_contract import ExerciseContract

NAMES = ("ideal_denoise", "ddim_step", "ddpm_step", "guide")
CASES = {"ideal_denoise": ex._ideal_cases, "ddim_step": ex._step_cases,
         "ddpm_step": lambda seed: ex._step_cases(seed, with_z=True), "guide": ex._guide_cases}
CHECKERS = {name: getattr(ex, f"check_{name}") for name in NAMES}
REFERENCES = {name: getattr(ex, name) for name in NAMES}

# Other correct ways to write each one: the checker must accept them too.
ALTERNATIVES = {
    "ideal_denoise": lambda x, data, sigma: torch.softmax(
        -((x[:, None, :] - data[None]) ** 2).sum(-1) / (2 * sigma ** 2), dim=1) @ data,
    "ddim_step": lambda x, eps, s, sn: (x - s * eps) + sn * eps,                       # via the clean guess x0
    "ddpm_step": lambda x, eps, s, sn, z: x - (s - sn ** 2 / s) * eps + sn * math.sqrt(1 - (sn / s) ** 2) * z,
    "guide": lambda c, u, w: (1 - w) * u + w * c,
}

# Typical mistakes a learner makes: each must be rejected.
MISTAKES = {
    "ideal_denoise": lambda x, data, sigma: ex.ideal_denoise(x, data, sigma * 2 ** 0.5),   # sigma^2, not 2 sigma^2
    "ddim_step": lambda x, eps, s, sn: x - s * eps,                                    # jumps all the way to x0
    "ddpm_step": lambda x, eps, s, sn, z: ex.ddim_step(x, eps, s, sn) + sn * z,        # adds noise on top of DDIM
    "guide": lambda c, u, w: c + w * (c - u),                                          # starts from the conditional
}


class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES


def test_references_match_the_package():
    g = torch.Generator().manual_seed(0)
    data, x = torch.randn(9, 3, generator=g), torch.randn(4, 3, generator=g)
    torch.testing.assert_close(ex.ideal_denoise(x, data, 0.7), IdealDenoiser(data).x0(x, 0.7))
    e = torch.randn(4, 3, generator=g)
    model = lambda x, sigma, cond=None: e
    sig = torch.tensor([3.0, 1.2])
    got = next(sampling.sample(model, sig, x=x.clone(), **sampling.DDIM)).x
    torch.testing.assert_close(ex.ddim_step(x, e, 3.0, 1.2), got)
    got = next(sampling.sample(model, sig, x=x.clone(), generator=torch.Generator().manual_seed(4), **sampling.DDPM)).x
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ex.ddpm_step(x, e, 3.0, 1.2, z), got)


def test_an_answer_that_ignores_x_is_told_the_values_differ():
    r = ex.check_ideal_denoise(lambda x, data, sigma: data.mean(0).expand_as(x))
    assert not r and "ideal_denoise" in str(r) and "values differ" in str(r)
