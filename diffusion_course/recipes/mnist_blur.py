"""Cold diffusion on MNIST (chapter 8): a U-Net that undoes blur, generating by un-blurring.

The mnist recipe's U-Net and data, trained with Bansal et al.'s restoration loss (degrade.py) to
undo a Gaussian blur, from std_min to std_max pixels wide in `severity_steps` steps, instead of noise. The
evaluation generates digits from fully blurred starts with the naive and the improved sampler,
against the held-out digits (FD with its floor, class accuracy), and measures how varied the
digits of one class are next to real ones (`within_class_std`): a deterministic degradation has
only its starts to draw variety from. The start of a generated digit is a randomly chosen training
digit blurred all the way, which is almost one grey level, its mean ink (Bansal et al. draw the
same from a fit of the training images' means).

    python -m diffusion_course train mnist_blur
    python -m diffusion_course evaluate mnist_blur     # measure the shipped weights again
"""
import torch

from ..checkpoint import load_model
from ..data import load_mnist
from ..degrade import Blur, cold_sample, restoration_loss
from ..metrics import fd_report
from . import defaults, training_settings
from .mnist import HALF, HELDOUT, HELDOUT_N, N_TRAIN, NULL, _check_eval, fit, make_model  # noqa: F401 (HALF)

NAME = "mnist_blur"


def run(out, device, steps=18000, batch_size=32, lr=1e-3, channels=16, num_res_blocks=1, dropout=0.1,
        p_uncond=0.1, severity_steps=20, std_min=0.3, std_max=20.0, ema_decay=0.9995, seed=0, eval_n=HELDOUT_N,
        eval_draws=5):
    settings = training_settings(run, locals())       # saved with the state; a resume must match
    return fit_cold(out, device, settings, steps, degradation(settings), eval_n, eval_draws)


def degradation(s):
    """The recipe's degradation, from its settings (a card's or run()'s)."""
    return Blur(s["severity_steps"], s["std_min"], s["std_max"])


def reevaluate(model, out, eval_n=HELDOUT_N, eval_draws=5, seed=0, **training):
    """The card's sample metrics of a trained restoration network: {"samples": evaluate(...)}, for
    `python -m diffusion_course evaluate mnist_blur` (the degradation is rebuilt from the card's settings)."""
    return reevaluate_cold(model, degradation(training), eval_n, eval_draws, seed)


def reevaluate_cold(model, degrade, eval_n, eval_draws, seed, data=None):
    _check_eval(eval_n)
    if eval_n == 0:
        return {"samples": {"skipped": "eval_n=0 (a development run)"}}
    return {"samples": evaluate(model, degrade, data or load_mnist("test"), eval_n, eval_draws, seed)}


def fit_cold(out, device, s, steps, degrade, eval_n, eval_draws):
    """Train the restoration U-Net for a degradation and evaluate it (recipes mnist_blur and mnist_mask)."""
    _check_eval(eval_n)
    data = load_mnist("test")
    torch.manual_seed(s["seed"])

    def loss(model, x0, labels, gen):
        drop = torch.rand(len(labels), generator=gen, device=labels.device) < s["p_uncond"]
        return restoration_loss(model, x0, degrade, gen, torch.where(drop, torch.full_like(labels, NULL), labels))

    ema, metrics = fit(out, device, s, steps, make_model(s["channels"], s["num_res_blocks"], s["dropout"]),
                       f"mnist U-Net, cold diffusion ({type(degrade).__name__.lower()})", data, loss=loss)
    metrics.update(reevaluate_cold(ema, degrade, eval_n, eval_draws, s["seed"], data))
    return ema.cpu(), metrics


def starts(degrade, images, n, seed=0):
    """n fully degraded starting pictures: randomly drawn training digits, degraded to the last severity."""
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, N_TRAIN, (n,), generator=gen)
    return degrade(images[picks], degrade.steps)                                      # (n, 1, 28, 28)


@torch.no_grad()
def evaluate(model, degrade, data, n=HELDOUT_N, draws=5, seed=0, batch_size=500):
    """FD (against the held-out digits, `draws` blocks of n, with its floor), class accuracy, and the
    spread of the digits within each class with its standard error, for the naive and the improved
    sampler, and the same spread for the held-out digits."""
    images, labels = data
    classifier = load_model("mnist_classifier", device=next(model.parameters()).device)
    device = next(model.parameters()).device
    wanted = torch.arange(n * draws) % 10
    x_start = starts(degrade, images, n * draws, seed)
    held, held_labels = images[N_TRAIN:], labels[N_TRAIN:]
    out = {"real_within_class_std": within_class_std(held, held_labels),
           "real_within_class_std_se": within_class_std_se(held, held_labels)}
    for improved in (False, True):
        x = torch.cat([cold_sample(model, degrade, x_start[i:i + batch_size].to(device), improved,
                                   cond=wanted[i:i + batch_size].to(device)).clamp(-1, 1).cpu()
                       for i in range(0, len(wanted), batch_size)])
        r = fd_report(classifier, x, held, labels=wanted, n=n, draws=draws, real_labels=held_labels,
                      reference=HELDOUT, sampler="improved" if improved else "naive", steps=degrade.steps, seed=seed)
        out["improved" if improved else "naive"] = dict(r, within_class_std=within_class_std(x, wanted),
                                                        within_class_std_se=within_class_std_se(x, wanted))
    return out


def within_class_std(x, labels):
    """How much the digits of one class differ: the pixels' standard deviation across the class's digits,
    averaged over pixels and classes. 0 when every digit of a class is the same picture."""
    return round(sum(x[labels == c].std(0).mean().item() for c in range(10)) / 10, 4)


def within_class_std_se(x, labels, resamples=200, seed=0):
    """The standard error of within_class_std(x, labels): its standard deviation over `resamples`
    bootstrap resamples (each class's digits drawn again with replacement, as many as it has).
    It covers which digits were drawn; two spreads closer than about 2 se are not different."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.zeros(resamples)
    for c in range(10):
        xc = x[labels == c].flatten(1)                                            # (N_c, 784)
        picks = torch.randint(0, len(xc), (resamples, len(xc)), generator=gen)
        values += torch.stack([xc[p].std(0).mean() for p in picks]) / 10
    return round(values.std().item(), 4)


DEFAULTS = defaults(run)
