"""Activations."""
from autograd import Function

from . import kernels


class ReLU(Function):
    """``y = max(x, 0)``; backward ``gx = gy * (y > 0)``. The gradient at exactly 0 is taken as 0 (as in PyTorch).

    The elementwise work is the active kernel tier's (``ops/kernels/reference/elementwise.py``, or the same NumPy
    calls split across the CPU threads in the fast tier)."""

    def forward(self, x):
        y = kernels.lookup("elementwise", x).relu(x)
        self.y = y               # the output tells where x > 0; no separate mask needed
        return y

    def backward(self, gy):
        return kernels.lookup("elementwise", gy).relu_backward(gy, self.y)


def relu(x):
    return ReLU()(x)
