"""Adherence scores: hand-checked verdicts, real scenes score as the judge does, mismatched captions low."""
import contextlib
import math

import pytest
import torch

from diffusion_course import shapes
from diffusion_course.adherence import adherence, judge_accuracy, prompts_for, score, summarize, wilson
from diffusion_course.attributes import predict
from diffusion_course.checkpoint import load_model


def as_pred(captions):
    """Predictions that say exactly what these full captions say (a perfect judge's answer)."""
    a = shapes.parse_caption(captions)
    return {k: a[k] for k in ("n_objects", "relation", "color", "shape", "size")}


def test_verdicts_by_hand():
    prompt = shapes.parse_caption(["a small red circle left of a large blue square"] * 3 + ["a red shape"])
    pred = as_pred(["a small blue circle left of a large red square",     # colors swapped: binding wrong
                    "a large blue square left of a small red circle",     # objects swapped: binding right
                    "a small red circle above a large blue square",       # wrong relation only
                    "a large red square"])                                 # the partial prompt asks only red
    s = score(pred, prompt)
    assert s["color"].tolist() == [0.0, 0.0, 1.0, 1.0] and s["shape"][:3].tolist() == [1.0, 0.0, 1.0]
    assert s["binding"][:3].tolist() == [0.0, 1.0, 1.0] and math.isnan(s["binding"][3])
    assert s["relation"][:3].tolist() == [1.0, 0.0, 0.0] and math.isnan(s["relation"][3])
    assert s["scene"].tolist() == [0.0, 0.0, 0.0, 1.0] and s["count"].tolist() == [1.0] * 4
    assert math.isnan(s["shape"][3]) and math.isnan(s["size"][3])        # "a red shape" asks neither


def test_summary_counts_only_what_applies():
    s = summarize({"binding": torch.tensor([1.0, 0.0, math.nan, 1.0]), "never": torch.tensor([math.nan])})
    assert s == {"binding": {"rate": 0.6667, "n": 3, "ci95": [round(v, 4) for v in wilson(2 / 3, 3)]}}
    low, high = wilson(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


@pytest.fixture(scope="module")
def judge():
    return load_model("shapes_attributes")


def test_real_scenes_with_their_captions_score_as_the_judge_and_mismatched_low(judge):
    scenes = shapes.make_scenes(400, seed=41_000, split="heldout", p_two=0.5, p_partial=0.3)
    pred = predict(judge, scenes.images)
    own = summarize(score(pred, shapes.parse_caption(scenes.captions)))
    assert own["scene"]["rate"] > 0.95 and own["binding"]["rate"] > 0.95 and own["color"]["rate"] > 0.99
    shuffled = scenes.captions[1:] + scenes.captions[:1]
    other = summarize(score(pred, shapes.parse_caption(shuffled)))
    assert other["scene"]["rate"] < 0.2 and other["binding"]["rate"] < 0.2
    judged = judge_accuracy(judge, n=400, seed=41_000, split="heldout", p_two=0.5)
    assert judged["scene"]["rate"] == pytest.approx(summarize(score(pred, shapes.parse_caption(
        shapes.captions(scenes.attrs))))["scene"]["rate"])


def test_adherence_of_a_perfect_painter(judge):
    """A 'pipeline' that renders exactly what each prompt says scores as the judge does."""
    def painter(prompts, generator=None, num_images_per_prompt=1, **_):
        a = shapes.sample_attributes(len(prompts), generator=generator)
        want = shapes.parse_caption(prompts)
        attrs = shapes.sample_attributes(len(prompts), seed=5, p_two=1.0)       # positions for two objects
        two = want["n_objects"] == 2
        for k in ("color", "shape", "size"):
            attrs[k] = want[k].clone()
        attrs["relation"] = want["relation"]
        one = ~two
        attrs["x"][one, 1], attrs["y"][one, 1] = math.nan, math.nan
        attrs["x"][one, 0], attrs["y"][one, 0] = a["x"][one, 0], a["y"][one, 0]
        attrs["n_objects"] = want["n_objects"]
        return (shapes.render(attrs) + 1) / 2
    prompts = prompts_for(200, seed=3, p_two=0.0)
    report = adherence(painter, prompts, judge, seed=1, guidance_scale=4.0)
    assert report["scores"]["object"]["rate"] > 0.97 and report["n_prompts"] == 200
    assert report["guidance_scale"] == 4.0 and report["seed"] == 1


def test_object_word_positions_find_each_objects_words():
    from diffusion_course.adherence import object_word_positions
    from diffusion_course.text import Tokenizer
    tok = Tokenizer(shapes.vocabulary(partial=True))
    attrs = {"color": torch.tensor([[0, 0], [5, 2]]), "shape": torch.tensor([[0, 1], [1, 1]])}
    prompts = ["a small red circle left of a large red square",     # the same color twice
               "a large blue square above a small yellow square"]   # the same shape twice
    pos = object_word_positions(tok, prompts, attrs)
    assert pos["color"].tolist() == [[2, 8], [2, 7]] and pos["shape"].tolist() == [[3, 9], [3, 8]]


class _Looks(torch.nn.Module):
    """Stands in for a U-Net's cross-attention: every position attends to one fixed token."""

    def __init__(self, token_map):
        super().__init__()
        self.token_map, self.w = token_map, torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma, cond):
        return x


def test_attention_in_objects_reads_attention_inside_the_true_masks(monkeypatch):
    """With attention maps that are exactly the object masks (each word looks only at its object), the
    share is 1; with uniform maps it is chance, the masks' share of the picture."""
    from diffusion_course import adherence as ad
    from diffusion_course import unet as unet_mod
    from diffusion_course.text import Tokenizer
    from diffusion_course.vae import VAE

    class Pipe:
        tokenizer = Tokenizer(shapes.vocabulary(partial=True))
        unet, vae, device = _Looks(None), VAE(width=8, enc_blocks=1, dec_blocks=1), torch.device("cpu")

        def encode_prompt(self, prompts):
            return None

    n = 6
    attrs = shapes.sample_attributes(n, split="train", p_two=1.0, generator=torch.Generator().manual_seed(0))
    masks = (shapes.object_masks(attrs) > 0.5).float()
    pos = ad.object_word_positions(Pipe.tokenizer, shapes.captions(attrs), attrs)
    perfect = torch.zeros(n, Pipe.tokenizer.max_len, 64, 64)
    for kind in ("color", "shape"):
        for j in range(2):
            perfect[torch.arange(n), pos[kind][:, j]] = masks[:, j]
    for maps, want in ((perfect, 1.0), (torch.ones(n, Pipe.tokenizer.max_len, 64, 64), None)):
        @contextlib.contextmanager
        def recorded(unet, m=maps):                    # as if the U-Net's one layer recorded these maps
            yield [m.permute(0, 2, 3, 1)]              # (B, H, W, T)
        monkeypatch.setattr(unet_mod, "cross_attention_maps", recorded)
        got = ad.attention_in_objects(Pipe(), n=n, sigmas=(1.0,), seed=0)[1.0]
        want = got["chance"] if want is None else want
        assert abs(got["color"] - want) < 2e-3 and abs(got["shape"] - want) < 2e-3, got
    assert abs(got["chance"] - masks.mean().item()) < 1e-3


def test_realism_fd_sits_at_its_floor_for_real_scenes_and_clip_score_sees_the_prompt(judge):
    """Pictures of real scenes that ignore their prompts: FD at its floor (same kind of picture), CLIP score
    far below real scenes with their own captions; a blank canvas: FD far above the floor."""
    from diffusion_course.adherence import realism

    class Realistic:
        device = torch.device("cpu")

        def __call__(self, prompts, generator=None, **_):
            seed = int(torch.randint(0, 10 ** 6, (1,), generator=generator))
            return (shapes.make_scenes(len(prompts), seed=seed, split="heldout").images + 1) / 2

    class Blank(Realistic):
        def __call__(self, prompts, generator=None, **_):
            return torch.tensor(shapes.BACKGROUND).view(1, 3, 1, 1).repeat(len(prompts), 1, 64, 64)

    clip = load_model("clip_shapes")
    real = realism(Realistic(), judge, clip, n=300, draws=2, seed=0, guidance_scale=4.0)
    assert real["fd"] < 1.3 * real["fd_floor"] and (real["n"], real["draws"], real["guidance_scale"]) == (300, 2, 4.0)
    assert real["fd_se"] > 0 and real["fd_floor_se"] > 0
    assert real["clip_score_real"] > 0.6 and real["clip_score"] < 0.3
    blank = realism(Blank(), judge, clip, n=300, draws=2, seed=0)
    assert blank["fd"] > 10 * blank["fd_floor"] and blank["fd_floor"] == real["fd_floor"]
    with pytest.raises(ValueError, match="above the judge's 256 features"):
        realism(Blank(), judge, clip, n=200)
