"""Batch normalisation: ``batch_norm``.

Training mode normalises each channel with the batch's mean and (biased) variance and updates the running
statistics in place, as PyTorch does::

    running_mean = (1 - momentum) * running_mean + momentum * batch_mean
    running_var  = (1 - momentum) * running_var  + momentum * batch_var * M / (M - 1)     (unbiased, M = N*H*W)

Evaluation mode normalises with the running statistics, which are then constants. Both modes differentiate
with respect to ``x``, ``gamma`` and ``beta``.

``relu=True`` applies a ReLU to the result inside the same op: ``relu(batch_norm(x))`` with one pass over the data
fewer each way and no separate ReLU op in the graph (the Inception conv unit, ``nn.ConvBNReLU``, uses it).

The arithmetic (the formulas and the family's contract are in ``ops/kernels/reference/batch_norm.py``: read it
first) is a kernel asked from the active kernel tier (``ops.kernels``): the reference file in the reference tier;
Numba (``ops/kernels/cpu/batch_norm.py``) on the CPU and CuPy (``ops/kernels/cuda/batch_norm.py``) on the GPU in
the fast tier.
"""
import numpy as np

from autograd import Function, Tensor
from autograd.backend import get_array_module

from . import kernels


def _as_3d(x):
    """(N, C, H, W) or (N, C) -> (N, C, L) (a view when x is contiguous)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


class BatchNorm(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per channel; inputs ``(x, gamma, beta)``."""

    def __init__(self, training, momentum, eps, running_mean, running_var, relu=False):
        self.training, self.momentum, self.eps, self.relu = bool(training), float(momentum), float(eps), relu
        self.running_mean, self.running_var = running_mean, running_var      # updated in place (training)

    @property
    def name(self):
        return "BatchNormReLU" if self.relu else "BatchNorm"

    def forward(self, x, gamma, beta):
        bn = kernels.lookup("batch_norm", x)        # the active tier's kernels, kept for backward
        x3 = _as_3d(x)
        if self.training:
            y, mean, var, invstd = bn.forward_train(x3, gamma, beta, self.eps, relu=self.relu)
            bn.update_running_stats(self.running_mean, self.running_var, mean, var, self.momentum,
                                    x3.shape[0] * x3.shape[2])
            self.centre = mean
        else:
            y, invstd = bn.forward_eval(x3, gamma, beta, self.running_mean, self.running_var, self.eps,
                                        relu=self.relu)
            self.centre = self.running_mean.astype(np.float64)        # a copy: later updates cannot change it
        self.x3, self.invstd, self.gamma = x3, invstd, gamma
        self.y3 = y if self.relu else None      # where the ReLU let the gradient through (shared with the consumer)
        self.kernels = bn
        return y.reshape(x.shape)

    def backward(self, gy):
        gy3 = _as_3d(gy)
        if self.training:
            gx, ggamma, gbeta = self.kernels.backward_train(gy3, self.x3, self.centre, self.invstd, self.gamma,
                                                            y=self.y3)
        else:
            gx, ggamma, gbeta = self.kernels.backward_eval(gy3, self.x3, self.centre, self.invstd, self.gamma,
                                                           y=self.y3)
        return gx.reshape(gy.shape), ggamma, gbeta


def _raw(a):
    """The array inside a Tensor (running statistics may be given as either)."""
    return a.data if isinstance(a, Tensor) else a


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-3, relu=False):
    """Batch normalisation over the N (and H, W) axes of each channel.

    Args:
        x: Tensor or array, (N, C, H, W) or (N, C), floating point.
        gamma, beta: Tensors or arrays (C,) of x's dtype: the learned scale and shift.
        running_mean, running_var: plain arrays (C,) (or Tensors, whose ``.data`` is used), updated in place when
            ``training``; ``None`` skips the update in training mode. Required in evaluation mode.
        training: True: batch statistics (and update the running ones); False: running statistics.
        momentum: weight of the batch statistics in the running averages.
        eps: added to the variance before the square root (1e-3, as the Inception papers' TensorFlow code).
        relu: apply ``max(., 0)`` to the result in the same op (equal to ``ops.relu(batch_norm(...))``, fused).

    Shape:
        x: (N, C, H, W) -> (N, C, H, W); or (N, C) -> (N, C)
    """
    op = "batch_norm"
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: expected x of shape (N, C, H, W) or (N, C), got shape {tuple(x.shape)}")
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"{op}: expected a floating-point x, got dtype {x.dtype}")
    c = x.shape[1]
    for name, t in (("gamma", gamma), ("beta", beta)):
        if t is None:
            raise TypeError(f"{op}: {name} is required (use ones for gamma, zeros for beta)")
        if tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for x of shape {tuple(x.shape)} with {c} "
                             f"channels, got shape {tuple(t.shape)}")
        if t.dtype != x.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but x has dtype {x.dtype}; convert one of them")
    running_mean, running_var = _raw(running_mean), _raw(running_var)
    for name, r in (("running_mean", running_mean), ("running_var", running_var)):
        if r is None:
            if not training:
                raise ValueError(f"{op}: evaluation mode (training=False) needs {name}, got None")
            continue
        if tuple(r.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for x of shape {tuple(x.shape)} with {c} "
                             f"channels, got shape {tuple(r.shape)}")
        if get_array_module(r) is not get_array_module(x):
            raise ValueError(f"{op}: {name} and x are on different devices; move the buffers with the model")
    if training:
        m = x.shape[0] * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)
        if m <= 1:
            raise ValueError(f"{op}: training needs more than one value per channel to compute a variance, got "
                             f"x of shape {tuple(x.shape)} ({m} value per channel)")
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps}")
    return BatchNorm(training, momentum, eps, running_mean, running_var, bool(relu))(x, gamma, beta)
