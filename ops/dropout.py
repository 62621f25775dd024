"""Inverted dropout: zero each element with probability ``p`` in training and scale the rest by 1/(1-p)."""
import numpy as np

from autograd import Function
from autograd.backend import get_array_module

_default_rng = np.random.default_rng()


class Dropout(Function):
    def __init__(self, p, rng):
        self.p, self.rng = p, rng

    def forward(self, x):
        xp = get_array_module(x)
        keep = self.rng.random(x.shape) >= self.p                      # drawn on the CPU: seeded, reproducible
        self.scale = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, p, training, rng=None):
    """Zero elements of ``x`` with probability ``p`` when ``training``; identity otherwise.

    ``rng`` (a ``numpy.random.Generator``) makes the mask reproducible; by default a module-level generator is used.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout(p, rng if rng is not None else _default_rng)(x)
