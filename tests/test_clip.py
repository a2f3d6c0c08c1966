"""CLIP: the loss against hand computations, recall on cases with known answers, encoders, checkpoints."""
import math

import pytest
import torch

from diffusion_course import shapes
from diffusion_course.checkpoint import load_model, save_checkpoint
from diffusion_course.clip import (CLIP, ImageEncoder, class_prompts, clip_loss, confusing_captions,
                                   counting_scenes, recall_at_k, zero_shot_classify)

LOGITS = [[2.0, 0.5, -1.0],
          [0.0, 1.0, 0.3],
          [1.5, -0.5, 0.2]]


def hand_ce(rows):
    """-log softmax of the diagonal entry, row by row, averaged: plain Python math."""
    total = 0.0
    for i, row in enumerate(rows):
        total += -(row[i] - math.log(sum(math.exp(v) for v in row)))
    return total / len(rows)


def test_loss_matches_hand_computation():
    columns = [list(c) for c in zip(*LOGITS)]
    # the same numbers worked out with plain math:
    # rows 0.2413, 0.6230, 1.6421 -> 0.8355; columns 0.5550, 0.6041, 0.8781 -> 0.6791
    assert hand_ce(LOGITS) == pytest.approx(0.8355, abs=1e-4)
    assert hand_ce(columns) == pytest.approx(0.6791, abs=1e-4)
    want = (hand_ce(LOGITS) + hand_ce(columns)) / 2
    got = clip_loss(torch.tensor(LOGITS))
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert clip_loss(torch.tensor(LOGITS), torch.eye(3, dtype=torch.bool)).item() == pytest.approx(want, rel=1e-6)


def test_loss_with_shared_targets_by_hand():
    # captions 0 and 2 say the same thing: image 0 and image 2 each have two right captions
    same = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    logsm = lambda row, j: row[j] - math.log(sum(math.exp(v) for v in row))    # noqa: E731
    rows, cols = LOGITS, [list(c) for c in zip(*LOGITS)]
    img = (-(logsm(rows[0], 0) + logsm(rows[0], 2)) / 2 - logsm(rows[1], 1)
           - (logsm(rows[2], 0) + logsm(rows[2], 2)) / 2) / 3
    txt = (-(logsm(cols[0], 0) + logsm(cols[0], 2)) / 2 - logsm(cols[1], 1)
           - (logsm(cols[2], 0) + logsm(cols[2], 2)) / 2) / 3
    assert clip_loss(torch.tensor(LOGITS), same).item() == pytest.approx((img + txt) / 2, rel=1e-6)


def test_loss_limits():
    b = 5
    assert clip_loss(torch.zeros(b, b)).item() == pytest.approx(math.log(b))      # no idea: log B
    assert clip_loss(100 * torch.eye(b)).item() < 1e-6                           # certain and right: 0
    with pytest.raises(ValueError, match="square"):
        clip_loss(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="diagonal"):
        clip_loss(torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.bool))


def test_recall_on_known_cases():
    sim = torch.tensor([[0.9, 0.1, 0.2, 0.0],      # right item 0 ranks 1st
                        [0.8, 0.5, 0.7, 0.0],      # right item 1 ranks 3rd
                        [0.1, 0.2, 0.3, 0.4],      # right item 2 ranks 2nd
                        [0.4, 0.3, 0.2, 0.1]])     # right item 3 ranks 4th
    assert recall_at_k(sim, 1) == 0.25
    assert recall_at_k(sim, 2) == 0.5
    assert recall_at_k(sim, 3) == 0.75
    assert recall_at_k(sim, 4) == 1.0
    # a tie with a wrong item counts against the query
    assert recall_at_k(torch.ones(3, 3), 1) == 0.0
    # several right answers: query 1 may also take item 0, which ranks first
    relevant = torch.eye(4, dtype=torch.bool)
    relevant[1, 0] = True
    assert recall_at_k(sim, 1, relevant) == 0.5
    # a rectangular gallery
    rect = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.4]])
    rel = torch.tensor([[0, 1, 0], [0, 0, 1]], dtype=torch.bool)
    assert recall_at_k(rect, 1, rel) == 0.5 and recall_at_k(rect, 2, rel) == 1.0


def test_recall_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        recall_at_k(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="between 1 and the gallery size 3"):
        recall_at_k(torch.zeros(3, 3), 4)
    with pytest.raises(ValueError, match="relevant"):
        recall_at_k(torch.zeros(3, 3), 1, torch.eye(2, dtype=torch.bool))


def small_clip(**kw):
    torch.manual_seed(0)
    return CLIP(embed_dim=16, text_dim=16, text_depth=1, heads=2, width=8, image_dim=32, **kw).eval()


def test_clip_shapes_norms_and_temperature():
    model = small_clip()
    sc = shapes.make_scenes(6, seed=0)
    ids, mask = model.tokenizer(sc.captions)
    img, txt = model.encode_image(sc.images), model.encode_text(ids, mask)
    assert img.shape == txt.shape == (6, 16)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(txt.norm(dim=1), torch.ones(6))
    logits = model(sc.images[:4], ids, mask)
    assert logits.shape == (4, 6)
    assert model.scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    torch.testing.assert_close(logits, model.scale * img[:4] @ txt.T)
    # padding never reaches the pooled embedding
    noisy = ids.clone()
    noisy[~mask] = 5
    torch.testing.assert_close(model.encode_text(noisy, mask), txt)


def test_image_encoder_bad_input():
    enc = ImageEncoder(width=8, dim=8)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        enc(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match="multiple of 8"):
        ImageEncoder(width=12)


def test_checkpoint_round_trip_keeps_the_vocabulary(tmp_path):
    vocab = ["a", "red", "blue", "circle", "square", "left", "of", "small", "large"]
    model = small_clip(vocab=vocab, max_len=10)
    with torch.no_grad():
        model.log_scale.fill_(3.0)                          # a trained-looking temperature
    save_checkpoint(tmp_path / "clip_tiny", model, {"metrics": {}})
    loaded = load_model(tmp_path / "clip_tiny")
    assert loaded.tokenizer.words == model.tokenizer.words and loaded.tokenizer.max_len == 10
    prompts = ["a small red circle", "a large blue square left of a red circle"]
    torch.testing.assert_close(loaded.embed_prompts(prompts), model.embed_prompts(prompts))
    x = shapes.make_scenes(3, seed=1).images
    torch.testing.assert_close(loaded.embed_images(x), model.embed_images(x))
    assert loaded.scale.item() == pytest.approx(math.exp(3.0), rel=1e-6)
    with pytest.raises(ValueError, match="'green'"):
        loaded.embed_prompts("a green circle")


def test_zero_shot_prompts_and_probe_captions():
    p = class_prompts("color")
    assert list(p) == list(shapes.COLORS)
    assert all(len(v) == len(shapes.SHAPES) * len(shapes.SIZES) and all(c in s for s in v) for c, v in p.items())
    with pytest.raises(ValueError):
        class_prompts("position")
    a = shapes.sample_attributes(50, seed=3, p_two=1.0)
    a["color"][0, 1], a["shape"][0, 1], a["size"][0, 1] = a["color"][0, 0], a["shape"][0, 0], a["size"][0, 0]
    right, wrong, keep = confusing_captions(a, "relation")
    assert not keep[0] and len(right) == 49
    assert all(sorted(r.split()) == sorted(w.split()) and r != w for r, w in zip(right, wrong))
    right, wrong, keep = confusing_captions(a, "binding")
    assert len(right) == int((a["color"][:, 0] != a["color"][:, 1]).sum())
    assert all(sorted(r.split()) == sorted(w.split()) and r != w for r, w in zip(right, wrong))
    images, right, wrong = counting_scenes(4, seed=0)
    assert images.shape == (8, 3, 64, 64)
    assert [len(shapes.parse_caption(r)["n_objects"]) for r in right] == [1] * 8
    assert shapes.parse_caption(right)["n_objects"].tolist() == [1] * 4 + [2] * 4
    assert shapes.parse_caption(wrong)["n_objects"].tolist() == [2] * 4 + [1] * 4


def test_recipe_end_to_end(tmp_path):
    from diffusion_course.recipes import clip as recipe
    out = str(tmp_path / "clip")
    model, metrics = recipe.run(out, torch.device("cpu"), steps=3, batch_size=8, embed_dim=16, text_dim=16,
                                text_depth=1, heads=2, width=8, image_dim=16, eval_galleries=1, eval_n=20)
    for key in ("test_text_to_image_r@1", "heldout_image_to_text_r@5", "test_zero_shot_color",
                "heldout_zero_shot_shape", "relation_accuracy", "binding_accuracy", "counting_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["gallery_size"] == 100
    save_checkpoint(out, model, {"metrics": metrics}, half=True)
    loaded = load_model(out)
    assert loaded.tokenizer.words == model.tokenizer.words
    torch.testing.assert_close(loaded.embed_prompts("a small red circle"), model.embed_prompts("a small red circle"),
                               atol=2e-3, rtol=0)                     # fp16 weights


class StubModel:
    """Random but fixed embeddings for prompts and images: enough to check the zero-shot arithmetic."""
    scale = torch.tensor(10.0)

    def embed_prompts(self, texts):
        return torch.nn.functional.normalize(torch.stack([torch.randn(8, generator=torch.Generator().manual_seed(
            sum(map(ord, t)) * 7 + len(t))) for t in texts]), dim=1)

    def embed_images(self, images):
        return torch.nn.functional.normalize(images.flatten(1)[:, :8], dim=1)


def test_zero_shot_marginal_by_hand():
    model, images = StubModel(), torch.randn(20, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for attribute in ("color", "shape", "size"):
        prompts = class_prompts(attribute)
        img = model.embed_images(images)
        probs = (10.0 * img @ model.embed_prompts([p for g in prompts.values() for p in g]).T).softmax(1)
        want, start = [], 0
        for group in prompts.values():                       # sum the probabilities of each class's prompts
            want.append(probs[:, start:start + len(group)].sum(1))
            start += len(group)
        want = torch.stack(want, 1).argmax(1)
        assert torch.equal(zero_shot_classify(model, images, attribute), want)
        mean = torch.stack([torch.nn.functional.normalize(model.embed_prompts(g).mean(0), dim=0)
                            for g in prompts.values()])
        assert torch.equal(zero_shot_classify(model, images, attribute, method="mean"), (img @ mean.T).argmax(1))
    with pytest.raises(ValueError, match="marginal"):
        zero_shot_classify(model, images, "color", method="vote")


def test_counting_pairs_do_not_overlap():
    """Identical pairs take the smaller size of the two drawn, so they fit where they were placed:
    every pixel stays in [-1, 1] (a larger copy overlapped its neighbour and added up to 2.2)."""
    images, right, wrong = counting_scenes(150, seed=7000)
    assert images.min() >= -1 and images.max() <= 1 and len(right) == len(wrong) == 300


def test_render_refuses_overlapping_objects():
    attrs = shapes.sample_attributes(4, p_two=1.0, seed=0)
    attrs["x"][:, 1], attrs["y"][:, 1] = attrs["x"][:, 0], attrs["y"][:, 0]        # both in one place
    with pytest.raises(ValueError, match=r"the objects of scenes \[0, 1, 2, 3\] overlap"):
        shapes.render(attrs)
