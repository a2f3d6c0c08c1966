"""The MNIST U-Net recipe: its loss by hand, label dropout, and a tiny end-to-end run."""
import functools
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


@pytest.fixture
def short_path(monkeypatch):
    """evaluate() with path_error's reference at 60 steps instead of 1,000: the bookkeeping is tested."""
    monkeypatch.setattr(mnist, "path_error", functools.partial(mnist.path_error, exact_steps=60))


def test_evaluate_reports_every_setting_and_the_targets(short_path):
    torch.manual_seed(0)
    model = mnist.make_model(channels=8).eval()                      # untrained: the bookkeeping is tested
    images = torch.rand(mnist.N_TRAIN + 60, 1, 28, 28) * 2 - 1         # 60 "held-out" images after N_TRAIN
    real_labels = torch.arange(len(images)) % 10
    r = mnist.evaluate(model, images, real_labels, n=20, cfg_scale=2.0, grid_steps=(10, 50), cfg_scales=(1.0, 2.0),
                       exact_steps=60, path_n=10, gams=(1.0, 1.5))
    assert set(r["samplers"]) == {f"{s}_{k}" for s in ("ddim", "accelerated", "ddpm") for k in (10, 50)}
    assert set(r["guidance"]) == {"ddim_50_cfg1", "ddim_50_cfg2"}
    assert r["guidance"]["ddim_50_cfg1"] is r["samplers"]["ddim_50"]
    for row in list(r["samplers"].values()) + list(r["guidance"].values()):
        assert row["n"] == 20 and {"fd", "fd_floor", "accuracy", "sampler", "steps", "seed", "cfg_scale"} <= set(row)
        assert row["class_matched"] and row["heldout"]["n"] == 20
    s = r["summary"]
    assert s["fd_accelerated_10_over_ddim_50"] == round(r["samplers"]["accelerated_10"]["fd"] /
                                                         r["samplers"]["ddim_50"]["fd"], 3)
    assert s["guided_accuracy"] == r["guidance"]["ddim_50_cfg2"]["accuracy"]
    fast = r["guided_accelerated_10"]
    assert (fast["sampler"], fast["steps"], fast["cfg_scale"], fast["n"]) == ("accelerated", 10, 2.0, 20)
    assert s["fd_accelerated_10_over_ddim_50_guided"] == round(fast["fd"] / r["guidance"]["ddim_50_cfg2"]["fd"], 3)
    other = s["fd_ddim_50_other_seed"]
    assert other["seed"] == 1 and other["ratio_to_seed"] == round(other["fd"] / r["samplers"]["ddim_50"]["fd"], 3)
    exact = r["exact_path"]
    assert (exact["sampler"], exact["steps"], exact["n"], exact["cfg_scale"]) == ("ddim", 60, 20, 1.0)
    assert s["fd_accelerated_10_over_exact_path"] == round(r["samplers"]["accelerated_10"]["fd"] / exact["fd"], 3)
    path = r["path_error"]
    assert (path["n"], path["steps"], set(path["rms"])) == (10, [10, 50, 60], {"ddim", "accelerated"})
    assert (path["gams"], path["gam_steps"], path["gam_rms"][0]) == ([1.0, 1.5], 10, path["rms"]["ddim"][0])
    assert [(row["gam"], row["steps"]) for row in r["gam_sweep"]] == [(1.0, 10), (1.5, 10)]
    assert r["gam_sweep"][0]["fd"] == r["samplers"]["ddim_10"]["fd"]              # gam 1 is DDIM
    assert set(r["ddpm_bands"]) == set(mnist.DDPM_BANDS)
    for name, row in r["ddpm_bands"].items():
        want = ("ddim", 50, 20, list(mnist.DDPM_BANDS[name]))
        assert (row["sampler"], row["steps"], row["n"], row["ddpm_band"]) == want


def test_ddpm_band_mixes_the_two_step_rules_by_sigma():
    torch.manual_seed(0)
    model = mnist.make_model(channels=8).eval()
    labels = torch.arange(4)

    def digits(sampler="ddim", band=None):
        return mnist.sample_digits(model, labels, sampler, steps=6, cfg_scale=1.0, seed=0, ddpm_band=band)

    ddim, ddpm = digits(), digits("ddpm")
    assert torch.equal(digits(band=(100.0, 200.0)), ddim)          # no step in the band: all DDIM
    assert torch.equal(digits(band=(0.0, 80.0)), ddpm)             # every step in the band: all DDPM
    mixed = digits(band=(1.0, 5.0))                                # some of each: neither
    assert not torch.equal(mixed, ddim) and not torch.equal(mixed, ddpm)
    sigmas = mnist.sampling_sigmas(6)
    segments = mnist._segments(sigmas, "ddim", (1.0, 5.0))
    whole = torch.cat([segments[0][1]] + [part[1:] for _, part in segments[1:]])
    assert torch.equal(whole, sigmas)                              # the segments join up into the schedule
    for rule, part in segments:
        assert all((1.0 < s <= 5.0) == (rule == "ddpm") for s in part[:-1].tolist())
    with pytest.raises(ValueError, match="sampler='ddim'"):
        digits("accelerated", (1.0, 5.0))


def test_mean_ink_is_the_brightness_in_zero_one():
    black, white = -torch.ones(2, 1, 28, 28), torch.ones(2, 1, 28, 28)
    assert mnist.mean_ink(black) == 0.0 and mnist.mean_ink(white) == 1.0
    assert mnist.mean_ink(torch.cat([black, white])) == 0.5


def test_path_error_measures_the_distance_to_the_many_step_ddim_answer():
    torch.manual_seed(0)
    model = mnist.make_model(channels=8).eval()
    r = mnist.path_error(model, steps=(3, 12), n=4, exact_steps=12, seed=2, gams=(2.0, 1.5), gam_steps=3)
    labels = torch.arange(4) % 10
    exact = mnist.sample_digits(model, labels, "ddim", 12, 1.0, 2)
    fast = mnist.sample_digits(model, labels, "accelerated", 3, 1.0, 2)
    assert (r["n"], r["seed"], r["steps"]) == (4, 2, [3, 12])
    assert r["rms"]["ddim"][1] == 0.0                                # DDIM at exact_steps is the reference
    assert r["rms"]["accelerated"][0] == round((fast - exact).pow(2).mean().sqrt().item(), 4)
    assert r["exact_check"] == r["rms"]["accelerated"][1] > 0
    assert r["gam_rms"][0] == r["rms"]["accelerated"][0]                       # gam 2 is the accelerated sampler
    blend = mnist.sample_digits(model, labels, "ddim", 3, 1.0, 2, gam=1.5)
    assert r["gam_rms"][1] == round((blend - exact).pow(2).mean().sqrt().item(), 4)
    assert r["ink"]["accelerated"][0] == round((fast.mean().item() + 1) / 2, 4) == r["gam_ink"][0]
    assert r["exact_ink"] == r["ink"]["ddim"][1] == round((exact.mean().item() + 1) / 2, 4)
    assert r["gam_ink"][1] == round((blend.mean().item() + 1) / 2, 4)
    with pytest.raises(ValueError, match="fresh noise"):
        mnist.path_error(model, samplers=("ddpm",))
    with pytest.raises(ValueError, match="positive integers"):
        mnist.path_error(model, steps=(0, 10))


def test_interrupted_evaluation_resumes_from_its_finished_entries(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = mnist.make_model(channels=8).eval()
    images = torch.rand(mnist.N_TRAIN + 60, 1, 28, 28) * 2 - 1
    real_labels = torch.arange(len(images)) % 10
    kw = dict(n=20, cfg_scale=2.0, grid_steps=(10,), cfg_scales=(1.0,), exact_steps=20, path_n=10, gams=(1.0,))
    calls, cut_at = [], [None]

    def sample(model, labels, sampler, steps, cfg_scale, seed, **kwargs):
        """Stands in for sample_digits: counts its calls, can be cut off, and returns images that
        depend on the weights and the setting only (the bookkeeping is tested, not the sampling)."""
        setting = (sampler, steps, cfg_scale, seed, kwargs.get("gam"), kwargs.get("ddpm_band"))
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
