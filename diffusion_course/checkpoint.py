"""Checkpoints: weights as .safetensors (never pickle) plus a JSON card saying how they were made.

    checkpoints/mnist_unet.safetensors   the EMA weights (fp16 where quality allows)
    checkpoints/mnist_unet.json          the card: model class and config, recipe, command,
                                         package version, git commit, hardware, wall time, metrics

`load_model("mnist_unet")` rebuilds the model from its card and loads the weights; a
model whose keys or shapes do not match gets an error that names them. A card is data: its
"model" entry picks one of the package's own model classes from `MODELS` (nothing else can
be built from a card, so a card from elsewhere can never run code), and its "config" must
hold that class's constructor arguments. Training state for resuming (optimizer, EMA,
random generators, step) is one file, `<path>.state.safetensors`, written with `save_state`
and read with `load_state`. Every file read here that is broken (not JSON, not safetensors,
truncated) gets an error naming the file, what is wrong and what to do.
"""
import copy
import datetime
import importlib
import inspect
import json
import os
import platform
import subprocess
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parent.parent

# The model classes a card may name: "module.Class" -> (module, class). The card's string only
# selects an entry of this table; it is never imported or called as given.
MODELS = {f"diffusion_course.{module}.{cls}": (module, cls) for module, cls in [
    ("unet", "UNet"), ("vae", "VAE"), ("clip", "CLIP"), ("clip", "ImageEncoder"), ("text", "TextEncoder"),
    ("metrics", "MNISTClassifier"), ("attributes", "AttributeClassifier"), ("mlp", "MLPDenoiser"), ("dit", "DiT"),
]}


def checkpoint_dirs():
    """Folders searched for shipped checkpoints: $DIFFUSION_COURSE_CHECKPOINTS, then the repo's."""
    dirs = []
    if os.environ.get("DIFFUSION_COURSE_CHECKPOINTS"):
        dirs.append(Path(os.environ["DIFFUSION_COURSE_CHECKPOINTS"]))
    dirs.append(REPO_ROOT / "checkpoints")
    return dirs


SUFFIXES = (".state.safetensors", ".safetensors", ".json")


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
    """A one-line description of where a run happened (on a CPU: cores and the torch threads used, which
    OMP_NUM_THREADS sets; two runs side by side on 2 cores each take 1)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread{'s' * (torch.get_num_threads() > 1)}"


def model_spec(model):
    """'module.Class' and the constructor config that rebuild `model` (models keep `self.config`)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"{type(model).__name__} has no `config` dict; course models store their "
                        "constructor arguments in self.config so checkpoints can rebuild them")
    name = f"{type(model).__module__}.{type(model).__qualname__}"
    if name not in MODELS:
        raise TypeError(f"{name} is not one of the package's model classes ({', '.join(sorted(MODELS))}); "
                        "a checkpoint can only rebuild those: add the class to checkpoint.MODELS")
    return name, config


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
    """The JSON card of a checkpoint, as a dict. A missing or broken card is named with its fix."""
    weights = resolve(name_or_path)
    card = _with(_base(weights), ".json")
    if not card.is_file():
        raise FileNotFoundError(f"checkpoint {weights} has no card {card.name}: restore it from git, or re-make "
                                "the checkpoint with `python -m diffusion_course train <recipe>`")
    try:
        data = json.loads(card.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"the card {card} is not valid JSON ({e}); it may be truncated: restore it from git, "
                         "or re-make the checkpoint with `python -m diffusion_course train <recipe>`") from None
    if not isinstance(data, dict):
        raise ValueError(f"the card {card} holds a JSON {type(data).__name__}, not an object; restore it from git "
                         "or re-make the checkpoint")
    return data


def read_weights(path):
    """The tensors of a .safetensors file; a file that is not one is named, with what to do."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0] if str(e) else e!r}); "
                         "it may be truncated or from another program: restore it from git or re-make it by "
                         "training") from None


def load_weights(model, name_or_path, device=None):
    """Load weights into `model`, converting dtype; mismatched keys or shapes are named in the error."""
    path = resolve(name_or_path)
    sd = read_weights(path)
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


def model_class(card, where="the card"):
    """The package class a card names (one of MODELS), checked against its config; nothing is imported
    from the card's text."""
    name, config = card.get("model"), card.get("config")
    if name not in MODELS:
        raise ValueError(f"{where} names the model {name!r}, which is not one of the package's model classes "
                         f"({', '.join(sorted(MODELS))}); a card is data and cannot name other code: restore the "
                         "card from git or re-make the checkpoint")
    module, cls_name = MODELS[name]
    cls = getattr(importlib.import_module(f"{__package__}.{module}"), cls_name)
    if not isinstance(config, dict):
        raise ValueError(f"{where} has no \"config\" object with the arguments of {cls_name}; restore the card "
                         "from git or re-make the checkpoint")
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(config) - set(params) - {"self"})
    if unknown:
        raise ValueError(f"{where}: {', '.join(unknown)} {'is not an argument' if len(unknown) == 1 else 'are not arguments'}"
                         f" of {cls_name} (it takes {', '.join(p for p in params if p != 'self')}); restore the "
                         "card from git or re-make the checkpoint")
    return cls


def load_model(name_or_path, device=None):
    """Rebuild a model from its card and load its weights, in eval mode.

    Only the package's own model classes (MODELS) can be built; anything else a card names is
    refused with ValueError, as is a config that the class does not take.
    """
    card = read_card(name_or_path)
    where = f"the card of {resolve(name_or_path)}"
    cls = model_class(card, where)
    try:
        model = cls(**card["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} describes a {cls.__name__} that cannot be built ({e}); restore the card from "
                         "git or re-make the checkpoint") from None
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
    """Save a nested dict of tensors and plain values as ONE file, `path`.state.safetensors, written
    atomically: the tensors, and the structure as JSON in the file's metadata. An interruption at any
    moment leaves either the old state or the new one, never a mix (a checkpoint at the same `path`
    is a separate pair of files)."""
    path = _base(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    meta = _flatten(state, "", tensors)
    # dict keys may be ints (optimizer state); JSON keeps them via the [key, value] pair lists
    _atomic(_with(path, ".state.safetensors"), lambda p: save_file(tensors, str(p), metadata={"tree": json.dumps(meta)}))
    return path


def load_state(path):
    """Inverse of `save_state`; returns None if there is no saved state at `path`. A broken state file
    (truncated, or not one) is named with what to do."""
    st = _with(_base(path), ".state.safetensors")
    if not st.is_file():
        return None
    fix = f"delete {st} to start the run over (or restore it from a backup)"
    try:
        with safe_open(str(st), framework="pt") as f:
            tree = (f.metadata() or {}).get("tree")
        tensors = load_file(str(st))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"the training state {st} cannot be read ({str(e).splitlines()[0] if str(e) else e!r}); "
                         f"it may be truncated: {fix}") from None
    if tree is None:
        raise ValueError(f"{st} is a safetensors file but not a training state (no structure in its metadata): {fix}")
    try:
        return _unflatten(json.loads(tree), tensors)
    except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"the training state {st} is damaged ({e!r}): {fix}") from None


def check_writable(path):
    """Make sure `path`'s folder exists (creating it) and can be written, before a long run, so that
    no run is lost at its final save. Raises ValueError saying what to do."""
    folder = _base(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the output folder {folder} ({e.strerror or e}): choose another --out") from None
    if not folder.is_dir():
        raise ValueError(f"the output folder {folder} is a file, not a folder: choose another --out")
    probe = folder / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write in the output folder {folder} ({e.strerror or e}): choose another --out, "
                         "or fix its permissions") from None
    return folder


def _atomic(path, write):
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _few(items, n=6):
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _version():
    from . import __version__
    return __version__
