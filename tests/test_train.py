"""train(): bit-exact resume after an interruption, the NaN stop, and checkpoint round-trips."""
import json

import pytest
import torch

from diffusion_course.checkpoint import (half_rounded, load_model, load_state, load_weights, read_card, save_checkpoint,
                                         save_state)
from diffusion_course.mlp import MLPDenoiser
from diffusion_course.noise import add_noise, training_sigmas
from diffusion_course.toy import two_moons
from diffusion_course.train import train

DATA = two_moons(256, seed=0)
STEPS = 24


def get_batch(gen):
    return DATA[torch.randint(0, len(DATA), (32,), generator=gen)]


def loss_fn(model, x0, gen):
    sigma = training_sigmas(len(x0), 0.01, 10.0, generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    return ((model(add_noise(x0, sigma, eps), sigma) - eps) ** 2).mean()


def fresh_model():
    torch.manual_seed(0)
    return MLPDenoiser(hidden=32, depth=2)


def run(state_path=None, fail_at=None, fail_in="batch", error=KeyboardInterrupt, save_every=500, steps=STEPS):
    calls = {"n": 0}

    def batch(gen):
        if fail_in == "batch" and calls["n"] == fail_at:
            raise error()
        return get_batch(gen)

    def loss(model, x0, gen):
        out = loss_fn(model, x0, gen)                        # draws from gen before failing
        calls["n"] += 1
        if fail_in == "loss" and calls["n"] - 1 == fail_at:
            raise error()
        return out

    return train(fresh_model(), loss, batch, steps=steps, lr=3e-3, warmup=5, seed=3, device="cpu",
                 state_path=state_path, save_every=save_every)


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def uninterrupted():
    return run()


@pytest.mark.parametrize("fail_in", ["batch", "loss"])
def test_resume_after_ctrl_c_is_bit_exact(tmp_path, uninterrupted, fail_in, capsys):
    path = str(tmp_path / "state.run")
    with pytest.raises(KeyboardInterrupt):
        run(path, fail_at=13, fail_in=fail_in)
    assert "interrupted at step 13" in capsys.readouterr().out
    resumed = run(path)
    assert resumed.resumed_from == 13
    assert resumed.losses == uninterrupted.losses
    assert same(resumed.model, uninterrupted.model) and same(resumed.ema, uninterrupted.ema)


def test_resume_after_a_crash_from_the_last_snapshot(tmp_path, uninterrupted):
    path = str(tmp_path / "state.run")
    with pytest.raises(RuntimeError):
        run(path, fail_at=15, error=RuntimeError, save_every=10)   # no Ctrl-C handler: snapshot at 10
    resumed = run(path, save_every=10)
    assert resumed.resumed_from == 10
    assert resumed.losses == uninterrupted.losses
    assert same(resumed.ema, uninterrupted.ema)


def test_finished_state_is_not_retrained(tmp_path):
    path = str(tmp_path / "state.run")
    first = run(path)
    again = run(path)
    assert again.resumed_from == STEPS and again.losses == first.losses and same(again.ema, first.ema)


def test_a_finished_run_continued_equals_a_longer_run(tmp_path, uninterrupted):
    path = str(tmp_path / "state.run")
    run(path, steps=STEPS // 2)
    longer = run(path)                                        # the same state, now asked for STEPS
    assert longer.resumed_from == STEPS // 2
    assert longer.losses == uninterrupted.losses
    assert same(longer.model, uninterrupted.model) and same(longer.ema, uninterrupted.ema)


def test_resume_with_fewer_steps_is_refused(tmp_path):
    path = str(tmp_path / "state.run")
    run(path)
    with pytest.raises(ValueError, match=f"already at step {STEPS}, past the 10 steps asked for"):
        train(fresh_model(), loss_fn, get_batch, steps=10, device="cpu", state_path=path)


def test_nan_loss_stops_with_a_clear_message():
    def loss(model, x0, gen):
        out = loss_fn(model, x0, gen)
        return out * float("nan") if len(seen) == 5 else out

    seen = []
    get = lambda gen: seen.append(1) or get_batch(gen)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 4 .*lower the learning rate"):
        train(fresh_model(), loss, get, steps=STEPS, device="cpu")


def test_bad_train_arguments():
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        train(fresh_model(), loss_fn, get_batch, steps=0, device="cpu")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train(fresh_model(), loss_fn, get_batch, steps=5, lr=-1.0, device="cpu")


def test_checkpoint_round_trip_and_card(tmp_path, uninterrupted):
    model = uninterrupted.ema
    path = save_checkpoint(tmp_path / "toy", model, {"recipe": "test", "metrics": {"loss": 0.5}})
    assert path.suffix == ".safetensors"
    back = load_model(tmp_path / "toy")
    x, s = torch.randn(6, 2), torch.rand(6) * 3
    assert torch.equal(back(x, s), model(x, s))
    card = read_card(tmp_path / "toy")
    assert card["model"] == "diffusion_course.mlp.MLPDenoiser" and card["config"] == model.config
    assert card["dtype"] == "float32" and card["metrics"] == {"loss": 0.5}
    json.dumps(card)                                         # plain JSON


def test_names_with_dots_are_kept_whole(tmp_path, uninterrupted):
    """'ema0.999' and 'ema0.9995' are two checkpoints, not one file 'ema0' written twice."""
    a, b = uninterrupted.ema, fresh_model()
    save_checkpoint(tmp_path / "ema0.999", a, {"which": "a"})
    save_checkpoint(tmp_path / "ema0.9995", b, {"which": "b"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ema0.999.json", "ema0.999.safetensors", "ema0.9995.json", "ema0.9995.safetensors"]
    assert read_card(tmp_path / "ema0.999")["which"] == "a" and read_card(tmp_path / "ema0.9995.json")["which"] == "b"
    assert same(load_model(tmp_path / "ema0.999.safetensors"), a)
    save_state(tmp_path / "ema0.999", {"step": 3})             # the training state sits beside, apart
    assert load_state(tmp_path / "ema0.999") == {"step": 3} and load_state(tmp_path / "ema0.9995") is None
    assert same(load_model(tmp_path / "ema0.999"), a)


def test_half_checkpoint_is_close(tmp_path, uninterrupted):
    model = uninterrupted.ema
    save_checkpoint(tmp_path / "half", model, half=True)
    back = load_model(tmp_path / "half")
    assert read_card(tmp_path / "half")["dtype"] == "float16"
    assert next(back.parameters()).dtype == torch.float32      # loaded back as float32
    x, s = torch.randn(6, 2), torch.rand(6) * 3
    torch.testing.assert_close(back(x, s), model(x, s), atol=5e-3, rtol=5e-3)


def test_half_rounded_is_what_a_half_checkpoint_loads_back(tmp_path, uninterrupted):
    model = uninterrupted.ema
    save_checkpoint(tmp_path / "half", model, half=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rounded = half_rounded(model)
    assert same(rounded, load_model(tmp_path / "half")) and not same(rounded, model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())    # a copy: the model is untouched


def test_mismatched_checkpoint_names_the_keys(tmp_path, uninterrupted):
    save_checkpoint(tmp_path / "toy", uninterrupted.ema)
    with pytest.raises(ValueError, match=r"does not fit MLPDenoiser: missing from the file: net\.6\.bias"):
        load_weights(MLPDenoiser(hidden=32, depth=3), tmp_path / "toy")
    with pytest.raises(ValueError, match=r"shape differs: net\.0\.bias \(32,\) in file vs \(16,\) in model"):
        load_weights(MLPDenoiser(hidden=16, depth=2), tmp_path / "toy")


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m diffusion_course train"):
        load_model(tmp_path / "nothing_here")
