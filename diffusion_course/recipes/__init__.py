"""Training recipes: one module per shipped checkpoint (see `python -m diffusion_course recipes`).

Each module has NAME (the checkpoint's file name), DEFAULTS (every setting, with the value
that made the shipped checkpoint), an optional HALF (store fp16 weights) and
`run(out, device, **settings) -> (model, metrics)`. The training state for resuming lives at
`out + '.run'` and is reused when the same command is run again.
"""
