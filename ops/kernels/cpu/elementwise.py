"""The fast tier's elementwise kernels on the CPU: the functions of ``ops/kernels/reference/elementwise.py`` (read
that first), computed with the same NumPy calls but cut into parts along the batch axis that run on all CPU threads
(``parts.in_parts``). Each element is computed by the same NumPy loop as in the reference, so the results are the
reference's bit for bit; small arrays run in the calling thread.

Two of them also fuse passes over the data: ``residual_add`` computes ``max(x + scale * r, 0)`` image by image, so
an image's three steps (scale, add, clamp) run while it sits in the core's cache, and its backward writes both
gradients in one pass.
"""
import operator

import numpy as np

from .runtime import parts
from .runtime.parts import in_parts
from .runtime.threads import parallel_for


def relu(x):
    """``max(x, 0)``."""
    return in_parts(_relu_into, np.empty(x.shape, x.dtype), x)


def _relu_into(x, out):
    np.maximum(x, 0, out=out)


def relu_backward(gy, y):
    """``gy * (y > 0)``: the upstream gradient where the ReLU's output is positive, else 0."""
    return in_parts(_mask_into, np.empty(gy.shape, gy.dtype), gy, y)


def _mask_into(gy, y, out):
    np.multiply(gy, y > 0, out=out)


_OPERATOR = {np.add: operator.add, np.multiply: operator.mul}


def _binary(ufunc, a, b):
    """``a + b`` or ``a * b`` (``ufunc`` is np.add or np.multiply). Split into parts for NumPy arrays of one dtype
    whose result has ``a``'s shape; otherwise (broadcasting ``a`` up, mixed dtypes, numbers) the plain operator."""
    if (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.ndim >= b.ndim
            and np.broadcast_shapes(a.shape, b.shape) == a.shape):
        return in_parts(ufunc, np.empty(a.shape, a.dtype), a, b)
    return _OPERATOR[ufunc](a, b)


def add(a, b):
    """``a + b`` with broadcasting."""
    return _binary(np.add, a, b)


def multiply(a, b):
    """``a * b`` with broadcasting."""
    return _binary(np.multiply, a, b)


def concatenate(xs, axis):
    """``np.concatenate(xs, axis)``; along any axis but the batch axis, written in parts of the batch."""
    if axis != 0 and len({x.dtype for x in xs}) == 1:
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)

        def concat_into(*xs_and_out):
            np.concatenate(xs_and_out[:-1], axis=axis, out=xs_and_out[-1])

        return in_parts(concat_into, np.empty(shape, xs[0].dtype), *xs)
    return np.concatenate(xs, axis=axis)


def _scaled_sum_into(x, r, scale, relu, out):
    """out = max(x + scale * r, 0), one image at a time (the image's planes stay in cache across the 3 steps)."""
    for i in range(out.shape[0]):
        o = out[i]
        np.multiply(r[i], scale, out=o)
        o += x[i]
        if relu:
            np.maximum(o, 0, out=o)


def residual_add(x, r, scale, relu):
    """``max(x + scale * r, 0)`` (``relu=False``: ``x + scale * r``); ``scale`` a scalar of x's dtype."""
    return in_parts(lambda x_, r_, out: _scaled_sum_into(x_, r_, scale, relu, out), np.empty(x.shape, x.dtype), x, r)


def _gradients_into(gy, y, scale, gx, gr):
    """gx = gy * (y > 0) (gy where y is None: no ReLU), gr = scale * gx, one image at a time (in cache)."""
    for i in range(gy.shape[0]):
        g = gy[i]
        if y is not None:
            g = np.multiply(g, y[i] > 0, out=gx[i])
        if gr is not None:
            np.multiply(g, scale, out=gr[i])


def residual_add_backward(gy, y, scale, need_x, need_r):
    """``(g, scale * g)`` with ``g = gy * (y > 0)`` (``y`` None: no ReLU, ``g = gy``); None where not needed.

    Both are written in one pass over ``gy``, image by image on all cores. (``x`` always needs ``g`` for ``gr``,
    so ``g`` is computed even when ``x`` needs no gradient.)"""
    gx = np.empty(gy.shape, gy.dtype) if y is not None else gy
    gr = np.empty(gy.shape, gy.dtype) if need_r else None

    def images(lo, hi):
        _gradients_into(gy[lo:hi], None if y is None else y[lo:hi], scale, gx[lo:hi],
                        None if gr is None else gr[lo:hi])

    parallel_for(images, gy.shape[0], parallel=gy.nbytes >= parts.PARALLEL_MIN_BYTES, nbytes=gy.nbytes)
    return (gx if need_x else None), gr
