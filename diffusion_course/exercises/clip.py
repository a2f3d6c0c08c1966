"""Exercises for the chapter "CLIP contrastive training": similarities, the loss, recall, zero-shot.

Each `check_<name>(fn)` runs `fn` and the reference on fresh random inputs of varied
sizes and answers in one line (see `diffusion_course.exercises.check`). Pass `seed=` to
repeat a run exactly.

    >>> from diffusion_course.exercises import clip as ex
    >>> ex.check_clip_loss(my_clip_loss)
    ✅ clip_loss: matches the reference on 12 random inputs.
"""

import torch
import torch.nn.functional as F

from . import N_CASES, check, generators



# ---- the reference solutions ------------------------------------------------------------

def similarity_logits(image_emb, text_emb, scale):
    """(N, D) image and (M, D) text embeddings -> (N, M) logits: scale * cosine similarity.

    Normalize each row to length 1 (divide by its L2 norm), then every dot product is a cosine.
    """
    img = image_emb / image_emb.norm(dim=1, keepdim=True)
    txt = text_emb / text_emb.norm(dim=1, keepdim=True)
    return scale * img @ txt.T


def clip_loss(logits):
    """(B, B) logits, right pairs on the diagonal -> the mean of the row-wise and column-wise cross-entropy."""
    labels = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def recall_at_1(sim):
    """(B, B) similarities, query i's right item is column i -> the fraction of rows whose
    diagonal entry is strictly larger than every other entry of the row (a float)."""
    others = sim.masked_fill(torch.eye(sim.shape[0], dtype=torch.bool), -float("inf"))
    return (sim.diagonal() > others.max(1).values).float().mean().item()


def zero_shot_predict(image_emb, prompt_emb, prompt_class, n_classes, scale):
    """Classify images with prompts only.

    image_emb (N, D) and prompt_emb (P, D) unit vectors; prompt_class (P,) the class of each
    prompt. Logits scale * image_emb @ prompt_emb.T, a softmax over the P prompts, then each
    class's probability is the sum over its prompts; return the most probable class, (N,) int64.
    """
    p = (scale * image_emb @ prompt_emb.T).softmax(dim=1)                      # (N, P)
    return torch.zeros(len(image_emb), n_classes).index_add_(1, prompt_class, p).argmax(1)


# ---- random inputs -------------------------------------------------------------------------

def _similarity_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]), 1.0)]   # cosines 0.6 and 0.8
    while len(cases) < N_CASES:
        n, m, d = rng.randint(1, 9), rng.randint(1, 9), rng.randint(2, 16)
        cases.append((torch.randn(n, d, generator=gen) * 3, torch.randn(m, d, generator=gen),
                      rng.choice([1.0, 10.0, 14.3, 100.0])))
    return cases


def _loss_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.zeros(4, 4),), (torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [1.5, -0.5, 0.2]]),)]
    while len(cases) < N_CASES:
        b = rng.randint(2, 12)
        # not symmetric on purpose: the row and column halves must both be there
        cases.append((torch.randn(b, b, generator=gen) * rng.choice([1.0, 5.0]) + 3 * torch.eye(b),))
    return cases


def _recall_cases(seed):
    gen, rng = generators(seed)
    cases = [(torch.eye(3),), (torch.ones(3, 3),)]                     # all right; all ties (none right)
    while len(cases) < N_CASES:
        b = rng.randint(2, 12)
        sim = torch.randn(b, b, generator=gen) + rng.choice([0.0, 1.0, 2.0]) * torch.eye(b)
        cases.append((sim,))
    return cases


def _zero_shot_cases(seed):
    gen, rng = generators(seed)
    cases = []
    while len(cases) < N_CASES:
        n, c, d = rng.randint(1, 10), rng.randint(2, 6), rng.randint(4, 16)
        per = rng.randint(1, 4)
        prompt_class = torch.arange(c).repeat_interleave(per)[torch.randperm(c * per, generator=gen)]
        prompts = F.normalize(torch.randn(c * per, d, generator=gen), dim=1)
        images = F.normalize(torch.randn(n, d, generator=gen), dim=1)
        cases.append((images, prompts, prompt_class, c, rng.choice([1.0, 5.0, 20.0])))
    return cases


# ---- the checkers --------------------------------------------------------------------------

def check_similarity_logits(fn, seed=None):
    """Check `fn(image_emb, text_emb, scale)` -> (N, M) scaled cosine similarities."""
    return check("similarity_logits", fn, similarity_logits, _similarity_cases(seed))


def check_clip_loss(fn, seed=None):
    """Check `fn(logits)` -> the symmetric cross-entropy of a (B, B) logit matrix (a scalar tensor)."""
    return check("clip_loss", fn, clip_loss, _loss_cases(seed))


def check_recall_at_1(fn, seed=None):
    """Check `fn(sim)` -> the fraction of rows whose diagonal entry strictly beats the rest of the row."""
    return check("recall_at_1", fn, recall_at_1, _recall_cases(seed))


def check_zero_shot_predict(fn, seed=None):
    """Check `fn(image_emb, prompt_emb, prompt_class, n_classes, scale)` -> (N,) predicted class ids."""
    return check("zero_shot_predict", fn, zero_shot_predict, _zero_shot_cases(seed))
