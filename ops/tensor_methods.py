"""Tensor's operators and op-backed methods, installed on ``autograd.Tensor`` when ``ops`` is imported.

``a + b``, ``a @ b``, ``t.sum()``, ``t.reshape(2, -1)``, ``t.T`` and the rest are differentiable functions, and
those live here in ``ops``, one layer above the autograd core. The core must not import ``ops`` (it would make
the two packages import each other), so it leaves these methods as placeholders that raise a ``TypeError``
(``autograd.tensor.OP_METHODS`` lists them) and ``ops/__init__.py`` calls ``install()``, which replaces each by
the real one. DeZero does the same (``setup_variable``).

Each method below only adapts Python's calling convention to an op's: the reflected operators swap their
operands (``2 - t`` is ``sub(2, t)``), ``reshape`` and ``transpose`` accept their sizes spread out or as one
tuple, as NumPy's do.
"""
from autograd import backend
from autograd.tensor import OP_METHODS, Tensor

from .activation import relu
from .arithmetic import add, div, exp, log, mul, neg, pow, sqrt, sub
from .device import astype, to_device
from .linalg import matmul
from .reduction import max, mean, sum
from .shape import flatten, getitem, reshape, transpose


def _reshape(self, *shape):
    """``t.reshape(2, -1)`` or ``t.reshape((2, -1))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return reshape(self, tuple(shape))


def _transpose(self, *axes):
    """``t.transpose()`` reverses the axes; ``t.transpose(0, 2, 1)`` or ``t.transpose((0, 2, 1))`` permutes them."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = axes[0]
    return transpose(self, tuple(axes) if axes else None)


def _to(self, device):
    """A tensor on ``device`` ('cpu' or 'cuda'): ``self`` when already there, else a differentiable copy."""
    backend.check_device(device)
    return self if device == self.device else to_device(self, device)


METHODS = {
    "__add__": add, "__radd__": lambda self, other: add(other, self),
    "__sub__": sub, "__rsub__": lambda self, other: sub(other, self),
    "__mul__": mul, "__rmul__": lambda self, other: mul(other, self),
    "__truediv__": div, "__rtruediv__": lambda self, other: div(other, self),
    "__pow__": pow, "__neg__": neg,
    "__matmul__": matmul, "__rmatmul__": lambda self, other: matmul(other, self),
    "__getitem__": getitem,
    "sum": sum, "mean": mean, "max": max, "exp": exp, "log": log, "sqrt": sqrt, "relu": relu,
    "flatten": flatten, "reshape": _reshape, "transpose": _transpose,
    "T": property(lambda self: transpose(self, None)),
    "to": _to, "astype": astype,
}


def install():
    """Put every method of ``METHODS`` on ``Tensor`` in place of the core's placeholder (idempotent)."""
    missing, extra = sorted(set(OP_METHODS) - set(METHODS)), sorted(set(METHODS) - set(OP_METHODS))
    if missing or extra:
        raise RuntimeError(f"ops.tensor_methods.install: autograd.tensor.OP_METHODS and METHODS must name the same "
                           f"methods; not installed: {missing}, not in OP_METHODS: {extra}")
    for name, method in METHODS.items():
        setattr(Tensor, name, method)
