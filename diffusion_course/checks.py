"""The argument checks that every public call shares: one place that says what was expected.

    check_input(model, x, "x")                 # a tensor on the model's device, in its dtype, finite
    check_input(model, x, "images", image_range=True)   # ... and pixel values roughly in [-1, 1]
    check_finite(sigma, "sigma")               # no NaN or inf
    to_model(model, x)                         # move/convert x to the model's device and dtype

Models call `check_input` in `forward`, so a wrong call gets one line that names both sides
("x is float32 on cpu, the model's weights are float16 on cuda:0") instead of a deep error
from a convolution, and NaN or inf is refused where it enters, not found later as a NaN loss
or a black picture. The higher-level calls (samplers, metrics, encoders) use `to_model`, so
they work whatever the model's own dtype and device are.
"""
import itertools
import math

import torch

IMAGE_LIMIT = 1.5           # pixels are in [-1, 1]; a decoder's slight overshoot is fine, [0, 255] is not


def weights_of(model):
    """(device, dtype) of a model's first floating-point parameter; (cpu, float32) for a model without any."""
    if isinstance(model, torch.nn.Module):
        for p in itertools.chain(model.parameters(), model.buffers()):      # stops at the first float one
            if p.is_floating_point():
                return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def check_finite(x, name):
    """Refuse NaN or inf in a tensor or a number, naming it. (Meta tensors, which hold no values and
    are used to count FLOPs, pass.)"""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() and not x.is_meta and x.numel() and not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).sum().item()
            raise ValueError(f"{name} holds {bad} NaN or infinite value{'s' if bad > 1 else ''} (of {x.numel()}): "
                             "check the step that produced it")
    elif isinstance(x, (int, float)) and not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x}")


def check_input(model, x, name="x", image_range=False):
    """x must be a floating-point tensor on the model's device, in the model's dtype, and finite.

    image_range=True also refuses pixel values far outside [-1, 1] (images in [0, 255], say).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}: convert it, e.g. "
                        f"{name}.float() / 127.5 - 1 for uint8 pixels")
    device, dtype = weights_of(model)
    if x.device != device or x.dtype != dtype:
        raise ValueError(f"{name} is {_dtype(x.dtype)} on {x.device}, but the model's weights are {_dtype(dtype)} "
                         f"on {device}: move one to the other, e.g. {name}.to({str(device)!r}, torch.{_dtype(dtype)})")
    check_finite(x, name)
    if image_range and x.numel() and not x.is_meta:
        lo, hi = x.min().item(), x.max().item()
        if lo < -IMAGE_LIMIT or hi > IMAGE_LIMIT:
            raise ValueError(f"{name} has values from {lo:.4g} to {hi:.4g}, but this model expects pixels in "
                             "[-1, 1]: for uint8 pixels in [0, 255] use x / 127.5 - 1, for [0, 1] use 2 * x - 1")


def to_model(model, x):
    """x on the model's device and in its floating-point dtype (integer tensors keep their dtype)."""
    device, dtype = weights_of(model)
    return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)


def _dtype(dtype):
    return str(dtype).replace("torch.", "")
