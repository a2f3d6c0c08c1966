"""Chapter 8's recipes at toy size: each trains, resumes and loads; flow matching changes only the
noise levels and the weight; cold diffusion's evaluation measures what its determinism costs."""
import json
import math

import torch

from diffusion_course.__main__ import main
from diffusion_course.checkpoint import load_model
from diffusion_course.dit import DiT
from diffusion_course.flow import flow_matching_loss
from diffusion_course.recipes.mnist_blur import within_class_std_se
from diffusion_course.recipes.mnist import diffusion_loss
from diffusion_course.unet import UNet


def test_each_recipe_trains_and_its_checkpoint_loads(tmp_path, capsys):
    for recipe, cls in (("mnist_dit", DiT), ("mnist_flow", UNet), ("mnist_blur", UNet), ("mnist_mask", UNet)):
        main(["train", recipe, "--out", str(tmp_path / recipe), "--steps", "2", "--batch_size", "4", "--eval_n", "0"])
        model = load_model(str(tmp_path / recipe))
        assert isinstance(model, cls)
        card = json.loads((tmp_path / f"{recipe}.json").read_text())
        assert card["recipe"] == recipe and card["metrics"]["resumed_from_step"] == 0
    main(["train", "mnist_flow", "--out", str(tmp_path / "mnist_flow"), "--steps", "3", "--batch_size", "4",
          "--eval_n", "0", "--overwrite"])                             # continued to more steps
    assert json.loads((tmp_path / "mnist_flow.json").read_text())["metrics"]["resumed_from_step"] == 2


def test_the_flow_objective_is_the_flow_matching_loss_at_the_same_draws():
    torch.manual_seed(0)
    unet = UNet(in_channels=1, channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(),
                num_classes=10)
    x0, labels = torch.rand(6, 1, 28, 28) * 2 - 1, torch.arange(6)
    ours = diffusion_loss(unet, x0, labels, torch.Generator().manual_seed(1), sigma_kind="flow", objective="flow")
    gen = torch.Generator().manual_seed(1)                            # the same draws, by hand
    from diffusion_course.noise import training_sigmas
    sigma = training_sigmas(6, kind="flow", generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    drop = torch.rand(6, generator=gen) < 0.1
    cond = torch.where(drop, torch.full_like(labels, 10), labels)
    by_hand = flow_matching_loss(unet(x0 + sigma[:, None, None, None] * eps, sigma, cond), eps, sigma)
    torch.testing.assert_close(ours, by_hand)


def test_a_fully_masked_start_gives_one_digit_per_class(tmp_path, capsys):
    """Masking's end is the same blank picture for every start: the improved and the naive sampler
    make the same digit for every sample of a class (within_class_std 0), unlike real digits. The
    metrics come from `evaluate`, which measures a trained checkpoint again."""
    out = str(tmp_path / "mask")
    main(["train", "mnist_mask", "--out", out, "--steps", "2", "--batch_size", "4", "--channels", "4",
          "--severity_steps", "3", "--eval_n", "0"])
    main(["evaluate", "mnist_mask", "--out", out, "--eval_n", "65", "--eval_draws", "2"])
    card = json.loads((tmp_path / "mask.json").read_text())
    samples = card["metrics"]["samples"]
    assert card["settings"]["severity_steps"] == 3 and card["evaluation"]["command"].startswith("python -m")
    assert samples["real_within_class_std"] > 0.3 and 0 < samples["real_within_class_std_se"] < 0.01
    for name in ("naive", "improved"):
        assert samples[name]["within_class_std"] == 0.0 and samples[name]["within_class_std_se"] == 0.0
        assert samples[name]["n"] == 65 and samples[name]["draws"] == 2 and samples[name]["fd"] > 0


def test_the_spreads_standard_error_is_the_sampling_theorys_on_gaussian_pixels():
    """For independent standard normal pixels the sd of a sample sd over n values is about
    1 / sqrt(2 (n - 1)); averaged over 784 pixels and 10 classes it shrinks by sqrt(7840). The
    bootstrap's error bar must match it, and halve when there are four times as many digits."""
    torch.manual_seed(0)
    x, labels = torch.randn(2000, 1, 28, 28), torch.arange(2000) % 10
    for n in (500, 2000):
        theory = 1 / math.sqrt(2 * (n // 10 - 1)) / math.sqrt(7840)
        se = within_class_std_se(x[:n], labels[:n])
        assert 0.7 * theory < se < 1.4 * theory, (n, se, theory)
    assert within_class_std_se(x[:10].repeat(50, 1, 1, 1), labels[:10].repeat(50)) == 0.0
