"""im2col and col2im as Numba CPU kernels: the same layout, results and contract as
``ops/kernels/reference/im2col.py`` (read that first).

    cols: (C*kh*kw, N*OH*OW),  cols[(c*kh + i)*kw + j, (n*OH + oy)*OW + ox] = x_padded[n, c, oy*sh + i, ox*sw + j]

Why kernels and not the NumPy version: the reference pads the image (one full copy), then copies one strided
slice per kernel offset into a freshly allocated buffer. These kernels read the unpadded image, write zeros where
a window hangs over the border, and write into a buffer the caller reuses, so the column matrix is written once
and nothing else is allocated.

What makes them fast (the measurements are in ``docs/performance.md``, section "CPU runtime"):
  * **Unsigned indices.** Numba checks every signed index for wrap-around (``a[-1]`` means the last element);
    that check stops LLVM from vectorising a copy loop. Indexing flat 1-D views with ``uint64`` offsets removes
    it, and the same loop runs several times faster.
  * **Whole-block copies for stride 1, "same" width** (``OW == W``): the rows that kernel offset ``(i, j)`` reads
    are consecutive rows of the image, and in ``cols`` they are consecutive runs of ``OW == W`` values, so the
    whole block is ONE contiguous copy, shifted by ``j - pw``. The few values that the shift drags in from the
    neighbouring row (the ``pw`` border columns) are then overwritten with zeros. This pays most on small images
    (8x8 to 32x32), where rows are only 8 to 32 values long.
  * Otherwise (stride 1) one unsigned-index copy per output row.
  * **Stride > 1**: each image plane is first copied into a small zero-padded scratch plane; then every row of
    ``cols`` is one gather loop of OH*OW values through a precomputed table of window offsets
    (``_im2col_strided``; ``_col2im_strided`` accumulates through the same table). Short strided rows make the
    row loop branch-bound; the table removes the branches.

The kernels are serial and release the GIL (``nogil=True``): the fast tier's CPU convolution
(``conv2d.py`` here) runs them inside its worker threads, one chunk of images per thread, each thread
alternating im2col and a single-threaded GEMM on its own chunk. (A ``prange`` kernel alternating with OpenBLAS's
own thread pool is much slower: every handover between the two pools costs more than the work.)

``col2im`` gathers per image plane: the loop over the ``(n, c)`` planes of ``dx`` zeroes a plane (or its padded
scratch plane), then adds every column entry that came from it, kernel offset by kernel offset in ``(i, j)``
order, the same order as the reference, so the result is deterministic (and equal to the reference's bit for
bit). No ``np.add.at``.

Importing this module imports Numba but compiles nothing; each kernel compiles at its first call (once per dtype,
float32 and float64, for C-contiguous arrays) and is cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit, uint64

from ...geometry import conv_out_size


@njit(inline="always")
def _valid_range(j, pw, sw, w, ow):
    """Output columns ``ox`` whose input column ``ox*sw + j - pw`` lies inside ``[0, w)``: ``range(lo, hi)``."""
    lo = 0
    if pw > j:
        lo = (pw - j + sw - 1) // sw          # ceil((pw - j) / sw)
    hi = ow
    last = w - 1 + pw - j                     # largest ox*sw that still lands inside the row
    if last < 0:
        hi = 0
    elif last // sw + 1 < ow:
        hi = last // sw + 1
    if hi < lo:
        hi = lo
    return lo, hi


@njit(nogil=True)
def _window_offsets(oh, ow, sh, sw, wp):
    """``base[oy*OW + ox]``: where window ``(oy, ox)`` starts in a padded plane of width ``wp`` (flat index)."""
    base = np.empty(oh * ow, dtype=np.uint64)
    for oy in range(oh):
        for ox in range(ow):
            base[oy * ow + ox] = uint64(oy * sh * wp + ox * sw)
    return base


@njit(nogil=True)
def _im2col_strided(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """Stride > 1: copy each image plane once into a zero-padded scratch plane, then fill each of its kh*kw rows
    of ``cols`` with ONE gather loop of OH*OW values through a precomputed offset table (no per-row branches,
    which dominate when output rows are 8 to 16 values long)."""
    n, c, h, w = x.shape
    p = oh * ow
    m = cols.shape[1]
    wp = w + 2 * pw
    pad = np.zeros((h + 2 * ph) * wp, dtype=x.dtype)      # the border stays 0; the interior is overwritten
    base = _window_offsets(oh, ow, sh, sw, wp)
    xf = x.ravel()
    cf = cols.ravel()
    for b in range(n):
        for ch in range(c):
            src = uint64((b * c + ch) * h * w)
            for y in range(h):
                d = uint64((y + ph) * wp + pw)
                s = src + uint64(y * w)
                for t in range(uint64(w)):
                    pad[d + t] = xf[s + t]
            for i in range(kh):
                for j in range(kw):
                    q = uint64(((ch * kh + i) * kw + j) * m + b * p)
                    off = uint64(i * wp + j)
                    for t in range(uint64(p)):
                        cf[q + t] = pad[base[t] + off]


@njit(nogil=True)
def _col2im_strided(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    """Stride > 1: accumulate each image plane in a zeroed, padded scratch plane through the same offset table
    as ``_im2col_strided`` (kernel offsets in (i, j) order, as the reference), then copy its interior out."""
    n, c, h, w = dx.shape
    p = oh * ow
    m = cols.shape[1]
    wp = w + 2 * pw
    size = (h + 2 * ph) * wp
    acc = np.empty(size, dtype=dx.dtype)
    base = _window_offsets(oh, ow, sh, sw, wp)
    cf = cols.ravel()
    df = dx.ravel()
    for b in range(n):
        for ch in range(c):
            for t in range(uint64(size)):
                acc[t] = 0
            for i in range(kh):
                for j in range(kw):
                    q = uint64(((ch * kh + i) * kw + j) * m + b * p)
                    off = uint64(i * wp + j)
                    for t in range(uint64(p)):
                        acc[base[t] + off] += cf[q + t]
            dst = uint64((b * c + ch) * h * w)
            for y in range(h):
                s = uint64((y + ph) * wp + pw)
                d = dst + uint64(y * w)
                for t in range(uint64(w)):
                    df[d + t] = acc[s + t]


@njit(cache=True, nogil=True)
def _im2col_kernel(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    if sh != 1 or sw != 1:
        _im2col_strided(x, kh, kw, sh, sw, ph, pw, oh, ow, cols)
        return
    n, c, h, w = x.shape
    p = oh * ow
    m = cols.shape[1]
    xf = x.ravel()                             # flat views, indexed with uint64 (see the module docstring)
    cf = cols.ravel()
    block = ow == w                            # stride 1 here; "same" width
    for r in range(c * kh * kw):
        ch = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        lo, hi = _valid_range(j, pw, sw, w, ow)
        oy_lo, oy_hi = _valid_range(i, ph, sh, h, oh)   # output rows whose input row lies inside the image
        for b in range(n):
            q0 = uint64(r * m + b * p)         # start of this image's run in row r
            plane = uint64((b * c + ch) * h * w)
            if block and hi > lo and oy_hi > oy_lo:
                for t in range(uint64(oy_lo * ow)):
                    cf[q0 + t] = 0
                d = q0 + uint64(oy_lo * ow + lo)
                s = plane + uint64((oy_lo + i - ph) * w + lo + j - pw)
                for t in range(uint64((oy_hi - oy_lo - 1) * ow + hi - lo)):
                    cf[d + t] = xf[s + t]
                for oy in range(oy_lo, oy_hi):  # the border columns the shifted copy filled from other rows
                    q = q0 + uint64(oy * ow)
                    for ox in range(uint64(lo)):
                        cf[q + ox] = 0
                    for ox in range(uint64(hi), uint64(ow)):
                        cf[q + ox] = 0
                for t in range(uint64(oy_hi * ow), uint64(p)):
                    cf[q0 + t] = 0
                continue
            q = q0
            for oy in range(oh):
                y = oy * sh + i - ph
                if y < 0 or y >= h or hi <= lo:
                    for ox in range(uint64(ow)):
                        cf[q + ox] = 0
                else:
                    for ox in range(uint64(lo)):
                        cf[q + ox] = 0
                    d = q + uint64(lo)
                    s = plane + uint64(y * w + lo * sw + j - pw)
                    for t in range(uint64(hi - lo)):
                        cf[d + t] = xf[s + t]
                    for ox in range(uint64(hi), uint64(ow)):
                        cf[q + ox] = 0
                q += uint64(ow)


@njit(cache=True, nogil=True)
def _col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    if sh != 1 or sw != 1:
        _col2im_strided(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx)
        return
    n, c, h, w = dx.shape
    p = oh * ow
    m = cols.shape[1]
    cf = cols.ravel()
    df = dx.ravel()
    for plane in range(n * c):
        b = plane // c
        ch = plane % c
        base = uint64(plane * h * w)
        for t in range(uint64(h * w)):
            df[base + t] = 0
        for i in range(kh):
            for j in range(kw):
                r = (ch * kh + i) * kw + j
                lo, hi = _valid_range(j, pw, sw, w, ow)
                if hi <= lo:
                    continue
                for oy in range(oh):
                    y = oy * sh + i - ph
                    if y < 0 or y >= h:
                        continue
                    s = uint64(r * m + b * p + oy * ow + lo)
                    d = base + uint64(y * w + lo * sw + j - pw)
                    for t in range(uint64(hi - lo)):
                        df[d + t] += cf[s + t]


def _check_float(a, op, name):
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {a.dtype}")


def im2col(x, kernel_size, stride, padding, out=None):
    """Numba version of ``reference.im2col.im2col``.

    Args:
        x: ``(N, C, H, W)`` float32 or float64 array (made C-contiguous if it is not).
        kernel_size, stride, padding: pairs of ints.
        out: optional C-contiguous ``(C*kh*kw, N*OH*OW)`` array of x's dtype to write into (a reused workspace).

    Shape:
        x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW)
    """
    _check_float(x, "im2col (Numba)", "x")
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    shape = (c * kh * kw, n * oh * ow)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"im2col (Numba): out must be a C-contiguous {shape} {x.dtype} array, "
                         f"got {out.shape} {out.dtype}")
    _im2col_kernel(x, kh, kw, sh, sw, ph, pw, oh, ow, out)
    return out


def col2im(cols, x_shape, kernel_size, stride, padding, out=None):
    """Numba version of ``reference.im2col.col2im`` (the sum of every column entry onto its source pixel).

    Args:
        cols: ``(C*kh*kw, N*OH*OW)`` float32 or float64 array.
        x_shape: ``(N, C, H, W)``.
        kernel_size, stride, padding: pairs of ints.
        out: optional C-contiguous ``(N, C, H, W)`` array of cols' dtype to write into (it is overwritten).

    Shape:
        cols: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W)
    """
    _check_float(cols, "col2im (Numba)", "cols")
    cols = np.ascontiguousarray(cols)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    if cols.shape != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im (Numba): cols has shape {cols.shape}, expected {(c * kh * kw, n * oh * ow)} "
                         f"for x_shape {tuple(x_shape)}, kernel {kh}x{kw}")
    shape = (n, c, h, w)
    if out is None:
        out = np.empty(shape, dtype=cols.dtype)
    elif out.shape != shape or out.dtype != cols.dtype or not out.flags.c_contiguous:
        raise ValueError(f"col2im (Numba): out must be a C-contiguous {shape} {cols.dtype} array, "
                         f"got {out.shape} {out.dtype}")
    _col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, out)
    return out
