"""How good are generated digits? A small MNIST classifier, its features, and the Fréchet distance.

    model = load_model("mnist_classifier")               # trained by recipes/classifier.py
    class_accuracy(model, images, labels)                # does each digit look like its label?
    fd_report(model, generated, heldout, labels=wanted, real_labels=heldout_classes, n=400, draws=5)

The Fréchet distance (FD) compares two *sets* of images through the classifier's
penultimate-layer features (what the network "sees" just before it decides the class): fit
a Gaussian to each set of features and measure how far apart the two Gaussians are,

    FD = |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))                         (1)

with m the feature means and S the covariances. This is FID (Heusel et al.) with an MNIST
classifier in place of the Inception network. FD is biased by the sample size n (fewer
samples, larger FD), so a number means something only next to its *floor*: the FD between
two disjoint sets of real digits of the same n, which is what a perfect generator would
score. `fd_report` always returns both, each averaged over a few draws with its standard
error (one draw moves by tens of percent), and measured against real digits that neither the
generator nor the classifier trained on (the course holds out MNIST test images 9000-9999).
For class-conditional samples the real sets have the samples' class counts: features cluster
by class, so a random real set, whose class mix varies by chance, scores a floor well above
that of a set with exactly the samples' counts (measured on MNIST at n = 1,000, five draws
each: 0.11-0.21 against 0.07-0.09).
"""
from statistics import fmean, stdev

import torch
import torch.nn as nn

from .checks import check_input, to_model

IMAGE_SHAPE = (1, 28, 28)


class MNISTClassifier(nn.Module):
    """A small CNN for 28x28 digits in [-1, 1]: five 3x3 convolutions, global average pooling, a linear head.

    28x28 -> 14x14 -> 7x7 with `width`, 2*width, 4*width channels (GroupNorm and SiLU after
    each convolution); the pooled 4*width vector is the feature used for the Fréchet
    distance, and `head` maps it to 10 logits.
    """

    def __init__(self, width=16, num_classes=10, dropout=0.1):
        super().__init__()
        if not isinstance(width, int) or width < 8 or width % 8:
            raise ValueError(f"width must be a positive multiple of 8 (GroupNorm uses 8 groups), got {width!r}")
        self.config = dict(width=width, num_classes=num_classes, dropout=dropout)
        c1, c2, c3 = width, 2 * width, 4 * width

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]

        self.body = nn.Sequential(
            *block(1, c1), nn.MaxPool2d(2),                      # (B, c1, 14, 14)
            *block(c1, c2), *block(c2, c2), nn.MaxPool2d(2),     # (B, c2, 7, 7)
            *block(c2, c3), *block(c3, c3),                      # (B, c3, 7, 7)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c3, num_classes)

    def features(self, x):
        """Penultimate-layer features: (B, 1, 28, 28) -> (B, 4*width). x on the model's device, finite
        (noisy digits far outside [-1, 1] are allowed: chapter 3 asks the classifier about them)."""
        _check_images(x, "x")
        check_input(self, x, "x")
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x):
        """Class logits: (B, 1, 28, 28) -> (B, num_classes)."""
        return self.head(self.dropout(self.features(x)))


def _check_images(images, name="images"):
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (B, 1, 28, 28) in [-1, 1], "
                        f"got {type(images).__name__}" + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else ""))
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape (B, 1, 28, 28) with B >= 1, got {tuple(images.shape)}; "
                         "add a channel axis with x.unsqueeze(1) if you have (B, 28, 28)")


def _model(model):
    """A model, or the name of a checkpoint to load (e.g. 'mnist_classifier')."""
    if isinstance(model, str):
        from .checkpoint import load_model
        return load_model(model)
    return model


@torch.no_grad()
def _batched(fn, model, images, batch_size):
    was_training = model.training
    model.eval()
    try:
        return torch.cat([fn(to_model(model, images[i:i + batch_size])).float().cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        model.train(was_training)


def classifier_features(model, x, batch_size=500):
    """The classifier's penultimate-layer features of images x (B, 1, 28, 28) -> (B, D), on the CPU."""
    model = _model(model)
    _check_images(x, "x")
    return _batched(model.features, model, x, batch_size)


def predict(model, images, batch_size=500):
    """The predicted class of each image: (B, 1, 28, 28) -> (B,) int64."""
    model = _model(model)
    _check_images(images)
    return _batched(model, model, images, batch_size).argmax(dim=1)


def class_accuracy(model, images, labels, batch_size=500):
    """Fraction of images whose predicted class equals the label (a float in [0, 1])."""
    labels = torch.as_tensor(labels)
    _check_images(images)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be a 1-D tensor with one label per image ({len(images)}), "
                         f"got shape {tuple(labels.shape)}")
    return (predict(model, images, batch_size) == labels.cpu().long()).double().mean().item()


def _stats(feats, name):
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor of features (N, D), got "
                         f"{tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__}")
    if feats.shape[0] < 2:
        raise ValueError(f"{name} has {feats.shape[0]} sample(s); a covariance needs at least 2 "
                         "(and FD is only meaningful with many more samples than feature dimensions)")
    f = feats.detach().to("cpu", torch.float64)
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the images they came from")
    mean = f.mean(dim=0)                                  # (D,)
    centered = f - mean
    cov = centered.T @ centered / (f.shape[0] - 1)        # (D, D), unbiased like numpy.cov
    return mean, cov


def _sqrt_psd(S):
    """Symmetric square root of a symmetric positive semi-definite matrix, via its eigenvectors."""
    lam, Q = torch.linalg.eigh((S + S.T) / 2)
    return (Q * lam.clamp(min=0).sqrt()) @ Q.T


def frechet_distance(feats_a, feats_b):
    """Fréchet distance (eq. 1) between Gaussians fitted to two sets of features (N_a, D), (N_b, D).

    Computed in float64. tr (S_a S_b)^(1/2) is taken as the trace of the square root of the
    symmetric matrix sqrt(S_a) S_b sqrt(S_a), which has the same eigenvalues as S_a S_b but,
    being symmetric and positive semi-definite, has a stable eigendecomposition.
    """
    m_a, S_a = _stats(feats_a, "feats_a")
    m_b, S_b = _stats(feats_b, "feats_b")
    if m_a.shape != m_b.shape:
        raise ValueError(f"feats_a has {m_a.numel()} features per sample and feats_b {m_b.numel()}; "
                         "they must come from the same feature extractor")
    r = _sqrt_psd(S_a)
    M = r @ S_b @ r
    tr_sqrt = torch.linalg.eigvalsh((M + M.T) / 2).clamp(min=0).sqrt().sum()
    fd = (m_a - m_b).pow(2).sum() + S_a.trace() + S_b.trace() - 2 * tr_sqrt
    return max(fd.item(), 0.0)


def _take_by_class(order, real_labels, counts):
    """The first counts[c] indices of class c in `order`, for every class c: (sum(counts),)."""
    picked = []
    for c, k in enumerate(counts.tolist()):
        of_c = order[real_labels[order] == c]
        if len(of_c) < k:
            raise ValueError(f"the real images have too few of class {c} for class-matched sets: {k} are needed "
                             f"in each of two disjoint sets, {len(of_c)} are left; use a smaller n")
        picked.append(of_c[:k])
    return torch.cat(picked)


def fd_report(model, generated, real, labels=None, n=None, draws=1, reference="MNIST test split",
              sampler=None, steps=None, seed=None, split_seed=0, real_labels=None):
    """FD of generated digits against real ones, next to its floor, with an error bar for both.

    generated: (N, 1, 28, 28) images in [-1, 1], N >= draws * n. real: (M, 1, 28, 28) real
               digits, M >= 2n, which neither the generator nor the classifier trained on.
    n:         images per set (default: as many as both allow). Draw k (k = 0 .. draws-1)
               shuffles the real digits (seed split_seed + k), takes two disjoint sets of n,
               `ref_k` and `other_k`, and the k-th block of n generated images, `gen_k`:
               fd       = mean_k FD(gen_k, ref_k)
               fd_floor = mean_k FD(other_k, ref_k), what a perfect generator would score at this n
               Same n and the same real sets on both sides, so the two numbers can be compared.
    draws:     with draws > 1, `fd_se` and `fd_floor_se` are the standard errors of the two means
               (sd over draws / sqrt(draws)). They cover which samples and which real digits were
               drawn, not the choice of the real pool itself; a difference below about 2 se is noise.
    labels:    optional intended classes of the generated digits: adds `accuracy` (of all draws'
               images). real_labels: the classes of `real`. With both, `ref_k` and `other_k` have
               exactly the class counts of gen_k's labels (`class_matched`: True), so that the
               floor is what a perfect *class-conditional* generator would score.
    reference, sampler, steps, seed: passed through into the report, so that every number
               carries how it was made.
    model:     the classifier, or the name of its checkpoint ('mnist_classifier').
    FD needs n above the feature dimension D (64 for the shipped classifier): with fewer images
    the covariances are singular and the number is not one to compare, so n <= D is refused.
    """
    model = _model(model)
    _check_images(generated, "generated")
    _check_images(real, "real")
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    n_max = min(len(generated) // draws, len(real) // 2)
    n = n_max if n is None else n
    if not isinstance(n, int) or n < 2 or n > n_max:
        raise ValueError(f"n must be an integer from 2 to {n_max} (a block of {len(generated)} generated images per "
                         f"draw, {draws} draws, and half of {len(real)} real ones), got {n!r}")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (len(generated),):
            raise ValueError(f"labels must hold one class per generated image ({len(generated)}), "
                             f"got shape {tuple(labels.shape)}")
    if real_labels is not None:
        real_labels = torch.as_tensor(real_labels)
        if real_labels.shape != (len(real),):
            raise ValueError(f"real_labels must hold one class per real image ({len(real)}), "
                             f"got shape {tuple(real_labels.shape)}")
    matched = labels is not None and real_labels is not None
    f_real = classifier_features(model, real)                              # (M, D)
    if n <= f_real.shape[1]:
        raise ValueError(f"n = {n} images per set is not above the classifier's {f_real.shape[1]} features: the "
                         "covariances would be singular and FD not a number to compare; use more images")
    fds, floors = [], []
    for k in range(draws):
        perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(split_seed + k))
        block = slice(k * n, (k + 1) * n)
        if matched:
            counts = torch.bincount(labels[block].long(), minlength=int(real_labels.max()) + 1)
            ref = _take_by_class(perm, real_labels, counts)
            other = _take_by_class(perm[~torch.isin(perm, ref)], real_labels, counts)
        else:
            ref, other = perm[:n], perm[n:2 * n]
        fds.append(frechet_distance(classifier_features(model, generated[block]), f_real[ref]))
        floors.append(frechet_distance(f_real[other], f_real[ref]))
    report = {"fd": round(fmean(fds), 4), "fd_floor": round(fmean(floors), 4), "draws": draws,
              "class_matched": matched, "n": n, "reference": reference, "split_seed": split_seed,
              "sampler": sampler, "steps": steps, "seed": seed}
    if draws > 1:
        report.update(fd_se=round(standard_error(fds), 4), fd_floor_se=round(standard_error(floors), 4))
    if labels is not None:
        report["accuracy"] = round(class_accuracy(model, generated[:draws * n], labels[:draws * n]), 4)
    return report


def standard_error(values):
    """Standard error of the mean of `values` (at least 2): sample standard deviation / sqrt(len)."""
    return stdev(values) / len(values) ** 0.5
