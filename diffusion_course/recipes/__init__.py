"""Training recipes: one module per shipped checkpoint (see `python -m diffusion_course recipes`).

Each module has NAME (the checkpoint's file name), an optional HALF (store fp16 weights) and
`run(out, device, **settings) -> (model, metrics)`, whose keyword defaults are every setting
with the value that made the shipped checkpoint; DEFAULTS = defaults(run) lists them for the
command line and the card, so they are written in one place only. The training state for
resuming lives at `out + '.run'` and is reused when the same command is run again.
"""
import inspect


def defaults(run):
    """{setting: default} of a recipe's run(out, device, ...): the settings the command line accepts."""
    return {k: p.default for k, p in inspect.signature(run).parameters.items()
            if p.default is not inspect.Parameter.empty}
