"""Training recipes: one module per shipped checkpoint (see `python -m diffusion_course recipes`).

Each module has NAME (the checkpoint's file name), an optional HALF (store fp16 weights) and
`run(out, device, **settings) -> (model, metrics)`, whose keyword defaults are every setting
with the value that made the shipped checkpoint; DEFAULTS = defaults(run) lists them for the
command line and the card, so they are written in one place only. The training state for
resuming lives at `out + '.state.safetensors'` and is reused when the same command is run
again; it records the settings that shape training (all but `steps` and the evaluation
settings in EVAL_SETTINGS), and a resume with other values is refused.

Every setting's allowed values are in RULES, by name, for all recipes at once: the command
line checks them before anything runs.
"""
import inspect
import math

from ..noise import SIGMA_KINDS
from ..shapes import SPLITS


def defaults(run):
    """{setting: default} of a recipe's run(out, device, ...): the settings the command line accepts."""
    return {k: p.default for k, p in inspect.signature(run).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _positive(v):
    return v > 0


def _at_least_0(v):
    return v >= 0


def _fraction(v):
    return 0 <= v <= 1


def _below_1(v):
    return 0 <= v < 1


def _choice(options):
    return lambda v: v in options


# name -> (check, what a value must be). Ints and floats must also be finite numbers of their type.
RULES = {name: (_positive, "a positive number") for name in (
    "steps", "batch_size", "width", "text_dim", "text_depth", "sweep_width", "sweep_batch_size", "latent_channels",
    "image_dim", "heads", "eval_galleries", "enc_blocks", "embed_dim", "dim", "dec_blocks", "channels",
    "num_res_blocks", "scale_n", "lr", "sigma_min", "sigma_max", "eval_steps", "eval_draws", "depth", "patch_size",
    "severity_steps", "std_min", "std_max")}
RULES.update({name: (_at_least_0, "a number >= 0") for name in (
    "seed", "eval_n", "warmup", "sweep_steps", "shift", "weight_decay", "kl_weight", "eval_cfg_scale",
    "edge_weight")})
RULES.update({name: (_fraction, "a fraction from 0 to 1") for name in ("p_two", "p_uncond", "p_partial")})
RULES.update({name: (_below_1, "a number from 0 up to, not including, 1") for name in ("ema_decay", "dropout")})
RULES.update(factor=(lambda v: v > 0 and v & (v - 1) == 0, "a power of 2 (4, 8, 16, ...)"),
             split=(_choice(SPLITS), f"one of {', '.join(SPLITS)}"),
             sigma_kind=(_choice(SIGMA_KINDS), f"one of {', '.join(SIGMA_KINDS)}"),
             recon=(_choice(("l1", "mse")), "one of l1, mse"))
# Settings that change only the evaluation after training: a finished run may be re-evaluated with others.
EVAL_SETTINGS = ("eval_n", "eval_draws", "eval_galleries", "eval_cfg_scale", "scale_n", "sweep_steps", "sweep_width",
                 "sweep_batch_size", "compile", "channels_last", "eval_steps")


def check_settings(settings):
    """Raise ValueError for the first setting outside its allowed values (RULES), saying what is allowed."""
    for key, value in settings.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{key} must be a finite number, got {value}")
        if key in RULES and not isinstance(value, bool):
            check, what = RULES[key]
            if not check(value):
                raise ValueError(f"--{key} must be {what}, got {value!r}")
    if settings.get("sigma_min", 0) >= settings.get("sigma_max", math.inf):
        raise ValueError(f"--sigma_min must be below --sigma_max, got {settings['sigma_min']} and {settings['sigma_max']}")


def training_settings(run, args):
    """The settings that shape training: `run`'s settings (its keyword defaults) with the values in
    `args` (`locals()` at the start of run), but for `steps` (a run may be continued to more steps)
    and the EVAL_SETTINGS. `train` saves them with the state and refuses to resume with others."""
    return {k: args[k] for k in defaults(run) if k != "steps" and k not in EVAL_SETTINGS}
