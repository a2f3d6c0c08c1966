"""Exercise checkers: run a learner's function against the reference on fresh random inputs.

Each chapter has a module here (`exercises.tensors`, ...) with one `check_<name>(fn)` per
exercise. A check answers in one friendly line, as a `Result` that notebooks display and
tests can treat as a bool:

    >>> from diffusion_course.exercises import tensors as ex
    >>> ex.check_hwc_to_chw(my_hwc_to_chw)
    ✅ hwc_to_chw: matches the reference on 12 random inputs.

On a mismatch it names the first input where the answers differ and how (shape, dtype,
values), so the learner knows what to look at.
"""
import random
from dataclasses import dataclass

import torch

N_CASES = 12  # random inputs per check


def generators(seed=None):
    """A torch.Generator and a random.Random seeded alike: fresh inputs for every check, or
    repeatable ones when a seed is given (`check_x(fn, seed=3)`)."""
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    return torch.Generator().manual_seed(int(seed)), random.Random(int(seed))


@dataclass
class Result:
    passed: bool
    message: str

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return self.message

    __str__ = __repr__


def describe(x):
    """A short description of an input: the shape and dtype of a tensor, or the value itself."""
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}".replace("torch.", "")
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in x) + ")"
    return repr(x)


def compare(got, want, atol=1e-5, rtol=1e-4):
    """None if `got` matches `want`, else a phrase saying how they differ."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"returned {type(got).__name__}, expected a tensor"
        if got.shape != want.shape:
            return f"returned shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if got.dtype != want.dtype and not (got.is_floating_point() and want.is_floating_point()):
            return f"returned dtype {got.dtype}, expected {want.dtype}".replace("torch.", "")
        if want.is_floating_point() or got.is_floating_point():
            got_f, want_f = got.detach().double().cpu(), want.detach().double().cpu()
            if not torch.allclose(got_f, want_f, atol=atol, rtol=rtol, equal_nan=True):
                err = (got_f - want_f).abs()
                i = tuple(int(v) for v in torch.nonzero(err == err.max())[0])
                return (f"values differ: largest difference {err.max().item():.3g} at index {i} "
                        f"(got {got_f[i].item():.4g}, expected {want_f[i].item():.4g})")
        elif not torch.equal(got.cpu(), want.cpu()):
            i = tuple(int(v) for v in torch.nonzero(got.cpu() != want.cpu())[0])
            return f"values differ at index {i}: got {got[i].item()}, expected {want[i].item()}"
        return None
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"returned {describe(got)}, expected {len(want)} values"
        for k, (g, w) in enumerate(zip(got, want)):
            d = compare(g, w, atol, rtol)
            if d:
                return f"item {k}: {d}"
        return None
    if isinstance(want, float):
        try:
            ok = abs(float(got) - want) <= atol + rtol * abs(want)
        except (TypeError, ValueError):
            return f"returned {got!r}, expected a number near {want:.4g}"
        return None if ok else f"returned {float(got):.4g}, expected {want:.4g}"
    return None if got == want else f"returned {got!r}, expected {want!r}"


def check(name, fn, reference, cases, atol=1e-5, rtol=1e-4):
    """Run `fn(*args)` and `reference(*args)` on each args tuple in `cases`; one line back."""
    if not callable(fn):
        return Result(False, f"❌ {name}: expected a function, got {type(fn).__name__}. Pass the function itself, "
                             f"without calling it: check_{name}({name})")
    n = 0
    for args in cases:
        args = args if isinstance(args, tuple) else (args,)
        want = reference(*_clone(args))
        try:
            got = fn(*_clone(args))
        except NotImplementedError:
            return Result(False, f"✋ {name}: not written yet (it raises NotImplementedError). "
                                 "Fill in the function above, run its cell, then this one.")
        except Exception as e:  # the learner's bug: say where, without a traceback
            return Result(False, f"❌ {name}: raised {type(e).__name__}: {e} on input {describe(_one(args))}")
        diff = compare(got, want, atol, rtol)
        if diff:
            return Result(False, f"❌ {name}: on input {describe(_one(args))}, {diff}.")
        n += 1
    return Result(True, f"✅ {name}: matches the reference on {n} random inputs.")


def _one(args):
    return args[0] if len(args) == 1 else args


def _clone(args):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
