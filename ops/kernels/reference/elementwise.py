"""The elementwise ops' kernels in plain array code: the reference (NumPy or CuPy arrays alike).

Each function is the formula itself. The fast tier on the CPU computes the same with the same NumPy calls, cut into
parts along the batch axis that run on all cores (``ops/kernels/cpu/elementwise.py``); on the GPU the fast tier runs
these very functions (CuPy's own elementwise kernels already use the whole device).

ReLU's backward multiplies by the mask ``y > 0`` instead of calling ``where(y > 0, gy, 0)``: the same values for a
finite ``gy`` (a mask entry is 0 or 1), and NumPy's ``where`` with a scalar is much slower. For a NaN or infinite
``gy`` where the ReLU is off they differ, and the multiply is the contract: NaN * 0 and inf * 0 are NaN, so a
non-finite upstream gradient stays non-finite wherever it lands. Every tier must keep it so (the fast tier's fused
gates multiply by the mask too, ``tests/ops/test_nonfinite_tiers.py``): the trainer stops at the first non-finite
gradient, and with a select one tier would go on from a step at which the other stops.

Contract of the ``elementwise`` family (every tier's functions take these arguments and return these results;
arrays float32 or float64, results in the inputs' dtype and the broadcast shape of the inputs)::

    relu(x) -> y                           y = max(x, 0)
    relu_backward(gy, y) -> gx             gx = gy * (y > 0)   (a multiply: a NaN or inf gy gives NaN where y <= 0)
    add(a, b) -> y, multiply(a, b) -> y    a + b, a * b, with NumPy broadcasting (either side may broadcast)
    concatenate(xs, axis) -> y             the list of arrays ``xs`` joined along ``axis``
    residual_add(x, r, scale, relu) -> y   x + scale * r, then max(., 0) if relu; scale a scalar of x's dtype
    residual_add_backward(gy, y, scale, need_x, need_r) -> (gx, gr)
                                           g = gy * (y > 0), a multiply as in relu_backward (y is None
                                           without the ReLU: g = gy); gx = g,
                                           gr = scale * g; None where not needed

None of them may modify its inputs; inputs may have any strides (e.g. slices of a concat's gradient).

The course hands out this file with the solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student writes ReLU and its backward (``python -m minception.course new DIR``).
"""
from autograd.backend import get_array_module


def relu(x):
    """``max(x, 0)``, elementwise.

    Task: return a new array, ``x`` where it is positive and 0 elsewhere; never change ``x``.

    Shape:
        x: any shape -> y: x's shape and dtype

    Hint: ``xp = get_array_module(x)`` is NumPy (or CuPy) for this array; ``xp.maximum`` broadcasts the 0.
    """
    # --- solution: begin ---
    return get_array_module(x).maximum(x, 0)
    # --- solution: end ---


def relu_backward(gy, y):
    """The gradient through ``y = relu(x)``: ``gy`` where ``y > 0``, else 0.

    Task: given the upstream gradient ``gy = dL/dy`` and the forward's output ``y``, return ``dL/dx``.

    Shape:
        gy, y: the same shape -> gx: that shape, gy's dtype

    Formula: ``dy/dx = 1`` where ``x > 0`` and ``0`` where ``x < 0``; ``y > 0`` exactly where ``x > 0``, so the
    output is enough (at ``x = 0`` we take 0).

    Hint: a boolean mask times an array is an array of the array's dtype.
    """
    # --- solution: begin ---
    return gy * (y > 0)
    # --- solution: end ---


def add(a, b):
    """``a + b`` with broadcasting."""
    return a + b


def multiply(a, b):
    """``a * b`` with broadcasting."""
    return a * b


def concatenate(xs, axis):
    """The arrays ``xs`` joined along ``axis``."""
    return get_array_module(*xs).concatenate(xs, axis=axis)


def residual_add(x, r, scale, relu):
    """``max(x + scale * r, 0)`` (``relu=False``: ``x + scale * r``); ``scale`` a scalar of x's dtype."""
    y = x + scale * r
    return get_array_module(y).maximum(y, 0) if relu else y


def residual_add_backward(gy, y, scale, need_x, need_r):
    """Gradients of ``residual_add`` for ``(x, r)``: ``g = gy * (y > 0)`` (``y`` is None without the ReLU:
    ``g = gy``), then ``gx = g`` and ``gr = scale * g``; None where not needed."""
    g = gy if y is None else gy * (y > 0)
    return (g if need_x else None), (g * scale if need_r else None)
