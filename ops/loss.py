"""Softmax, log-softmax and the softmax cross-entropy loss (with label smoothing)."""
import numpy as np

from autograd import Function, Tensor
from autograd.backend import device_of, get_array_module, is_gpu_array, to_device, to_numpy

from . import kernels


def _log_softmax(x, axis):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)      # subtract the max so exp cannot overflow
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = get_array_module(x).exp(_log_softmax(x, self.axis))
        return self.y

    def backward(self, gy):
        # dL/dx = y * (gy - sum(gy * y))
        return self.y * (gy - (gy * self.y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = _log_softmax(x, self.axis)
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


class SoftmaxCrossEntropy(Function):
    """Mean over the batch of ``-sum_k q_k log softmax(z)_k`` where ``q`` is the one-hot label smoothed towards
    the uniform distribution: ``q = (1 - s) * onehot + s / K``. The kernels (the ``loss`` family of the active
    kernel tier, ``ops/kernels/reference/loss.py``) compute it; forward keeps their log-probabilities."""

    def __init__(self, labels, smoothing):
        self.labels, self.smoothing = labels, smoothing

    def forward(self, logits):
        self.kernels = kernels.lookup("loss", logits)
        loss, self.log_p = self.kernels.softmax_cross_entropy_forward(logits, self.labels, self.smoothing)
        return loss

    def backward(self, gy):
        return self.kernels.softmax_cross_entropy_backward(gy, self.log_p, self.labels, self.smoothing)


def softmax(x, axis=-1):
    return Softmax(axis % x.ndim)(x)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis % x.ndim)(x)


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """Cross-entropy of softmax(logits) against integer labels, averaged over the batch.

    Shape:
        logits: (N, K) float, labels: (N,) integers in [0, K) -> scalar
    """
    labels = labels.data if isinstance(labels, Tensor) else labels
    # The labels are checked where they are, and only then moved to the logits' device: on the host the check is
    # free, while reading a GPU array's range makes the host wait for the GPU (a training loop on the GPU should
    # pass host labels).
    labels = labels if is_gpu_array(labels) else np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, K), got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"softmax_cross_entropy: labels must be integers of shape ({logits.shape[0]},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    k = logits.shape[1]
    if labels.size:
        lo, hi = (int(v) for v in to_numpy(get_array_module(labels).stack([labels.min(), labels.max()])))
        if lo < 0 or hi >= k:
            raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {k}), got values from {lo} to {hi}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"softmax_cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}")
    labels = to_device(labels, device_of(logits.data))
    return SoftmaxCrossEntropy(labels, float(label_smoothing))(logits)
