"""Chapter 4 exercises: the references agree with the package, and the checkers catch mistakes."""
import torch

from diffusion_course import sampling
from diffusion_course.exercises import denoising as ex
from diffusion_course.ideal import IdealDenoiser


def test_references_pass_their_own_checks():
    for seed in (0, 1):
        assert ex.check_ideal_denoise(ex.ideal_denoise, seed=seed)
        assert ex.check_ddim_step(ex.ddim_step, seed=seed)
        assert ex.check_ddpm_step(ex.ddpm_step, seed=seed)
        assert ex.check_guide(ex.guide, seed=seed)


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


def test_checkers_catch_common_mistakes():
    r = ex.check_ideal_denoise(lambda x, data, sigma: data.mean(0).expand_as(x))
    assert not r and "ideal_denoise" in str(r) and "values differ" in str(r)
    r = ex.check_ideal_denoise(lambda x, data, sigma: ex.ideal_denoise(x, data, sigma * 2 ** 0.5))  # sigma^2 not 2 sigma^2
    assert not r
    assert not ex.check_ddim_step(lambda x, eps, s, sn: x - s * eps)
    assert not ex.check_ddpm_step(lambda x, eps, s, sn, z: ex.ddim_step(x, eps, s, sn) + sn * z)
    assert not ex.check_guide(lambda c, u, w: c + w * (c - u))
    r = ex.check_guide(lambda c, u, w: (_ for _ in ()).throw(NotImplementedError))
    assert not r and "not written yet" in str(r)
