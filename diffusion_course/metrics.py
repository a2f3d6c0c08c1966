"""How good are generated digits? A small MNIST classifier, its features, and the Fréchet distance.

    model = load_model("mnist_classifier")               # trained by recipes/classifier.py
    class_accuracy(model, images, labels)                # does each digit look like its label?
    fd_report(model, generated, real, labels=wanted, real_labels=real_classes, sampler="ddim", steps=50, seed=0)

The Fréchet distance (FD) compares two *sets* of images through the classifier's
penultimate-layer features (what the network "sees" just before it decides the class): fit
a Gaussian to each set of features and measure how far apart the two Gaussians are,

    FD = |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))                         (1)

with m the feature means and S the covariances. This is FID (Heusel et al.) with an MNIST
classifier in place of the Inception network. FD is biased by the sample size n (fewer
samples, larger FD), so a number means something only next to its *floor*: the FD between
two disjoint sets of real digits of the same n, which is what a perfect generator would
score. `fd_report` always returns both. The floor is also an average over a few draws (one
draw moves by tens of percent at n = 1,000), and, for class-conditional samples, its real
sets have the samples' class counts: features cluster by class, so a random real set, whose
class mix varies by chance, scores a floor well above that of a set with exactly the
samples' counts (measured on MNIST at n = 1,000, five draws each: 0.11-0.21 against 0.07-0.09).
"""
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


def fd_report(model, generated, real, labels=None, n=None, reference="MNIST test split",
              sampler=None, steps=None, seed=None, split_seed=0, real_labels=None, floor_draws=5):
    """FD of generated digits against real ones, next to its floor, with everything needed to compare.

    generated: (N, 1, 28, 28) images in [-1, 1]. real: (M, 1, 28, 28) real digits, M >= 2n.
    n:         images per set (default: as many as both allow). From the real digits (shuffled
               by `split_seed`) a set `ref` of n is drawn, and `floor_draws` more sets of n from
               the rest, `other_1..k`, each disjoint from `ref`:
               fd       = FD(generated[:n], ref)
               fd_floor = mean_k FD(other_k, ref), what a perfect generator would score at this n
               (fd_floor_range: the smallest and largest of the k).
               Same n and same `ref` on both sides, so the two numbers can be compared.
    labels:    optional intended classes of the generated digits: adds `accuracy`.
    real_labels: the classes of `real`. With `labels` too, `ref` and every `other` set have
               exactly the class counts of labels[:n] (`class_matched`: True), so that the
               floor is what a perfect *class-conditional* generator would score.
    reference, sampler, steps, seed: passed through into the report, so that every number
               carries how it was made.
    model:     the classifier, or the name of its checkpoint ('mnist_classifier').
    """
    model = _model(model)
    _check_images(generated, "generated")
    _check_images(real, "real")
    n_max = min(len(generated), len(real) // 2)
    n = n_max if n is None else n
    if not isinstance(n, int) or n < 2 or n > n_max:
        raise ValueError(f"n must be an integer from 2 to {n_max} (min of {len(generated)} generated images and "
                         f"half of {len(real)} real ones), got {n!r}")
    if not isinstance(floor_draws, int) or floor_draws < 1:
        raise ValueError(f"floor_draws must be a positive integer, got {floor_draws!r}")
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
    g = torch.Generator().manual_seed(split_seed)
    perm = torch.randperm(len(real), generator=g)
    matched = labels is not None and real_labels is not None
    if matched:
        counts = torch.bincount(labels[:n].long(), minlength=int(real_labels.max()) + 1)
        ref = _take_by_class(perm, real_labels, counts)
        rest = perm[~torch.isin(perm, ref)]
        others = [_take_by_class(rest[torch.randperm(len(rest), generator=g)], real_labels, counts)
                  for _ in range(floor_draws)]
    else:
        ref, rest = perm[:n], perm[n:]
        others = [rest[torch.randperm(len(rest), generator=g)[:n]] for _ in range(floor_draws)]
    f_ref = classifier_features(model, real[ref])
    floors = [frechet_distance(classifier_features(model, real[o]), f_ref) for o in others]
    report = {"fd": round(frechet_distance(classifier_features(model, generated[:n]), f_ref), 4),
              "fd_floor": round(sum(floors) / len(floors), 4),
              "fd_floor_range": [round(min(floors), 4), round(max(floors), 4)],
              "floor_draws": floor_draws, "class_matched": matched,
              "n": n, "reference": reference, "split_seed": split_seed,
              "sampler": sampler, "steps": steps, "seed": seed}
    if labels is not None:
        report["accuracy"] = round(class_accuracy(model, generated[:n], labels[:n]), 4)
    return report
