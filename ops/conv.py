"""``conv2d``: 2-D convolution (cross-correlation, as in every framework) by im2col and matrix products.

The idea, for an input ``x: (N, C, H, W)`` and a weight ``W: (Cout, C, kh, kw)``:

1. **im2col** copies every input window into a column: ``cols: (C*kh*kw, N*OH*OW)``.
2. **One GEMM**: ``Y2d = W2d @ cols`` with ``W2d = W.reshape(Cout, C*kh*kw)``: ``(Cout, N*OH*OW)``,
   reordered to ``(N, Cout, OH, OW)``.
3. Backward, given ``gY2d: (Cout, N*OH*OW)``: ``dW2d = gY2d @ cols.T`` (im2col recomputed from the saved ``x``)
   and ``dx = col2im(W2d.T @ gY2d)``, where col2im adds every column entry back onto the pixel it came from.
   ``db`` is ``gY`` summed over N, OH and OW.

This file checks the arguments and asks the active kernel tier (``ops.kernels``) for the ``conv2d`` kernels, which
compute steps 1-3 (the bias gradient is summed here). The readable version, with the family's contract, is
``ops/kernels/reference/conv2d.py`` (and its im2col, ``ops/kernels/reference/im2col.py``): read those first. The
fast tier computes the same products in its own order: on the CPU in chunks of images on all cores, each chunk's
column matrix small enough to stay in cache (``ops/kernels/cpu/conv2d.py``); on the GPU with CuPy kernels and
cuBLAS (``ops/kernels/cuda/conv2d.py``). All tiers give the same results to rounding.
"""
import numpy as np

from autograd import Function
from autograd.backend import get_array_module

from . import kernels
from .geometry import check_window_fits, normalize_padding, normalize_stride, window_out_shape


# =====================================================================================  argument checks

def _shape(t):
    return tuple(t.shape)


def conv2d_geometry(x_shape, w_shape, b_shape, stride, padding, op="conv2d"):
    """Check a conv2d call's shapes and return ``(kh, kw), (sh, sw), (ph, pw), (OH, OW)``.

    Raises ValueError/TypeError naming ``op``: x or weight not 4-D, channel mismatch, empty kernel, bias not
    ``(Cout,)``, non-positive stride, negative padding, "same" with an even kernel, kernel larger than the
    padded input.
    """
    if len(x_shape) != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got a {len(x_shape)}-D array of shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"{op}: expected weight of shape (out_channels, in_channels, kh, kw), got a "
                         f"{len(w_shape)}-D array of shape {w_shape}")
    n, c, h, w = x_shape
    cout, cin, kh, kw = w_shape
    if cin != c:
        raise ValueError(f"{op}: x has {c} channels (shape {x_shape}) but weight expects {cin} input channels "
                         f"(shape {w_shape}); expected x.shape[1] == weight.shape[1]")
    if min(w_shape) <= 0 or min(x_shape) <= 0:
        raise ValueError(f"{op}: empty x or weight: x {x_shape}, weight {w_shape}")
    if b_shape is not None and tuple(b_shape) != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},) (one value per output channel of weight "
                         f"{w_shape}), got {tuple(b_shape)}")
    stride = normalize_stride(stride, op)
    padding = normalize_padding(padding, (kh, kw), op)
    check_window_fits((h, w), (kh, kw), padding, op)
    return (kh, kw), stride, padding, window_out_shape((h, w), (kh, kw), stride, padding)


def _check_dtypes(op, x, weight, bias):
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is not None and np.dtype(t.dtype) not in (np.float32, np.float64):
            raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype} (shape {_shape(t)})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but x has dtype {x.dtype}; convert one of them")


# =====================================================================================  the op

class Conv2d(Function):
    """``y = conv2d(x, W) (+ b)`` by the active tier's conv2d kernels (im2col -> one GEMM; backward: GEMMs ->
    col2im); saves ``x`` and ``W``, never the column matrix."""

    lowers_to_im2col = True    # a matrix product with an im2col column matrix (MemoryHook reports its size)

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        self.x, self.weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
        self.tier, self.conv = kernels.current(), kernels.lookup("conv2d", x)    # kept for backward
        return self.conv.forward(self.x, self.weight, bias, self.stride, self.padding)

    def backward(self, gy):
        need = self.needs_input_grad
        with kernels.use(self.tier):       # the forward's tier also for what conv2d asks the table for (im2col)
            dx, dw = self.conv.backward(self.x, self.weight, gy, self.stride, self.padding, need[0], need[1])
        if len(need) == 3:
            return dx, dw, (gy.sum(axis=(0, 2, 3)) if need[2] else None)
        return dx, dw


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) of NCHW images.

    Args:
        x: Tensor or array ``(N, C, H, W)``, float32 or float64.
        weight: ``(out_channels, C, kh, kw)``, same dtype. A kernel written 1x7 is ``kh = 1``, ``kw = 7``.
        bias: ``(out_channels,)`` or None.
        stride: int or ``(sh, sw)``, positive.
        padding: int, ``(ph, pw)``, ``"valid"`` (0) or ``"same"`` (``(k-1)//2`` zeros on each side of each axis;
            odd kernels only).

    Returns:
        Tensor ``(N, out_channels, OH, OW)``.

    Shape:
        x: (N, C, H, W), weight: (Cout, C, kh, kw), bias: (Cout,) -> (N, Cout, OH, OW),
        OH = (H + 2*ph - kh) // sh + 1, OW = (W + 2*pw - kw) // sw + 1
    """
    b_shape = None if bias is None else _shape(bias)
    _, stride, padding, _ = conv2d_geometry(_shape(x), _shape(weight), b_shape, stride, padding)
    _check_dtypes("conv2d", x, weight, bias)
    fn = Conv2d(stride, padding)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
