"""The CLIP chapter's exercise checkers: right answers pass, typical mistakes are caught."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffusion_course import clip
from diffusion_course.exercises import clip as ex
from exercise_contract import ExerciseContract

CASES = {"similarity_logits": ex._similarity_cases, "clip_loss": ex._loss_cases,
         "recall_at_1": ex._recall_cases, "zero_shot_predict": ex._zero_shot_cases}
CHECKERS = {"similarity_logits": ex.check_similarity_logits, "clip_loss": ex.check_clip_loss,
            "recall_at_1": ex.check_recall_at_1, "zero_shot_predict": ex.check_zero_shot_predict}
REFERENCES = {"similarity_logits": ex.similarity_logits, "clip_loss": ex.clip_loss,
              "recall_at_1": ex.recall_at_1, "zero_shot_predict": ex.zero_shot_predict}

ALTERNATIVES = {
    "similarity_logits": lambda i, t, s: s * F.normalize(i, dim=-1) @ F.normalize(t, dim=-1).T,
    "clip_loss": lambda logits: clip.clip_loss(logits),
    "recall_at_1": lambda sim: clip.recall_at_k(sim, 1),
    "zero_shot_predict": lambda i, p, c, n, s: torch.stack([(s * i @ p[c == k].T).logsumexp(1)
                                                            for k in range(n)], 1).argmax(1),
}

MISTAKES = {
    "similarity_logits": lambda i, t, s: s * i @ t.T,                                  # forgot to normalize
    "clip_loss": lambda logits: F.cross_entropy(logits, torch.arange(len(logits))),   # one direction only
    "recall_at_1": lambda sim: (sim.argmax(1) == torch.arange(len(sim))).float().mean().item(),  # ties win
    "zero_shot_predict": lambda i, p, c, n, s: (i @ torch.stack([F.normalize(p[c == k].mean(0), dim=0)
                                                                  for k in range(n)]).T).argmax(1),  # mean vector
}


class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES


def test_references_by_hand():
    logits = ex.similarity_logits(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]), 10.0)
    torch.testing.assert_close(logits, torch.tensor([[6.0, 8.0]]))
    assert ex.clip_loss(torch.zeros(4, 4)).item() == pytest.approx(math.log(4))
    assert ex.recall_at_1(torch.tensor([[1.0, 0.0], [2.0, 1.0]])) == 0.5
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    prompts = F.normalize(torch.tensor([[1.0, 0.2], [1.0, -0.2], [0.1, 1.0]]), dim=1)
    assert ex.zero_shot_predict(img, prompts, torch.tensor([0, 0, 1]), 2, 10.0).tolist() == [0, 1]
    # one close prompt beats two lukewarm ones: the sum of probabilities, not the mean vector
    img = torch.tensor([[1.0, 0.0]])
    prompts = torch.tensor([[1.0, 0.0], [-0.6, 0.8], [0.6, 0.8], [0.6, -0.8]])
    assert ex.zero_shot_predict(img, prompts, torch.tensor([0, 0, 1, 1]), 2, 20.0).tolist() == [0]
    assert F.normalize(prompts[:2].mean(0), dim=0) @ img[0] < F.normalize(prompts[2:].mean(0), dim=0) @ img[0]
