"""im2col and col2im in plain NumPy: the readable reference that the Numba and CuPy kernels must match.

Contract of the ``im2col`` family (every tier's im2col and col2im take these arguments and return these results;
``kernel_size``, ``stride`` and ``padding`` are pairs of ints ``(kh, kw)``, ``(sh, sw)``, ``(ph, pw)``)::

    im2col(x, kernel_size, stride, padding) -> cols
        x: (N, C, H, W) float32 or float64 -> cols: (C*kh*kw, N*OH*OW), x's dtype, in the layout below
    col2im(cols, x_shape, kernel_size, stride, padding) -> dx
        cols: (C*kh*kw, N*OH*OW) float32 or float64, x_shape = (N, C, H, W) -> dx: (N, C, H, W), cols' dtype

with ``OH = (H + 2*ph - kh) // sh + 1`` and ``OW = (W + 2*pw - kw) // sw + 1``. Both may assume a window that fits
(OH, OW >= 1), ``sh, sw >= 1`` and ``ph, pw >= 0``; ``x`` may have any strides. Neither may modify its input, and
each returns a new array (the caller may keep or change it).

A convolution is a matrix product once every input window has been copied into a column. For an input
``x: (N, C, H, W)``, a ``kh x kw`` kernel, stride ``(sh, sw)`` and zero padding ``(ph, pw)`` the output has
``OH x OW`` positions (see ``ops.geometry.conv_out_size``), and ``im2col`` builds the *column matrix*

    cols: (C*kh*kw, N*OH*OW)        row    r = (c*kh + i)*kw + j      (input channel c, kernel offset i, j)
                                    column q = (n*OH + oy)*OW + ox    (image n, output position oy, ox)
    cols[r, q] = x_padded[n, c, oy*sh + i, ox*sw + j]

This is the GEMM-ready layout: with the weight reshaped to ``W2d: (Cout, C*kh*kw)`` the whole forward pass of
the convolution is one matrix product, ``W2d @ cols: (Cout, N*OH*OW)``, which is then reordered to NCHW.

``col2im`` is the adjoint (the transpose) of ``im2col``: it adds every column entry back onto the input pixel it
was copied from. Pixels that belong to several windows (when the stride is smaller than the kernel) receive the
sum of their entries; padding entries are dropped. It turns the column gradient ``W2d.T @ gY`` into the input
gradient.

Both functions loop over the ``kh*kw`` kernel offsets and copy (or add) one strided slice of the padded image
per offset. No ``np.add.at``: within one offset the slice touches every pixel at most once, so a plain ``+=`` is
exact.

Both are written against ``xp``, the array module of the input (NumPy, or CuPy for GPU arrays), with operations the
two libraries share: the reference kernel tier runs this file as it is on either device (``ops/kernels/tiers.py``).

The course hands out this file with the solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student writes im2col, then col2im (``python -m minception.course new DIR``).
"""
from autograd.backend import get_array_module

from ...geometry import conv_out_size


def im2col(x, kernel_size, stride, padding):
    """Copy every ``kh x kw`` window of ``x`` into a column.

    Args:
        x: ``(N, C, H, W)`` array.
        kernel_size, stride, padding: pairs of ints ``(kh, kw)``, ``(sh, sw)``, ``(ph, pw)``.

    Returns:
        cols: ``(C*kh*kw, N*OH*OW)``, same dtype as ``x`` (layout in the module docstring).

    Shape:
        x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW), OH = (H + 2ph - kh)//sh + 1, OW likewise.

    Formula: ``cols[(c*kh + i)*kw + j, (n*OH + oy)*OW + ox] = x_padded[n, c, oy*sh + i, ox*sw + j]``.

    Hints: pad once (``xp.pad``); then for each kernel offset ``(i, j)`` the pixels it sees at every output
    position form one strided slice ``x_padded[:, :, i:i + sh*OH:sh, j:j + sw*OW:sw]`` of shape (N, C, OH, OW).
    Fill a ``(C, kh, kw, N, OH, OW)`` array slice by slice and reshape it at the end: the row index then comes
    out as ``(c*kh + i)*kw + j`` by itself. Forget the padding and the shapes still fit for ``padding=(0, 0)``
    only.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    # --- solution: begin ---
    x_padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # the pixels that kernel offset (i, j) sees, for every output position: (N, C, OH, OW)
            window = x_padded[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)
    # --- solution: end ---


def col2im(cols, x_shape, kernel_size, stride, padding):
    """Add every column entry back onto the input pixel it came from (the transpose of ``im2col``).

    Args:
        cols: ``(C*kh*kw, N*OH*OW)`` column matrix (e.g. the gradient ``W2d.T @ gY``).
        x_shape: ``(N, C, H, W)``, the shape of the image that ``im2col`` read.
        kernel_size, stride, padding: pairs of ints, as given to ``im2col``.

    Returns:
        dx: ``(N, C, H, W)``, same dtype as ``cols``.

    Shape:
        cols: (C*kh*kw, N*OH*OW) -> dx: (N, C, H, W)

    Formula: the transpose of im2col's: ``dx_padded[n, c, oy*sh + i, ox*sw + j] += cols[r, q]`` for every entry,
    with ``r = (c*kh + i)*kw + j`` and ``q = (n*OH + oy)*OW + ox``; then drop the padding border.

    Hints: run im2col backwards: reshape ``cols`` to (C, kh, kw, N, OH, OW) and, offset by offset, *add* each
    (N, C, OH, OW) slice onto the strided slice of a zero ``(N, C, H + 2ph, W + 2pw)`` array: ``=`` instead of
    ``+=`` loses the pixels that several windows share (stride < kernel). A check: ``sum(im2col(x) * cols)``
    equals ``sum(x * col2im(cols))`` for any x and cols.
    """
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    # --- solution: begin ---
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    dxp = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += cols[:, i, j].transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w])
    # --- solution: end ---
