"""Max and average pooling as Numba CPU kernels: the same results as ``ops/kernels/reference/pooling.py`` (read
that first, with the family's contract).

Why kernels: the NumPy reference makes ``kh * kw`` full passes over the data, each allocating temporaries. The
obvious Numba loop nest (for each output pixel, for each window offset) is faster but still slow: NCHW planes are
small (8 to 35 pixels wide), so the loops along a row are too short to vectorise, a stride of 2 turns every row
into a strided gather, and the running max of one window is a chain of dependent compare-and-select steps.

The trick used here: **phase planes**. Split the padded plane by stride phase::

    P[ry, rx, i, j] = x_padded[i*sh + ry, j*sw + rx]          (ry < sh, rx < sw)

For window offset ``(ky, kx)`` the input of output pixel ``(oy, ox)`` is then
``P[ky % sh, kx % sw, oy + ky // sh, ox + kx // sw]``. Lay the outputs out "wide", ``f = oy * WQ + ox`` with
``WQ`` the row length of a phase plane (columns ``ox >= OW`` are garbage, computed and thrown away), and flatten
``P``: the input of output ``f`` at offset ``(ky, kx)`` is ``P_flat[ky % sh, kx % sw, f + (ky // sh) * WQ + kx // sw]``.
So each window offset is ONE contiguous slice of ``P_flat`` against the whole output, a long loop that LLVM
vectorises (8 float32 per AVX2 instruction), with no bounds checks: the padding is already in ``P``. Several
image planes are stacked in one group (planes are tiny), which makes the loops longer still.

Per group of planes: (1) copy the planes into the phase planes (``-inf`` padding for max, 0 for average),
(2) one vectorised pass per window offset, (3) copy the valid part of the wide result out (dividing by the window
size for average pooling). The average-pool backward is the adjoint: spread ``gy / divisor`` into zeroed phase
planes with one vectorised ``+=`` pass per offset, then copy the valid pixels back into ``gx``. The max-pool
backward needs no trick: each iteration zeroes its own gradient plane and adds each output gradient at the pixel
its argmax names (scalar, but only ``OH * OW`` adds per plane).

Parallelism: each kernel is serial, releases the GIL (``nogil=True``) and takes a range of groups of ``(n, c)``
planes (of planes, for the max-pool backward); ``runtime.threads.parallel_for`` runs the ranges on the fast tier's
CPU threads. A group's output planes are written by that group's iteration alone, so there are no races and no
atomics. Scratch memory is allocated once per group. Tensors below ``runtime.threads.KERNEL_MIN_BYTES`` run on the
calling thread alone. Measurements: ``docs/performance.md`` (section "CPU runtime").

Max pooling keeps the reference's rules exactly: the window offsets are visited in row-major order and a value
replaces the running maximum when ``v > best or v is NaN``, so ties go to the first maximum and NaNs propagate.
Argmax offsets are computed in int32 (the same width as float32, so the select vectorises) and stored as
``argmax_dtype(kernel_size)`` (uint8 for windows up to 256 pixels).

Importing this module imports Numba but compiles nothing; each kernel compiles at its first call (once per dtype)
and is cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit

from ...geometry import conv_out_size
from .runtime import threads
from .runtime.parts import contiguous
from ..reference.pooling import argmax_dtype, avg_pool_divisor

_GROUP_ELEMENTS = 4096     # aim for about this many phase-plane elements per group (16 KiB of float32: L1-sized)


def _in_parallel(kernel, n, array):
    """``kernel(lo, hi)`` over ``range(n)``, on all CPU threads when ``array`` is big enough to pay for it."""
    threads.parallel_for(kernel, n, parallel=array.nbytes >= threads.KERNEL_MIN_BYTES, nbytes=array.nbytes)


# ---------------------------------------------------------------- phase planes

@njit(inline="always")
def _phase_span(r, s, p, size, q):
    """Phase indices ``i`` in ``[lo, hi)`` whose unpadded source index ``i*s + r - p`` lies in ``[0, size)``,
    clipped to the phase length ``q``."""
    lo = (p - r + s - 1) // s if p > r else 0
    hi = (size - 1 + p - r) // s + 1
    if hi > q:
        hi = q
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True)
def _plane_to_phases(plane, row0, sh, sw, ph, pw, hq, P):
    """Copy one image plane (H, W) into rows ``row0 .. row0 + hq`` of the phase planes P (sh, sw, rows, WQ).
    Padding positions are not written (the caller filled P beforehand)."""
    h, w = plane.shape
    wq = P.shape[3]
    for ry in range(sh):
        ilo, ihi = _phase_span(ry, sh, ph, h, hq)
        for rx in range(sw):
            jlo, jhi = _phase_span(rx, sw, pw, w, wq)
            dst = P[ry, rx, row0 + ilo:row0 + ihi, jlo:jhi]
            src = plane[ilo * sh + ry - ph::sh, jlo * sw + rx - pw::sw]
            for i in range(ihi - ilo):
                for j in range(jhi - jlo):
                    dst[i, j] = src[i, j]


@njit(cache=True)
def _phases_to_plane(P, row0, sh, sw, ph, pw, hq, plane):
    """The inverse copy: the valid (non-padding) pixels of rows ``row0 .. row0 + hq`` of P into ``plane`` (H, W)."""
    h, w = plane.shape
    wq = P.shape[3]
    for ry in range(sh):
        ilo, ihi = _phase_span(ry, sh, ph, h, hq)
        for rx in range(sw):
            jlo, jhi = _phase_span(rx, sw, pw, w, wq)
            src = P[ry, rx, row0 + ilo:row0 + ihi, jlo:jhi]
            dst = plane[ilo * sh + ry - ph::sh, jlo * sw + rx - pw::sw]
            for i in range(ihi - ilo):
                for j in range(jhi - jlo):
                    dst[i, j] = src[i, j]


@njit(inline="always")
def _phase_rows(h, w, kh, sh, sw, ph, pw, group):
    """``(hq, wq, rows)``: the rows and columns of one plane's phase planes, and the rows of a group's phase
    buffer (``group`` planes stacked, + slack rows read by the garbage outputs of the last plane)."""
    hq = (h + 2 * ph + sh - 1) // sh
    wq = (w + 2 * pw + sw - 1) // sw
    return hq, wq, group * hq + (kh - 1) // sh + 1


# ---------------------------------------------------------------- kernels

@njit(cache=True, nogil=True)
def _max_pool2d_forward_kernel(x, kh, kw, sh, sw, ph, pw, group, y, argmax, g0, g1):
    n, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    hq, wq, rows = _phase_rows(h, w, kh, sh, sw, ph, pw, group)
    planes = n * c
    xf = x.reshape(planes, h, w)
    yf = y.reshape(planes, oh, ow)
    af = argmax.reshape(planes, oh, ow)
    for gi in range(g0, g1):
        first = gi * group
        count = min(group, planes - first)
        P = np.empty((sh, sw, rows, wq), dtype=x.dtype)
        P[...] = -np.inf
        for g in range(count):
            _plane_to_phases(xf[first + g], g * hq, sh, sw, ph, pw, hq, P)
        Pf = P.reshape(sh, sw, rows * wq)
        m = count * hq * wq                         # wide outputs of the group
        best = np.full(m, -np.inf, dtype=x.dtype)
        arg = np.zeros(m, dtype=np.int32)
        for ky in range(kh):
            for kx in range(kw):
                start = (ky // sh) * wq + kx // sw
                src = Pf[ky % sh, kx % sw, start:start + m]
                k = np.int32(ky * kw + kx)
                for f in range(m):
                    v = src[f]
                    b = best[f]
                    wins = (v > b) | (v != v)          # v != v: v is NaN
                    best[f] = v if wins else b
                    arg[f] = k if wins else arg[f]
        for g in range(count):
            for oy in range(oh):
                f0 = (g * hq + oy) * wq
                brow = best[f0:f0 + ow]
                arow = arg[f0:f0 + ow]
                yrow = yf[first + g, oy]
                dst = af[first + g, oy]
                for ox in range(ow):
                    yrow[ox] = brow[ox]
                    dst[ox] = arow[ox]


@njit(cache=True, nogil=True)
def _max_pool2d_backward_kernel(gy, argmax, kh, kw, sh, sw, ph, pw, gx, p0, p1):
    n, c, h, w = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    planes = n * c
    gyf = gy.reshape(planes, oh, ow)
    af = argmax.reshape(planes, oh, ow)
    gxf = gx.reshape(planes, h, w)
    for p in range(p0, p1):
        plane = gxf[p]
        plane[...] = 0
        for oy in range(oh):
            for ox in range(ow):
                k = af[p, oy, ox]
                iy = oy * sh - ph + k // kw
                ix = ox * sw - pw + k % kw
                if 0 <= iy < h and 0 <= ix < w:    # a winner in the padding (an all -inf window) gets nothing
                    plane[iy, ix] += gyf[p, oy, ox]


@njit(cache=True, nogil=True)
def _avg_pool2d_forward_kernel(x, kh, kw, sh, sw, ph, pw, group, divisor, y, g0, g1):
    n, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    hq, wq, rows = _phase_rows(h, w, kh, sh, sw, ph, pw, group)
    planes = n * c
    xf = x.reshape(planes, h, w)
    yf = y.reshape(planes, oh, ow)
    for gi in range(g0, g1):
        first = gi * group
        count = min(group, planes - first)
        P = np.zeros((sh, sw, rows, wq), dtype=x.dtype)
        for g in range(count):
            _plane_to_phases(xf[first + g], g * hq, sh, sw, ph, pw, hq, P)
        Pf = P.reshape(sh, sw, rows * wq)
        m = count * hq * wq
        total = np.zeros(m, dtype=x.dtype)
        for ky in range(kh):
            for kx in range(kw):
                start = (ky // sh) * wq + kx // sw
                src = Pf[ky % sh, kx % sw, start:start + m]
                for f in range(m):
                    total[f] += src[f]
        for g in range(count):
            for oy in range(oh):
                f0 = (g * hq + oy) * wq
                trow = total[f0:f0 + ow]
                drow = divisor[oy]
                yrow = yf[first + g, oy]
                for ox in range(ow):
                    yrow[ox] = trow[ox] / drow[ox]


@njit(cache=True, nogil=True)
def _avg_pool2d_backward_kernel(gy, kh, kw, sh, sw, ph, pw, group, divisor, gx, g0, g1):
    n, c, h, w = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    hq, wq, rows = _phase_rows(h, w, kh, sh, sw, ph, pw, group)
    planes = n * c
    gyf = gy.reshape(planes, oh, ow)
    gxf = gx.reshape(planes, h, w)
    for gi in range(g0, g1):
        first = gi * group
        count = min(group, planes - first)
        m = count * hq * wq
        share = np.zeros(m, dtype=gy.dtype)          # garbage (wide) columns and rows must stay 0
        for g in range(count):
            for oy in range(oh):
                f0 = (g * hq + oy) * wq
                srow = share[f0:f0 + ow]
                grow = gyf[first + g, oy]
                drow = divisor[oy]
                for ox in range(ow):
                    srow[ox] = grow[ox] / drow[ox]
        G = np.zeros((sh, sw, rows, wq), dtype=gy.dtype)
        Gf = G.reshape(sh, sw, rows * wq)
        for ky in range(kh):
            for kx in range(kw):
                start = (ky // sh) * wq + kx // sw
                dst = Gf[ky % sh, kx % sw, start:start + m]
                for f in range(m):
                    dst[f] += share[f]
        for g in range(count):
            _phases_to_plane(G, g * hq, sh, sw, ph, pw, hq, gxf[first + g])


# ---------------------------------------------------------------- entry points (same signatures as the reference)

def _group_size(n_planes, h, w, ph, pw):
    """Planes per group: enough to make the vector loops long, few enough to keep several groups per thread."""
    per_plane = (h + 2 * ph + 1) * (w + 2 * pw + 1)
    return int(max(1, min(_GROUP_ELEMENTS // per_plane, n_planes // 16)))


def _groups(planes, group):
    return (planes + group - 1) // group


def max_pool2d_forward(x, kernel_size, stride, padding):
    """Max pooling with -inf padding. x: (N, C, H, W) -> y: (N, C, OH, OW), argmax: (N, C, OH, OW)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    x = contiguous(x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=argmax_dtype(kernel_size))
    group = _group_size(n * c, h, w, ph, pw)
    _in_parallel(lambda lo, hi: _max_pool2d_forward_kernel(x, kh, kw, sh, sw, ph, pw, group, y, argmax, lo, hi),
                 _groups(n * c, group), x)
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel_size, stride, padding):
    """gy, argmax: (N, C, OH, OW) -> gx: (N, C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    gy, argmax = contiguous(gy), contiguous(argmax)
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    n, c = x_shape[:2]
    _in_parallel(lambda lo, hi: _max_pool2d_backward_kernel(gy, argmax, kh, kw, sh, sw, ph, pw, gx, lo, hi),
                 n * c, gx)
    return gx


def avg_pool2d_forward(x, kernel_size, stride, padding, count_include_pad=False):
    """Average pooling with zero padding. x: (N, C, H, W) -> y: (N, C, OH, OW)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    x = contiguous(x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    divisor = avg_pool_divisor((h, w), kernel_size, stride, padding, count_include_pad, x.dtype)
    group = _group_size(n * c, h, w, ph, pw)
    _in_parallel(lambda lo, hi: _avg_pool2d_forward_kernel(x, kh, kw, sh, sw, ph, pw, group, divisor, y, lo, hi),
                 _groups(n * c, group), x)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, count_include_pad=False):
    """gy: (N, C, OH, OW) -> gx: (N, C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    gy = contiguous(gy)
    n, c, h, w = x_shape
    gx = np.empty((n, c, h, w), dtype=gy.dtype)
    divisor = avg_pool_divisor((h, w), kernel_size, stride, padding, count_include_pad, gy.dtype)
    group = _group_size(n * c, h, w, ph, pw)
    _in_parallel(lambda lo, hi: _avg_pool2d_backward_kernel(gy, kh, kw, sh, sw, ph, pw, group, divisor, gx, lo, hi),
                 _groups(n * c, group), gx)
    return gx
