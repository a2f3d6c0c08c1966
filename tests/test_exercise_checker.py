import torch

from diffusion_course.exercises import check


def double(x):
    return 2 * x


CASES = [torch.randn(3, 4), torch.randn(2)]


def test_passing_function_gets_a_friendly_line():
    result = check("double", lambda x: x + x, double, CASES)
    assert result and repr(result) == "✅ double: matches the reference on 2 random inputs."


def test_wrong_values_name_the_input_and_the_difference():
    result = check("double", lambda x: 3 * x, double, CASES)
    assert not result and "on input a float32 tensor of shape (3, 4), values differ" in str(result) and "largest difference" in str(result)


def test_wrong_shape_and_exception_and_stub():
    assert "returned shape (4, 3), expected (3, 4)" in str(check("double", lambda x: (2 * x).T, double, CASES))
    assert "raised ZeroDivisionError" in str(check("double", lambda x: 1 / 0, double, CASES))

    def stub(x):
        raise NotImplementedError
    assert str(check("double", stub, double, CASES)).startswith("✋ double: not written yet")
    assert "expected a function" in str(check("double", 3, double, CASES))


def test_learner_cannot_corrupt_the_reference_inputs():
    def in_place(x):
        x.mul_(0)
        return 2 * x
    assert not check("double", in_place, double, CASES)
