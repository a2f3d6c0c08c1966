"""CLIP: teach a text encoder and an image encoder to put matching pairs at the same place.

    model = CLIP()                                     # text transformer + image CNN + projections
    logits = model(images, ids, mask)                  # (B, B): image i against caption j
    loss = clip_loss(logits)                           # symmetric cross-entropy, the right pairs on the diagonal

Both encoders end in a projection to the same `embed_dim` and an L2 normalization, so an
embedding is a direction and the dot product of two is their cosine similarity, in [-1, 1].
A batch of B images and their B captions gives a B x B similarity matrix; training is B
small classification problems in each direction: "which of these B captions is mine?"
(row-wise softmax) and "which of these B images is mine?" (column-wise), each answered by
cross-entropy with the right answer on the diagonal (Radford et al. 2021). The similarities
are multiplied by a learned scale, 1 / temperature, because cosines alone are too close
together for a confident softmax.

Measuring it: retrieval recall@k (for each caption, is its image among the k most similar
of a gallery?) in both directions, and zero-shot classification (embed every caption that
says "red", every one that says "blue", ..., and pick the color whose captions fit best).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import shapes
from .checks import check_input, to_model
from .text import MAX_LEN, TextEncoder


class ImageEncoder(nn.Module):
    """A small CNN: (B, 3, 64, 64) -> (B, dim).

    Four stages halve the size (64 -> 32 -> 16 -> 8 -> 4) with width, 2, 4, 8 x width channels
    (3x3 convolutions, GroupNorm, SiLU). The final 4x4 map is flattened, not averaged, so
    *where* things are survives (needed for "left of" and "above").
    """

    def __init__(self, width=32, dim=256, image_size=64, in_channels=3):
        super().__init__()
        if not isinstance(width, int) or width < 8 or width % 8:
            raise ValueError(f"width must be a positive multiple of 8 (GroupNorm uses 8 groups), got {width!r}")
        self.config = dict(width=width, dim=dim, image_size=image_size, in_channels=in_channels)
        self.image_size, self.in_channels = image_size, in_channels
        layers, c = [nn.Conv2d(in_channels, width, 3, padding=1), nn.GroupNorm(8, width), nn.SiLU()], width
        for k in range(4):
            out = width * 2 ** k
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.SiLU(),
                       nn.Conv2d(out, out, 3, padding=1), nn.GroupNorm(8, out), nn.SiLU()]
            c = out
        self.body = nn.Sequential(*layers)                                   # (B, 8w, S/16, S/16)
        self.head = nn.Linear(c * (image_size // 16) ** 2, dim)

    def forward(self, x):
        check_images(x, self.in_channels, self.image_size)
        check_input(self, x, "images", image_range=True)
        return self.head(self.body(x).flatten(1))                           # (B, dim)


class CLIP(nn.Module):
    """Text encoder + image encoder + projection heads + a learnable temperature.

    vocab, max_len: the tokenizer's words and length (stored in config, so a loaded CLIP reads prompts).
    embed_dim: the shared space. text_dim, text_depth, heads: the text transformer.
    width, image_dim: the image CNN. temperature: the initial softmax temperature.
    """

    def __init__(self, vocab=None, max_len=MAX_LEN, embed_dim=128, text_dim=128, text_depth=3, heads=4,
                 width=32, image_dim=256, temperature=0.07):
        super().__init__()
        self.text = TextEncoder(vocab, max_len, text_dim, text_depth, heads)
        self.image = ImageEncoder(width, image_dim)
        self.config = dict(vocab=self.text.config["vocab"], max_len=max_len, embed_dim=embed_dim,
                           text_dim=text_dim, text_depth=text_depth, heads=heads, width=width,
                           image_dim=image_dim, temperature=temperature)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))  # learned; scale = 1 / temperature

    @property
    def tokenizer(self):
        return self.text.tokenizer

    @property
    def scale(self):
        """1 / temperature, capped at 100 as in CLIP so the logits cannot blow up."""
        return self.log_scale.exp().clamp(max=100.0)

    def encode_text(self, ids, mask=None):
        """(B, L) token ids -> (B, embed_dim) unit vectors."""
        _, pooled = self.text(ids, mask)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def encode_image(self, images):
        """(B, 3, 64, 64) in [-1, 1] -> (B, embed_dim) unit vectors."""
        return F.normalize(self.image_proj(self.image(images)), dim=-1)

    @torch.no_grad()
    def embed_prompts(self, prompts, batch_size=1024, **kwargs):
        """Prompts (str or list) -> (N, embed_dim) unit vectors on the model's device; kwargs go to the tokenizer."""
        ids, mask = self.tokenizer(prompts, **kwargs)
        dev = self.log_scale.device
        return torch.cat([self.encode_text(ids[i:i + batch_size].to(dev), mask[i:i + batch_size].to(dev))
                          for i in range(0, len(ids), batch_size)])

    @torch.no_grad()
    def embed_images(self, images, batch_size=1024):
        """Images -> (N, embed_dim) unit vectors on the model's device, in batches."""
        dev = self.log_scale.device
        return torch.cat([self.encode_image(to_model(self, images[i:i + batch_size]))
                          for i in range(0, len(images), batch_size)])

    def forward(self, images, ids, mask=None):
        """The scaled similarity matrix: (B_img, B_txt) logits, entry [i, j] = scale * cos(image i, caption j)."""
        return self.scale * self.encode_image(images) @ self.encode_text(ids, mask).T


def clip_loss(logits, targets=None):
    """The symmetric cross-entropy of CLIP: the mean of the row-wise and the column-wise losses.

    logits: (B, B) with images as rows and captions as columns; the matching pairs on the diagonal.
    targets: optional (B, B) bool, True where caption j also describes image i (two scenes
    with the same description in one batch). Each row then spreads its target probability
    evenly over its matches instead of calling the equally true captions wrong.
    """
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"logits must be a square (B, B) matrix of image-caption scores, got {tuple(logits.shape)}")
    b = logits.shape[0]
    if targets is None:
        labels = torch.arange(b, device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    if targets.shape != logits.shape or not targets.diagonal().all():
        raise ValueError("targets must be a (B, B) bool matrix like logits, True on the diagonal")
    t = targets.float()
    loss_images = -(t / t.sum(1, keepdim=True) * F.log_softmax(logits.float(), 1)).sum(1).mean()
    loss_texts = -(t.T / t.T.sum(1, keepdim=True) * F.log_softmax(logits.float().T, 1)).sum(1).mean()
    return (loss_images + loss_texts) / 2


def recall_at_k(sim, k=1, relevant=None):
    """The fraction of queries (rows of `sim`) whose top-k gallery items (columns) hold a right answer.

    sim: (Q, G) scores, higher = more similar. relevant: (Q, G) bool, which gallery items are
    right for each query (default: the diagonal, item i for query i). Ties count against the query.
    """
    if sim.dim() != 2:
        raise ValueError(f"sim must be a (queries, gallery) matrix, got shape {tuple(sim.shape)}")
    q, g = sim.shape
    if relevant is None:
        if q != g:
            raise ValueError(f"sim is {q} x {g}; without `relevant`, query i must match item i, so it must be square")
        relevant = torch.eye(q, dtype=torch.bool, device=sim.device)
    if relevant.shape != sim.shape:
        raise ValueError(f"relevant has shape {tuple(relevant.shape)}, expected {tuple(sim.shape)} like sim")
    if not 1 <= k <= g:
        raise ValueError(f"k must be between 1 and the gallery size {g}, got {k}")
    best_right = sim.masked_fill(~relevant, -math.inf).max(1).values            # (Q,) best score of a right item
    better_wrong = (sim.masked_fill(relevant, -math.inf) >= best_right[:, None]).sum(1)  # wrong items ahead of it
    return (better_wrong < k).float().mean().item()


def retrieval(model, scenes, k=(1, 5)):
    """Recall@k both ways on one gallery of scenes (its size is len(scenes)).

    A retrieved item counts as right when its scene has the same description (shapes.scene_keys):
    a caption that says "a small red circle" is equally true of two such scenes.
    """
    img = model.embed_images(scenes.images)
    txt = model.embed_prompts(scenes.captions)
    sim = (txt @ img.T).float().cpu()                                          # (captions, images)
    keys = shapes.scene_keys(scenes.attrs).cpu()
    relevant = keys[:, None] == keys[None, :]
    out = {}
    for kk in k:
        out[f"text_to_image_r@{kk}"] = recall_at_k(sim, kk, relevant)
        out[f"image_to_text_r@{kk}"] = recall_at_k(sim.T, kk, relevant.T)
    return out


def class_prompts(attribute):
    """Prompts for zero-shot classification of one attribute of a single object, per class.

    Each class gets every canonical caption that names it: for "color", class red gets
    'a small red circle', 'a large red circle', 'a small red square', ... (10 prompts).
    """
    names = {"color": shapes.COLORS, "shape": shapes.SHAPES, "size": shapes.SIZES}
    if attribute not in names:
        raise ValueError(f"zero-shot classes exist for 'color', 'shape' and 'size', not {attribute!r}")
    index = ("color", "shape", "size").index(attribute)
    combos = [(c, s, z) for c in shapes.COLORS for s in shapes.SHAPES for z in shapes.SIZES]
    return {label: [shapes.describe(*cz) for cz in combos if cz[index] == label] for label in names[attribute]}


@torch.no_grad()
def zero_shot_classify(model, images, attribute, method="marginal"):
    """Predict an attribute of single-object images from text alone: (B,) class ids. No classifier is trained.

    images: (B, 3, 64, 64) pictures, or their (B, embed_dim) embeddings from model.embed_images
    (to reuse them across attributes).

    method "marginal": a softmax over *all* the prompts (every full description of one object)
        says how probable each description is; a class's probability is the sum over its
        prompts (p(red) = p(small red circle) + p(large red circle) + ...).
    method "mean": the CLIP paper's prompt ensemble: a class vector is the mean of its prompts'
        embeddings, re-normalized, and each image takes the closest class vector. It suits
        prompts that differ only in wording; here they describe different objects, and the
        mean blurs them (the chapter measures how much).
    """
    prompts = class_prompts(attribute)
    texts = [p for group in prompts.values() for p in group]
    label = torch.tensor([k for k, group in enumerate(prompts.values()) for _ in group])      # (P,)
    img = (images if images.dim() == 2 else model.embed_images(images)).float().cpu()          # (B, E)
    txt = model.embed_prompts(texts).float().cpu()                                             # (P, E)
    if method == "marginal":
        p = (model.scale.item() * img @ txt.T).softmax(1)                                        # (B, P)
        return torch.zeros(len(img), len(prompts)).index_add_(1, label, p).argmax(1)
    if method == "mean":
        classes = F.normalize(torch.zeros(len(prompts), txt.shape[1]).index_add_(0, label, txt), dim=1)
        return (img @ classes.T).argmax(1)
    raise ValueError(f"method must be 'marginal' or 'mean', got {method!r}")


def pair_preference(model, images, right, wrong):
    """How often each image is closer to its right caption than to a wrong one (chance: 0.5)."""
    img = model.embed_images(images)
    return ((img * model.embed_prompts(right)).sum(1) > (img * model.embed_prompts(wrong)).sum(1)).float().mean().item()


def confusing_captions(attrs, kind):
    """(right, wrong) canonical captions for two-object scenes, to probe what CLIP misses.

    kind "relation": wrong swaps the objects' places ("B left of A" for "A left of B");
                     pairs of identical objects are dropped.
    kind "binding":  wrong swaps the colors between the objects (same words, other pairing);
                     scenes whose two objects share a color are dropped (returns their mask too).
    Returns right, wrong (lists) and keep, a (B,) bool mask of the scenes used.
    """
    a = {k: v.cpu() for k, v in attrs.items()}
    keep = a["n_objects"] == 2
    if kind == "binding":
        keep &= a["color"][:, 0] != a["color"][:, 1]
    elif kind == "relation":                     # two identical objects look the same either way round
        keep &= (a["color"][:, 0] != a["color"][:, 1]) | (a["shape"][:, 0] != a["shape"][:, 1]) | \
                (a["size"][:, 0] != a["size"][:, 1])
    else:
        raise ValueError(f"kind must be 'relation' or 'binding', got {kind!r}")
    right, wrong = [], []
    for i in keep.nonzero().squeeze(1).tolist():
        (c0, c1), (s0, s1), (z0, z1) = a["color"][i].tolist(), a["shape"][i].tolist(), a["size"][i].tolist()
        rel = shapes.RELATIONS[a["relation"][i]]
        right.append(shapes.describe(*shapes.words(c0, s0, z0), *shapes.words(c1, s1, z1), rel))
        if kind == "relation":
            wrong.append(shapes.describe(*shapes.words(c1, s1, z1), *shapes.words(c0, s0, z0), rel))
        else:
            wrong.append(shapes.describe(*shapes.words(c1, s0, z0), *shapes.words(c0, s1, z1), rel))
    return right, wrong, keep


def counting_scenes(n, seed, device=None):
    """Scenes that test counting: n single objects and n pairs of *identical* objects.

    Returns the images (2n, 3, 64, 64), the right captions ('a small red circle' for one, 'a
    small red circle left of a small red circle' for two) and the wrong ones (the other count).
    """
    one = shapes.sample_attributes(n, seed=seed, p_two=0.0, device=device)
    two = shapes.sample_attributes(n, seed=seed + 1, p_two=1.0, device=device)
    for k in ("color", "shape"):
        two[k][:, 1] = two[k][:, 0]
    # Both get the smaller of the two sizes: the positions were drawn for the sizes drawn, so a
    # smaller object still fits where it stands, while a larger one could overlap its neighbour.
    two["size"][:] = two["size"].min(1, keepdim=True).values
    images = torch.cat([shapes.render(one), shapes.render(two)])
    obj = lambda a, i: shapes.words(a["color"][i, 0], a["shape"][i, 0], a["size"][i, 0])     # noqa: E731
    right = [shapes.describe(*obj(one, i)) for i in range(n)]
    right += [shapes.describe(*obj(two, i), *obj(two, i), shapes.RELATIONS[two["relation"][i]]) for i in range(n)]
    wrong = [shapes.describe(*obj(one, i), *obj(one, i), "left of") for i in range(n)]
    wrong += [shapes.describe(*obj(two, i)) for i in range(n)]
    return images, right, wrong


@torch.no_grad()
def evaluate(model, galleries=10, gallery_size=100, n=1000, seed=10_000):
    """Every CLIP metric of the course, on scenes drawn from seeds training never uses.

    test: scenes like the training ones (no held-out color+shape pair); heldout: every scene
    holds one held-out pair. Retrieval: recall@1/5 both ways, averaged over `galleries`
    galleries of `gallery_size` scenes with randomly worded captions. Zero-shot: color, shape,
    size of `n` single-object scenes. Relation, binding, counting: how often the right
    caption beats a confusing one (chance 0.5).
    """
    was_training = model.training
    model.eval()                                    # scenes are drawn on the CPU: the same on every machine
    out = {"gallery_size": gallery_size, "galleries": galleries}
    for split, name in (("train", "test"), ("heldout", "heldout")):
        runs = [retrieval(model, shapes.make_scenes(gallery_size, seed=seed + g, split=split))
                for g in range(galleries)]
        for key in runs[0]:
            out[f"{name}_{key}"] = round(sum(r[key] for r in runs) / len(runs), 4)
        single = shapes.make_scenes(n, seed=seed + 1000, split=split, p_two=0.0)
        img = model.embed_images(single.images)
        for attribute in ("color", "shape", "size"):
            pred = zero_shot_classify(model, img, attribute)
            out[f"{name}_zero_shot_{attribute}"] = round((pred == single.attrs[attribute][:, 0].cpu())
                                                         .float().mean().item(), 4)
    pairs = shapes.make_scenes(n, seed=seed + 2000, split="train", p_two=1.0)
    for kind in ("relation", "binding"):
        right, wrong, keep = confusing_captions(pairs.attrs, kind)
        out[f"{kind}_accuracy"] = round(pair_preference(model, pairs.images[keep], right, wrong), 4)
    images, right, wrong = counting_scenes(n // 2, seed=seed + 3000)
    out["counting_accuracy"] = round(pair_preference(model, images, right, wrong), 4)
    model.train(was_training)
    return out


def check_images(x, channels=3, size=64):
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels or x.shape[2:] != (size, size):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (B, {channels}, {size}, {size}) in [-1, 1], got {got}")
