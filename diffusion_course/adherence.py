"""Does the picture show what the prompt asked for? Generated scenes scored by the attribute judge.

    scores = score(predict(judge, images), parse_caption(prompts))   # per picture: True, False or absent
    report = summarize(scores)                                        # rates with n and a 95% interval
    report = adherence(pipe, prompts, judge, seed=0, guidance_scale=4.0)   # generate, judge, summarize

Only what a prompt names is scored: "a red shape" is right whatever its shape and size; "a
red circle left of a blue square" is scored on each object's color, shape and size, the number
of objects, the relation, the whole scene, and **binding**: is each color on the shape the
prompt gave it, wherever the objects stand? (A model that paints a blue circle and a red
square for that prompt has the right colors and the right shapes, and binds them wrongly:
Stable Diffusion's best-known failure.) The judge is a classifier, so every rate here is also
capped by the judge's own accuracy, which `judge_accuracy` measures on real scenes.
"""
import math

import torch
import torch.nn.functional as F

from . import shapes
from .attributes import predict
from .checks import to_model

ATTRIBUTES = ("color", "shape", "size")


def score(pred, prompts):
    """Per-picture verdicts, each a (B,) float tensor of 1 (right), 0 (wrong) or nan (the prompt does
    not ask): count, relation (two-object prompts: the relation, with the objects in the prompt's
    order), color, shape, size (mean over the objects whose
    attribute the prompt names), object (every named attribute of every object), scene (everything
    at once: shapes.matches), binding (two-object prompts naming both colors and shapes: the set of
    (color, shape) pairs is the prompt's, in any place).

    pred: attributes.predict(judge, images); prompts: shapes.parse_caption(prompts), one per picture.
    """
    b = len(pred["relation"])
    p = {k: prompts[k].cpu().expand(b, *prompts[k].shape[1:]) for k in ("n_objects", "relation") + ATTRIBUTES}
    q = {k: pred[k].cpu() for k in ("n_objects", "relation") + ATTRIBUTES}
    nan = torch.full((b,), math.nan)
    two = p["n_objects"] == 2
    # the relation is right when it is the prompt's and the objects stand in the prompt's order: the
    # picture's first object agrees with the prompt's first at least as well as with its second
    direct = sum(((q[k] == p[k]) & (p[k] >= 0)).sum(1) for k in ATTRIBUTES)
    crossed = sum(((q[k] == p[k].flip(1)) & (p[k].flip(1) >= 0)).sum(1) for k in ATTRIBUTES)
    in_order = (q["relation"] == p["relation"]) & (direct >= crossed)
    out = {"count": (q["n_objects"] == p["n_objects"]).float(), "relation": torch.where(two, in_order.float(), nan)}
    named_all = torch.zeros(b, dtype=torch.bool)
    object_ok = torch.ones(b, dtype=torch.bool)
    for k in ATTRIBUTES:
        named = p[k] >= 0                                                             # (B, 2)
        right = (q[k] == p[k]) & named
        count = named.sum(1)
        out[k] = torch.where(count > 0, right.sum(1) / count.clamp(min=1), nan)
        object_ok &= (right | ~named).all(1)
        named_all |= named.any(1)
    out["object"] = torch.where(named_all, object_ok.float(), nan)
    out["scene"] = shapes.matches(q, p, pairwise=False).float()
    pairs_named = two & (p["color"] >= 0).all(1) & (p["shape"] >= 0).all(1)
    pair = lambda a, j: a["color"][:, j] * len(shapes.SHAPES) + a["shape"][:, j]        # noqa: E731
    same = (pair(q, 0) == pair(p, 0)) & (pair(q, 1) == pair(p, 1))
    swapped = (pair(q, 0) == pair(p, 1)) & (pair(q, 1) == pair(p, 0))
    out["binding"] = torch.where(pairs_named, ((same | swapped) & (q["n_objects"] == 2)).float(), nan)
    return out


def summarize(scores):
    """{name: {"rate", "n", "ci95"}}: the mean of each verdict over the pictures it applies to, how
    many that is, and a 95% confidence interval (Wilson's, for a rate from n yes/no answers)."""
    out = {}
    for k, v in scores.items():
        v = v[~torch.isnan(v)]
        if len(v) == 0:
            continue
        rate, n = v.mean().item(), len(v)
        out[k] = {"rate": round(rate, 4), "n": n, "ci95": [round(x, 4) for x in wilson(rate, n)]}
    return out


def wilson(rate, n, z=1.96):
    """Wilson's score interval for a proportion `rate` observed in n trials: (low, high)."""
    if n == 0:
        return (0.0, 1.0)
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.no_grad()
def adherence(pipe, prompts, judge, images_per_prompt=1, seed=0, batch_size=100, **call):
    """Generate a picture per prompt (x images_per_prompt), judge it, and summarize what obeys.

    pipe: a pipeline.TextToImage (or any callable taking prompts and generator= and returning
    (B, 3, 64, 64) pictures in [0, 1]); call: its other arguments (guidance_scale, num_inference_steps,
    sampler, negative_prompt, ...), recorded in the report with n and seed.
    Returns {"scores": summarize(...), "n_prompts", "images_per_prompt", "seed", **call}.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    wanted = shapes.parse_caption(prompts)
    device = getattr(pipe, "device", torch.device("cpu"))
    gen = torch.Generator(device=device).manual_seed(seed)
    images = []
    for i in range(0, len(prompts), batch_size):
        images.append(pipe(prompts[i:i + batch_size], generator=gen, num_images_per_prompt=images_per_prompt, **call))
    images = torch.cat(images)
    repeat = {k: v.repeat_interleave(images_per_prompt, 0) for k, v in wanted.items()}
    pred = predict(judge, images * 2 - 1)
    return {"scores": summarize(score(pred, repeat)), "n_prompts": len(prompts),
            "images_per_prompt": images_per_prompt, "seed": seed, **{k: v for k, v in call.items()}}


@torch.no_grad()
def judge_accuracy(judge, n=1000, seed=40_000, split="heldout", p_two=0.5):
    """The judge's own verdicts on real scenes with their own captions (what a perfect generator would
    score): summarize(score(...)) of make_scenes(n, seed, split, p_two)."""
    scenes = shapes.make_scenes(n, seed=seed, split=split, p_two=p_two)
    return summarize(score(predict(judge, scenes.images), shapes.parse_caption(shapes.captions(scenes.attrs))))


def prompts_for(n, seed=0, split="heldout", p_two=0.0, p_partial=0.0):
    """n canonical prompts of scenes drawn like make_scenes (split='heldout': every prompt holds a
    held-out color+shape pair); with p_partial, partial ones among them. Returns a list of strings."""
    gen = torch.Generator().manual_seed(seed)
    attrs = shapes.sample_attributes(n, split=split, p_two=p_two, generator=gen)
    if p_partial:
        return shapes.captions(attrs, generator=gen, p_partial=p_partial)
    return shapes.captions(attrs)


@torch.no_grad()
def attention_in_objects(pipe, n=100, sigmas=(4.0, 1.0, 0.25), seed=0, split="train"):
    """Does each word look at its object? The share of a word's cross-attention inside that object.

    For n two-object scenes with canonical captions ("a small red circle left of a large blue
    square"), each scene's latent is noised to each sigma and the U-Net run once on it with its
    caption, keeping its cross-attention maps (unet.cross_attention_maps, averaged over layers
    and heads, upsampled to 64x64). For the color word and the shape word of each object, the
    share of the word's attention (summed over the picture) that falls inside the object's true
    mask (shapes.object_masks), against chance: the mask's share of the picture.
    Returns {sigma: {"color": share, "shape": share, "chance": share, "n": words averaged}}.
    """
    from .unet import cross_attention_maps, word_maps
    gen = torch.Generator().manual_seed(seed)
    attrs = shapes.sample_attributes(n, split=split, p_two=1.0, generator=gen)
    prompts = shapes.captions(attrs)                                       # canonical wording
    masks = (shapes.object_masks(attrs) > 0.5).float()                     # (B, 2, 64, 64) inside or not (CPU,
                                                                           # where the maps are recorded)
    pos = object_word_positions(pipe.tokenizer, prompts, attrs)
    words = torch.cat([pos["color"], pos["shape"]], 1)                     # (B, 4) token positions
    z0 = pipe.vae.encode(shapes.render(attrs).to(pipe.device)).float()     # (B, 4, 8, 8)
    cond = pipe.encode_prompt(prompts)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed + 1)).to(pipe.device)
    rows = torch.arange(n)
    out = {}
    for sigma in sigmas:
        with cross_attention_maps(pipe.unet) as maps:
            pipe.unet(to_model(pipe.unet, z0 + sigma * noise), sigma, cond)
        picked = [m.gather(3, words[:, None, None, :].expand(-1, *m.shape[1:3], -1)) for m in maps]
        wm = word_maps(picked, 64).float()                                 # (B, 4, 64, 64) only these words
        res = {}
        for k, kind in enumerate(("color", "shape")):
            share = []
            for j in range(2):
                m = wm[rows, 2 * k + j]                                     # (B, 64, 64)
                share.append((m * masks[:, j]).sum((1, 2)) / m.sum((1, 2)))
            res[kind] = round(torch.cat(share).mean().item(), 3)
        res["chance"] = round(masks.mean((2, 3)).mean().item(), 3)
        res["n"] = 2 * n
        out[sigma] = res
    return out


def object_word_positions(tokenizer, prompts, attrs):
    """Where each object's color and shape words stand in canonical two-object captions:
    {"color": (B, 2), "shape": (B, 2)} token positions, object 0 named first, object 1 last."""
    ids, _ = tokenizer.encode(prompts)                                     # (B, T)
    pos = {}
    for kind, names in (("color", shapes.COLORS), ("shape", shapes.SHAPES)):
        want = torch.tensor([[tokenizer.index[names[v]] for v in row] for row in attrs[kind].tolist()])
        first = (ids == want[:, :1]).float().argmax(1)                     # object 0: the first mention
        last = ids.shape[1] - 1 - (ids == want[:, 1:]).flip(1).float().argmax(1)   # object 1: the last
        pos[kind] = torch.stack([first, last], 1)                          # (B, 2)
    return pos


@torch.no_grad()
def attribute_features(judge, images, batch_size=500):
    """The judge's last hidden layer (B, dim) for pictures (B, 3, 64, 64) in [-1, 1]: the feature space
    of FD here (FID uses an ImageNet classifier's; ours knows the shapes world)."""
    was_training = judge.training
    judge.eval()
    out = torch.cat([F.silu(judge.body(to_model(judge, images[i:i + batch_size]))).float().cpu()
                     for i in range(0, len(images), batch_size)])
    judge.train(was_training)
    return out


@torch.no_grad()
def realism(pipe, judge, clip, n=400, draws=3, seed=0, split="heldout", p_two=0.5, batch_size=100, **call):
    """FD and CLIP score of pictures made for prompts, each beside what real scenes score.

    Draw k (of `draws`) takes n scenes drawn like make_scenes(split, p_two) and makes a picture
    for each one's canonical caption; the real scenes are those scenes, rendered. FD (Heusel et
    al. 2017, in attribute_features space) compares the pictures with them; its floor is the FD
    of n *other* real scenes of the same kind against them (what a perfect generator scores at
    this n: FD is biased upwards at small n). fd and fd_floor are means over the draws, with
    standard errors fd_se, fd_floor_se. n must exceed the judge's feature dimension (256 for the
    shipped judge): with fewer pictures the covariances are singular and FD is not a number to
    compare. The CLIP score is the mean cosine between a picture's CLIP embedding and its
    prompt's (clip: the shipped clip.CLIP), for the pictures and for the real scenes.
    Returns {"fd", "fd_se", "fd_floor", "fd_floor_se", "clip_score", "clip_score_real", "n",
    "draws", "seed", **call}.
    """
    from statistics import fmean

    from .metrics import frechet_distance, standard_error
    dim = judge.head.in_features
    if not isinstance(n, int) or n <= dim or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"realism needs n above the judge's {dim} features and draws >= 2 (for an error bar), "
                         f"got n={n!r}, draws={draws!r}")
    gen_attrs = torch.Generator().manual_seed(seed)
    g = torch.Generator(device=getattr(pipe, "device", torch.device("cpu"))).manual_seed(seed)
    fds, floors, made_cos, real_cos = [], [], [], []
    for _ in range(draws):
        attrs = shapes.sample_attributes(n, split=split, p_two=p_two, generator=gen_attrs)
        others = shapes.sample_attributes(n, split=split, p_two=p_two, generator=gen_attrs)
        prompts = shapes.captions(attrs)
        made = torch.cat([pipe(prompts[i:i + batch_size], generator=g, **call)
                          for i in range(0, n, batch_size)]) * 2 - 1                    # (n, 3, 64, 64)
        real = shapes.render(attrs)
        f_real = attribute_features(judge, real)
        fds.append(frechet_distance(attribute_features(judge, made), f_real))
        floors.append(frechet_distance(attribute_features(judge, shapes.render(others)), f_real))
        text = clip.embed_prompts(prompts).float().cpu()                           # (n, E) unit vectors
        made_cos.append((clip.embed_images(made).float().cpu() * text).sum(1).mean().item())
        real_cos.append((clip.embed_images(real).float().cpu() * text).sum(1).mean().item())
    return {"fd": round(fmean(fds), 2), "fd_se": round(standard_error(fds), 2), "fd_floor": round(fmean(floors), 2),
            "fd_floor_se": round(standard_error(floors), 2), "clip_score": round(fmean(made_cos), 4),
            "clip_score_real": round(fmean(real_cos), 4), "n": n, "draws": draws, "seed": seed, **call}
