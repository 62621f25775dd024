"""Pooling: ``max_pool2d``, ``avg_pool2d`` and ``global_avg_pool2d``.

The window rules follow PyTorch (no ceil mode): ``OH = (H + 2*ph - kh) // sh + 1``, the stride defaults to the
kernel size, and the padding may be at most half the kernel size (so every window holds at least one real pixel).
Max pooling pads with ``-inf`` and sends each output's gradient to the first maximum of its window (row-major
order); average pooling pads with zeros and divides by the window size, with or without the padded pixels.

The window loops are kernels, asked from the active kernel tier (``ops.kernels``): ``reference/pooling.py``
(array code and the family's contract, read it first) in the reference tier; ``cpu/pooling.py`` (Numba) on the CPU
and ``cuda/pooling.py`` (CuPy) on the GPU in the fast tier. Global average pooling is a plain mean.
"""
import numpy as np

from autograd import Function
from autograd.backend import get_array_module

from . import kernels
from .geometry import as_pair, check_window_fits, normalize_padding, normalize_stride


def _check_input(op, x):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype} (shape {tuple(x.shape)})")


def window_args(op, x, kernel_size, stride, padding):
    """Check a pooling call and return its ``(kh, kw), (sh, sw), (ph, pw)``.

    Raises ValueError/TypeError naming ``op`` for: an input that is not (N, C, H, W) floats, a non-positive
    kernel size or stride, negative padding or padding above half the kernel size, a kernel larger than the
    padded input.
    """
    _check_input(op, x)
    kh, kw = as_pair(kernel_size, "kernel_size", op)
    if kh <= 0 or kw <= 0:
        raise ValueError(f"{op}: kernel_size must be positive, got {kernel_size!r}")
    sh, sw = (kh, kw) if stride is None else normalize_stride(stride, op)
    ph, pw = normalize_padding(padding, (kh, kw), op)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: padding {ph},{pw} is more than half the kernel size {kh}x{kw}; expected "
                         f"padding <= kernel // 2 on each axis (a window could then lie entirely in the padding)")
    check_window_fits(tuple(x.shape[2:]), (kh, kw), (ph, pw), op)
    return (kh, kw), (sh, sw), (ph, pw)


class MaxPool2d(Function):
    """Maximum over each window; the argmax (offset inside the window) is saved for backward."""

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        self.kernels = kernels.lookup("pooling", x)          # the active tier's, kept for backward
        self.x_shape = x.shape
        y, self.argmax = self.kernels.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, gy):
        return self.kernels.max_pool2d_backward(gy, self.argmax, self.x_shape, self.kernel_size, self.stride,
                                                self.padding)


class AvgPool2d(Function):
    """Mean over each window; backward spreads each output gradient evenly over its window."""

    def __init__(self, kernel_size, stride, padding, count_include_pad):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        self.kernels = kernels.lookup("pooling", x)          # the active tier's, kept for backward
        self.x_shape = x.shape
        return self.kernels.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                               self.count_include_pad)

    def backward(self, gy):
        return self.kernels.avg_pool2d_backward(gy, self.x_shape, self.kernel_size, self.stride, self.padding,
                                                self.count_include_pad)


class GlobalAvgPool2d(Function):
    """Mean over H and W of each channel."""

    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, gy):
        xp = get_array_module(gy)
        n, c, h, w = self.in_shape
        gx = xp.empty(self.in_shape, dtype=gy.dtype)
        gx[...] = (gy * gy.dtype.type(1.0 / (h * w))).reshape(n, c, 1, 1)
        return gx


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling. Padding counts as ``-inf``; ties go to the first maximum in row-major window order.

    Args:
        x: Tensor or array (N, C, H, W), floating point.
        kernel_size: int or (kh, kw). stride: int or (sh, sw); None means kernel_size.
        padding: int, (ph, pw), "same" ((k-1)//2, odd kernels) or "valid" (0); at most kernel // 2.

    Shape:
        x: (N, C, H, W) -> (N, C, (H + 2*ph - kh) // sh + 1, (W + 2*pw - kw) // sw + 1)
    """
    k, s, p = window_args("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2d(k, s, p)(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=False):
    """Average pooling with zero padding.

    Args:
        x, kernel_size, stride, padding: as ``max_pool2d``.
        count_include_pad: divide by ``kh * kw`` (True) or by the number of real pixels in the window (False,
            the default; what Inception's 3x3/1/pad-1 pool branches use).

    Shape:
        x: (N, C, H, W) -> (N, C, (H + 2*ph - kh) // sh + 1, (W + 2*pw - kw) // sw + 1)
    """
    k, s, p = window_args("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d(k, s, p, count_include_pad)(x)


def global_avg_pool2d(x):
    """Mean over all pixels of each channel.

    Shape:
        x: (N, C, H, W) -> (N, C)
    """
    _check_input("global_avg_pool2d", x)
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"global_avg_pool2d: input has no pixels, shape {tuple(x.shape)}")
    return GlobalAvgPool2d()(x)
