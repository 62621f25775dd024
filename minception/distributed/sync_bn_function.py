"""``SyncBatchNorm``: batch normalisation whose statistics cover the whole global batch, across all ranks.

Plain batch norm in data-parallel training normalises each rank's shard with that shard's own mean and variance
(what the paper's 20 replicas did). Synchronised batch norm normalises with the statistics of the union of the
shards, so N ranks with B images each compute exactly what one process computes on N*B images: the same outputs,
the same gradients, the same running statistics. It costs two small all-reduces per BN layer per step (2C+1
and 2C numbers), one in the forward pass and one in the backward pass.

Forward, per channel, with ``M`` the number of values per channel over all ranks (``N*H*W`` summed)::

    local sums   s1 = sum(x),  s2 = sum(x * x),  m = N*H*W      (float64: tiny arrays, and sums lose digits)
    all-reduce   S1, S2, M = sum over ranks of (s1, s2, m)       (one reduction of 2C+1 numbers)
    mean = S1 / M          var = S2 / M - mean**2                 (biased, as in training-mode BN)
    xhat = (x - mean) / sqrt(var + eps)        y = gamma * xhat + beta        (then max(y, 0) when relu=True)

``var = E[x^2] - E[x]^2`` lets one reduction carry everything, at the price of cancellation when
``|mean| >> std``: in float64 the relative error of ``var`` is about ``1e-16 * mean^2 / var``, which only matters
for channels whose mean is ~1e4 standard deviations from zero.

Backward: the loss of the global batch is the mean of the ranks' shard losses, and each ``x`` influences every
rank's output through ``mean`` and ``var``. With ``gy`` this rank's upstream gradient (after the ReLU's mask)::

    local sums   gbeta = sum(gy),  ggamma = sum(gy * xhat)
    all-reduce   Gbeta, Ggamma = sum over ranks                   (one reduction of 2C numbers)
    gx = gamma / sqrt(var + eps) * (gy - Gbeta / M - xhat * Ggamma / M)

The global sums give ``gx`` every rank's share of the dependency; the gradients of gamma and beta stay the *local*
sums, because the data-parallel step averages the parameter gradients over the ranks afterwards (returning the
global sums here would count them ``size`` times).

Running statistics are updated as one big batch would: ``running_var`` gets the unbiased ``var * M / (M - 1)``
with the global ``M``.

With one rank (the single-process ``Communicator``), every reduction is the identity and this is ordinary batch
norm; that is how its gradient is checked.
"""
import numpy as np

from autograd import Function
from autograd.backend import get_array_module
from ops import kernels


def _as_3d(x):
    """(N, C, H, W) or (N, C) -> (N, C, L), a view of a contiguous array."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(v, dtype):
    """(C,) -> (1, C, 1) in ``dtype``, to broadcast against (N, C, L)."""
    return v.reshape(1, -1, 1).astype(dtype)


class SyncBatchNorm(Function):
    """Training-mode batch norm with statistics summed over the ranks of ``comm``; inputs ``(x, gamma, beta)``.

    Args:
        comm: the communicator (``distributed.init()``); its ``allreduce_sum_`` sums float64 arrays in place.
        momentum: weight of the new (global) batch statistics in the running averages.
        eps: added to the variance.
        running_mean, running_var: arrays (C,) updated in place, or None to skip the update.
        relu: return ``max(y, 0)`` (the fused BN + ReLU of ``nn.ConvBNReLU``).

    Shape:
        x: (N, C, H, W) or (N, C); gamma, beta: (C,) -> y: like x
    """

    def __init__(self, comm, momentum=0.1, eps=1e-3, running_mean=None, running_var=None, relu=False):
        self.comm, self.momentum, self.eps, self.relu = comm, float(momentum), float(eps), bool(relu)
        self.running_mean, self.running_var = running_mean, running_var

    @property
    def name(self):
        return "SyncBatchNormReLU" if self.relu else "SyncBatchNorm"

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        x3 = _as_3d(x)
        c = x3.shape[1]
        sums = xp.empty(2 * c + 1, dtype=np.float64)
        sums[:c] = x3.sum(axis=(0, 2), dtype=np.float64)
        sums[c:2 * c] = (x3 * x3).sum(axis=(0, 2), dtype=np.float64)
        sums[2 * c] = x3.shape[0] * x3.shape[2]
        self.comm.allreduce_sum_(sums)                 # every rank now holds the sums over the global batch
        count = float(sums[2 * c])
        if count <= 1:
            raise ValueError(f"SyncBatchNorm: training needs more than one value per channel over all ranks, got "
                             f"{count:g} (x of shape {tuple(x.shape)} on this rank)")
        mean = sums[:c] / count
        var = xp.maximum(sums[c:2 * c] / count - mean * mean, 0.0)     # rounding can make it a hair negative
        invstd = 1.0 / xp.sqrt(var + self.eps)
        kernels.lookup("batch_norm", x3).update_running_stats(self.running_mean, self.running_var, mean, var,
                                                              self.momentum, count)

        xhat = (x3 - _per_channel(mean, x.dtype)) * _per_channel(invstd, x.dtype)
        y = xhat * _per_channel(gamma, x.dtype) + _per_channel(beta, x.dtype)
        if self.relu:
            y = xp.maximum(y, 0)
        self.x3, self.mean, self.invstd, self.gamma, self.count = x3, mean, invstd, gamma, count
        self.y3 = y if self.relu else None                  # the ReLU's output tells where gradients pass
        return y.reshape(x.shape)

    def backward(self, gy):
        xp = get_array_module(gy)
        gy3 = _as_3d(gy)
        if self.y3 is not None:
            gy3 = gy3 * (self.y3 > 0)                       # through the ReLU first
        x3, c = self.x3, self.x3.shape[1]
        xhat = (x3 - _per_channel(self.mean, x3.dtype)) * _per_channel(self.invstd, x3.dtype)
        sums = xp.empty(2 * c, dtype=np.float64)
        sums[:c] = gy3.sum(axis=(0, 2), dtype=np.float64)               # this rank's d loss / d beta
        sums[c:] = (gy3 * xhat).sum(axis=(0, 2), dtype=np.float64)      # this rank's d loss / d gamma
        gbeta, ggamma = sums[:c].copy(), sums[c:].copy()
        self.comm.allreduce_sum_(sums)                  # the same sums over the global batch
        total_gbeta, total_ggamma = sums[:c], sums[c:]
        scale = self.gamma.astype(np.float64) * self.invstd
        gx = (gy3 - _per_channel(total_gbeta / self.count, x3.dtype)
              - xhat * _per_channel(total_ggamma / self.count, x3.dtype)) * _per_channel(scale, x3.dtype)
        return gx.reshape(gy.shape), ggamma.astype(self.gamma.dtype), gbeta.astype(self.gamma.dtype)
