"""The chapter-1 exercise checkers: right answers pass, wrong ones are caught and explained."""
import torch

from diffusion_course.exercises import tensors as ex
from exercise_contract import ExerciseContract

CASES = {"hwc_to_chw": ex._hwc_cases, "normalize": ex._normalize_cases,
         "add_noise": ex._noise_cases, "center_crop": ex._crop_cases}
CHECKERS = {"hwc_to_chw": ex.check_hwc_to_chw, "normalize": ex.check_normalize,
            "add_noise": ex.check_add_noise, "center_crop": ex.check_center_crop}
REFERENCES = {"hwc_to_chw": ex.hwc_to_chw, "normalize": ex.normalize,
              "add_noise": ex.add_noise, "center_crop": ex.center_crop}

# Other correct ways to write each one: the checker must accept them too.
ALTERNATIVES = {
    "hwc_to_chw": lambda x: x.transpose(0, 2).transpose(1, 2),
    "normalize": lambda x: (x.double() / 255) * 2 - 1,
    "add_noise": lambda x0, sigma, eps: x0 + sigma[:, None, None, None] * eps,
    "center_crop": lambda x, s: x.narrow(-2, (x.shape[-2] - s) // 2, s).narrow(-1, (x.shape[-1] - s) // 2, s),
}

# Typical mistakes a learner makes: each must be rejected.
MISTAKES = {
    "hwc_to_chw": lambda x: x.reshape(x.shape[2], x.shape[0], x.shape[1]),      # reshape is not permute
    "normalize": lambda x: x.float() / 255,                                     # [0, 1], not [-1, 1]
    "add_noise": lambda x0, sigma, eps: x0 + sigma.mean() * eps,                # one sigma for all
    "center_crop": lambda x, s: x[..., :s, :s],                                 # the top-left corner
}


# ---- the references against hand-computed values ------------------------------------------

def test_hwc_to_chw_moves_channels_first():
    x = torch.arange(2 * 3 * 4).view(2, 3, 4)                # (H, W, C)
    y = ex.hwc_to_chw(x)
    assert y.shape == (4, 2, 3)
    for h in range(2):
        for w in range(3):
            for c in range(4):
                assert y[c, h, w] == x[h, w, c]


def test_normalize_maps_the_ends_of_the_range():
    y = ex.normalize(torch.tensor([0, 51, 255], dtype=torch.uint8))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([-1.0, -0.6, 1.0]))


def test_add_noise_uses_one_sigma_per_image():
    x0 = torch.zeros(2, 1, 2, 3)
    eps = torch.ones(2, 1, 2, 3)
    y = ex.add_noise(x0, torch.tensor([0.5, 2.0]), eps)
    assert (y[0] == 0.5).all() and (y[1] == 2.0).all()


def test_center_crop_by_hand():
    x = torch.arange(36).view(6, 6)
    assert ex.center_crop(x, 3).tolist() == [[7, 8, 9], [13, 14, 15], [19, 20, 21]]   # margin 3: 1 above, 2 below
    assert ex.center_crop(x, 4).tolist() == [[7, 8, 9, 10], [13, 14, 15, 16], [19, 20, 21, 22], [25, 26, 27, 28]]
    assert ex.center_crop(torch.zeros(2, 3, 8, 5), 5).shape == (2, 3, 5, 5)


# ---- the checkers --------------------------------------------------------------------------

class TestCheckers(ExerciseContract):
    ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = ex, CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES


def test_wrong_shape_is_explained():
    result = ex.check_center_crop(lambda x, s: x[..., :s, :], seed=0)
    assert not result and "returned shape" in result.message and "expected" in result.message


def test_a_crash_names_the_input_without_a_traceback():
    def crashes(x):
        raise IndexError("index 3 is out of bounds")
    result = ex.check_hwc_to_chw(crashes, seed=0)
    assert not result and "raised IndexError" in result.message and "on input a" in result.message
    assert "Traceback" not in result.message


def test_not_a_function():
    result = ex.check_normalize(ex.normalize(torch.zeros(2, dtype=torch.uint8)))
    assert not result and "expected a function" in result.message


# ---- the inputs cover the edges ----------------------------------------

def test_inputs_cover_the_edges():
    assert any(a.shape[-1] == 1 for (a,) in ex._hwc_cases(0)) or any(a.shape[-1] == 4 for (a,) in ex._hwc_cases(0))
    assert {a.dtype for (a,) in ex._hwc_cases(0)} == {torch.uint8, torch.float32}
    first = ex._normalize_cases(0)[0][0]
    assert first.min() == 0 and first.max() == 255
    assert all(a.dtype == torch.uint8 for (a,) in ex._normalize_cases(0))
    for x0, sigma, eps in ex._noise_cases(0):
        b = x0.shape[0]
        assert sigma.shape == (b,) and min(x0.shape[-2:]) > b and eps.shape == x0.shape
    margins = {x.shape[-2] - s for x, s in ex._crop_cases(0)}
    assert any(m % 2 for m in margins)                                    # odd margins test the rounding
