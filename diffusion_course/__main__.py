"""The course's command line.

    python -m diffusion_course train <recipe> [--key value ...]   train and write a checkpoint + card
    python -m diffusion_course recipes                            list the recipes and their defaults
    python -m diffusion_course sample ...                         (see `sample --help`)
    python -m diffusion_course bench                              speed and memory table

A recipe is a module in diffusion_course/recipes/ with a `run(out, device, **settings)
-> (model, metrics)` function whose keyword defaults (`recipe.DEFAULTS`) are the settings
that made its shipped checkpoint. The command turns `--key value` into settings (typed like
the default), runs it, resumes it if it was interrupted (its state lives beside the
output; a finished run asked again with a larger --steps continues where it ended, the
same as a run started with that many steps), and writes the checkpoint with a card
recording the recipe, the exact command, the package version, the git commit, the
hardware and the wall time of this command. After a resume, the recipe's metrics say where
it picked up (`resumed_from_step`; a finished run asked again only re-evaluates) and
`train_seconds` adds up the training time of every session.
"""
import argparse
import importlib
import json
import sys
import time

RECIPES = {
    "mnist": "diffusion_course.recipes.mnist",            # class-conditional MNIST U-Net
    "classifier": "diffusion_course.recipes.classifier",  # the MNIST classifier behind FD and accuracy
    "clip": "diffusion_course.recipes.clip",              # text and image encoders on the shapes world
    "attributes": "diffusion_course.recipes.attributes",  # the shapes-world attribute classifier
    "vae": "diffusion_course.recipes.vae",                # the latent autoencoder
}


def load_recipe(name):
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return importlib.import_module(RECIPES[name])


def parse_settings(defaults, pairs):
    """['--steps', '100', '--lr', '3e-4'] -> {'steps': 100, 'lr': 0.0003}, typed like the defaults."""
    settings, it = {}, iter(pairs)
    for flag in it:
        if not flag.startswith("--"):
            raise SystemExit(f"expected --key value, got {flag!r}")
        key = flag[2:].replace("-", "_")
        if key not in defaults:
            raise SystemExit(f"unknown setting --{key}; this recipe takes: {', '.join('--' + k for k in defaults)}")
        try:
            raw = next(it)
        except StopIteration:
            raise SystemExit(f"--{key} needs a value") from None
        kind = type(defaults[key])
        try:
            if kind is bool:
                value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.lower()]
            elif defaults[key] is None:
                value = raw
            else:
                value = kind(float(raw)) if kind is int else kind(raw)
        except (ValueError, KeyError):
            raise SystemExit(f"--{key} expects a {kind.__name__} (default {defaults[key]!r}), got {raw!r}") from None
        settings[key] = value
    return settings


def cmd_train(args, rest):
    from . import checkpoint
    from .runtime import get_device

    recipe = load_recipe(args.recipe)
    settings = dict(recipe.DEFAULTS)
    settings.update(parse_settings(recipe.DEFAULTS, rest))
    out = args.out or f"checkpoints/{recipe.NAME}"
    device = get_device(args.device)
    print(f"training recipe {args.recipe!r} on {device} -> {out}.safetensors")
    print("settings: " + json.dumps(settings))
    commit = checkpoint.git_commit()          # the code that ran: taken now, not after a long run
    t0 = time.perf_counter()
    model, metrics = recipe.run(out=out, device=device, **settings)
    wall = time.perf_counter() - t0
    card = {"recipe": args.recipe, "settings": settings,
            "command": "python -m diffusion_course " + " ".join(sys.argv[1:]),
            "git_commit": commit, "hardware": checkpoint.hardware(device), "wall_time_s": round(wall, 1),
            "metrics": metrics, "description": recipe.__doc__.strip().splitlines()[0]}
    path = checkpoint.save_checkpoint(out, model, card, half=getattr(recipe, "HALF", False))
    print(f"wrote {path} and its card ({wall:.0f} s)")
    print("metrics: " + json.dumps(metrics, indent=2))


def cmd_recipes(args, rest):
    for name, module in RECIPES.items():
        recipe = importlib.import_module(module)
        print(f"{name:12s} {recipe.__doc__.strip().splitlines()[0]}")
        for k, v in recipe.DEFAULTS.items():
            print(f"    --{k} {v!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m diffusion_course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a recipe and write a checkpoint with its card")
    p.add_argument("recipe", help=", ".join(RECIPES))
    p.add_argument("--out", default=None, help="output path without suffix (default: checkpoints/<name>)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    sub.add_parser("recipes", help="list the recipes and their default settings")
    from . import bench, cli_sample
    cli_sample.add_parser(sub)
    bench.add_parser(sub)
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        return cmd_train(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "recipes":
        return cmd_recipes(args, rest)
    return args.func(args)


if __name__ == "__main__":
    main()
