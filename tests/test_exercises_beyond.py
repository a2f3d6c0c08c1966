"""The chapter-8 exercise checkers: right answers pass, wrong ones are caught and explained, and the
references agree with the package (dit.DiT's patches, flow.velocity, sampling.advance, degrade.cold_sample)."""
import torch

from diffusion_course import flow, sampling
from diffusion_course.degrade import Blur, cold_sample
from diffusion_course.dit import DiT
from diffusion_course.exercises import beyond as ex
from exercise_contract import ExerciseContract

CASES = {"patchify": ex._patch_cases, "velocity": ex._velocity_cases, "heun_step": ex._heun_cases,
         "cold_step": ex._cold_cases}
CHECKERS = {"patchify": ex.check_patchify, "velocity": ex.check_velocity, "heun_step": ex.check_heun_step,
            "cold_step": ex.check_cold_step}
REFERENCES = {"patchify": ex.patchify, "velocity": ex.velocity, "heun_step": ex.heun_step, "cold_step": ex.cold_step}


def _patchify_by_loops(x, p):
    b, c, h, w = x.shape
    return torch.stack([x[:, :, i:i + p, j:j + p].reshape(b, -1) for i in range(0, h, p) for j in range(0, w, p)], 1)


def _heun_as_trapezoid(x, sigma, sigma_next, eps_fn):
    h = sigma_next - sigma
    k1 = eps_fn(x, sigma)
    return x + h / 2 * (k1 + eps_fn(x + h * k1, sigma_next))


ALTERNATIVES = {
    "patchify": _patchify_by_loops,
    "velocity": lambda eps_hat, x_sigma, sigma: eps_hat - (x_sigma - sigma.view(-1, 1, 1, 1) * eps_hat),   # eps - x0
    "heun_step": _heun_as_trapezoid,
    "cold_step": lambda x, x0_hat, degrade, s: x + (degrade(x0_hat, s - 1) - degrade(x0_hat, s)),
}

MISTAKES = {
    "patchify": lambda x, p: x.reshape(x.shape[0], -1, x.shape[1] * p * p),        # runs of pixels, not patches
    "velocity": lambda eps_hat, x_sigma, sigma: eps_hat - x_sigma,                           # forgot (1 + sigma)
    "heun_step": lambda x, s, s_next, eps_fn: x - (s - s_next) * eps_fn(x - (s - s_next) * eps_fn(x, s), s_next),
    "cold_step": lambda x, x0_hat, degrade, s: degrade(x0_hat, s - 1),                      # the naive step
}


def test_references_by_hand():
    tokens = ex.patchify(torch.arange(16.0).view(1, 1, 4, 4), 2)
    assert tokens.tolist() == [[[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]]
    v = ex.velocity(torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 2.0), torch.tensor([3.0]))
    assert v.item() == 2.0                                            # (1 + 3) * 1 - 2


def test_references_match_the_package():
    dit = DiT(in_channels=3, image_size=8, patch_size=2, dim=12, depth=0, heads=2)
    x = torch.randn(2, 3, 8, 8)
    tokens = dit.patchify(x).flatten(2).transpose(1, 2)               # the DiT's linear map of each patch
    w = dit.patchify.weight.reshape(12, -1)                           # (D, C * p * p)
    torch.testing.assert_close(tokens, ex.patchify(x, 2) @ w.T + dit.patchify.bias, atol=1e-5, rtol=1e-5)

    class Net(torch.nn.Module):
        def forward(self, x, sigma, cond=None):
            sigma = sigma.view(-1, 1, 1, 1)
            return torch.tanh(x) * sigma / (1 + sigma ** 2)
    x_t, t = torch.randn(2, 1, 4, 4), torch.tensor([0.3, 0.8])
    sigma = flow.t_to_sigma(t)
    x_sigma = x_t * (1 + sigma.view(-1, 1, 1, 1))
    torch.testing.assert_close(flow.velocity(Net(), x_t, t), ex.velocity(Net()(x_sigma, sigma), x_sigma, sigma))
    for x, s, s_next, eps_fn in ex._heun_cases(2):
        want = sampling.advance(eps_fn, x, s, s_next, solver="heun")[0]
        torch.testing.assert_close(ex.heun_step(x, s, s_next, eps_fn), want)
    blur, x0 = Blur(steps=3), torch.randn(1, 1, 28, 28)
    guess = lambda x, s: x0 + 0.1 * s                                 # noqa: E731
    x = blur(x0, 3)
    for s in (3, 2, 1):
        x = ex.cold_step(x, guess(x, s), blur, s)
    torch.testing.assert_close(x, cold_sample(None, blur, blur(x0, 3), restorer=guess))


class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES
