"""The ideal denoiser of a finite dataset: the best possible answer, computed exactly.

If the training data are N points x0_1..x0_N and we see x = x0 + sigma * eps, which clean
point did it come from? Bayes' rule says point i has probability

    w_i(x, sigma) = softmax_i( -||x - x0_i||^2 / (2 sigma^2) )                      (1)

and the denoiser with the smallest mean squared error predicts the weighted average

    x0_hat(x, sigma) = sum_i w_i x0_i,      eps_hat = (x - x0_hat) / sigma.          (2)

At large sigma every w_i is about 1/N: the best guess is the blurry mean of the whole
dataset. At small sigma one weight is ~1: the guess is the nearest data point. A trained
network can only approximate (2), so this module is both a teaching tool (what is the
network trying to learn?) and a test oracle for the samplers. It obeys the course
contract `model(x, sigma, cond=None) -> eps`.
"""
import torch
from torch import nn


class IdealDenoiser(nn.Module):
    """The exact minimum-error denoiser of the points in `data`, (N, ...).

    labels:      optional (N,) integer class of each point; `cond` then restricts the average
                 to one class, and label `num_classes` (the null class) means "any class".
    batch_size:  rows of x processed at once (memory is batch_size x N doubles).
    """

    def __init__(self, data, labels=None, num_classes=None, batch_size=256):
        super().__init__()
        if not isinstance(data, torch.Tensor) or data.ndim < 2 or len(data) < 1:
            raise ValueError("data must be a tensor of shape (N, ...) holding at least one data point")
        self.register_buffer("data", data.detach().float())                              # (N, ...)
        self.register_buffer("flat", data.detach().reshape(len(data), -1).double())       # (N, D)
        self.register_buffer("sq", (self.flat ** 2).sum(1))                               # (N,)
        if labels is not None:
            labels = torch.as_tensor(labels).long()
            if labels.shape != (len(data),):
                raise ValueError(f"labels must have shape ({len(data)},), got {tuple(labels.shape)}")
            num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
        self.register_buffer("labels", labels)
        self.num_classes = num_classes
        self.batch_size = batch_size

    def null_cond(self, cond):
        """The 'any class' label for classifier-free guidance."""
        return None if cond is None else torch.full_like(cond, self.num_classes)

    def logits(self, x, sigma, cond=None):
        """-||x - x0_i||^2 / (2 sigma^2) for every x and data point: (B, N), float64."""
        x = x.reshape(len(x), -1).to(self.flat)                                             # (B, D)
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
        sigma = sigma.expand(len(x)) if sigma.ndim == 0 else sigma.reshape(len(x))
        # ||x - y||^2 = ||x||^2 - 2 x.y + ||y||^2 in float64, so that small sigmas stay exact
        d2 = ((x ** 2).sum(1, keepdim=True) - 2 * x @ self.flat.T + self.sq).clamp(min=0)    # (B, N)
        logits = -d2 / (2 * sigma[:, None] ** 2)
        if cond is not None:
            if self.labels is None:
                raise ValueError("cond given, but this ideal denoiser was built without labels")
            cond = torch.as_tensor(cond, device=x.device).long().reshape(len(x))
            keep = (self.labels[None, :] == cond[:, None]) | (cond[:, None] == self.num_classes)
            if not keep.any(1).all():
                raise ValueError("some cond label has no data point of that class")
            logits = logits.masked_fill(~keep, float("-inf"))
        return logits

    def weights(self, x, sigma, cond=None):
        """The posterior weights w_i of eq. (1), (B, N): how much each data point counts."""
        return torch.softmax(self.logits(x, sigma, cond), dim=1)

    def x0(self, x, sigma, cond=None):
        """The predicted clean image, eq. (2): a weighted average of the data, shape of x."""
        out = []
        for i in range(0, len(x), self.batch_size):
            s = sigma if torch.as_tensor(sigma).ndim == 0 else torch.as_tensor(sigma)[i:i + self.batch_size]
            c = None if cond is None else cond[i:i + self.batch_size]
            w = self.weights(x[i:i + self.batch_size], s, c)                                # (b, N)
            out.append(w @ self.flat)                                                        # (b, D)
        return torch.cat(out).reshape(x.shape).to(x.dtype)

    def forward(self, x, sigma, cond=None):
        """eps_hat = (x - x0_hat) / sigma: the course's model contract."""
        sigma_b = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma_b = sigma_b.reshape(-1, *([1] * (x.ndim - 1))) if sigma_b.ndim else sigma_b
        return (x - self.x0(x, sigma, cond)) / sigma_b


def effective_count(weights):
    """How many data points an average is really over: 1 / sum_i w_i^2, per row.

    N equal weights give N; one weight of 1 gives 1. (The "participation ratio".)
    """
    return 1.0 / (weights ** 2).sum(-1)
