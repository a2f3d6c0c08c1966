"""CLIP on the shapes world: a text transformer and an image CNN trained contrastively from zero.

Every step draws a fresh batch of scenes on the device (split="train": the HELD_OUT
color+shape pairs never appear), captions them with random wording, and minimizes the
symmetric cross-entropy over the batch's similarity matrix; every caption that is true of a
scene of the batch (`shapes.matches`) is a right answer for it, so captions that describe two
scenes equally well share the target. With p_partial > 0 that share of objects is described
only in part ('a red shape left of a circle'), and the tokenizer knows the words that needs. Evaluated on scenes from seeds that
training never draws: retrieval recall@1/5 both ways in galleries of 100 (a hit is any
scene with the retrieved description), zero-shot color/shape/size of single objects, and
how often it prefers the right caption over a swapped relation, swapped colors or the wrong
count, on unseen scenes with training pairs ("test") and with held-out pairs ("heldout").

    python -m diffusion_course train clip

Under torchrun each process's loss compares its own share of the batch (no gather of the other
processes' embeddings): fewer negatives per scene than one process with the whole batch.
"""
import torch

from ..clip import CLIP, clip_loss, evaluate
from ..distributed import share
from ..shapes import make_scenes, matches, parse_caption, vocabulary
from ..text import Tokenizer
from ..train import train
from . import defaults, training_settings

NAME = "clip_shapes"
HALF = True


def run(out, device, steps=3000, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=100, ema_decay=0.995,
        embed_dim=64, text_dim=64, text_depth=2, heads=4, width=16, image_dim=128, p_two=0.5, seed=0,
        eval_galleries=10, eval_n=1000, p_partial=0.3):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    tokenizer = Tokenizer(vocabulary(partial=p_partial > 0))

    def get_batch(gen):
        scenes = make_scenes(share(batch_size), split="train", p_two=p_two, generator=gen, device=device,
                             p_partial=p_partial)
        ids, mask = tokenizer(scenes.captions)
        fits = matches(scenes.attrs, parse_caption(scenes.captions))     # (B, B): caption j is true of scene i
        return scenes.images, ids.to(device), mask.to(device), fits.to(device)

    def loss_fn(model, batch, gen):
        images, ids, mask, same = batch
        return clip_loss(model(images, ids, mask), targets=same)

    torch.manual_seed(seed)                                                 # the initial weights
    model = CLIP(tokenizer.config["vocab"], tokenizer.max_len, embed_dim=embed_dim, text_dim=text_dim,
                 text_depth=text_depth, heads=heads, width=width, image_dim=image_dim)
    result = train(model, loss_fn, get_batch, steps=steps, lr=lr, weight_decay=weight_decay, warmup=warmup,
                   ema_decay=ema_decay, seed=seed, device=device, state_path=out, settings=settings,
                   desc="clip")
    ema = result.ema
    metrics = evaluate(ema, galleries=eval_galleries, n=eval_n)
    metrics.update(temperature=round(1 / ema.scale.item(), 4),
                   final_loss=round(sum(result.losses[-100:]) / len(result.losses[-100:]), 4),
                   train_seconds=round(result.seconds, 1), resumed_from_step=result.resumed_from)
    return ema.cpu(), metrics


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
