"""The shapes world: determinism, held-out pairs, geometry, captions that tell the truth, the renderer."""
import pytest
import torch

from diffusion_course import shapes as S


def brute_force_render(attrs, size=64):
    """The plainest renderer: every pixel of every object, one scene at a time (the oracle)."""
    scale = size / 64
    grid = (torch.arange(size) + 0.5) / scale
    out = []
    for i in range(attrs["color"].shape[0]):
        img = torch.tensor(S.BACKGROUND).view(3, 1, 1).repeat(1, size, size)
        for j in range(2):
            s = int(attrs["shape"][i, j])
            if s < 0:
                continue
            dx = grid.view(1, 1, -1) - attrs["x"][i, j]
            dy = grid.view(1, -1, 1) - attrs["y"][i, j]
            r = torch.tensor(S.RADIUS)[attrs["size"][i, j]].view(1, 1, 1)
            alpha = (0.5 - S.signed_distance(s, dx, dy, r) * scale).clamp(0, 1)
            img = img * (1 - alpha) + S.RGB[attrs["color"][i, j]].view(3, 1, 1) * alpha
        out.append(img * 2 - 1)
    return torch.stack(out)


def test_shapes_and_range():
    sc = S.make_scenes(64, seed=1)
    assert sc.images.shape == (64, 3, 64, 64) and sc.images.dtype == torch.float32
    assert sc.images.min() >= -1 and sc.images.max() <= 1
    assert len(sc) == 64 and all(isinstance(c, str) and c for c in sc.captions)
    for k in ("color", "shape", "size", "x", "y"):
        assert sc.attrs[k].shape == (64, 2)
    assert sc.attrs["n_objects"].shape == sc.attrs["relation"].shape == (64,)


def test_deterministic_by_seed():
    a, b, c = S.make_scenes(40, seed=7), S.make_scenes(40, seed=7), S.make_scenes(40, seed=8)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert all(torch.equal(a.attrs[k], b.attrs[k]) for k in a.attrs if k not in ("x", "y"))
    assert torch.equal(a.attrs["x"].nan_to_num(-1), b.attrs["x"].nan_to_num(-1))
    assert not torch.equal(a.images, c.images) and a.captions != c.captions


def test_generator_stream_is_reproducible():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    first, second = S.make_scenes(8, generator=g1), S.make_scenes(8, generator=g1)
    assert not torch.equal(first.images, second.images)          # the stream moves on
    assert torch.equal(S.make_scenes(8, generator=g2).images, first.images)


def test_held_out_pairs_are_disjoint_from_training():
    train = S.sample_attributes(3000, split="train", seed=0)
    held = S.sample_attributes(3000, split="heldout", seed=0)
    free = S.sample_attributes(3000, split="all", seed=0)
    assert not S.is_held_out(train).any()
    assert (S.is_held_out(held).sum(1) == 1).all()               # exactly one held-out object per scene
    assert S.is_held_out(free).any()
    pairs = {(S.COLORS[c], S.SHAPES[s]) for c, s in zip(held["color"][S.is_held_out(held)].tolist(),
                                                         held["shape"][S.is_held_out(held)].tolist())}
    assert pairs == set(S.HELD_OUT)
    # every other color+shape pair does appear in training
    seen = {(c, s) for c, s in zip(train["color"][:, 0].tolist(), train["shape"][:, 0].tolist())}
    assert len(seen) == len(S.COLORS) * len(S.SHAPES) - len(S.HELD_OUT)


def test_geometry_canonical_order_and_no_overlap():
    a = S.sample_attributes(4000, seed=2)
    r = torch.tensor(S.RADIUS)[a["size"].clamp(min=0)]
    one = a["n_objects"] == 1
    assert (a["relation"][one] == -1).all() and (a["shape"][one, 1] == -1).all() and a["x"][one, 1].isnan().all()
    assert (a["x"][:, 0] - r[:, 0] >= 1 - 1e-4).all() and (a["x"][:, 0] + r[:, 0] <= 63 + 1e-4).all()
    two = ~one
    x0, x1, y0, y1 = a["x"][:, 0], a["x"][:, 1], a["y"][:, 0], a["y"][:, 1]
    for rel, along, across in ((0, x1 - x0, y1 - y0), (1, y1 - y0, x1 - x0)):
        m = two & (a["relation"] == rel)
        assert m.sum() > 500
        assert (along[m] >= r[m, 0] + r[m, 1] + 3 - 1e-4).all()   # object 0 first, a clear gap between
        assert (across[m].abs() < along[m]).all()                  # the relation's axis dominates
    for k in ("x", "y"):
        v = a[k][two]
        assert (v - r[two] >= 1 - 1e-4).all() and (v + r[two] <= 63 + 1e-4).all()


@pytest.mark.parametrize("size", [64, 32, 96])
def test_render_matches_brute_force(size):
    a = S.sample_attributes(60, seed=4, split="all")
    torch.testing.assert_close(S.render(a, size=size), brute_force_render(a, size), atol=1e-4, rtol=0)


def test_center_pixel_has_the_object_color():
    a = S.sample_attributes(200, seed=5)
    img = S.render(a)
    for j in range(2):
        m = a["shape"][:, j] >= 0
        rows = m.nonzero().squeeze(1)
        px, py = a["x"][rows, j].long(), a["y"][rows, j].long()
        got = img[rows, :, py, px]                                   # (N, 3)
        torch.testing.assert_close(got, S.RGB[a["color"][rows, j]] * 2 - 1)


def _words_to_ids(caption, names):
    """Ids of the names (through their synonyms) in caption order."""
    lookup = {syn: i for i, name in enumerate(names) for syn in S.SYNONYMS[name]}
    return [lookup[w] for w in caption.split() if w in lookup]


def test_captions_tell_the_truth():
    sc = S.make_scenes(1500, seed=6)
    a = sc.attrs
    for i, cap in enumerate(sc.captions):
        n = int(a["n_objects"][i])
        colors, shapes_, sizes = (_words_to_ids(cap, names) for names in (S.COLORS, S.SHAPES, S.SIZES))
        truth = [a["color"][i, :n].tolist(), a["shape"][i, :n].tolist(), a["size"][i, :n].tolist()]
        assert sorted(colors) == sorted(truth[0]) and sorted(shapes_) == sorted(truth[1]), cap
        assert sorted(sizes) == sorted(truth[2]), cap
        if n == 2 and truth[0][0] != truth[0][1]:                    # which object is named first?
            first_is_0 = colors[0] == truth[0][0]
            forward = any(w in cap.split() for w in ("left", "above", "over", "top"))
            assert forward == first_is_0, (cap, a["relation"][i])
            vertical = a["relation"][i] == 1
            assert vertical == any(w in cap.split() for w in ("above", "over", "top", "below", "under",
                                                               "beneath", "underneath")), cap


def test_wording_varies_and_canonical_captions():
    sc = S.make_scenes(400, seed=9)
    assert len(set(sc.captions)) > 300
    canon = S.captions(sc.attrs)
    a = sc.attrs
    for i in range(20):
        c, s, z = S.words(a["color"][i, 0], a["shape"][i, 0], a["size"][i, 0])
        if a["n_objects"][i] == 1:
            assert canon[i] == S.describe(c, s, z)
        else:
            c2, s2, z2 = S.words(a["color"][i, 1], a["shape"][i, 1], a["size"][i, 1])
            assert canon[i] == S.describe(c, s, z, c2, s2, z2, S.RELATIONS[a["relation"][i]])
    assert S.describe("orange", "circle", "small") == "a small orange circle"
    assert S.describe("white", "plus", "large", "orange", "circle", "small", "below") == \
        "a large white plus below a small orange circle"


def test_vocabulary_is_exactly_the_caption_words():
    full, partial = S.make_scenes(3000, seed=10), S.make_scenes(3000, seed=10, p_partial=0.5)
    used = {w for c in full.captions for w in c.split()}
    assert used == set(S.vocabulary())
    assert used | {w for c in partial.captions for w in c.split()} == set(S.vocabulary(partial=True))
    assert set(S.vocabulary(partial=True)) - used == set(S.GENERIC) | {"something"}


def test_partial_captions_are_true_and_say_less():
    sc = S.make_scenes(2000, seed=13, p_partial=0.5, split="all")
    prompts = S.parse_caption(sc.captions)
    assert S.matches(sc.attrs, prompts).diagonal().all()                     # every caption is true of its scene
    present = sc.attrs["shape"] >= 0
    unnamed = {k: (prompts[k] == S.ANY)[present].float().mean().item() for k in ("color", "shape", "size")}
    assert all(0.15 < v < 0.45 for v in unnamed.values()), unnamed           # each attribute left out at times
    assert not ((prompts["color"] == S.ANY) & (prompts["shape"] == S.ANY) & (prompts["size"] == S.ANY)).any()
    assert S.make_scenes(50, seed=13).captions == S.make_scenes(50, seed=13, p_partial=0.0).captions


def test_matches_checks_only_what_a_prompt_names():
    a = S.parse_caption(["a small red circle", "a large blue square left of a small red circle"])
    prompts = S.parse_caption(["a red shape", "a circle", "something blue", "a big thing",
                               "a blue shape left of a red shape", "a red shape left of a blue shape"])
    assert S.matches(a, prompts).int().tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]]


def test_scene_keys_equal_iff_same_description():
    a = S.sample_attributes(1500, seed=11, p_two=0.3)
    keys, canon = S.scene_keys(a), S.captions(a)
    same_key = keys[:, None] == keys[None, :]
    same_text = torch.tensor([[p == q for q in canon] for p in canon])
    assert torch.equal(same_key, same_text)
    assert (same_key.sum(1) > 1).any()                               # the test saw real collisions


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(n=2.5), dict(n=4, split="test"), dict(n=4, p_two=1.5),
                                    dict(n=4, seed=-1)])
def test_bad_inputs(kwargs):
    with pytest.raises(ValueError):
        S.make_scenes(**kwargs)


def test_bad_render_size_and_words():
    with pytest.raises(ValueError, match="size"):
        S.render(S.sample_attributes(2), size=8)
    with pytest.raises(ValueError, match="pink"):
        S.describe("pink", "circle", "small")
    with pytest.raises(TypeError):
        S.make_scenes(2, generator="seed")


def test_parse_caption_inverts_captions():
    sc = S.make_scenes(1000, seed=12)
    parsed = S.parse_caption(sc.captions)
    for k in ("n_objects", "color", "shape", "size", "relation"):
        assert torch.equal(parsed[k], sc.attrs[k]), k
    one = S.parse_caption("a big box colored blue under a tiny red disc")
    assert one["color"].tolist() == [[0, 5]] and one["shape"].tolist() == [[0, 1]] and one["relation"].tolist() == [1]
    with pytest.raises(ValueError, match="cannot read .*needs an object on both sides"):
        S.parse_caption("a red circle left of")
    with pytest.raises(ValueError, match="one object with two colors"):
        S.parse_caption("a red circle and a blue square")
    with pytest.raises(ValueError, match="one relation between two objects"):
        S.parse_caption("a red circle left of a box above a disc")
    with pytest.raises(ValueError, match="no object"):
        S.parse_caption("there is")


def test_object_masks_are_where_the_renderer_paints_each_object():
    attrs = S.sample_attributes(64, p_two=0.5, seed=3)
    masks = S.object_masks(attrs)                                     # (B, 2, 64, 64)
    bg = torch.tensor(S.BACKGROUND).view(1, 3, 1, 1) * 2 - 1
    paint = S.RGB * 2 - 1 - bg.view(1, 3)                             # (colors, 3)
    rebuilt = bg.expand(64, 3, 64, 64).clone()
    for j in range(2):
        c = attrs["color"][:, j].clamp(min=0)
        rebuilt += masks[:, j, None] * paint[c].view(-1, 3, 1, 1)
    torch.testing.assert_close(rebuilt, S.render(attrs), atol=1e-5, rtol=0)
    one = attrs["n_objects"] == 1
    assert masks[one, 1].abs().sum() == 0 and (masks[:, 0].amax((1, 2)) == 1).all()
    assert ((masks[:, 0] > 0) & (masks[:, 1] > 0)).sum() == 0             # objects never overlap
