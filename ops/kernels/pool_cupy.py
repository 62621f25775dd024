"""Max and average pooling as CuPy GPU kernels: the same results as ``pool_reference`` (read that first).

Four ``ElementwiseKernel``s, each built once (memoised) and templated on the float dtype (float32 and float64):

* max forward: one thread per *output* pixel computes the maximum and its argmax in one pass over its window
  (row-major order, strict ``>``, NaN wins: the reference's tie and NaN rules);
* max backward: a *gather*, one thread per *input* pixel. It visits the few output windows that contain the pixel
  and adds the gradients of those whose argmax names it. No atomics, so the result is deterministic and the
  kernel works in float64 (GPU gradient checks need that);
* average forward / backward: the same two patterns, the divisor computed in the kernel.

This module imports CuPy only inside its functions, so it can be imported (and its functions looked up) on
a machine without CuPy or without a GPU.
"""
import functools

import numpy as np

from ..geometry import conv_out_size
from .pool_reference import argmax_dtype

# Every kernel starts by copying its int32 size arguments into 64-bit locals, so index arithmetic cannot overflow
# and min/max see one integer type.
_SIZES = """
        const ptrdiff_t H = h, W = w, OH = oh, OW = ow, KH = kh, KW = kw, SH = sh, SW = sw, PH = ph, PW = pw;
"""

# The divisor of output window (oy, ox) for average pooling.
_WINDOW_DIVISOR = """
        ptrdiff_t hs = oy * SH - PH, ws = ox * SW - PW;
        ptrdiff_t he = min(hs + KH, H), we = min(ws + KW, W);
        hs = max(hs, (ptrdiff_t)0); ws = max(ws, (ptrdiff_t)0);
        T divisor = count_include_pad ? (T)(KH * KW) : (T)((he - hs) * (we - ws));
"""


@functools.lru_cache(maxsize=None)
def _kernels():
    import cupy

    max_forward = cupy.ElementwiseKernel(
        "raw T x, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, T neg_inf",
        "T y, I argmax",
        _SIZES + """
        ptrdiff_t ox = i % OW, oy = (i / OW) % OH, plane = i / (OW * OH);
        const ptrdiff_t base = plane * H * W;
        T best = neg_inf;
        int best_k = 0;
        for (int ky = 0; ky < KH; ++ky) {
            ptrdiff_t iy = oy * SH - PH + ky;
            if (iy < 0 || iy >= H) continue;          // padding is -inf: it never wins
            for (int kx = 0; kx < KW; ++kx) {
                ptrdiff_t ix = ox * SW - PW + kx;
                if (ix < 0 || ix >= W) continue;
                T v = x[base + iy * W + ix];
                if (v > best || isnan(v)) { best = v; best_k = ky * KW + kx; }
            }
        }
        y = best;
        argmax = best_k;
        """,
        "minception_max_pool2d_forward")

    max_backward = cupy.ElementwiseKernel(
        "raw T gy, raw I argmax, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw",
        "T gx",
        _SIZES + """
        ptrdiff_t ix = i % W, iy = (i / W) % H, plane = i / (W * H);
        const ptrdiff_t base = plane * OH * OW;
        // outputs whose window contains (iy, ix): oy*sh - ph <= iy <= oy*sh - ph + kh - 1
        ptrdiff_t oy_lo = iy + PH - KH + 1 <= 0 ? 0 : (iy + PH - KH + SH) / SH;
        ptrdiff_t oy_hi = min((iy + PH) / SH, OH - 1);
        ptrdiff_t ox_lo = ix + PW - KW + 1 <= 0 ? 0 : (ix + PW - KW + SW) / SW;
        ptrdiff_t ox_hi = min((ix + PW) / SW, OW - 1);
        T total = 0;
        for (ptrdiff_t oy = oy_lo; oy <= oy_hi; ++oy) {
            for (ptrdiff_t ox = ox_lo; ox <= ox_hi; ++ox) {
                ptrdiff_t k = (iy - oy * SH + PH) * KW + (ix - ox * SW + PW);   // my offset in that window
                ptrdiff_t o = base + oy * OW + ox;
                if ((ptrdiff_t)argmax[o] == k) total += gy[o];
            }
        }
        gx = total;
        """,
        "minception_max_pool2d_backward")

    avg_forward = cupy.ElementwiseKernel(
        "raw T x, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, bool count_include_pad",
        "T y",
        _SIZES + """
        ptrdiff_t ox = i % OW, oy = (i / OW) % OH, plane = i / (OW * OH);
        const ptrdiff_t base = plane * H * W;
        T total = 0;
        for (int ky = 0; ky < KH; ++ky) {
            ptrdiff_t iy = oy * SH - PH + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; ++kx) {
                ptrdiff_t ix = ox * SW - PW + kx;
                if (ix < 0 || ix >= W) continue;
                total += x[base + iy * W + ix];
            }
        }
        """ + _WINDOW_DIVISOR + """
        y = total / divisor;
        """,
        "minception_avg_pool2d_forward")

    avg_backward = cupy.ElementwiseKernel(
        "raw T gy, int32 h, int32 w, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 ph, int32 pw, bool count_include_pad",
        "T gx",
        _SIZES + """
        ptrdiff_t ix = i % W, iy = (i / W) % H, plane = i / (W * H);
        const ptrdiff_t base = plane * OH * OW;
        ptrdiff_t oy_lo = iy + PH - KH + 1 <= 0 ? 0 : (iy + PH - KH + SH) / SH;
        ptrdiff_t oy_hi = min((iy + PH) / SH, OH - 1);
        ptrdiff_t ox_lo = ix + PW - KW + 1 <= 0 ? 0 : (ix + PW - KW + SW) / SW;
        ptrdiff_t ox_hi = min((ix + PW) / SW, OW - 1);
        T acc = 0;
        for (ptrdiff_t oy = oy_lo; oy <= oy_hi; ++oy) {
            for (ptrdiff_t ox = ox_lo; ox <= ox_hi; ++ox) {
        """ + _WINDOW_DIVISOR + """
                acc += gy[base + oy * OW + ox] / divisor;
            }
        }
        gx = acc;
        """,
        "minception_avg_pool2d_backward")

    return max_forward, max_backward, avg_forward, avg_backward


def _contiguous(a):
    import cupy
    return cupy.ascontiguousarray(a)


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """Max pooling with -inf padding. x: (N, C, H, W) cupy -> y: (N, C, OH, OW), argmax: (N, C, OH, OW)."""
    import cupy
    x = _contiguous(x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = cupy.empty((n, c, oh, ow), dtype=argmax_dtype(kh, kw))
    _kernels()[0](x, h, w, oh, ow, kh, kw, sh, sw, ph, pw, x.dtype.type(-np.inf), y, argmax)
    return y, argmax


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sh, sw, ph, pw):
    """gy, argmax: (N, C, OH, OW) cupy -> gx: (N, C, H, W)."""
    import cupy
    gy, argmax = _contiguous(gy), _contiguous(argmax)
    n, c, oh, ow = gy.shape
    gx = cupy.empty((n, c, h, w), dtype=gy.dtype)
    _kernels()[1](gy, argmax, h, w, oh, ow, kh, kw, sh, sw, ph, pw, gx)
    return gx


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, count_include_pad=False):
    """Average pooling with zero padding. x: (N, C, H, W) cupy -> y: (N, C, OH, OW)."""
    import cupy
    x = _contiguous(x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    _kernels()[2](x, h, w, oh, ow, kh, kw, sh, sw, ph, pw, bool(count_include_pad), y)
    return y


def avg_pool2d_backward(gy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad=False):
    """gy: (N, C, OH, OW) cupy -> gx: (N, C, H, W)."""
    import cupy
    gy = _contiguous(gy)
    n, c, oh, ow = gy.shape
    gx = cupy.empty((n, c, h, w), dtype=gy.dtype)
    _kernels()[3](gy, h, w, oh, ow, kh, kw, sh, sw, ph, pw, bool(count_include_pad), gx)
    return gx
