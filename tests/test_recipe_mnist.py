"""The MNIST U-Net recipe: its loss by hand, label dropout, and a tiny end-to-end run."""
import zlib

import pytest
import torch

from diffusion_course.checkpoint import load_model, save_checkpoint
from diffusion_course.noise import training_sigmas
from diffusion_course.recipes import mnist


class Recorder(torch.nn.Module):
    """A stand-in model that returns zeros and remembers what it was given."""

    def forward(self, x, sigma, cond=None):
        self.seen = (x, sigma, cond)
        return torch.zeros_like(x)


def test_diffusion_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    x0, y = torch.randn(6, 1, 28, 28, generator=g), torch.arange(6)
    model = Recorder()
    loss = mnist.diffusion_loss(model, x0, y, torch.Generator().manual_seed(1), p_uncond=0.0)
    g = torch.Generator().manual_seed(1)                    # replay the same random draws
    sigma = training_sigmas(6, 0.01, 80.0, generator=g)
    eps = torch.randn(6, 1, 28, 28, generator=g)
    x, s, c = model.seen
    torch.testing.assert_close(s, sigma)
    torch.testing.assert_close(x, x0 + sigma.view(-1, 1, 1, 1) * eps)
    assert torch.equal(c, y)
    want = ((1 + sigma.view(-1, 1, 1, 1) ** 2) * eps ** 2).mean()   # eps_hat = 0
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_mixed_sigma_kind_adds_training_levels_around_the_middle_band():
    model = Recorder()
    mnist.diffusion_loss(model, torch.zeros(4000, 1, 28, 28), torch.zeros(4000, dtype=torch.long),
                         torch.Generator().manual_seed(0), sigma_kind="mixed")
    want = training_sigmas(4000, 0.01, 80.0, "mixed", generator=torch.Generator().manual_seed(0),
                           **mnist.MIDDLE_SIGMAS)
    torch.testing.assert_close(model.seen[1], want)
    middle = ((want > 1) & (want <= 5)).float().mean().item()
    assert middle > 0.45                    # log-uniform alone puts 18% there


def test_label_dropout_uses_the_null_class():
    model = Recorder()
    y = torch.zeros(4000, dtype=torch.long)
    mnist.diffusion_loss(model, torch.zeros(4000, 1, 28, 28), y, torch.Generator().manual_seed(0), p_uncond=0.1)
    cond = model.seen[2]
    assert set(cond.unique().tolist()) == {0, mnist.NULL}
    assert (cond == mnist.NULL).float().mean().item() == pytest.approx(0.1, abs=0.015)


def test_tiny_run_end_to_end(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_DATA", str(mnist_root))
    out = str(tmp_path / "mnist_unet")
    model, metrics = mnist.run(out, torch.device("cpu"), steps=3, batch_size=4, channels=8, eval_n=0)
    assert model.config["channels"] == 8 and model.config["num_classes"] == 10
    assert metrics["samples"] == {"skipped": "eval_n=0 (a development run)"}
    assert metrics["fp16_weights"]["max_abs_diff"] >= 0
    save_checkpoint(out, model, {"settings": {"steps": 3}}, half=mnist.HALF)
    back = load_model(out)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(back(x, 1.0, torch.tensor([3, 10])), model(x, 1.0, torch.tensor([3, 10])),
                               atol=2e-2, rtol=2e-2)


def _eval_data():
    """Stand-in MNIST: 9,000 "training" images and 1,000 "held-out" ones, classes 0-9 in turn."""
    images = torch.rand(mnist.N_TRAIN + 1000, 1, 28, 28, generator=torch.Generator().manual_seed(5)) * 2 - 1
    return images, torch.arange(len(images)) % 10


def test_evaluate_scores_every_sampler_against_the_heldout_digits_only(monkeypatch):
    torch.manual_seed(0)
    model = mnist.make_model(channels=8).eval()                      # untrained: the bookkeeping is tested
    images, real_labels = _eval_data()
    seen = []
    real_fd_report = __import__("diffusion_course.metrics", fromlist=["fd_report"]).fd_report

    def spy(classifier, x, real, **kw):
        seen.append((len(x), real))
        return real_fd_report(classifier, x, real, **kw)

    monkeypatch.setattr("diffusion_course.metrics.fd_report", spy)
    r = mnist.evaluate(model, images, real_labels, n=70, draws=2, cfg_scale=2.0, grid_steps=(3, 10))
    assert len(seen) == 11 and all(k == 140 and torch.equal(real, images[mnist.N_TRAIN:]) for k, real in seen)
    samplers = ("ddpm", "ddim", "accelerated", "heun", "dpmpp_2m")
    assert set(r["samplers"]) == {f"{s}_{k}" for s in samplers for k in (3, 10)}
    assert [r["samplers"][f"{s}_10"]["network_calls"] for s in samplers] == [10, 10, 10, 20, 10]
    for row in list(r["samplers"].values()) + [r["guided"]]:
        assert (row["n"], row["draws"], row["class_matched"], row["reference"]) == (70, 2, True, mnist.HELDOUT)
        assert {"fd", "fd_se", "fd_floor", "fd_floor_se", "accuracy", "sampler", "steps", "seed", "cfg_scale"} <= set(row)
    assert (r["guided"]["sampler"], r["guided"]["steps"], r["guided"]["cfg_scale"]) == ("ddim", 50, 2.0)
    s = r["summary"]
    assert s["guided_accuracy"] == r["guided"]["accuracy"] and s["fd_accelerated_10_over_ddim_50"] is None  # no ddim_50
    r = mnist.evaluate(model, images, real_labels, n=70, draws=2, samplers=("ddim", "accelerated"),
                       grid_steps=(10, 50))
    fast, slow = r["samplers"]["accelerated_10"], r["samplers"]["ddim_50"]
    ratio = s = r["summary"]["fd_accelerated_10_over_ddim_50"]
    assert ratio["ratio"] == round(fast["fd"] / slow["fd"], 3)
    want_se = fast["fd"] / slow["fd"] * ((fast["fd_se"] / fast["fd"]) ** 2 + (slow["fd_se"] / slow["fd"]) ** 2) ** 0.5
    assert ratio["se"] == pytest.approx(want_se, abs=1e-3)


def test_eval_n_is_checked_before_training(tmp_path):
    with pytest.raises(ValueError, match="from 65 to 400"):
        mnist.run(str(tmp_path / "m"), torch.device("cpu"), steps=1, eval_n=30)
    assert not list(tmp_path.iterdir())                               # nothing trained, nothing written


def test_interrupted_evaluation_resumes_from_its_finished_entries(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = mnist.make_model(channels=8).eval()
    images, real_labels = _eval_data()
    kw = dict(n=70, draws=1, cfg_scale=2.0, grid_steps=(10, 25))
    calls, cut_at = [], [None]

    def sample(model, labels, sampler, steps, cfg_scale, seed, **kwargs):
        """Stands in for sample_digits: counts its calls, can be cut off, and returns images that
        depend on the weights and the setting only (the bookkeeping is tested, not the sampling)."""
        setting = (sampler, steps, cfg_scale, seed)
        calls.append(setting)
        if len(calls) == cut_at[0]:
            raise KeyboardInterrupt
        salt = zlib.crc32(repr(setting).encode()) + int(1000 * next(model.parameters()).sum().item())
        return torch.rand(len(labels), 1, 28, 28, generator=torch.Generator().manual_seed(salt)) * 2 - 1

    monkeypatch.setattr(mnist, "sample_digits", sample)
    whole = mnist.evaluate(model, images, real_labels, **kw)             # uninterrupted, nothing kept
    every = list(calls)
    progress = str(tmp_path / "eval.json")
    calls.clear()
    cut_at[0] = 5
    with pytest.raises(KeyboardInterrupt):
        mnist.evaluate(model, images, real_labels, progress=progress, **kw)
    assert calls == every[:5]                                         # four entries finished, the fifth cut
    calls.clear()
    cut_at[0] = None
    again = mnist.evaluate(model, images, real_labels, progress=progress, **kw)
    assert calls == every[4:]                                         # only what was not finished
    assert again == whole                                             # as if never interrupted

    with torch.no_grad():
        next(model.parameters()).add_(1.0)                             # other weights: nothing is reused
    calls.clear()
    mnist.evaluate(model, images, real_labels, progress=progress, **kw)
    assert calls == every
