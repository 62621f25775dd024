"""Max and average pooling as CuPy GPU kernels: the same results as ``ops/kernels/reference/pooling.py`` (read
that first, with the family's contract).

Four ``ElementwiseKernel`` objects, each built once (memoised) and templated on the float dtype (float32 and float64):

* max forward: one thread per *output* pixel computes the maximum and its argmax in one pass over its window
  (row-major order, strict ``>``, NaN wins: the reference's tie and NaN rules);
* max backward: a *gather*, one thread per *input* pixel. It visits the few output windows that contain the pixel
  and adds the gradients of those whose argmax names it. No atomics, so the result is deterministic and the
  kernel works in float64 (GPU gradient checks need that);
* average forward / backward: the same two patterns, the divisor computed in the kernel.

Index arithmetic is done in ``idx_t``: 32-bit when the input and the output both have fewer than 2**31 elements
(every index and intermediate is below the larger size), 64-bit otherwise (``indexing.py``); each variant is
built once (``lru_cache``).

Arguments are checked at the kernel boundary: float32/float64 data, an integer argmax shaped like the output;
everything is made C-contiguous before the launch (the kernels index flat memory).

This module imports CuPy only inside its functions, so it can be imported (and its functions looked up) on
a machine without CuPy or without a GPU.
"""
import functools

import numpy as np

from ...geometry import conv_out_size
from .indexing import index_type, preamble
from ..reference.pooling import argmax_dtype

# Every kernel starts by copying its int32 size arguments into idx_t locals (32 or 64 bits, see the module
# docstring), so that min/max and the index arithmetic see one integer type.
_SIZES = """
        const idx_t H = h, W = w, OH = oh, OW = ow, KH = kh, KW = kw, SH = sh, SW = sw, PH = ph, PW = pw;
"""

# The divisor of output window (oy, ox) for average pooling.
_WINDOW_DIVISOR = """
        idx_t hs = oy * SH - PH, ws = ox * SW - PW;
        idx_t he = min(hs + KH, H), we = min(ws + KW, W);
        hs = max(hs, (idx_t)0); ws = max(ws, (idx_t)0);
        T divisor = count_include_pad ? (T)(KH * KW) : (T)((he - hs) * (we - ws));
"""


def kernel_index_type(x_shape, out_hw):
    """The index type for pooling ``x: (N, C, H, W)`` to ``(N, C, OH, OW)``: every index is below the larger size."""
    n, c, h, w = x_shape
    oh, ow = out_hw
    return index_type(max(n * c * h * w, n * c * oh * ow))


@functools.lru_cache(maxsize=None)
def _kernels(itype):
    """The four ElementwiseKernels with ``itype`` index arithmetic (built once per type)."""
    import cupy

    suffix = "_i32" if itype == "int" else "_i64"
    options = {"preamble": preamble(itype)}

    max_forward = cupy.ElementwiseKernel(
        "raw T x, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, T neg_inf",
        "T y, I argmax",
        _SIZES + """
        const idx_t t = (idx_t)i;
        idx_t ox = t % OW, oy = (t / OW) % OH, plane = t / (OW * OH);
        const idx_t base = plane * H * W;
        T best = neg_inf;
        int best_k = 0;
        for (int ky = 0; ky < KH; ++ky) {
            idx_t iy = oy * SH - PH + ky;
            if (iy < 0 || iy >= H) continue;          // padding is -inf: it never wins
            for (int kx = 0; kx < KW; ++kx) {
                idx_t ix = ox * SW - PW + kx;
                if (ix < 0 || ix >= W) continue;
                T v = x[base + iy * W + ix];
                if (v > best || isnan(v)) { best = v; best_k = ky * KW + kx; }
            }
        }
        y = best;
        argmax = best_k;
        """,
        "minception_max_pool2d_forward" + suffix, **options)

    max_backward = cupy.ElementwiseKernel(
        "raw T gy, raw I argmax, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw",
        "T gx",
        _SIZES + """
        const idx_t t = (idx_t)i;
        idx_t ix = t % W, iy = (t / W) % H, plane = t / (W * H);
        const idx_t base = plane * OH * OW;
        // outputs whose window contains (iy, ix): oy*sh - ph <= iy <= oy*sh - ph + kh - 1
        idx_t oy_lo = iy + PH - KH + 1 <= 0 ? 0 : (iy + PH - KH + SH) / SH;
        idx_t oy_hi = min((iy + PH) / SH, OH - 1);
        idx_t ox_lo = ix + PW - KW + 1 <= 0 ? 0 : (ix + PW - KW + SW) / SW;
        idx_t ox_hi = min((ix + PW) / SW, OW - 1);
        T total = 0;
        for (idx_t oy = oy_lo; oy <= oy_hi; ++oy) {
            for (idx_t ox = ox_lo; ox <= ox_hi; ++ox) {
                idx_t k = (iy - oy * SH + PH) * KW + (ix - ox * SW + PW);   // my offset in that window
                idx_t o = base + oy * OW + ox;
                if ((idx_t)argmax[o] == k) total += gy[o];
            }
        }
        gx = total;
        """,
        "minception_max_pool2d_backward" + suffix, **options)

    avg_forward = cupy.ElementwiseKernel(
        "raw T x, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, bool count_include_pad",
        "T y",
        _SIZES + """
        const idx_t t = (idx_t)i;
        idx_t ox = t % OW, oy = (t / OW) % OH, plane = t / (OW * OH);
        const idx_t base = plane * H * W;
        T total = 0;
        for (int ky = 0; ky < KH; ++ky) {
            idx_t iy = oy * SH - PH + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; ++kx) {
                idx_t ix = ox * SW - PW + kx;
                if (ix < 0 || ix >= W) continue;
                total += x[base + iy * W + ix];
            }
        }
        """ + _WINDOW_DIVISOR + """
        y = total / divisor;
        """,
        "minception_avg_pool2d_forward" + suffix, **options)

    avg_backward = cupy.ElementwiseKernel(
        "raw T gy, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, bool count_include_pad",
        "T gx",
        _SIZES + """
        const idx_t t = (idx_t)i;
        idx_t ix = t % W, iy = (t / W) % H, plane = t / (W * H);
        const idx_t base = plane * OH * OW;
        idx_t oy_lo = iy + PH - KH + 1 <= 0 ? 0 : (iy + PH - KH + SH) / SH;
        idx_t oy_hi = min((iy + PH) / SH, OH - 1);
        idx_t ox_lo = ix + PW - KW + 1 <= 0 ? 0 : (ix + PW - KW + SW) / SW;
        idx_t ox_hi = min((ix + PW) / SW, OW - 1);
        T acc = 0;
        for (idx_t oy = oy_lo; oy <= oy_hi; ++oy) {
            for (idx_t ox = ox_lo; ox <= ox_hi; ++ox) {
        """ + _WINDOW_DIVISOR + """
                acc += gy[base + oy * OW + ox] / divisor;
            }
        }
        gx = acc;
        """,
        "minception_avg_pool2d_backward" + suffix, **options)

    return max_forward, max_backward, avg_forward, avg_backward


def _float_array(op, name, a, ndim=4):
    """``a`` as a C-contiguous float32/float64 CuPy array of ``ndim`` dims, or a TypeError/ValueError naming it."""
    import cupy
    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"{op} (GPU): {name} must be a CuPy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op} (GPU): {name} must be float32 or float64, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{op} (GPU): {name} must have shape (N, C, H, W), got {a.shape}")
    return cupy.ascontiguousarray(a)


def max_pool2d_forward(x, kernel_size, stride, padding):
    """Max pooling with -inf padding. x: (N, C, H, W) cupy -> y: (N, C, OH, OW), argmax: (N, C, OH, OW)."""
    import cupy
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    x = _float_array("max_pool2d", "x", x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = cupy.empty((n, c, oh, ow), dtype=argmax_dtype(kernel_size))
    kernel = _kernels(kernel_index_type(x.shape, (oh, ow)))[0]
    kernel(x, h, w, oh, ow, kh, kw, sh, sw, ph, pw, x.dtype.type(-np.inf), y, argmax)
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel_size, stride, padding):
    """gy, argmax: (N, C, OH, OW) cupy (argmax: any integer dtype, offsets in the window) -> gx: (N, C, H, W)."""
    import cupy
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    gy = _float_array("max_pool2d backward", "gy", gy)
    if not isinstance(argmax, cupy.ndarray) or argmax.dtype.kind not in "iu" or argmax.shape != gy.shape:
        raise TypeError(f"max_pool2d backward (GPU): argmax must be an integer CuPy array of shape {gy.shape}, "
                        f"got {type(argmax).__name__} {getattr(argmax, 'dtype', '')} {getattr(argmax, 'shape', '')}")
    argmax = cupy.ascontiguousarray(argmax)
    n, c, h, w = x_shape
    oh, ow = gy.shape[2:]
    gx = cupy.empty((n, c, h, w), dtype=gy.dtype)
    kernel = _kernels(kernel_index_type(gx.shape, (oh, ow)))[1]
    kernel(gy, argmax, h, w, oh, ow, kh, kw, sh, sw, ph, pw, gx)
    return gx


def avg_pool2d_forward(x, kernel_size, stride, padding, count_include_pad=False):
    """Average pooling with zero padding. x: (N, C, H, W) cupy -> y: (N, C, OH, OW)."""
    import cupy
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    x = _float_array("avg_pool2d", "x", x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    kernel = _kernels(kernel_index_type(x.shape, (oh, ow)))[2]
    kernel(x, h, w, oh, ow, kh, kw, sh, sw, ph, pw, bool(count_include_pad), y)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, count_include_pad=False):
    """gy: (N, C, OH, OW) cupy -> gx: (N, C, H, W)."""
    import cupy
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    gy = _float_array("avg_pool2d backward", "gy", gy)
    n, c, h, w = x_shape
    oh, ow = gy.shape[2:]
    gx = cupy.empty((n, c, h, w), dtype=gy.dtype)
    kernel = _kernels(kernel_index_type(gx.shape, (oh, ow)))[3]
    kernel(gy, h, w, oh, ow, kh, kw, sh, sw, ph, pw, bool(count_include_pad), gx)
    return gx
