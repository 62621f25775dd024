"""``residual_add``: the sum that closes an Inception-ResNet block, ``relu(x + scale * r)``, as one op.

Readable meaning (and the GPU path)::

    out = x + scale * r
    y   = max(out, 0)              (when relu)

Backward, with ``g = gy * (y > 0)`` (or ``gy`` without the ReLU): ``gx = g`` and ``gr = scale * g``.

Why one op instead of ``ops.relu(x + r * scale)``: three ops make three passes over the data each way and two
temporaries the size of the block's input; here the forward is one output array, filled image by image so each
image's three steps (scale, add, clamp) run while it sits in the core's cache, and the backward one pass that
writes both gradients. On the CPU the images are split across the engine's threads (``autograd.parallel``).
"""
import numpy as np

from autograd import Function, parallel
from autograd.parallel import in_parts


def _scaled_sum_into(x, r, scale, relu, out):
    """out = max(x + scale * r, 0), one image at a time (the image's planes stay in cache across the 3 steps)."""
    for i in range(out.shape[0]):
        o = out[i]
        np.multiply(r[i], scale, out=o)
        o += x[i]
        if relu:
            np.maximum(o, 0, out=o)


def _gradients_into(gy, y, scale, gx, gr):
    """gx = gy * (y > 0) (gy where y is None: no ReLU), gr = scale * gx, one image at a time (in cache)."""
    for i in range(gy.shape[0]):
        g = gy[i]
        if y is not None:
            g = np.multiply(g, y[i] > 0, out=gx[i])
        if gr is not None:
            np.multiply(g, scale, out=gr[i])


class ResidualAdd(Function):
    """``relu(x + scale * r)`` (``relu=False``: without the ReLU); inputs ``(x, r)``."""

    def __init__(self, scale, relu):
        self.scale, self.relu = scale, relu

    @property
    def name(self):
        return "ResidualAddReLU" if self.relu else "ResidualAdd"

    def forward(self, x, r):
        scale = x.dtype.type(self.scale)
        if isinstance(x, np.ndarray):
            y = in_parts(lambda x_, r_, out: _scaled_sum_into(x_, r_, scale, self.relu, out),
                         np.empty(x.shape, x.dtype), x, r)
        else:
            y = x + scale * r
            if self.relu:
                y = y.clip(min=0)
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        need_x, need_r = self.needs_input_grad
        if not isinstance(gy, np.ndarray):                     # CuPy: the readable form
            g = gy * (self.y > 0) if self.relu else gy
            return (g if need_x else None), (g * gy.dtype.type(self.scale) if need_r else None)
        # the ReLU's gradient g, and scale * g, written in one pass over gy, image by image on all cores; without
        # the ReLU, g is gy itself. (The input x always needs g for gr, so it is computed even if x needs none.)
        gx = np.empty(gy.shape, gy.dtype) if self.relu else gy
        gr = np.empty(gy.shape, gy.dtype) if need_r else None
        y, scale = self.y, gy.dtype.type(self.scale)

        def images(lo, hi):
            _gradients_into(gy[lo:hi], None if y is None else y[lo:hi], scale, gx[lo:hi],
                            None if gr is None else gr[lo:hi])

        parallel.parallel_for(images, gy.shape[0], parallel=gy.nbytes >= parallel.PARALLEL_MIN_BYTES)
        return (gx if need_x else None), gr


def residual_add(x, r, scale=1.0, relu=True):
    """The Inception-ResNet sum ``relu(x + scale * r)`` in one op (paper §3.3: ``scale`` 0.1-0.3 keeps very
    wide residual networks stable).

    Args:
        x: Tensor or array (N, C, H, W) (or any shape): the block's input (the shortcut).
        r: the residual branch's output, the same shape and dtype as ``x`` (no broadcasting).
        scale: a Python number.
        relu: apply the ReLU after the sum (TF-slim's last Inception-ResNet-v2 block does not).

    Shape:
        x: (N, C, H, W), r: (N, C, H, W) -> (N, C, H, W)
    """
    op = "residual_add"
    if tuple(x.shape) != tuple(r.shape):
        raise ValueError(f"{op}: the shortcut x has shape {tuple(x.shape)} but the residual r has shape "
                         f"{tuple(r.shape)}; they must be equal (the up conv must restore x's channels)")
    if x.dtype != r.dtype:
        raise TypeError(f"{op}: x has dtype {x.dtype} but r has dtype {r.dtype}; convert one of them")
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"{op}: expected floating-point tensors, got dtype {x.dtype}")
    return ResidualAdd(float(scale), bool(relu))(x, r)
