"""Activations."""
from autograd import Function
from autograd.backend import get_array_module


class ReLU(Function):
    """``max(x, 0)``. The gradient at exactly 0 is taken as 0 (as in PyTorch)."""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.maximum(x, 0)
        self.y = y               # the output tells where x > 0; no separate mask needed
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.where(self.y > 0, gy, xp.zeros((), gy.dtype))


def relu(x):
    return ReLU()(x)
