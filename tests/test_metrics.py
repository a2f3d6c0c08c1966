"""metrics.py: the Fréchet distance against closed forms, accuracy on hand-made cases, bad inputs."""
import math

import pytest
import torch

from diffusion_course.metrics import (MNISTClassifier, class_accuracy, classifier_features, fd_report,
                                      frechet_distance)
from diffusion_course.recipes.classifier import random_shift


def exact_gaussian_samples(n, mean, cov, seed=0):
    """n samples whose *sample* mean and (unbiased) covariance are exactly `mean` and `cov`."""
    d = len(mean)
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    c = z.T @ z / (n - 1)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(c)).T     # sample covariance now exactly I
    return mean + z @ torch.linalg.cholesky(cov).T


def test_fd_one_dimensional_closed_form():
    a = exact_gaussian_samples(200, torch.tensor([1.0], dtype=torch.float64), torch.tensor([[4.0]], dtype=torch.float64))
    b = exact_gaussian_samples(300, torch.tensor([-0.5], dtype=torch.float64), torch.tensor([[0.25]], dtype=torch.float64), seed=1)
    # FD = (m1 - m2)^2 + (s1 - s2)^2 = 1.5^2 + (2 - 0.5)^2
    assert frechet_distance(a, b) == pytest.approx(1.5 ** 2 + 1.5 ** 2, rel=1e-9)


def test_fd_diagonal_closed_form():
    m1, m2 = torch.tensor([0.0, 1.0, 2.0, -1.0]).double(), torch.tensor([0.5, 1.0, -1.0, 0.0]).double()
    s1, s2 = torch.tensor([1.0, 2.0, 0.5, 3.0]).double(), torch.tensor([2.0, 2.0, 1.5, 0.1]).double()
    a = exact_gaussian_samples(500, m1, torch.diag(s1 ** 2), seed=2)
    b = exact_gaussian_samples(400, m2, torch.diag(s2 ** 2), seed=3)
    want = ((m1 - m2) ** 2 + (s1 - s2) ** 2).sum().item()
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(a.float(), b.float()) == pytest.approx(want, rel=1e-5)


def test_fd_full_covariance_closed_form():
    # S_a = I, S_b = Q diag(lam) Q^T (not diagonal): tr (S_a S_b)^(1/2) = sum sqrt(lam)
    d = 6
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    lam = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    m_b = torch.arange(d, dtype=torch.float64) / 3
    a = exact_gaussian_samples(100, torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64), seed=5)
    b = exact_gaussian_samples(100, m_b, q @ torch.diag(lam) @ q.T, seed=6)
    want = (m_b ** 2).sum() + d + lam.sum() - 2 * lam.sqrt().sum()
    assert frechet_distance(a, b) == pytest.approx(want.item(), rel=1e-8)


def test_fd_self_zero_and_symmetric():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(300, 16, generator=g) @ torch.randn(16, 16, generator=g)
    b = torch.randn(300, 16, generator=g) * 2 + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 1.0


def test_fd_singular_covariance_is_finite():
    # fewer samples than dimensions: covariances are singular; the result must still be finite
    g = torch.Generator().manual_seed(8)
    a, b = torch.randn(5, 20, generator=g), torch.randn(5, 20, generator=g)
    fd = frechet_distance(a, b)
    assert math.isfinite(fd) and fd > 0


class FirstTenPixels(torch.nn.Module):
    """A 'classifier' whose logits are the first ten pixels of the image: lighting pixel k predicts class k."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1)[:, :10]

    def features(self, x):
        return x.flatten(1)[:, :10]


def test_class_accuracy_hand_made():
    images = -torch.ones(4, 1, 28, 28)
    for i, k in enumerate([3, 8, 0, 9]):
        images[i, 0, 0, k] = 1.0                       # image i "is" digit k
    model = FirstTenPixels()
    assert class_accuracy(model, images, torch.tensor([3, 8, 0, 9])) == 1.0
    assert class_accuracy(model, images, torch.tensor([3, 3, 0, 9])) == 0.75
    assert class_accuracy(model, images, [8, 3, 1, 1], batch_size=3) == 0.0


def test_classifier_shapes_and_features():
    torch.manual_seed(0)
    model = MNISTClassifier(width=8)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert model(x).shape == (3, 10)
    f = classifier_features(model, x, batch_size=2)
    assert f.shape == (3, 32) and f.dtype == torch.float32
    torch.testing.assert_close(f, model.eval().features(x))
    assert model.config == {"width": 8, "num_classes": 10, "dropout": 0.1}


def test_fd_report_floor_and_passthrough():
    torch.manual_seed(0)
    model = MNISTClassifier(width=8)
    g = torch.Generator().manual_seed(9)
    real = torch.rand(200, 1, 28, 28, generator=g) * 2 - 1
    generated = real[:60] * 0 - 1 + 0.1 * torch.rand(60, 1, 28, 28, generator=g)    # nearly blank images
    rep = fd_report(model, generated, real, labels=torch.zeros(60, dtype=torch.long), n=50,
                    sampler="ddim", steps=20, seed=3)
    assert rep["n"] == 50 and rep["sampler"] == "ddim" and rep["steps"] == 20 and rep["seed"] == 3
    assert rep["reference"] == "MNIST test split" and 0.0 <= rep["accuracy"] <= 1.0
    assert rep["fd"] > rep["fd_floor"] >= 0.0
    # the generated set drawn from the same distribution as `real` lands near the floor
    same = fd_report(model, torch.rand(60, 1, 28, 28, generator=g) * 2 - 1, real, n=50)
    assert same["fd"] < rep["fd"]
    assert fd_report(model, generated, real)["n"] == 60      # default n: as many as both sides allow


def test_fd_floor_matches_the_class_counts_of_conditional_samples():
    # Two classes the features tell apart (dark and bright images), 3:1 in the real data.
    # Generated: fresh draws of the same two classes, 1:1, like class-conditional samples.
    torch.manual_seed(0)
    model = MNISTClassifier(width=8)
    g = torch.Generator().manual_seed(1)

    def draw(classes):
        base = torch.where(classes == 0, -0.8, 0.8).view(-1, 1, 1, 1)
        return base + 0.05 * torch.randn(len(classes), 1, 28, 28, generator=g)

    real_labels = (torch.arange(800) % 4 == 0).long()              # 600 of class 0, 200 of class 1
    real, labels = draw(real_labels), torch.arange(300) % 2
    generated = draw(labels)
    matched = fd_report(model, generated, real, labels=labels, n=60, draws=5, real_labels=real_labels)
    assert matched["class_matched"] and matched["draws"] == 5 and {"fd_se", "fd_floor_se"} <= set(matched)
    assert matched["fd"] < 2 * matched["fd_floor"]                  # a perfect generator scores about the floor
    # Without the real classes the floor comes from 3:1 sets, and the 1:1 samples look far off.
    unmatched = fd_report(model, generated, real, labels=labels, n=60)
    assert not unmatched["class_matched"]
    assert unmatched["fd"] > 3 * unmatched["fd_floor"]
    with pytest.raises(ValueError, match="too few of class 1"):
        fd_report(model, generated, real[:300], labels=torch.ones(300, dtype=torch.long), n=60,
                  real_labels=real_labels[:300])                      # 75 of class 1, 2 x 60 needed
    with pytest.raises(ValueError, match="real_labels must hold one class per real image"):
        fd_report(model, generated, real, labels=labels, real_labels=real_labels[:10])


def test_fd_report_draws_use_disjoint_sample_blocks_and_refuse_too_few_images():
    torch.manual_seed(0)
    model = MNISTClassifier(width=8)                                  # 32 features
    g = torch.Generator().manual_seed(4)
    real = torch.rand(300, 1, 28, 28, generator=g) * 2 - 1
    good, blank = torch.rand(100, 1, 28, 28, generator=g) * 2 - 1, torch.full((100, 1, 28, 28), -1.0)
    one = fd_report(model, good, real, n=50)
    assert "fd_se" not in one and one["draws"] == 1
    # draw k scores the k-th block of 50 against the real split of seed split_seed + k
    mixed = fd_report(model, torch.cat([good[:50], blank[:50]]), real, n=50, draws=2)
    first = fd_report(model, good[:50], real, n=50, split_seed=0)
    second = fd_report(model, blank[:50], real, n=50, split_seed=1)
    assert mixed["fd"] == pytest.approx((first["fd"] + second["fd"]) / 2, abs=2e-4)
    assert mixed["fd_floor"] == pytest.approx((first["fd_floor"] + second["fd_floor"]) / 2, abs=2e-4)
    assert mixed["fd_se"] == pytest.approx(abs(first["fd"] - second["fd"]) / 2, abs=2e-4)   # sd / sqrt(2)
    with pytest.raises(ValueError, match="not above the classifier's 32 features"):
        fd_report(model, good, real, n=30)
    with pytest.raises(ValueError, match="n must be an integer from 2 to 33"):
        fd_report(model, good, real, n=50, draws=3)                 # 100 images make 3 blocks of at most 33


def test_random_shift_moves_content():
    x = -torch.ones(2, 1, 28, 28)
    x[:, 0, 10, 12] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and (y == 1.0).sum() == 2 and (y == -1.0).sum() == 2 * 28 * 28 - 2
    torch.testing.assert_close(random_shift(x, 0, None), x)


def test_bad_inputs():
    model = MNISTClassifier(width=8)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        classifier_features(model, torch.zeros(4, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        class_accuracy(model, torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        classifier_features(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="one label per image"):
        class_accuracy(model, torch.zeros(4, 1, 28, 28), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 5), torch.zeros(10, 5))
    with pytest.raises(ValueError, match="same feature extractor"):
        frechet_distance(torch.randn(10, 5), torch.randn(10, 6))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance(torch.randn(10), torch.randn(10))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((4, 2), float("nan")), torch.randn(4, 2))
    with pytest.raises(ValueError, match="n must be"):
        fd_report(model, torch.zeros(10, 1, 28, 28), torch.zeros(10, 1, 28, 28), n=8)
    with pytest.raises(ValueError, match="one class per generated image"):
        fd_report(model, torch.zeros(10, 1, 28, 28), torch.zeros(20, 1, 28, 28), labels=torch.zeros(3))
    with pytest.raises(ValueError, match="multiple of 8"):
        MNISTClassifier(width=12)
