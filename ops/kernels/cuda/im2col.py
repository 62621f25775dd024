"""im2col and col2im as CuPy GPU kernels: the same layout, results and contract as
``ops/kernels/reference/im2col.py`` (read that first).

    cols: (C*kh*kw, N*OH*OW),  cols[(c*kh + i)*kw + j, (n*OH + oy)*OW + ox] = x_padded[n, c, oy*sh + i, ox*sw + j]

* ``im2col``: one GPU thread per element of ``cols``. The thread decodes its flat index into
  (c, i, j, n, oy, ox), finds the input pixel, and writes it (or 0 when the window hangs over the border).
* ``col2im``: a *gather*, one thread per pixel of the image. The thread visits the kernel offsets (i, j) whose
  windows can contain its pixel, and adds up the matching column entries. Every output element is written by
  exactly one thread, so there are no atomics: the result is deterministic and float64 works (CUDA has no fast
  float64 atomicAdd on every card anyway).

Index arithmetic is done in ``idx_t``: 32-bit when both arrays have fewer than 2**31 elements (every index and
intermediate is below the larger size), 64-bit otherwise (``indexing.py``).

CuPy is imported inside the functions, so this module imports fine on machines without CuPy; each kernel variant
is built once per process (``lru_cache``) and compiled by CuPy for each dtype at first use.
"""
import functools

import numpy as np

from ...geometry import conv_out_size
from .indexing import PARAM_TYPE, index_type, preamble

_SIZES = ("int64 c, int64 h, int64 w, int64 kh, int64 kw, int64 sh, int64 sw, int64 ph, int64 pw, int64 oh, "
          "int64 ow, int64 m")

IM2COL = """
// i = r * m + q: row r = (ch*kh + ki)*kw + kj, column q = (b*oh + oy)*ow + ox
const idx_t k = (idx_t)i;
const idx_t r = k / m, q = k % m;
const idx_t kj = r % kw, ki = (r / kw) % kh, ch = r / (kw * kh);
const idx_t ox = q % ow, oy = (q / ow) % oh, b = q / (ow * oh);
const idx_t y = oy * sh + ki - ph, xx = ox * sw + kj - pw;
if (0 <= y && y < h && 0 <= xx && xx < w) {
    col = x[((b * c + ch) * h + y) * w + xx];
} else {
    col = (T)0;
}
"""

COL2IM = """
// i = ((b*c + ch)*h + y)*w + xx: this thread owns pixel (b, ch, y, xx) and gathers into it
const idx_t k = (idx_t)i;
const idx_t xx = k % w, y = (k / w) % h, ch = (k / (w * h)) % c, b = k / (w * h * c);
T acc = (T)0;
for (idx_t ki = 0; ki < kh; ++ki) {
    const idx_t ty = y + ph - ki;          // = oy * sh for the window that holds this pixel
    if (ty < 0 || ty % sh != 0) continue;
    const idx_t oy = ty / sh;
    if (oy >= oh) continue;
    for (idx_t kj = 0; kj < kw; ++kj) {
        const idx_t tx = xx + pw - kj;
        if (tx < 0 || tx % sw != 0) continue;
        const idx_t ox = tx / sw;
        if (ox >= ow) continue;
        acc += cols[((ch * kh + ki) * kw + kj) * m + (b * oh + oy) * ow + ox];
    }
}
dx = acc;
"""


def kernel_index_type(x_shape, kernel_size, stride, padding):
    """The index type the kernels use for this geometry: every index is below max(x.size, cols.size)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    return index_type(max(n * c * h * w, c * kh * kw * n * oh * ow))


@functools.lru_cache(maxsize=None)
def _kernels(itype):
    """The two ElementwiseKernels with ``itype`` index arithmetic (built once per type)."""
    import cupy as cp

    sizes = _SIZES.replace("int64", PARAM_TYPE[itype])
    suffix = "i32" if itype == "int" else "i64"
    im2col = cp.ElementwiseKernel("raw T x, " + sizes, "T col", IM2COL, f"minception_im2col_{suffix}",
                                  preamble=preamble(itype))
    col2im = cp.ElementwiseKernel("raw T cols, " + sizes, "T dx", COL2IM, f"minception_col2im_{suffix}",
                                  preamble=preamble(itype))
    return im2col, col2im


def _check_float(name, a):
    import cupy as cp
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{name}: expected a CuPy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: supports float32 and float64, got {a.dtype}")


def im2col(x, kernel_size, stride, padding, out=None):
    """CuPy version of ``reference.im2col.im2col``.

    Args:
        x: ``(N, C, H, W)`` cupy array (float32 or float64).
        kernel_size, stride, padding: pairs of ints.
        out: optional C-contiguous ``(C*kh*kw, N*OH*OW)`` cupy array of x's dtype to write into.

    Shape:
        x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW)
    """
    import cupy as cp

    _check_float("im2col (GPU)", x)
    if x.ndim != 4:
        raise ValueError(f"im2col (GPU): expected x of shape (N, C, H, W), got {x.shape}")
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    shape = (c * kh * kw, n * oh * ow)
    if out is None:
        out = cp.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"im2col (GPU): out must be a C-contiguous {shape} {x.dtype} array, "
                         f"got {out.shape} {out.dtype}")
    kernel = _kernels(kernel_index_type(x.shape, kernel_size, stride, padding))[0]
    kernel(x, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, n * oh * ow, out)
    return out


def col2im(cols, x_shape, kernel_size, stride, padding, out=None):
    """CuPy version of ``reference.im2col.col2im`` (gather: one thread per image pixel).

    Args:
        cols: ``(C*kh*kw, N*OH*OW)`` cupy array.
        x_shape: ``(N, C, H, W)``.
        kernel_size, stride, padding: pairs of ints.
        out: optional C-contiguous ``(N, C, H, W)`` cupy array of cols' dtype to write into.

    Shape:
        cols: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W)
    """
    import cupy as cp

    _check_float("col2im (GPU)", cols)
    cols = cp.ascontiguousarray(cols)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    if cols.shape != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im (GPU): cols has shape {cols.shape}, expected {(c * kh * kw, n * oh * ow)} "
                         f"for x_shape {tuple(x_shape)}, kernel {kh}x{kw}")
    shape = (n, c, h, w)
    if out is None:
        out = cp.empty(shape, dtype=cols.dtype)
    elif out.shape != shape or out.dtype != cols.dtype or not out.flags.c_contiguous:
        raise ValueError(f"col2im (GPU): out must be a C-contiguous {shape} {cols.dtype} array, "
                         f"got {out.shape} {out.dtype}")
    kernel = _kernels(kernel_index_type(x_shape, kernel_size, stride, padding))[1]
    kernel(cols, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, n * oh * ow, out)
    return out
