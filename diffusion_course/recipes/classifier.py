"""MNIST digit classifier (small CNN) behind class accuracy and the Fréchet distance.

Trained with cross-entropy on the first 9,000 images of the MNIST test split (the 10,000
digits that ship offline), with small random shifts as augmentation; evaluated on the last
1,000, which it never sees. Its penultimate-layer features are what `metrics.fd_report`
compares, and chapter 3 asks it at which noise level the digits stop being readable.

    python -m diffusion_course train classifier
"""
import torch
import torch.nn.functional as F

from ..data import load_mnist
from ..distributed import share
from ..metrics import MNISTClassifier, class_accuracy
from ..train import train
from . import defaults, training_settings

NAME = "mnist_classifier"
HALF = False
N_TRAIN = 9000                          # images [0, 9000) train, [9000, 10000) are held out


def random_shift(x, shift, gen):
    """Move each image by up to `shift` pixels in x and y (the border is filled with background, -1).

    x: (B, 1, H, W). Offsets are drawn with `gen`, so the augmentation is reproducible.
    """
    if shift == 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)           # (B, 1, H+2s, W+2s)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, B), generator=gen, device=x.device)
    rows = dy[:, None] + torch.arange(H, device=x.device)                 # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)                 # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    return padded[b, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)  # (B, 1, H, W)


def run(out, device, steps=4000, batch_size=128, lr=2e-3, weight_decay=0.05, width=16, dropout=0.1,
        shift=2, ema_decay=0.995, seed=0):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    images, labels = load_mnist("test")                                    # (10000, 1, 28, 28) in [-1, 1]
    x_train, y_train = images[:N_TRAIN].to(device), labels[:N_TRAIN].to(device)
    x_held, y_held = images[N_TRAIN:], labels[N_TRAIN:]

    def get_batch(gen):
        i = torch.randint(0, N_TRAIN, (share(batch_size),), generator=gen, device=device)
        return random_shift(x_train[i], shift, gen), y_train[i]

    def loss_fn(model, batch, gen):
        x, y = batch
        return F.cross_entropy(model(x), y)

    torch.manual_seed(seed)                                                # the initial weights
    model = MNISTClassifier(width=width, dropout=dropout)
    result = train(model, loss_fn, get_batch, steps=steps, lr=lr, weight_decay=weight_decay,
                   ema_decay=ema_decay, seed=seed, device=device, state_path=out, settings=settings,
                   desc="classifier")
    ema = result.ema
    metrics = {"heldout_accuracy": round(class_accuracy(ema, x_held, y_held), 4),
               "heldout_n": len(x_held), "heldout_split": "MNIST test split, images 9000-9999",
               "train_accuracy": round(class_accuracy(ema, images[:N_TRAIN], labels[:N_TRAIN]), 4),
               "train_n": N_TRAIN, "final_loss": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 4)}
    return ema.cpu(), metrics


DEFAULTS = defaults(run)                 # every setting of run(), for the command line and the card
