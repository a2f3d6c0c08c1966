"""The course's command line.

    python -m diffusion_course train <recipe> [--key value ...]   train and write a checkpoint + card
    python -m diffusion_course evaluate <recipe> [--eval_key value]  measure a checkpoint again, rewrite its card
    python -m diffusion_course recipes                            list the recipes and their defaults
    python -m diffusion_course sample ...                         (see `sample --help`)
    python -m diffusion_course generate "a red circle" ...        text to image (see `generate --help`)
    python -m diffusion_course bench                              speed and memory table

A recipe is a module in diffusion_course/recipes/ with a `run(out, device, **settings)
-> (model, metrics)` function whose keyword defaults (`recipe.DEFAULTS`) are the settings
that made its shipped checkpoint. The command turns `--key value` into settings (typed like
the default, checked against `recipes.RULES`), runs it, resumes it if it was interrupted (its
state lives beside the output; a finished run asked again with a larger --steps continues
where it ended, the same as a run started with that many steps), and writes the checkpoint
with a card recording the recipe, the exact command, the package version, the git commit, the
hardware and the wall time of this command. After a resume, the recipe's metrics say where
it picked up (`resumed_from_step`; a finished run asked again only re-evaluates) and
`train_seconds` adds up the training time of every session.

It never replaces an existing checkpoint unless asked with --overwrite (and then only one made
by the same recipe), and it checks that the output folder can be written before it trains.
`evaluate` (recipes with a `reevaluate` function) keeps the weights and how they were made,
and replaces the card's metrics and evaluation settings, recording the code that measured them.
A user's mistake (a bad value, a missing file, Ctrl-C) ends with one line on stderr and exit
status 2 (130 for Ctrl-C), never a traceback (set DIFFUSION_COURSE_DEBUG=1 to see one).
"""
import argparse
import datetime
import importlib
import json
import math
import os
import sys
import time

RECIPES = {
    "mnist": "diffusion_course.recipes.mnist",            # class-conditional MNIST U-Net
    "classifier": "diffusion_course.recipes.classifier",  # the MNIST classifier behind FD and accuracy
    "clip": "diffusion_course.recipes.clip",              # text and image encoders on the shapes world
    "attributes": "diffusion_course.recipes.attributes",  # the shapes-world attribute classifier
    "vae": "diffusion_course.recipes.vae",                # the latent autoencoder
    "text2image": "diffusion_course.recipes.text2image",  # the latent U-Net of the text-to-image pipeline
    "text2image_joint": "diffusion_course.recipes.text2image_joint",  # ... with the text encoder trained too
    "text2image_pixels": "diffusion_course.recipes.text2image_pixels",  # ... on pixels, no painter
    "mnist_dit": "diffusion_course.recipes.mnist_dit",    # chapter 8: a transformer in the U-Net's place
    "mnist_flow": "diffusion_course.recipes.mnist_flow",  # chapter 8: the U-Net trained by flow matching
    "mnist_blur": "diffusion_course.recipes.mnist_blur",  # chapter 8: cold diffusion, undoing blur
    "mnist_mask": "diffusion_course.recipes.mnist_mask",  # chapter 8: cold diffusion, filling in masks
}
# What a user's mistake raises in the package: reported in one line, no traceback.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FloatingPointError, PermissionError)


class UsageError(ValueError):
    """A command-line mistake: printed as one line, exit status 2."""


def load_recipe(name):
    if name not in RECIPES:
        raise UsageError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return importlib.import_module(RECIPES[name])


def parse_settings(defaults, pairs):
    """['--steps', '100', '--lr', '3e-4'] -> {'steps': 100, 'lr': 0.0003}, typed like the defaults."""
    settings, it = {}, iter(pairs)
    for flag in it:
        if not flag.startswith("--"):
            raise UsageError(f"expected --key value, got {flag!r}")
        key = flag[2:].replace("-", "_")
        if key not in defaults:
            raise UsageError(f"unknown setting --{key}; this recipe takes: {', '.join('--' + k for k in defaults)}")
        try:
            raw = next(it)
        except StopIteration:
            raise UsageError(f"--{key} needs a value") from None
        kind = type(defaults[key])
        try:
            if kind is bool:
                value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.lower()]
            elif defaults[key] is None:
                value = raw
            elif kind is int:
                number = float(raw)                       # "2e3" is 2000; "1.7" is not a whole number
                if not number.is_integer():
                    raise ValueError
                value = int(number)
            else:
                value = kind(raw)
        except (ValueError, KeyError, OverflowError):
            what = "whole number" if kind is int else kind.__name__
            raise UsageError(f"--{key} expects a {what} (default {defaults[key]!r}), got {raw!r}") from None
        settings[key] = value
    return settings


def cmd_train(args, rest):
    from . import checkpoint, distributed
    from .recipes import check_settings
    from .runtime import get_device

    recipe = load_recipe(args.recipe)
    settings = dict(recipe.DEFAULTS)
    settings.update(parse_settings(recipe.DEFAULTS, rest))
    check_settings(settings)
    out = checkpoint._base(args.out or f"checkpoints/{recipe.NAME}")
    weights = checkpoint._with(out, ".safetensors")
    _check_overwrite(weights, args.recipe, args.overwrite)
    checkpoint.check_writable(out)
    device = distributed.start(get_device(args.device))     # under torchrun: join the group
    world_size = distributed.world()[1]
    say = print if distributed.is_main() else (lambda *a: None)
    say(f"training recipe {args.recipe!r} on {device} -> {weights}"
        + (f" ({world_size} processes)" if world_size > 1 else ""))
    say("settings: " + json.dumps(settings))
    commit = checkpoint.git_commit()          # the code that ran: taken now, not after a long run
    t0 = time.perf_counter()
    model, metrics = recipe.run(out=str(out), device=device, **settings)     # ranks > 0 exit in train()
    wall = time.perf_counter() - t0
    card = {"recipe": args.recipe, "settings": settings,
            "command": f"{distributed.launcher()} -m diffusion_course " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
            "git_commit": commit, "hardware": checkpoint.hardware(device), "world_size": world_size,
            "wall_time_s": round(wall, 1), "metrics": metrics,
            "description": recipe.__doc__.strip().splitlines()[0]}
    distributed.stop()
    path = checkpoint.save_checkpoint(out, model, card, half=getattr(recipe, "HALF", False))
    print(f"wrote {path} and its card {checkpoint._with(out, '.json')} ({wall:.0f} s)")
    print("metrics: " + json.dumps(metrics, indent=2))


def cmd_evaluate(args, rest):
    """Measure a trained checkpoint again with its recipe's evaluation, and rewrite its card's metrics.

    For metrics that changed after the weights were made (a new reference set, error bars): the
    weights and how they were trained stay as they are; the card gets the new metrics, the
    evaluation settings used and an `evaluation` entry saying which code measured them, when.
    """
    from . import checkpoint
    from .recipes import EVAL_SETTINGS, check_settings
    from .runtime import get_device

    recipe = load_recipe(args.recipe)
    if not hasattr(recipe, "reevaluate"):
        raise UsageError(f"recipe {args.recipe!r} is evaluated only as part of its training: re-make the checkpoint "
                         f"with `python -m diffusion_course train {args.recipe} --overwrite`")
    out = checkpoint._base(args.out or f"checkpoints/{recipe.NAME}")
    weights = checkpoint._with(out, ".safetensors")
    card = checkpoint.read_card(weights)
    if card.get("recipe") != args.recipe:
        raise UsageError(f"{weights} was made by recipe {card.get('recipe')!r}, not {args.recipe!r}: evaluate it "
                         "with its own recipe")
    eval_defaults = {k: v for k, v in recipe.DEFAULTS.items() if k in EVAL_SETTINGS}
    settings = {**card.get("settings", {}), **eval_defaults, **parse_settings(eval_defaults, rest)}
    check_settings(settings)
    checkpoint.check_writable(out)
    device = get_device(args.device)
    model = checkpoint.load_model(weights, device=device)
    print(f"evaluating {weights} (recipe {args.recipe!r}) on {device}")
    commit = checkpoint.git_commit()
    t0 = time.perf_counter()
    metrics = recipe.reevaluate(model, str(out), **settings)
    card["settings"] = settings
    card["metrics"] = {**card.get("metrics", {}), **metrics}
    card["evaluation"] = {
        "command": "python -m diffusion_course " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
        "git_commit": commit, "hardware": checkpoint.hardware(device),
        "wall_time_s": round(time.perf_counter() - t0, 1), "weights": f"{card.get('dtype', 'float32')}, as stored",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = checkpoint._with(out, ".json")
    checkpoint._atomic(path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(f"wrote {path}")
    print("metrics: " + json.dumps(metrics, indent=2))


def _check_overwrite(weights, recipe, overwrite):
    """Refuse to replace an existing checkpoint unless asked, and never one made by another recipe."""
    if not weights.exists():
        return
    if not overwrite:
        raise UsageError(f"{weights} already exists and training never replaces a checkpoint unless asked: "
                         f"pass --overwrite to re-make it, or --out <path> to train a new one elsewhere")
    from .checkpoint import read_card
    try:
        made_by = read_card(weights).get("recipe")
    except (ValueError, FileNotFoundError):
        made_by = None
    if made_by != recipe:
        raise UsageError(f"{weights} was made by {'recipe ' + repr(made_by) if made_by else 'something else'}, "
                         f"not {recipe!r}: --overwrite replaces only a checkpoint of the same recipe; choose "
                         "another --out")


def cmd_recipes(args, rest):
    for name, module in RECIPES.items():
        recipe = importlib.import_module(module)
        print(f"{name:12s} {recipe.__doc__.strip().splitlines()[0]}")
        for k, v in recipe.DEFAULTS.items():
            print(f"    --{k} {v!r}")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (and exit status 2) instead of the usage block."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def whole_number(minimum):
    """An argparse type: a whole number >= minimum ("2e3" is 2000; "1.7" and "0" for minimum 1 are refused)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not value.is_integer() or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return int(value)
    parse.__name__ = f"whole number >= {minimum}"
    return parse


def png_path(out):
    """The path a PNG will really be written to ("grid" -> grid.png), checked before any work is done."""
    from pathlib import Path
    out = Path(out)
    if out.suffix.lower() != ".png":
        out = out.with_name(out.name + ".png")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder {out.parent} for --out does not exist: create it or choose another path")
    return out


def finite_float(minimum):
    """An argparse type: a finite number >= minimum."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a finite number >= {minimum:g}, got {text!r}")
        return value
    parse.__name__ = f"number >= {minimum:g}"
    return parse


def main(argv=None):
    parser = Parser(prog="python -m diffusion_course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("train", help="train a recipe and write a checkpoint with its card")
    p.add_argument("recipe", help=", ".join(RECIPES))
    p.add_argument("--out", default=None, help="output path without suffix (default: checkpoints/<name>)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing checkpoint of the same recipe at --out (e.g. re-make a shipped one)")
    p = sub.add_parser("evaluate", help="measure a trained checkpoint again and rewrite its card's metrics")
    p.add_argument("recipe", help=", ".join(RECIPES))
    p.add_argument("--out", default=None, help="the checkpoint's path without suffix (default: checkpoints/<name>)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    sub.add_parser("recipes", help="list the recipes and their default settings")
    from . import bench, cli_generate, cli_sample
    cli_sample.add_parser(sub)
    cli_generate.add_parser(sub)
    bench.add_parser(sub)
    try:
        args, rest = parser.parse_known_args(argv)
        args.argv = argv
        if args.command in ("train", "evaluate"):
            return (cmd_train if args.command == "train" else cmd_evaluate)(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if args.command == "recipes":
            return cmd_recipes(args, rest)
        return args.func(args)
    except USER_ERRORS as e:
        if os.environ.get("DIFFUSION_COURSE_DEBUG"):              # developers: the whole traceback
            raise
        print(f"error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)    # train() has already said where its state is
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
