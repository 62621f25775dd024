"""Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, neg, pow, exp, log, sqrt.

Binary ops set ``broadcasts = True``: their backward returns gradients with the broadcast shape and the engine
sums them back to each input's shape (``autograd.backend.sum_to``), the one place where that happens.
Python numbers are turned into arrays of the tensor's dtype on the tensor's device, so ``x * 0.5`` stays float32.

``add`` and ``mul``, the two that run on whole activations, ask the active kernel tier for the elementwise work
(``ops/kernels/reference/elementwise.py``: ``a + b`` and ``a * b``; the fast tier splits big NumPy arrays across
the CPU threads).
"""
import numbers

from autograd import Function, Tensor
from autograd.backend import get_array_module

from . import kernels


def _operands(op, a, b):
    """Tensors or arrays for a binary op: numbers take the other operand's dtype and device."""
    if isinstance(a, numbers.Number) and not isinstance(b, numbers.Number):
        a = _scalar_like(a, b)
    elif isinstance(b, numbers.Number) and not isinstance(a, numbers.Number):
        b = _scalar_like(b, a)
    shape_a, shape_b = getattr(a, "shape", ()), getattr(b, "shape", ())
    try:
        get_array_module(a, b).broadcast_shapes(shape_a, shape_b)
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(shape_a)} and {tuple(shape_b)} cannot be broadcast together") from None
    return a, b


def _scalar_like(value, other):
    data = other.data if isinstance(other, Tensor) else other
    xp = get_array_module(data)
    dtype = data.dtype if data.dtype.kind in "fc" else None
    return xp.asarray(value, dtype=dtype)


def _elementwise(a):
    """The active kernel tier's elementwise kernels for ``a``'s device."""
    return kernels.lookup("elementwise", a)


class Add(Function):
    broadcasts = True

    def forward(self, a, b):
        return _elementwise(a).add(a, b)

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    broadcasts = True

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy


class Mul(Function):
    broadcasts = True

    def forward(self, a, b):
        # keep only the factors that the other input's gradient needs
        self.a = a if self.needs_input_grad[1] else None
        self.b = b if self.needs_input_grad[0] else None
        return _elementwise(a).multiply(a, b)

    def backward(self, gy):
        ga = _elementwise(gy).multiply(gy, self.b) if self.needs_input_grad[0] else None
        gb = _elementwise(gy).multiply(gy, self.a) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    broadcasts = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b if self.needs_input_grad[0] else None
        gb = -gy * self.a / (self.b * self.b) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """``x ** p`` for a constant exponent ``p`` (a number)."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return x ** self.exponent

    def backward(self, gy):
        p = self.exponent
        return (gy * p * self.x ** (p - 1)).astype(gy.dtype, copy=False)


class Exp(Function):
    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


def add(a, b):
    """``a + b`` with broadcasting."""
    return Add()(*_operands("add", a, b))


def sub(a, b):
    """``a - b`` with broadcasting."""
    return Sub()(*_operands("sub", a, b))


def mul(a, b):
    """``a * b`` with broadcasting."""
    return Mul()(*_operands("mul", a, b))


def div(a, b):
    """``a / b`` with broadcasting."""
    return Div()(*_operands("div", a, b))


def neg(x):
    return Neg()(x)


def pow(x, exponent):
    """``x ** exponent`` for a number ``exponent``."""
    if not isinstance(exponent, numbers.Number):
        raise TypeError(f"pow: the exponent must be a number, got {type(exponent).__name__}")
    return Pow(exponent)(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)
