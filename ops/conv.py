"""``conv2d``: 2-D convolution (cross-correlation, as in every framework) by im2col and matrix products.

The idea, for an input ``x: (N, C, H, W)`` and a weight ``W: (Cout, C, kh, kw)``:

1. **im2col** copies every input window into a column: ``cols: (C*kh*kw, N*OH*OW)``
   (``ops/kernels/im2col_reference.py`` is the readable version; read it first).
2. **One GEMM**: ``Y2d = W2d @ cols`` with ``W2d = W.reshape(Cout, C*kh*kw)``: ``(Cout, N*OH*OW)``,
   reordered to ``(N, Cout, OH, OW)``.
3. Backward, given ``gY2d: (Cout, N*OH*OW)``:
   ``dW2d = gY2d @ cols.T`` (im2col is *recomputed* from the saved ``x``: the column buffer is up to
   ``kh*kw`` times larger than ``x``, so it is never kept from forward to backward), and
   ``dx = col2im(W2d.T @ gY2d)``, where col2im adds every column entry back onto the pixel it came from.
   ``db`` is ``gY`` summed over N, OH and OW.

``Conv2d`` below is exactly this, on the whole batch, with the im2col/col2im of the *reference* kernel tier
(``ops.kernels``; it runs on NumPy and CuPy arrays alike). The *fast* tier computes the same products in its own
order: on the CPU in chunks of images on all cores, each chunk's column matrix small enough to stay in cache
(``ops/kernels/cpu/conv_chunks.py``); on the GPU with CuPy kernels and cuBLAS (``ops/kernels/conv_cupy.py``).
Both tiers give the same results to rounding.
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
    """``y = conv2d(x, W) (+ b)`` by im2col -> one GEMM (backward: GEMMs -> col2im); saves ``x`` and ``W``, never
    the column matrix."""

    lowers_to_im2col = True    # a matrix product with an im2col column matrix (MemoryHook reports its size)

    def __init__(self, kernel_size, stride, padding, out_hw):
        self.kernel_size, self.stride, self.padding, self.out_hw = kernel_size, stride, padding, out_hw

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        w2d = xp.ascontiguousarray(weight).reshape(weight.shape[0], -1)         # W2d: (Cout, C*kh*kw)
        self.x, self.w2d, self.w_shape = x, w2d, weight.shape
        # the active kernel tier (kept for backward): the fast tier has a conv of its own; the reference tier runs
        # the textbook below with its im2col/col2im
        self.fast_conv = kernels.lookup("conv2d", x)
        if self.fast_conv is not None:
            return self.fast_conv.forward(x, w2d, bias, self.kernel_size, self.stride, self.padding, self.out_hw)
        self.im2col_kernels = kernels.lookup("im2col", x)
        n, cout, (oh, ow) = x.shape[0], w2d.shape[0], self.out_hw
        cols = self.im2col_kernels.im2col(x, self.kernel_size, self.stride, self.padding)  # (C*kh*kw, N*OH*OW)
        y2d = w2d @ cols                                                                    # (Cout, N*OH*OW)
        y = y2d.reshape(cout, n, oh, ow).transpose(1, 0, 2, 3)                              # (N, Cout, OH, OW)
        if bias is not None:
            y = y + bias.reshape(1, cout, 1, 1)
        return xp.ascontiguousarray(y)

    def backward(self, gy):
        need = self.needs_input_grad
        if self.fast_conv is not None:
            dx, dw2d = self.fast_conv.backward(self.x, self.w2d, gy, self.kernel_size, self.stride, self.padding,
                                               self.out_hw, need[0], need[1])
        else:
            dx, dw2d = self._backward_by_im2col(gy, need[0], need[1])
        dw = None if dw2d is None else dw2d.reshape(self.w_shape)
        if len(need) == 3:
            db = gy.sum(axis=(0, 2, 3)) if need[2] else None
            return dx, dw, db
        return dx, dw

    def _backward_by_im2col(self, gy, need_x, need_w):
        """``dW2d = gY2d @ cols.T`` (cols recomputed from x) and ``dx = col2im(W2d.T @ gY2d)``."""
        x, w2d = self.x, self.w2d
        cout = w2d.shape[0]
        gy2d = gy.transpose(1, 0, 2, 3).reshape(cout, -1)                                 # (Cout, N*OH*OW)
        dw2d = dx = None
        if need_w:
            cols = self.im2col_kernels.im2col(x, self.kernel_size, self.stride, self.padding)  # recomputed
            dw2d = gy2d @ cols.T                                                           # (Cout, C*kh*kw)
        if need_x:
            dcols = w2d.T @ gy2d                                                           # (C*kh*kw, N*OH*OW)
            dx = self.im2col_kernels.col2im(dcols, x.shape, self.kernel_size, self.stride, self.padding)
        return dx, dw2d


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
    kernel, stride, padding, out_hw = conv2d_geometry(_shape(x), _shape(weight), b_shape, stride, padding)
    _check_dtypes("conv2d", x, weight, bias)
    fn = Conv2d(kernel, stride, padding, out_hw)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
