"""Shapes-world attribute classifier: the yardstick that checks whether an image shows what its caption says.

A small CNN with one head per question (relation, and color, shape, size of each object),
trained with cross-entropy on fresh scenes drawn on the device every step, from every
color+shape pair (split="all": a judge must know the held-out pairs too). Evaluated on
scenes from seeds training never draws: per-attribute accuracy on all pairs ("test") and on
scenes that each hold a held-out pair ("heldout").

    python -m diffusion_course train attributes
"""
import torch

from ..attributes import AttributeClassifier, attribute_accuracy, classifier_loss, predict
from ..distributed import share
from ..shapes import make_scenes
from ..train import train
from . import defaults, training_settings

NAME = "shapes_attributes"
HALF = True


def run(out, device, steps=1500, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=100, ema_decay=0.99,
        width=16, dim=256, dropout=0.1, p_two=0.5, split="all", seed=0, eval_n=1000):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    def get_batch(gen):
        scenes = make_scenes(share(batch_size), split=split, p_two=p_two, generator=gen, device=device)
        return scenes.images, scenes.attrs

    def loss_fn(model, batch, gen):
        images, attrs = batch
        return classifier_loss(model(images), attrs)

    torch.manual_seed(seed)
    model = AttributeClassifier(width=width, dim=dim, dropout=dropout)
    result = train(model, loss_fn, get_batch, steps=steps, lr=lr, weight_decay=weight_decay, warmup=warmup,
                   ema_decay=ema_decay, seed=seed, device=device, state_path=out, settings=settings,
                   desc="attributes")
    ema = result.ema
    metrics = {"eval_n": eval_n}
    for name, eval_split, eval_seed in (("test", "all", 20_000), ("heldout", "heldout", 20_001)):
        scenes = make_scenes(eval_n, seed=eval_seed, split=eval_split)      # on the CPU: the same everywhere
        for k, v in attribute_accuracy(predict(ema, scenes.images), scenes.attrs).items():
            metrics[f"{name}_{k}_accuracy"] = round(v, 4)
    metrics.update(final_loss=round(sum(result.losses[-100:]) / len(result.losses[-100:]), 4),
                   train_seconds=round(result.seconds, 1), resumed_from_step=result.resumed_from)
    return ema.cpu(), metrics


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
