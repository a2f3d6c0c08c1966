"""What every chapter's exercise checkers must do, written once.

A test module subclasses `ExerciseContract` as `class TestCheckers(ExerciseContract)` and fills
in its tables, each keyed by the exercise's name:
    ex            the chapter's module in diffusion_course.exercises
    CASES         name -> the function drawing the checker's inputs from a seed
    CHECKERS      name -> ex.check_<name>
    REFERENCES    name -> the reference solution
    ALTERNATIVES  name -> another correct way to write it (must be accepted)
    MISTAKES      name -> a typical learner's mistake (must be rejected, naming an input it fails on)
"""
import pytest
import torch

from diffusion_course.exercises import describe


def _agrees(fn, reference, args, atol):
    try:
        got, want = fn(*args), reference(*args)
        if isinstance(want, tuple):             # several results: each must agree
            return isinstance(got, tuple) and len(got) == len(want) and \
                all(_same(g, w, atol) for g, w in zip(got, want))
        return _same(got, want, atol)
    except RuntimeError:                        # it crashed
        return False


def _same(got, want, atol):
    got, want = torch.as_tensor(got), torch.as_tensor(want)
    return (got.shape == want.shape and got.dtype == want.dtype
            and torch.allclose(got.double(), want.double(), atol=atol))


class ExerciseContract:
    ex = None
    CASES, CHECKERS, REFERENCES, ALTERNATIVES, MISTAKES = {}, {}, {}, {}, {}
    ATOL = 1e-5                                 # "the mistake differs from the reference" beyond this

    def pytest_generate_tests(self, metafunc):
        if "name" in metafunc.fixturenames:
            metafunc.parametrize("name", list(self.CHECKERS))

    @pytest.mark.parametrize("seed", [None, 0, 1])
    def test_checker_accepts_the_reference(self, name, seed):
        result = self.CHECKERS[name](self.REFERENCES[name], seed=seed)
        assert result, result.message
        n = len(self.CASES[name](0))                              # hand-picked cases + N_CASES random ones
        assert result.message.startswith("✅") and f"{n} random inputs" in result.message

    def test_checker_accepts_another_correct_solution(self, name):
        result = self.CHECKERS[name](self.ALTERNATIVES[name], seed=3)
        assert result, result.message

    @pytest.mark.parametrize("seed", [0, 7])
    def test_checker_rejects_a_mistake_and_names_the_input(self, name, seed):
        mistake, reference = self.MISTAKES[name], self.REFERENCES[name]
        result = self.CHECKERS[name](mistake, seed=seed)
        assert not result
        assert result.message.startswith(f"❌ {name}:"), result.message
        # it names an input that really does fail: the first case where the mistake and reference differ
        for args in self.CASES[name](seed):
            if not _agrees(mistake, reference, args, self.ATOL):
                named = describe(args[0] if len(args) == 1 else args)
                assert f"on input {named}" in result.message, result.message
                break
        else:
            pytest.fail("the mistake matched the reference on every case")

    def test_a_stub_is_reported_kindly(self, name):
        def stub(*args):
            raise NotImplementedError
        result = self.CHECKERS[name](stub)
        assert not result
        assert result.message.startswith(f"✋ {name}: not written yet")

    def test_inputs_are_fresh_each_call_and_repeatable_by_seed(self, name):
        cases = self.CASES[name]
        shapes = lambda drawn: [tuple(tuple(a.shape) if torch.is_tensor(a) else a for a in args) for args in drawn]
        assert shapes(cases(5)) == shapes(cases(5))
        assert torch.equal(cases(5)[-1][0], cases(5)[-1][0])
        assert shapes(cases(None)) != shapes(cases(None))
        assert len(set(shapes(cases(0)))) > self.ex.N_CASES // 2        # varied inputs, not one repeated
