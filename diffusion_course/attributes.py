"""The attribute classifier: a CNN that reads a scene's ground truth back from its pixels.

    model = load_model("shapes_attributes")
    pred = predict(model, images)                  # a dict like shapes.sample_attributes gives
    attribute_accuracy(pred, scenes.attrs)         # {'color': 0.999, 'shape': ..., 'relation': ...}
    scene_matches(pred, shapes.parse_caption("a small red circle above a big blue box"))

It is the yardstick of the course: trained on real scenes (where the truth is known), it
then scores *generated* images: did the model draw what the prompt asked for? It is trained
on every color+shape pair (split="all"), held-out ones included, because a judge must know
the answers the students are tested on.

One head per question, each a plain classification: the relation (none / left of / above,
which also says one or two objects), then color, shape and size of object 0 and of object 1
(with an extra "none" class for object 1). Objects come in the canonical order of
shapes.py (object 0 is the left or top one), so every image has exactly one right answer.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import shapes
from .checks import to_model
from .clip import ImageEncoder

HEADS = {"relation": 1 + len(shapes.RELATIONS), "color0": len(shapes.COLORS), "shape0": len(shapes.SHAPES),
         "size0": len(shapes.SIZES), "color1": 1 + len(shapes.COLORS), "shape1": 1 + len(shapes.SHAPES),
         "size1": 1 + len(shapes.SIZES)}       # "+1": a "none" class (no second object, no relation)


class AttributeClassifier(nn.Module):
    """(B, 3, 64, 64) -> a dict of logits, one (B, classes) tensor per entry of HEADS."""

    def __init__(self, width=32, dim=256, dropout=0.1):
        super().__init__()
        self.config = dict(width=width, dim=dim, dropout=dropout)
        self.body = ImageEncoder(width, dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, sum(HEADS.values()))

    def forward(self, x):
        logits = self.head(self.dropout(F.silu(self.body(x))))             # (B, sum of classes)
        return dict(zip(HEADS, logits.split(list(HEADS.values()), dim=1)))


def targets(attrs):
    """The class index of every head from ground-truth attributes (absent = class 0 of the +1 heads)."""
    return {"relation": attrs["relation"] + 1, "color0": attrs["color"][:, 0], "shape0": attrs["shape"][:, 0],
            "size0": attrs["size"][:, 0], "color1": attrs["color"][:, 1] + 1, "shape1": attrs["shape"][:, 1] + 1,
            "size1": attrs["size"][:, 1] + 1}


def classifier_loss(logits, attrs):
    """Sum over heads of the cross-entropy against the true class."""
    t = targets(attrs)
    return sum(F.cross_entropy(logits[k].float(), t[k]) for k in HEADS)


@torch.no_grad()
def predict(model, images, batch_size=1024):
    """Predicted attributes, in the format of shapes.sample_attributes (without positions)."""
    was_training = model.training
    model.eval()
    parts = [model(to_model(model, images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    model.train(was_training)
    c = {k: torch.cat([p[k] for p in parts]).argmax(1).cpu() for k in HEADS}
    relation = c["relation"] - 1
    two = relation >= 0
    second = lambda v: torch.where(two, v - 1, torch.full_like(v, -1))         # noqa: E731
    return {"n_objects": 1 + two.long(), "relation": relation,
            "color": torch.stack([c["color0"], second(c["color1"])], 1),
            "shape": torch.stack([c["shape0"], second(c["shape1"])], 1),
            "size": torch.stack([c["size0"], second(c["size1"])], 1)}


def attribute_accuracy(pred, attrs):
    """Per-attribute accuracy of predictions against the truth.

    relation: over all scenes (none / left of / above, so it includes the object count);
    color, shape, size: over every object that is really there (object 1 of a single-object
    scene does not count); scene: everything about the scene right at once.
    """
    attrs = {k: v.cpu() for k, v in attrs.items()}
    present = attrs["shape"] >= 0                                               # (B, 2)
    out = {"relation": (pred["relation"] == attrs["relation"]).float().mean().item()}
    for k in ("color", "shape", "size"):
        out[k] = (pred[k] == attrs[k])[present].float().mean().item()
    out["scene"] = scene_matches(pred, attrs).float().mean().item()
    return out


def scene_matches(pred, attrs):
    """(B,) bool: the prediction gets the relation and every object's color, shape and size right.

    `attrs` may hold a single scene (e.g. from shapes.parse_caption) that every prediction is compared with;
    what a prompt does not name (shapes.ANY) is not checked.
    """
    return shapes.matches(pred, attrs, pairwise=False)     # the relation also says the number of objects
