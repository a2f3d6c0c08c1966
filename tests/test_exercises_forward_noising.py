"""The chapter-3 exercise checkers: references pass, typical mistakes fail with a useful line."""
import torch

from diffusion_course import noise
from diffusion_course.exercises import forward_noising as ex


def test_references_pass_and_agree_with_the_package():
    assert ex.check_add_noise(lambda x0, s, eps: noise.add_noise(x0, s, eps=eps))
    assert ex.check_sigma_from_alpha_bar(noise.alpha_bar_to_sigma)
    assert ex.check_combined_sigma(ex.combined_sigma_reference)
    assert ex.check_snr_db(lambda s, v: 10 * torch.log10(v * noise.snr(s)))


def test_mistakes_fail():
    r = ex.check_combined_sigma(lambda s: s.sum())           # adding standard deviations, not variances
    assert not r and "combined_sigma" in str(r) and "differ" in str(r)
    assert not ex.check_sigma_from_alpha_bar(lambda ab: (1 - ab).sqrt())
    assert not ex.check_snr_db(lambda s, v: 10 * torch.log10(v / s))
    r = ex.check_add_noise(lambda x0, s, eps: x0 + s * eps)   # sigma (B,) does not broadcast over (B, C, H, W)
    assert not r and "raised" in str(r)


def test_not_written_yet():
    def add_noise(x0, sigma, eps):
        raise NotImplementedError
    assert "not written yet" in str(ex.check_add_noise(add_noise))
