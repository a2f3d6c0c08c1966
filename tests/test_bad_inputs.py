"""Wrong and hostile calls, on the public API and the command line: each gets one clear error.

Every case is a mistake a user makes (or a file from elsewhere that is broken or crafted), and
the test asserts the *message*: it names the cause and says what to do. None may pass silently,
and the command line answers in one line on stderr with exit status 2, never a traceback.
The kinds follow the reliability issue: cards are data (2), nothing is overwritten or lost (3),
the command line (5), files from outside (6), dtype and device (7), non-finite numbers and
out-of-range pixels (8), messages that name the real cause (9), bench (10). Resume (4) is in
test_train.py; notebook outputs on other CPU kernels (1) are proved by `make test` itself.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion_course import __main__ as cli
from diffusion_course import checkpoint
from diffusion_course.checkpoint import load_model, read_card, save_checkpoint
from diffusion_course.clip import CLIP
from diffusion_course.data import load_mnist
from diffusion_course.metrics import MNISTClassifier, predict
from diffusion_course.mlp import MLPDenoiser
from diffusion_course.noise import add_noise, schedule
from diffusion_course.recipes import defaults, training_settings
from diffusion_course.sampling import generate, guided_eps
from diffusion_course.train import train
from diffusion_course.unet import UNet
from diffusion_course.vae import VAE
from test_unet import SMALL, randomized

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def unet():
    return randomized(UNet(**SMALL, num_classes=3))


@pytest.fixture(scope="module")
def text_unet():
    return randomized(UNet(**SMALL, context_dim=6))


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VAE(width=8, enc_blocks=1, dec_blocks=1).eval()


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return CLIP(embed_dim=16, text_dim=16, text_depth=1, heads=2, width=8, image_dim=16).eval()


X = torch.randn(2, 1, 8, 8)
NAN = float("nan")


def nan_at(shape, where=0):
    t = torch.randn(shape)
    t.view(-1)[where] = NAN
    return t


# ---- API: (call, exception, what the message must say) ------------------------------------

def api_cases():
    img = torch.rand(2, 3, 64, 64) * 2 - 1
    return {
        # 7. dtype and device: the message names both sides
        "unet_float64_input": (lambda m: m["unet"](X.double(), 1.0), ValueError,
                               r"x is float64 on cpu, but the model's weights are float32 on cpu: move one"),
        "unet_half_model_float_input": (lambda m: UNet(**SMALL).half()(X, 1.0), ValueError,
                                        r"x is float32 .* weights are float16"),
        "unet_other_device": (lambda m: m["unet"](torch.empty(2, 1, 8, 8, device="meta"), 1.0), ValueError,
                              r"x is float32 on meta, but the model's weights are float32 on cpu"),
        "vae_float64_images": (lambda m: m["vae"].encode(img.double()), ValueError, r"images is float64 .* float32"),
        "vae_decode_wrong_dtype": (lambda m: m["vae"].decode(torch.randn(2, 4, 8, 8).double()), ValueError,
                                   r"z is float64"),
        "text_ids_other_device": (lambda m: m["clip"].text(torch.zeros(1, 24, dtype=torch.long, device="meta")),
                                  ValueError, r"ids are on meta, the text encoder's weights on cpu"),
        "unet_x_not_tensor": (lambda m: m["unet"]([[1.0]], 1.0), TypeError, r"x must be a torch tensor"),
        "unet_integer_x": (lambda m: m["unet"](torch.zeros(2, 1, 8, 8, dtype=torch.long), 1.0), TypeError,
                           r"floating-point tensor, got torch.int64"),
        # 8. non-finite numbers and pixels out of range
        "unet_nan_x": (lambda m: m["unet"](nan_at((2, 1, 8, 8)), 1.0), ValueError, r"x holds 1 NaN or infinite"),
        "unet_nan_sigma": (lambda m: m["unet"](X, NAN), ValueError, r"sigma holds 1 NaN"),
        "unet_inf_sigma_per_item": (lambda m: m["unet"](X, torch.tensor([1.0, float("inf")])), ValueError,
                                    r"sigma holds 1 NaN or infinite"),
        "unet_negative_sigma": (lambda m: m["unet"](X, -1.0), ValueError, r"sigma must be >= 0"),
        "unet_sigma_wrong_length": (lambda m: m["unet"](X, torch.ones(3)), ValueError,
                                    r"one noise level per image \(2,\), got shape \(3,\)"),
        "vae_nan_images": (lambda m: m["vae"].encode(nan_at((2, 3, 64, 64))), ValueError, r"images holds 1 NaN"),
        "vae_inf_latents": (lambda m: m["vae"].decode(torch.full((1, 4, 8, 8), float("inf"))), ValueError,
                            r"z holds 256 NaN or infinite values"),
        "vae_images_0_255": (lambda m: m["vae"].encode(img * 127.5 + 127.5), ValueError,
                             r"values from .* expects pixels in \[-1, 1\]: for uint8 pixels in \[0, 255\] use "
                             r"x / 127.5 - 1"),
        "clip_images_0_255": (lambda m: m["clip"].embed_images(img * 127.5 + 127.5), ValueError,
                              r"expects pixels in \[-1, 1\]"),
        "clip_nan_images": (lambda m: m["clip"].encode_image(nan_at((2, 3, 64, 64))), ValueError,
                            r"images holds 1 NaN"),
        "mlp_nan_points": (lambda m: MLPDenoiser()(nan_at((4, 2)), 1.0), ValueError, r"x holds 1 NaN"),
        "mlp_nan_sigma": (lambda m: MLPDenoiser()(torch.randn(4, 2), NAN), ValueError, r"sigma holds"),
        "classifier_nan": (lambda m: MNISTClassifier()(nan_at((2, 1, 28, 28))), ValueError, r"x holds 1 NaN"),
        "add_noise_nan_x0": (lambda m: add_noise(nan_at((2, 3)), 1.0), ValueError, r"x0 holds 1 NaN"),
        "add_noise_inf_sigma": (lambda m: add_noise(torch.zeros(2, 3), float("inf")), ValueError,
                                r"sigma holds 1 NaN or infinite"),
        "add_noise_nan_eps": (lambda m: add_noise(torch.zeros(2, 3), 1.0, eps=nan_at((2, 3))), ValueError,
                              r"eps holds 1 NaN"),
        "sampler_nan_start": (lambda m: generate(m["unet"], schedule("loglinear", 3), x=nan_at((2, 1, 8, 8))),
                              ValueError, r"the starting x holds 1 NaN"),
        "sampler_huge_guidance": (lambda m: generate(m["unet"], schedule("loglinear", 5), shape=(2, 1, 8, 8),
                                                     cond=torch.tensor([0, 1]), cfg_scale=1e30),
                                  FloatingPointError, r"step \d of 5 \(sigma .*\) predicted NaN or infinite noise: "
                                                      r"cfg_scale=1e\+30 is too large \(typical values are 1-7\)"),
        "sampler_nan_guidance": (lambda m: generate(m["unet"], schedule("loglinear", 3), shape=(2, 1, 8, 8),
                                                    cond=torch.tensor([0, 1]), cfg_scale=NAN),
                                 ValueError, r"cfg_scale must be a number >= 0"),
        "sampler_broken_weights": (lambda m: generate(_nan_weights(), schedule("loglinear", 3), shape=(1, 1, 8, 8)),
                                   FloatingPointError, r"step 0 of 3 .* the model's weights or inputs hold NaN"),
        "sampler_nan_sigmas": (lambda m: generate(m["unet"], torch.tensor([80.0, NAN, 0.0]), shape=(1, 1, 8, 8)),
                               ValueError, r"sigmas must be finite"),
        # 9. messages that name the real cause
        "float_class_labels": (lambda m: m["unet"](X, 1.0, torch.tensor([1.0, 2.0])), ValueError,
                               r"cond holds float32 numbers of shape \(2,\): class labels must be integers "
                               r"\(use cond.long\(\)\)"),
        "text_unet_without_context": (lambda m: m["text_unet"](X, 1.0), ValueError,
                                      r"this U-Net is text-conditioned \(context_dim=6\): pass the prompt's tokens"),
        "text_unet_given_labels": (lambda m: m["text_unet"](X, 1.0, torch.tensor([0, 1])), ValueError,
                                   r"takes none \(num_classes=None\); it is text-conditioned"),
        "class_unet_given_tokens": (lambda m: m["unet"](X, 1.0, torch.randn(2, 5, 6)), ValueError,
                                    r"no cross-attention \(context_dim=None\)"),
        "label_out_of_range": (lambda m: m["unet"](X, 1.0, torch.tensor([0, 9])), ValueError,
                               r"values 0..2 or 3 for 'no class'"),
    }


def _nan_weights():
    model = randomized(UNet(**SMALL))
    with torch.no_grad():
        model.conv_out.bias.fill_(NAN)
    return model


@pytest.mark.parametrize("name", list(api_cases()))
def test_api_mistake_gets_a_clear_error(name, unet, text_unet, vae, clip):
    call, error, message = api_cases()[name]
    with pytest.raises(error, match=message):
        call({"unet": unet, "text_unet": text_unet, "vae": vae, "clip": clip})


# ---- 7. calls that take a model work in the model's own dtype -------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_sampling_works_for_the_models_own_dtype(unet, dtype):
    model = randomized(UNet(**SMALL, num_classes=3)).to(dtype)
    sigmas = schedule("loglinear", 4)
    x = generate(model, sigmas, shape=(2, 1, 8, 8), cond=torch.tensor([0, 1]), cfg_scale=2.0,
                 generator=torch.Generator().manual_seed(0))
    ref = generate(unet, sigmas, shape=(2, 1, 8, 8), cond=torch.tensor([0, 1]), cfg_scale=2.0,
                   generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    torch.testing.assert_close(x, ref, atol=0.1 if dtype == torch.bfloat16 else 1e-4, rtol=0.05)


def test_encoders_and_metrics_work_for_the_models_own_dtype(clip):
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(clip.double().embed_images(images).float(), clip.float().embed_images(images),
                               atol=1e-5, rtol=1e-4)
    torch.manual_seed(0)
    clf = MNISTClassifier().eval()
    digits = torch.rand(4, 1, 28, 28) * 2 - 1
    assert torch.equal(predict(clf.double(), digits), predict(clf.float(), digits))


def test_guidance_takes_one_sigma_per_sample(unet):
    x, sigma, cond = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 3.0]), torch.tensor([0, 2])
    eps = guided_eps(unet, x, sigma, cond, cfg_scale=3.0)
    by_hand = unet(x, sigma, torch.tensor([3, 3])) + 3.0 * (unet(x, sigma, cond) - unet(x, sigma, torch.tensor([3, 3])))
    torch.testing.assert_close(eps, by_hand, atol=1e-5, rtol=1e-5)


# ---- 2. a checkpoint card is data, never code ------------------------------------------------

def _crafted(tmp_path, card):
    save_file({"w": torch.zeros(1)}, str(tmp_path / "evil.safetensors"))
    (tmp_path / "evil.json").write_text(json.dumps(card))
    return tmp_path / "evil"


@pytest.mark.parametrize("card, message", [
    ({"model": "os.system", "config": {"command": "touch pwned"}}, r"names the model 'os.system', which is not one "
                                                                   r"of the package's model classes"),
    ({"model": "subprocess.Popen", "config": {"args": ["touch", "pwned"]}}, r"not one of the package's model classes"),
    ({"model": "diffusion_course.checkpoint.save_state", "config": {}}, r"not one of the package's model classes"),
    ({"model": "diffusion_course.unet.UNet", "config": {"in_channels": 1, "evil": 1}},
     r"evil is not an argument of UNet \(it takes in_channels, channels"),
    ({"model": "diffusion_course.unet.UNet"}, r"has no \"config\" object"),
    ({"model": "diffusion_course.unet.UNet", "config": {"channel_mults": "abc", "attention_levels": [7]}},
     r"describes a UNet that cannot be built"),
])
def test_a_crafted_card_runs_nothing(tmp_path, monkeypatch, card, message):
    monkeypatch.chdir(tmp_path)
    path = _crafted(tmp_path, card)
    with pytest.raises(ValueError, match=message):
        load_model(path)
    assert not (tmp_path / "pwned").exists()


def test_a_crafted_card_through_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = _crafted(tmp_path, {"model": "os.system", "config": {"command": "touch pwned"}})
    with pytest.raises(SystemExit) as e:
        cli.main(["sample", "--checkpoint", str(path), "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and not (tmp_path / "pwned").exists()
    assert "not a diffusion model" in capsys.readouterr().err


def test_only_registered_classes_can_be_saved(tmp_path):
    with pytest.raises(TypeError, match=r"not one of the package's model classes"):
        save_checkpoint(tmp_path / "x", types.SimpleNamespace(config={}, state_dict=dict, parameters=list))


# ---- 6. files from outside: named, with the fix -----------------------------------------------

def test_broken_files_are_named_with_their_fix(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ok", MLPDenoiser(hidden=8))
    (tmp_path / "ok.safetensors").write_bytes((tmp_path / "ok.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"ok.safetensors is not a readable safetensors file .*restore it from git"):
        load_model(tmp_path / "ok")
    save_checkpoint(tmp_path / "b", MLPDenoiser(hidden=8))
    (tmp_path / "b.safetensors").write_text("this is text")
    with pytest.raises(ValueError, match=r"b.safetensors is not a readable safetensors file"):
        load_model(tmp_path / "b")
    save_checkpoint(tmp_path / "c", MLPDenoiser(hidden=8))
    (tmp_path / "c.json").write_text((tmp_path / "c.json").read_text()[:40])
    with pytest.raises(ValueError, match=r"the card .*c.json is not valid JSON .*truncated: restore it from git"):
        read_card(tmp_path / "c")
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"c.json holds a JSON list, not an object"):
        load_model(tmp_path / "c")
    (tmp_path / "c.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no card c.json: restore it from git"):
        load_model(tmp_path / "c")


@pytest.mark.parametrize("content, message", [
    (b"not gzip at all", r"not a complete gzip file \(BadGzipFile"),
    ("truncated", r"not a complete gzip file \(EOFError"),
])
def test_broken_mnist_files_are_named(tmp_path, mnist_root, content, message):
    for src in sorted(mnist_root.rglob("t10k-*")):
        data = src.read_bytes()
        if src.name.startswith("t10k-images"):
            data = data[:5000] if content == "truncated" else content
        (tmp_path / src.name).write_bytes(data)
    with pytest.raises(ValueError, match=rf"t10k-images-idx3-ubyte.gz is {message}.*delete it and fetch it again"):
        load_mnist("test", root=tmp_path)


# ---- 3 and 5. the command line: one line, exit 2, nothing overwritten or lost ----------------

def fake_recipe(monkeypatch, calls):
    """A recipe that trains a tiny model through train(), so that resume and its checks are real."""
    def run(out, device, steps=6, lr=1e-2, batch_size=8, eval_n=10):
        settings = training_settings(run, locals())
        calls.append(steps)
        torch.manual_seed(0)
        model = MLPDenoiser(hidden=8)
        data = torch.randn(64, 2)

        def loss(m, x, gen):
            return ((m(x, torch.ones(len(x))) - x) ** 2).mean()
        result = train(model, loss, lambda g: data[torch.randint(0, 64, (batch_size,), generator=g)], steps=steps,
                       lr=lr, device=device, state_path=out, settings=settings)
        return result.ema, {"final_loss": round(result.losses[-1], 3)}
    fake = types.SimpleNamespace(NAME="fake", DEFAULTS=defaults(run), run=run, __doc__="A fake recipe.")
    real = cli.load_recipe
    monkeypatch.setattr(cli, "load_recipe", lambda name: fake if name == "fake" else real(name))
    return fake


def cli_error(capsys, argv):
    """Run the command line in-process; return its stderr, asserting one line and exit status 2."""
    capsys.readouterr()                                   # what earlier calls printed
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert e.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


CLI_CASES = {
    "unknown_command": (["paint"], r"invalid choice: 'paint'.*see `python -m diffusion_course --help`"),
    "unknown_recipe": (["train", "imagenet"], r"unknown recipe 'imagenet': choose one of mnist"),
    "unknown_setting": (["train", "mnist", "--stepz", "3"], r"unknown setting --stepz; this recipe takes: --steps"),
    "fractional_steps": (["train", "mnist", "--steps", "1.7"], r"--steps expects a whole number"),
    "zero_batch": (["train", "mnist", "--batch_size", "0"], r"--batch_size must be a positive number, got 0"),
    "negative_eval_n": (["train", "mnist", "--eval_n", "-5"], r"--eval_n must be a number >= 0, got -5"),
    "nan_lr": (["train", "mnist", "--lr", "nan"], r"--lr must be a finite number"),
    "ema_decay_1": (["train", "mnist", "--ema_decay", "1"], r"--ema_decay must be a number from 0 up to, not "
                                                             r"including, 1"),
    "p_uncond_2": (["train", "mnist", "--p_uncond", "2"], r"--p_uncond must be a fraction from 0 to 1"),
    "sigma_kind": (["train", "mnist", "--sigma_kind", "foo"], r"--sigma_kind must be one of loguniform, lognormal, "
                                                              r"mixed, flow, got 'foo'"),
    "sigma_order": (["train", "mnist", "--sigma_min", "5", "--sigma_max", "1"], r"--sigma_min must be below"),
    "vae_factor": (["train", "vae", "--factor", "6"], r"--factor must be a power of 2"),
    "vae_recon": (["train", "vae", "--recon", "l3"], r"--recon must be one of l1, mse"),
    "attributes_split": (["train", "attributes", "--split", "test"], r"--split must be one of train, heldout, all"),
    "bool_setting": (["train", "mnist", "--compile", "maybe"], r"--compile expects a bool"),
    "device_tpu": (["train", "mnist", "--out", "{tmp}/m", "--device", "tpu"], r"unknown device 'tpu'"),
    "shipped_checkpoint": (["train", "mnist", "--steps", "2"], r"checkpoints/mnist_unet.safetensors already exists "
                                                               r"and training never replaces a checkpoint unless "
                                                               r"asked: pass --overwrite"),
    "other_recipes_checkpoint": (["train", "mnist", "--out", str(ROOT / "checkpoints" / "mnist_classifier"),
                                  "--overwrite"], r"was made by recipe 'classifier', not 'mnist': --overwrite "
                                                  r"replaces only a checkpoint of the same recipe"),
    "out_folder_is_a_file": (["train", "mnist", "--out", "{tmp}/file/m"], r"cannot create the output folder"),
    "bench_batch_0": (["bench", "--batch", "0"], r"argument --batch: expected a whole number >= 1, got '0'"),
    "bench_iters_fraction": (["bench", "--iters", "2.5"], r"argument --iters: expected a whole number >= 1"),
    "bench_device": (["bench", "--device", "tpu"], r"unknown device 'tpu'"),
    "sample_classifier": (["sample", "--checkpoint", "mnist_classifier"], r"mnist_classifier is a MNISTClassifier, "
                                                                          r"not a diffusion model: sample a U-Net"),
    "sample_missing": (["sample", "--checkpoint", "no_such_model"], r"no checkpoint 'no_such_model'.*shipped:"),
    "sample_steps_0": (["sample", "--steps", "0"], r"argument --steps: expected a whole number >= 1"),
    "sample_cfg_negative": (["sample", "--cfg", "-1"], r"argument --cfg: expected a finite number >= 0"),
    "sample_cfg_nan": (["sample", "--cfg", "nan"], r"argument --cfg: expected a finite number >= 0"),
    "sample_cfg_inf": (["sample", "--cfg", "inf"], r"argument --cfg: expected a finite number >= 0"),
    "sample_label_11": (["sample", "--labels", "3,11", "--out", "{tmp}/x.png"], r"--labels must be class numbers "
                                                                                r"from 0 to 9"),
    "sample_label_words": (["sample", "--labels", "a,b", "--out", "{tmp}/x.png"], r"--labels expects comma-separated"),
    "sample_sampler": (["sample", "--sampler", "euler"], r"argument --sampler: invalid choice: 'euler'"),
    "sample_out_folder": (["sample", "--out", "{tmp}/missing/x.png"], r"the folder .*missing for --out does not "
                                                                      r"exist"),
    "sample_n_0": (["sample", "--n", "0"], r"argument --n: expected a whole number >= 1"),
    "sample_seed_negative": (["sample", "--seed", "-3"], r"argument --seed: expected a whole number >= 0"),
    "sample_extra_argument": (["sample", "--temperature", "2"], r"unrecognized arguments: --temperature 2"),
}
if torch.cuda.is_available():
    del CLI_CASES["device_tpu"]
else:
    CLI_CASES["device_cuda_missing"] = (["bench", "--device", "cuda"], r"this machine has no CUDA GPU")


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_command_line_mistake_is_one_line(name, tmp_path, capsys):
    argv, message = CLI_CASES[name]
    (tmp_path / "file").write_text("a file, not a folder")
    shipped = {p: p.stat().st_mtime_ns for p in (ROOT / "checkpoints").iterdir()}
    line = cli_error(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert re.search(message, line), line
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "checkpoints").iterdir()} == shipped   # nothing touched


def test_train_refuses_to_overwrite_and_overwrites_when_asked(tmp_path, monkeypatch, capsys):
    calls = []
    fake_recipe(monkeypatch, calls)
    out = str(tmp_path / "model")
    cli.main(["train", "fake", "--out", out])
    before = (tmp_path / "model.safetensors").read_bytes()
    line = cli_error(capsys, ["train", "fake", "--out", out, "--steps", "8"])
    assert "already exists" in line and calls == [6]                                  # refused before running
    assert (tmp_path / "model.safetensors").read_bytes() == before
    cli.main(["train", "fake", "--out", out, "--steps", "8", "--overwrite"])           # continues the same run
    assert calls == [6, 8] and read_card(out)["settings"]["steps"] == 8


def test_resume_with_other_settings_is_refused_and_the_card_matches_the_weights(tmp_path, monkeypatch, capsys):
    calls = []
    fake_recipe(monkeypatch, calls)
    out = str(tmp_path / "model")
    cli.main(["train", "fake", "--out", out, "--lr", "0.01"])
    line = cli_error(capsys, ["train", "fake", "--out", out, "--lr", "0.05", "--steps", "9", "--overwrite"])
    assert "other settings (lr 0.01 there, 0.05 now)" in line
    assert read_card(out)["settings"]["lr"] == 0.01                  # the card still describes its weights
    cli.main(["train", "fake", "--out", out, "--eval_n", "20", "--overwrite"])   # evaluation settings may change


def test_written_paths_are_reported_as_written(tmp_path, capsys):
    cli.main(["sample", "--steps", "2", "--n", "2", "--out", str(tmp_path / "grid")])
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'grid.png'}" in out and (tmp_path / "grid.png").is_file()


# ---- the real entry point: no traceback, Ctrl-C says how to resume -----------------------------

def _env():
    env = dict(os.environ, DIFFUSION_COURSE_PROGRESS="0", DIFFUSION_COURSE_DEVICE="cpu", PYTHONUNBUFFERED="1")
    env.pop("DIFFUSION_COURSE_DEBUG", None)
    return env


def test_the_real_command_prints_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "diffusion_course", "sample", "--checkpoint", "mnist_classifier"],
                       capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "not a diffusion model" in r.stderr


def test_ctrl_c_prints_the_resume_line_only(tmp_path, mnist_root):
    out = tmp_path / "clf"
    p = subprocess.Popen([sys.executable, "-m", "diffusion_course", "train", "classifier", "--out", str(out),
                          "--steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(_env(), DIFFUSION_COURSE_DATA=str(mnist_root), DIFFUSION_COURSE_PROGRESS="1"),
                         # a test run started in the background inherits SIGINT ignored: give the child Ctrl-C back
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, deadline = b"", time.time() + 120
    while b"classifier:" not in seen and time.time() < deadline and p.poll() is None:   # its progress bar: training
        seen += os.read(p.stderr.fileno(), 4096)
    time.sleep(2)                                         # some steps, then Ctrl-C
    p.send_signal(signal.SIGINT)
    stdout, rest = p.communicate(timeout=60)
    stderr = (seen + rest).decode()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.rstrip().endswith("interrupted"), stderr[-500:]
    assert "the state is saved in" in stdout.decode() and Path(f"{out}.state.safetensors").is_file()
