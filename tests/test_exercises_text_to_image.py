"""The chapter-7 exercise checkers: right answers pass, wrong ones are caught and explained."""
import torch

from diffusion_course import adherence, shapes
from diffusion_course.exercises import text_to_image as ex
from diffusion_course.noise import schedule
from diffusion_course.pipeline import img2img_start
from diffusion_course.sampling import guided_eps
from exercise_contract import ExerciseContract

CASES = {"negative_guidance": ex._guidance_cases, "img2img_start": ex._img2img_cases, "binding": ex._binding_cases}
CHECKERS = {"negative_guidance": ex.check_negative_guidance, "img2img_start": ex.check_img2img_start,
            "binding": ex.check_binding}
REFERENCES = {"negative_guidance": ex.negative_guidance, "img2img_start": img2img_start, "binding": ex.binding}


def _img2img_by_index(z0, noise, sigmas, strength):
    n = len(sigmas) - 1
    k = max(1, round(strength * n))                  # steps to run
    x = sigmas[n - k] * noise + (0 if strength >= 1 else z0)
    return x, sigmas[n - k:]


def _binding_as_sets(pc, ps, wc, ws):
    code = lambda c, s: torch.sort(c * 10 + s, dim=1).values        # noqa: E731  one id per (color, shape)
    return (code(pc, ps) == code(wc, ws)).all(1)


ALTERNATIVES = {
    "negative_guidance": lambda c, n, s: (1 - s) * n + s * c,
    "img2img_start": _img2img_by_index,
    "binding": _binding_as_sets,
}

MISTAKES = {
    "negative_guidance": lambda c, n, s: c + s * (c - n),                           # starts from the prompt
    "img2img_start": lambda z0, noise, sigmas, strength: (                          # strength counted backwards
        z0 + sigmas[round(strength * (len(sigmas) - 1))] * noise, sigmas[round(strength * (len(sigmas) - 1)):]),
    "binding": lambda pc, ps, wc, ws: ((torch.sort(pc, 1).values == torch.sort(wc, 1).values).all(1)
                                       & (torch.sort(ps, 1).values == torch.sort(ws, 1).values).all(1)),  # colors
}                                                                                   # and shapes, not pairs


def test_references_by_hand():
    cond, neg, s = ex._guidance_cases(0)[0]
    assert ex.negative_guidance(cond, neg, s).tolist() == [[3.0, 4.0]]
    right, swapped, crossed = ex._binding_cases(0)[:3]
    assert ex.binding(*right).tolist() == [True] and ex.binding(*swapped).tolist() == [True]
    assert ex.binding(*crossed).tolist() == [False]                 # a blue circle and a red square
    sigmas = schedule("loglinear", 10, sigma_min=0.01, sigma_max=80.0)
    z0, noise = torch.ones(1, 4, 8, 8), torch.full((1, 4, 8, 8), 2.0)
    x, left = img2img_start(z0, noise, sigmas, 0.3)                 # 3 of 10 steps run
    assert len(left) == 4 and torch.equal(left, sigmas[7:]) and torch.allclose(x, 1 + 2 * sigmas[7])
    x, left = img2img_start(z0, noise, sigmas, 1.0)
    assert torch.equal(left, sigmas) and torch.allclose(x, 2 * sigmas[0])          # pure noise
    assert len(img2img_start(z0, noise, sigmas, 0.001)[1]) == 2                    # at least one step


def test_references_match_the_package():
    class TwoAnswers(torch.nn.Module):          # eps_cond for the condition 1, eps_neg for the condition 0
        def __init__(self, c, n):
            super().__init__()
            self.c, self.n, self.w = c, n, torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, sigma, cond):
            k, reps = cond.view(-1, *[1] * (x.ndim - 1)), len(x) // len(self.c)        # guidance doubles the batch
            return torch.where(k > 0, torch.cat([self.c] * reps), torch.cat([self.n] * reps))

    for c, n, s in ex._guidance_cases(1):
        got = guided_eps(TwoAnswers(c, n), torch.zeros_like(c), 1.0, torch.ones(len(c)), s, torch.zeros(len(c)))
        torch.testing.assert_close(got, ex.negative_guidance(c, n, s))
    for pc, ps, wc, ws in ex._binding_cases(1):
        pred = {"color": pc, "shape": ps, "size": torch.zeros_like(pc), "n_objects": torch.full((len(pc),), 2),
                "relation": torch.zeros(len(pc), dtype=torch.long)}
        want = {**pred, "color": wc, "shape": ws}
        assert adherence.score(pred, want)["binding"].bool().tolist() == ex.binding(pc, ps, wc, ws).tolist()


class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES
