"""The chapter-3 exercise checkers: references pass, typical mistakes fail with a useful line."""
import math

import torch

from diffusion_course import noise
from diffusion_course.exercises import forward_noising as ex
from exercise_contract import ExerciseContract

CASES = {"add_noise": ex._add_noise_cases, "sigma_from_alpha_bar": ex._alpha_bar_cases,
         "combined_sigma": ex._combined_cases, "snr_db": ex._snr_cases}
CHECKERS = {name: getattr(ex, f"check_{name}") for name in CASES}
REFERENCES = {name: getattr(ex, f"{name}_reference") for name in CASES}

# Other correct ways to write each one: the checker must accept them too.
ALTERNATIVES = {
    "add_noise": lambda x0, sigma, eps: x0 + sigma[:, None, None, None] * eps,
    "sigma_from_alpha_bar": lambda ab: ((1 - ab) / ab).sqrt(),
    "combined_sigma": lambda sigmas: torch.linalg.vector_norm(sigmas),
    "snr_db": lambda sigma, v: 10 * math.log10(v) - 20 * torch.log10(sigma),
}

# Typical mistakes a learner makes: each must be rejected.
MISTAKES = {
    "add_noise": lambda x0, sigma, eps: x0 + sigma * eps,              # (B,) does not broadcast over (B, C, H, W)
    "sigma_from_alpha_bar": lambda ab: (1 - ab).sqrt(),                # the noise's share, not sigma
    "combined_sigma": lambda sigmas: sigmas.sum(),                     # adds standard deviations, not variances
    "snr_db": lambda sigma, v: 10 * torch.log10(v / sigma),            # sigma, not sigma squared
}


class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES


def test_references_agree_with_the_package():
    assert ex.check_add_noise(lambda x0, s, eps: noise.add_noise(x0, s, eps=eps))
    assert ex.check_sigma_from_alpha_bar(noise.alpha_bar_to_sigma)
    assert ex.check_snr_db(lambda s, v: 10 * torch.log10(v * noise.snr(s)))


def test_a_crash_is_reported_as_raised():
    r = ex.check_add_noise(MISTAKES["add_noise"])
    assert not r and "raised" in str(r)
