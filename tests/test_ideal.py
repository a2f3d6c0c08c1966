"""The ideal denoiser against Bayes' rule computed independently, and its limits."""
import pytest
import torch

from diffusion_course.ideal import IdealDenoiser, effective_count


def points():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 2, 3, generator=g), torch.tensor([0, 1, 0, 1, 2, 2])


def test_weights_match_gaussian_likelihoods():
    data, _ = points()
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1)).double()
    sigma = 0.7
    # Bayes: w_i proportional to the density of x under N(x0_i, sigma^2 I), with a uniform prior
    normal = torch.distributions.Normal(data.double().reshape(1, 6, -1), sigma)
    logp = normal.log_prob(x.reshape(4, 1, -1)).sum(-1)                 # (4, 6)
    want = torch.softmax(logp, dim=1)
    torch.testing.assert_close(IdealDenoiser(data).weights(x, sigma), want)


def test_two_points_closed_form():
    """Two 1-D points a and b: x0_hat = a + (b - a) * sigmoid((2x(b-a) - b^2 + a^2) / (2 sigma^2))."""
    a, b, x, sigma = -1.0, 2.0, 0.8, 1.3
    d = IdealDenoiser(torch.tensor([[a], [b]]))
    w_b = torch.sigmoid(torch.tensor((2 * x * (b - a) - b * b + a * a) / (2 * sigma ** 2)))
    want = a + (b - a) * w_b
    got = d.x0(torch.tensor([[x]]), sigma)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    eps = d(torch.tensor([[x]]), sigma)
    assert eps.item() == pytest.approx((x - want.item()) / sigma, rel=1e-5)


def test_limits_mean_and_nearest_point():
    data, _ = points()
    d = IdealDenoiser(data)
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(2))
    big = d.x0(x, 1e4)                                       # huge noise: the mean of the data
    torch.testing.assert_close(big, data.mean(0).expand_as(big), atol=1e-3, rtol=0)
    torch.testing.assert_close(effective_count(d.weights(x, 1e4)), torch.full((5,), 6.0, dtype=torch.float64),
                               atol=1e-3, rtol=0)
    near = data[[3, 0]] + 1e-3                               # tiny noise: the nearest point, exactly
    torch.testing.assert_close(d.x0(near, 1e-3), data[[3, 0]])
    assert torch.isfinite(d(near, 1e-4)).all()               # no overflow at very small sigma
    torch.testing.assert_close(effective_count(d.weights(near, 1e-3)), torch.ones(2, dtype=torch.float64))


def test_eps_contract_and_per_item_sigma():
    data, _ = points()
    d = IdealDenoiser(data, batch_size=2)                     # several batches
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(3))
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 8.0])
    eps = d(x, sigma)
    torch.testing.assert_close(x - sigma[:, None, None] * eps, d.x0(x, sigma), atol=1e-5, rtol=1e-5)
    for i in range(5):                                       # per-item sigma equals one call per item
        torch.testing.assert_close(d.x0(x[i:i + 1], sigma[i].item()), d.x0(x, sigma)[i:i + 1])


def test_class_conditioning():
    data, labels = points()
    d = IdealDenoiser(data, labels)
    assert d.num_classes == 3
    x = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(4))
    w = d.weights(x, 1.0, torch.tensor([0, 2, 3]))            # 3 is the null class
    assert (w[0, labels != 0] == 0).all() and (w[1, labels != 2] == 0).all()
    torch.testing.assert_close(w[2], d.weights(x[2:], 1.0)[0])  # null class = unconditional
    big = d.x0(x, 1e4, torch.tensor([1, 1, 1]))
    torch.testing.assert_close(big, data[labels == 1].mean(0).expand_as(big), atol=1e-3, rtol=0)


def test_effective_count_examples():
    w = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    torch.testing.assert_close(effective_count(w), torch.tensor([2.0, 1.0, 4.0]))


def test_bad_inputs():
    data, labels = points()
    with pytest.raises(ValueError, match="data must be a tensor"):
        IdealDenoiser(torch.zeros(5))
    with pytest.raises(ValueError, match="labels must have shape"):
        IdealDenoiser(data, labels[:3])
    with pytest.raises(ValueError, match="built without labels"):
        IdealDenoiser(data)(data, 1.0, torch.zeros(6, dtype=torch.long))
