"""im2col and col2im as CuPy GPU kernels: the same layout and results as ``im2col_reference`` (read that first).

    cols: (C*kh*kw, N*OH*OW),  cols[(c*kh + i)*kw + j, (n*OH + oy)*OW + ox] = x_padded[n, c, oy*sh + i, ox*sw + j]

* ``im2col``: one GPU thread per element of ``cols``. The thread decodes its flat index into
  (c, i, j, n, oy, ox), finds the input pixel, and writes it (or 0 when the window hangs over the border).
* ``col2im``: a *gather*, one thread per pixel of the image. The thread visits the kernel offsets (i, j) whose
  windows can contain its pixel, and adds up the matching column entries. Every output element is written by
  exactly one thread, so there are no atomics: the result is deterministic and float64 works (CUDA has no fast
  float64 atomicAdd on every card anyway).

CuPy is imported inside the functions, so this module imports fine on machines without CuPy; the kernels are
built once per process (memoised) and compiled by CuPy for each dtype at first use.
"""
from ..geometry import conv_out_size

_KERNELS = {}


def _kernels():
    """Build (once) and return the two ElementwiseKernels."""
    if not _KERNELS:
        import cupy as cp

        _KERNELS["im2col"] = cp.ElementwiseKernel(
            "raw T x, int64 c, int64 h, int64 w, int64 kh, int64 kw, int64 sh, int64 sw, "
            "int64 ph, int64 pw, int64 oh, int64 ow, int64 m",
            "T col",
            """
            // i = r * m + q: row r = (ch*kh + ki)*kw + kj, column q = (b*oh + oy)*ow + ox
            const long long r = i / m, q = i % m;
            const long long kj = r % kw, ki = (r / kw) % kh, ch = r / (kw * kh);
            const long long ox = q % ow, oy = (q / ow) % oh, b = q / (ow * oh);
            const long long y = oy * sh + ki - ph, xx = ox * sw + kj - pw;
            if (0 <= y && y < h && 0 <= xx && xx < w) {
                col = x[((b * c + ch) * h + y) * w + xx];
            } else {
                col = (T)0;
            }
            """,
            "minception_im2col",
        )
        _KERNELS["col2im"] = cp.ElementwiseKernel(
            "raw T cols, int64 c, int64 h, int64 w, int64 kh, int64 kw, int64 sh, int64 sw, "
            "int64 ph, int64 pw, int64 oh, int64 ow, int64 m",
            "T dx",
            """
            // i = ((b*c + ch)*h + y)*w + xx: this thread owns pixel (b, ch, y, xx) and gathers into it
            const long long xx = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, b = i / (w * h * c);
            T acc = (T)0;
            for (long long ki = 0; ki < kh; ++ki) {
                const long long ty = y + ph - ki;          // = oy * sh for the window that holds this pixel
                if (ty < 0 || ty % sh != 0) continue;
                const long long oy = ty / sh;
                if (oy >= oh) continue;
                for (long long kj = 0; kj < kw; ++kj) {
                    const long long tx = xx + pw - kj;
                    if (tx < 0 || tx % sw != 0) continue;
                    const long long ox = tx / sw;
                    if (ox >= ow) continue;
                    acc += cols[((ch * kh + ki) * kw + kj) * m + (b * oh + oy) * ow + ox];
                }
            }
            dx = acc;
            """,
            "minception_col2im",
        )
    return _KERNELS


def im2col(x, kernel_size, stride, padding, out=None):
    """CuPy version of ``im2col_reference.im2col``.

    Args:
        x: ``(N, C, H, W)`` cupy array (float32 or float64).
        kernel_size, stride, padding: pairs of ints.
        out: optional C-contiguous ``(C*kh*kw, N*OH*OW)`` cupy array of x's dtype to write into.

    Shape:
        x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW)
    """
    import cupy as cp

    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    shape = (c * kh * kw, n * oh * ow)
    if out is None:
        out = cp.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"im2col_cupy: out must be a C-contiguous {shape} {x.dtype} array, "
                         f"got {out.shape} {out.dtype}")
    _kernels()["im2col"](x, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, n * oh * ow, out)
    return out


def col2im(cols, x_shape, kernel_size, stride, padding, out=None):
    """CuPy version of ``im2col_reference.col2im`` (gather: one thread per image pixel).

    Args:
        cols: ``(C*kh*kw, N*OH*OW)`` cupy array.
        x_shape: ``(N, C, H, W)``.
        kernel_size, stride, padding: pairs of ints.
        out: optional C-contiguous ``(N, C, H, W)`` cupy array of cols' dtype to write into.

    Shape:
        cols: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W)
    """
    import cupy as cp

    cols = cp.ascontiguousarray(cols)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    if cols.shape != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im_cupy: cols has shape {cols.shape}, expected {(c * kh * kw, n * oh * ow)} "
                         f"for x_shape {tuple(x_shape)}, kernel {kh}x{kw}")
    shape = (n, c, h, w)
    if out is None:
        out = cp.empty(shape, dtype=cols.dtype)
    elif out.shape != shape or out.dtype != cols.dtype or not out.flags.c_contiguous:
        raise ValueError(f"col2im_cupy: out must be a C-contiguous {shape} {cols.dtype} array, "
                         f"got {out.shape} {out.dtype}")
    _kernels()["col2im"](cols, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, n * oh * ow, out)
    return out
