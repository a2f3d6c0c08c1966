import random

import numpy as np
import pytest
import torch

from diffusion_course import budget, get_device, progress, seed_everything, sized


def test_get_device_defaults_to_best_available(monkeypatch):
    monkeypatch.delenv("DIFFUSION_COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected


def test_get_device_override_by_argument_and_env(monkeypatch):
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("DIFFUSION_COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_rejects_unknown_and_unavailable(monkeypatch):
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        get_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            get_device("cuda")


def test_seed_everything_repeats_all_generators():
    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(2))
    seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(-1)


def test_budget_follows_device_and_env(monkeypatch):
    monkeypatch.delenv("DIFFUSION_COURSE_BUDGET", raising=False)
    assert budget("cpu") == "quick"
    assert sized(1, 100, device="cpu") == 1
    monkeypatch.setenv("DIFFUSION_COURSE_BUDGET", "full")
    assert budget("cpu") == "full" and sized(1, 100, device="cpu") == 100
    monkeypatch.setenv("DIFFUSION_COURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="expected one of"):
        budget()


def test_progress_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_PROGRESS", "0")
    bar = progress(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]
