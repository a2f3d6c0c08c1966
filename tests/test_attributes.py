"""The attribute classifier: heads, decoding of predictions, accuracies, and its recipe end to end."""
import math

import pytest
import torch

from diffusion_course import shapes
from diffusion_course.attributes import (HEADS, AttributeClassifier, attribute_accuracy, classifier_loss, predict,
                                         scene_matches, targets)
from diffusion_course.checkpoint import load_model, save_checkpoint


class Oracle(torch.nn.Module):
    """Ignores the pixels and answers with confident logits for known attributes: tests the decoding."""

    def __init__(self, attrs):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.t = targets(attrs)

    def forward(self, x):
        i = self.calls
        self.calls += len(x)
        return {k: 10 * torch.nn.functional.one_hot(self.t[k][i:i + len(x)], n).float() for k, n in HEADS.items()}


def test_heads_shapes():
    torch.manual_seed(0)
    model = AttributeClassifier(width=8, dim=16)
    out = model(shapes.make_scenes(3, seed=0).images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, n) for k, n in HEADS.items()}


def test_predict_decodes_the_heads():
    sc = shapes.make_scenes(40, seed=1)
    oracle = Oracle(sc.attrs)
    oracle.calls = 0
    pred = predict(oracle, sc.images, batch_size=16)                 # three batches
    for k in ("n_objects", "relation", "color", "shape", "size"):
        assert torch.equal(pred[k], sc.attrs[k]), k
    assert attribute_accuracy(pred, sc.attrs) == {"relation": 1.0, "color": 1.0, "shape": 1.0, "size": 1.0,
                                                  "scene": 1.0}


def test_accuracy_counts_only_real_objects():
    a = {"relation": torch.tensor([-1, 0, 1, -1]),
         "color": torch.tensor([[1, -1], [2, 3], [4, 5], [6, -1]]),
         "shape": torch.tensor([[0, -1], [1, 2], [3, 4], [0, -1]]),
         "size": torch.tensor([[0, -1], [1, 0], [0, 1], [1, -1]])}
    pred = {k: v.clone() for k, v in a.items()}
    pred["color"][1, 1] = 0                        # one wrong color out of 6 objects
    pred["color"][0, 1] = 7                        # garbage for an absent object: must not count
    pred["relation"][2] = 0                        # one wrong relation out of 4 scenes
    acc = attribute_accuracy(pred, a)
    assert acc["color"] == pytest.approx(5 / 6) and acc["relation"] == 0.75 and acc["shape"] == 1.0
    assert acc["scene"] == 0.5
    assert scene_matches(pred, a).tolist() == [True, False, False, True]


def test_scene_matches_a_parsed_prompt():
    prompt = shapes.parse_caption("a tiny crimson disc above a big box colored blue")
    truth = {"relation": torch.tensor([1, 1, 0]), "color": torch.tensor([[0, 5], [0, 5], [0, 5]]),
             "shape": torch.tensor([[0, 1], [1, 0], [0, 1]]), "size": torch.tensor([[0, 1], [0, 1], [0, 1]])}
    assert scene_matches(truth, prompt).tolist() == [True, False, False]


def test_loss_limits():
    a = shapes.sample_attributes(5, seed=3)
    uniform = {k: torch.zeros(5, n) for k, n in HEADS.items()}
    assert classifier_loss(uniform, a).item() == pytest.approx(sum(math.log(n) for n in HEADS.values()), rel=1e-5)
    t = targets(a)
    perfect = {k: 100 * torch.nn.functional.one_hot(t[k], n).float() for k, n in HEADS.items()}
    assert classifier_loss(perfect, a).item() < 1e-6


def test_recipe_end_to_end(tmp_path):
    from diffusion_course.recipes import attributes as recipe
    out = str(tmp_path / "attr")
    model, metrics = recipe.run(out, torch.device("cpu"), steps=3, batch_size=8, width=8, dim=16, eval_n=50)
    assert {"test_color_accuracy", "heldout_shape_accuracy", "test_relation_accuracy"} <= set(metrics)
    save_checkpoint(out, model, {"metrics": metrics})
    loaded = load_model(out)
    x = shapes.make_scenes(4, seed=0).images
    assert all(torch.equal(predict(loaded, x)[k], predict(model, x)[k]) for k in ("color", "shape", "relation"))
