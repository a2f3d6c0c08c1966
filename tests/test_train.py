"""train(): bit-exact resume after an interruption, the NaN stop, and checkpoint round-trips."""
import json

import pytest
import torch

from diffusion_course.checkpoint import (half_rounded, load_model, load_state, load_weights, read_card, save_checkpoint,
                                         save_state)
from torch.optim.optimizer import register_optimizer_step_post_hook

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
        train(fresh_model(), loss_fn, get_batch, steps=10, lr=3e-3, warmup=5, seed=3, device="cpu", state_path=path)


def test_nan_loss_stops_with_a_clear_message():
    def loss(model, x0, gen):
        out = loss_fn(model, x0, gen)
        return out * float("nan") if len(seen) == 5 else out

    seen = []
    get = lambda gen: seen.append(1) or get_batch(gen)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 4 .*lower the learning rate"):
        train(fresh_model(), loss, get, steps=STEPS, device="cpu")


def test_losses_read_every_50_steps_as_on_a_gpu(uninterrupted):
    """On a GPU the loss is read (and checked) every 50 steps, not every step: the same run, and a NaN is
    still named with its step."""
    late = train(fresh_model(), loss_fn, get_batch, steps=STEPS, lr=3e-3, warmup=5, seed=3, device="cpu",
                 read_loss_every=50)
    assert all(isinstance(v, float) for v in late.losses) and late.losses == uninterrupted.losses
    assert same(late.model, uninterrupted.model) and same(late.ema, uninterrupted.ema)

    def loss(model, x0, gen):
        out = loss_fn(model, x0, gen)
        return out * float("nan") if len(seen) == 5 else out

    seen = []
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 4 "):
        train(fresh_model(), loss, lambda g: seen.append(1) or get_batch(g), steps=STEPS, device="cpu",
              read_loss_every=50)


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


# ---- resume is bit-exact wherever an interruption lands, with dropout too ------------------

class DropoutNet(torch.nn.Module):
    """A denoiser with dropout: its masks come from torch's global generator, which the state must keep."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.GELU(), torch.nn.Dropout(0.3),
                                       torch.nn.Linear(32, 2))

    def forward(self, x, sigma):
        return self.net(torch.cat([x, sigma[:, None].log()], 1))


def make(dropout):
    torch.manual_seed(0)
    return DropoutNet() if dropout else MLPDenoiser(hidden=32, depth=2)


def plain_run(model, state_path=None, save_every=10):
    return train(model, loss_fn, get_batch, steps=STEPS, lr=3e-3, warmup=5, seed=3, device="cpu",
                 state_path=state_path, save_every=save_every)


class Interrupt:
    """Raise KeyboardInterrupt once, at the `at`-th time the chosen point of a step is reached."""

    def __init__(self, monkeypatch, where, at):
        self.n, self.at = 0, at
        if where == "after_backward":                   # clip_grad_norm_ runs right after backward
            real = torch.nn.utils.clip_grad_norm_
            monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: self.fire() or real(*a, **k))
        elif where == "after_optimizer_step":           # a global hook, called after the update is made
            handle = register_optimizer_step_post_hook(lambda *a: self.fire())
            monkeypatch.setattr(self, "handle", handle, raising=False)
        elif where == "during_save":
            from diffusion_course import checkpoint
            real = checkpoint.save_file
            monkeypatch.setattr(checkpoint, "save_file", lambda *a, **k: self.fire() or real(*a, **k))
        elif where == "before_loss":
            self.wrap_batch = True

    def fire(self):
        self.n += 1
        if self.n == self.at:
            raise KeyboardInterrupt

    def remove(self):
        if hasattr(self, "handle"):
            self.handle.remove()


@pytest.mark.parametrize("dropout", [False, True], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("where", ["before_loss", "after_backward", "after_optimizer_step", "during_save"])
def test_resume_is_bit_exact_wherever_the_interrupt_lands(tmp_path, monkeypatch, where, dropout, capsys):
    reference = plain_run(make(dropout))
    path = str(tmp_path / "run")
    with monkeypatch.context() as m:
        hit = Interrupt(m, where, at=1 if where == "during_save" else 13)
        try:
            model = make(dropout)
            with pytest.raises(KeyboardInterrupt):
                if where == "before_loss":
                    train(model, loss_fn, lambda g: hit.fire() or get_batch(g), steps=STEPS, lr=3e-3, warmup=5,
                          seed=3, device="cpu", state_path=path, save_every=10)
                else:
                    plain_run(model, path)
        finally:
            hit.remove()
    assert "the state is saved in" in capsys.readouterr().out
    torch.manual_seed(12345)                             # whatever the global generator holds meanwhile
    resumed = plain_run(make(dropout), path)
    assert 0 < resumed.resumed_from < STEPS
    assert resumed.losses == reference.losses
    assert same(resumed.model, reference.model) and same(resumed.ema, reference.ema)


def test_dropout_without_the_global_generator_would_differ():
    """The check above can fail: two runs from other global random states do differ with dropout."""
    a = plain_run(make(True))
    model = make(True)
    torch.manual_seed(2)                                  # same weights, other dropout masks
    b = train(model, loss_fn, get_batch, steps=STEPS, lr=3e-3, warmup=5, seed=3, device="cpu")
    assert a.losses != b.losses


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    path = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        run(path, fail_at=5)
    with pytest.raises(ValueError, match=r"other settings \(lr 0\.003 there, 0\.01 now\)"):
        train(fresh_model(), loss_fn, get_batch, steps=STEPS, lr=1e-2, warmup=5, seed=3, device="cpu",
              state_path=path)
    with pytest.raises(ValueError, match=r"batch_size not set there, 64 now"):
        train(fresh_model(), loss_fn, get_batch, steps=STEPS, lr=3e-3, warmup=5, seed=3, device="cpu",
              state_path=path, settings={"batch_size": 64})
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"model_config .*'hidden': 32.* there, .*'hidden': 16"):
        train(MLPDenoiser(hidden=16, depth=2), loss_fn, get_batch, steps=STEPS, lr=3e-3, warmup=5, seed=3,
              device="cpu", state_path=path)


def test_a_loss_that_explodes_without_nan_stops(tmp_path):
    def loss(model, x0, gen):
        return loss_fn(model, x0, gen) * (1e9 if len(seen) > 6 else 1.0)

    seen = []
    with pytest.raises(FloatingPointError, match=r"exploded to .* at step 6 .*lower the learning rate") as e:
        train(fresh_model(), loss, lambda g: seen.append(1) or get_batch(g), steps=STEPS, device="cpu",
              state_path=str(tmp_path / "run"), save_every=100)
    assert "saved state" not in str(e.value)           # nothing was saved yet: no state is named


def test_the_nan_message_names_a_state_only_when_one_exists(tmp_path):
    def loss(model, x0, gen):
        return loss_fn(model, x0, gen) * (float("nan") if len(seen) > 12 else 1.0)

    seen = []
    with pytest.raises(FloatingPointError, match=r"the last saved state \(step 10\) is in"):
        train(fresh_model(), loss, lambda g: seen.append(1) or get_batch(g), steps=STEPS, device="cpu",
              state_path=str(tmp_path / "run"), save_every=10)


def test_huge_learning_rate_stops_instead_of_finishing():
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(fresh_model(), loss_fn, get_batch, steps=200, lr=1e6, grad_clip=0, device="cpu")


def test_an_unwritable_state_folder_fails_before_the_first_step(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    calls = []
    with pytest.raises(ValueError, match="cannot create the output folder .*choose another --out"):
        train(fresh_model(), loss_fn, lambda g: calls.append(1) or get_batch(g), steps=STEPS, device="cpu",
              state_path=str(tmp_path / "file" / "run"))
    assert calls == []


@pytest.mark.parametrize("damage", ["truncated", "not_safetensors", "weights_not_state"])
def test_a_broken_state_file_is_named_with_its_fix(tmp_path, damage):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(str(path), fail_at=5)
    st = tmp_path / "run.state.safetensors"
    if damage == "truncated":
        st.write_bytes(st.read_bytes()[:1000])
    elif damage == "not_safetensors":
        st.write_text("hello")
    else:
        from safetensors.torch import save_file
        save_file({"w": torch.zeros(2)}, str(st))
    with pytest.raises(ValueError, match=rf"{st}.*(cannot be read|not a training state).*delete .* to start the run over"):
        run(str(path))
