"""``residual_add``: the sum that closes an Inception-ResNet block, ``relu(x + scale * r)``, as one op.

Readable meaning::

    out = x + scale * r
    y   = max(out, 0)              (when relu)

Backward, with ``g = gy * (y > 0)`` (or ``gy`` without the ReLU): ``gx = g`` and ``gr = scale * g``.

Why one op instead of ``ops.relu(x + r * scale)``: three ops make three passes over the data each way and two
temporaries the size of the block's input. As one op, the fast tier on the CPU fills the output image by image, so
each image's three steps (scale, add, clamp) run while it sits in the core's cache, and its backward writes both
gradients in one pass (``ops/kernels/cpu/elementwise.py``). The reference tier computes the formulas above as
written (``ops/kernels/reference/elementwise.py``).
"""
import numpy as np

from autograd import Function

from . import kernels


class ResidualAdd(Function):
    """``relu(x + scale * r)`` (``relu=False``: without the ReLU); inputs ``(x, r)``."""

    def __init__(self, scale, relu):
        self.scale, self.relu = scale, relu

    @property
    def name(self):
        return "ResidualAddReLU" if self.relu else "ResidualAdd"

    def forward(self, x, r):
        y = kernels.lookup("elementwise", x).residual_add(x, r, x.dtype.type(self.scale), self.relu)
        self.y = y if self.relu else None            # where the ReLU let the gradient through
        return y

    def backward(self, gy):
        need_x, need_r = self.needs_input_grad
        return kernels.lookup("elementwise", gy).residual_add_backward(gy, self.y, gy.dtype.type(self.scale),
                                                                       need_x, need_r)


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
