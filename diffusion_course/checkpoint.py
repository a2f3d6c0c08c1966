"""Checkpoints: weights as .safetensors (never pickle) plus a JSON card saying how they were made.

    checkpoints/mnist_unet.safetensors   the EMA weights (fp16 where quality allows)
    checkpoints/mnist_unet.json          the card: model class and config, recipe, command,
                                         package version, git commit, hardware, wall time, metrics

`load_model("mnist_unet")` rebuilds the model from its card and loads the weights; a
model whose keys or shapes do not match gets an error that names them. Training state for
resuming (optimizer, EMA, random generators, step) uses the same two-file format via
`save_state` / `load_state`.
"""
import copy
import datetime
import importlib
import json
import os
import platform
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parent.parent


def checkpoint_dirs():
    """Folders searched for shipped checkpoints: $DIFFUSION_COURSE_CHECKPOINTS, then the repo's."""
    dirs = []
    if os.environ.get("DIFFUSION_COURSE_CHECKPOINTS"):
        dirs.append(Path(os.environ["DIFFUSION_COURSE_CHECKPOINTS"]))
    dirs.append(REPO_ROOT / "checkpoints")
    return dirs


SUFFIXES = (".state.safetensors", ".state.json", ".safetensors", ".json")


def _base(path):
    """`path` without a checkpoint file suffix. Other dots stay: 'runs/ema0.999' is a name, not a
    file 'runs/ema0' with suffix '.999' (Path.with_suffix would silently cut it)."""
    s = str(path)
    for suffix in SUFFIXES:
        if s.endswith(suffix):
            return Path(s[:-len(suffix)])
    return Path(s)


def _with(base, suffix):
    """base + suffix, e.g. ('runs/ema0.999', '.json') -> runs/ema0.999.json."""
    return base.with_name(base.name + suffix)


def resolve(name_or_path):
    """Turn 'mnist_unet' or a path (with or without suffix) into the .safetensors path."""
    p = _base(name_or_path)
    candidates = [p] if (p.parent != Path(".") or p.is_absolute()) else []
    candidates += [d / p.name for d in checkpoint_dirs()] + [p]
    for c in candidates:
        if _with(c, ".safetensors").is_file():
            return _with(c, ".safetensors")
    looked = ", ".join(str(_with(c, ".safetensors")) for c in candidates)
    raise FileNotFoundError(f"no checkpoint {str(name_or_path)!r}: looked for {looked}. Make one with "
                            f"`python -m diffusion_course train <recipe>` or check the name "
                            f"(shipped: {', '.join(list_checkpoints()) or 'none'})")


def list_checkpoints():
    names = set()
    for d in checkpoint_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.safetensors") if not p.stem.endswith(".state"))
    return sorted(names)


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware(device=None):
    """A one-line description of where a run happened."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def model_spec(model):
    """'module.Class' and the constructor config that rebuild `model` (models keep `self.config`)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"{type(model).__name__} has no `config` dict; course models store their "
                        "constructor arguments in self.config so checkpoints can rebuild them")
    return f"{type(model).__module__}.{type(model).__qualname__}", config


def half_rounded(model):
    """A copy of `model` with its weights as `save_checkpoint(..., half=True)` stores them:
    rounded to fp16 (and kept in fp32), to measure what fp16 storage costs before saving."""
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for t in rounded.state_dict().values():              # the same tensors the checkpoint stores
            if t.is_floating_point():
                t.copy_(t.half())
    return rounded


def save_checkpoint(path, model, card=None, half=False):
    """Write `path`.safetensors (the weights) and `path`.json (the card). Returns the weights path."""
    path = _base(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cls, config = model_spec(model)
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    full = {"model": cls, "config": config, "dtype": "float16" if half else "float32",
            "package_version": _version(), "git_commit": git_commit(), "torch_version": torch.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "parameters": sum(p.numel() for p in model.parameters())}
    full.update(card or {})
    _atomic(_with(path, ".safetensors"), lambda p: save_file(sd, str(p)))
    _atomic(_with(path, ".json"), lambda p: p.write_text(json.dumps(full, indent=2) + "\n"))
    return _with(path, ".safetensors")


def read_card(name_or_path):
    """The JSON card of a checkpoint, as a dict."""
    weights = resolve(name_or_path)
    card = _with(_base(weights), ".json")
    if not card.is_file():
        raise FileNotFoundError(f"checkpoint {weights} has no card {card.name}")
    return json.loads(card.read_text())


def load_weights(model, name_or_path, device=None):
    """Load weights into `model`, converting dtype; mismatched keys or shapes are named in the error."""
    path = resolve(name_or_path)
    sd = load_file(str(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the file: {_few(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_few(unexpected)}")
        if shapes:
            parts.append("shape differs: " + _few([f"{k} {tuple(sd[k].shape)} in file vs "
                                                   f"{tuple(own[k].shape)} in model" for k in shapes]))
        raise ValueError(f"checkpoint {path.name} does not fit {type(model).__name__}: " + "; ".join(parts) +
                         ". Build the model with the config in the checkpoint's card (load_model does this).")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})
    if device is not None:
        model.to(device)
    return model


def load_model(name_or_path, device=None):
    """Rebuild a model from its card and load its weights, in eval mode."""
    card = read_card(name_or_path)
    module, _, cls = card["model"].rpartition(".")
    model = getattr(importlib.import_module(module), cls)(**card["config"])
    load_weights(model, name_or_path)
    return model.to(device if device is not None else "cpu").eval()


# ---- training state (for resume): nested dicts/lists of tensors and plain values -------------

def _flatten(tree, prefix, tensors):
    if isinstance(tree, torch.Tensor):
        key = prefix or "_"
        tensors[key] = tree.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(tree, dict):
        return {"__dict__": [[k, _flatten(v, f"{prefix}.{k}" if prefix else str(k), tensors)] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        kind = "__list__" if isinstance(tree, list) else "__tuple__"
        return {kind: [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot save a {type(tree).__name__} in a training state (at {prefix!r})")


def _unflatten(meta, tensors):
    if isinstance(meta, dict):
        if "__tensor__" in meta:
            return tensors[meta["__tensor__"]]
        if "__dict__" in meta:
            return {k: _unflatten(v, tensors) for k, v in meta["__dict__"]}
        if "__list__" in meta:
            return [_unflatten(v, tensors) for v in meta["__list__"]]
        if "__tuple__" in meta:
            return tuple(_unflatten(v, tensors) for v in meta["__tuple__"])
    return meta


def save_state(path, state):
    """Save a nested dict of tensors and plain values as `path`.state.safetensors + `path`.state.json,
    atomically (a checkpoint at the same `path` is a separate pair of files)."""
    path = _base(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    meta = _flatten(state, "", tensors)
    # dict keys may be ints (optimizer state); JSON keeps them via the [key, value] pair lists
    _atomic(_with(path, ".state.safetensors"), lambda p: save_file(tensors, str(p)))
    _atomic(_with(path, ".state.json"), lambda p: p.write_text(json.dumps(meta)))
    return path


def load_state(path):
    """Inverse of `save_state`; returns None if there is no saved state at `path`."""
    path = _base(path)
    st, js = _with(path, ".state.safetensors"), _with(path, ".state.json")
    if not (st.is_file() and js.is_file()):
        return None
    return _unflatten(json.loads(js.read_text()), load_file(str(st)))


def _atomic(path, write):
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _few(items, n=6):
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _version():
    from . import __version__
    return __version__
