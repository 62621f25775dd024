"""conv2d by im2col and one matrix product: the textbook convolution, forward and backward (read it first).

Contract of the ``conv2d`` family (every tier's conv2d takes these arguments and returns these results)::

    forward(x, weight, bias, stride, padding) -> y
        x:      (N, C, H, W)        float32 or float64, C-contiguous
        weight: (Cout, C, kh, kw)   x's dtype, C-contiguous
        bias:   (Cout,) or None     x's dtype
        stride, padding: pairs of ints (sh, sw) and (ph, pw), sh, sw >= 1, ph, pw >= 0
        y:      (N, Cout, OH, OW)   x's dtype, OH = (H + 2*ph - kh) // sh + 1, OW likewise

    backward(x, weight, gy, stride, padding, need_x, need_w) -> (dx, dweight)
        gy:      (N, Cout, OH, OW)  x's dtype (any strides: it may be a slice of a concat's gradient)
        need_x, need_w: bools; a gradient that is not needed is returned as None
        dx:      (N, C, H, W)       or None
        dweight: (Cout, C, kh, kw)  or None

Both may assume what the op checked (``ops/conv.py``): shapes that agree, a kernel that fits the padded input.
Neither may modify its inputs. The bias gradient is not part of the family: the op sums ``gy`` itself.

The algorithm, for ``x: (N, C, H, W)`` and ``weight: (Cout, C, kh, kw)``:

1. **im2col** copies every input window (zero padding included) into a column:
   ``cols: (C*kh*kw, N*OH*OW)`` (``ops/kernels/reference/im2col.py`` has the layout).
2. **One GEMM**: ``Y2d = W2d @ cols`` with ``W2d = weight.reshape(Cout, C*kh*kw)``: ``(Cout, N*OH*OW)``.
3. **Reshape** to ``(Cout, N, OH, OW)`` and reorder to ``(N, Cout, OH, OW)``; add the bias.

Backward, given ``gY2d = gy`` reordered to ``(Cout, N*OH*OW)``:

* ``dW2d = gY2d @ cols.T``: ``cols`` is *recomputed* from ``x`` (the column matrix is up to ``kh*kw`` times larger
  than ``x``, so it is never kept from forward to backward);
* ``dx = col2im(W2d.T @ gY2d)``: col2im adds every column entry back onto the pixel it came from.

im2col and col2im are asked from the active kernel tier (``ops.kernels.lookup("im2col", x)``), not imported: in the
reference tier they are the readable ones, and a tier of your own that registers only ``im2col`` trains every
convolution of a network on your im2col, through this file.

The course hands out this file with the solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student writes forward and backward (``python -m minception.course new DIR``).
"""
from autograd.backend import get_array_module

from ...geometry import conv_out_size
from ..tiers import lookup


def forward(x, weight, bias, stride, padding):
    """``y = conv2d(x, weight) + bias`` by im2col -> one GEMM -> reshape.

    Shape:
        x: (N, C, H, W), weight: (Cout, C, kh, kw), bias: (Cout,) or None -> y: (N, Cout, OH, OW)

    Formula: ``y[n, o, oy, ox] = bias[o] + sum_{c,i,j} weight[o, c, i, j] * x_padded[n, c, oy*sh + i, ox*sw + j]``,
    which is ``W2d @ cols`` with ``W2d = weight.reshape(Cout, C*kh*kw)`` and ``cols = im2col(x, ...)``.

    Hints: the product is ``(Cout, N*OH*OW)``, columns ordered image by image: reshape it to
    ``(Cout, N, OH, OW)`` and swap the first two axes (a reshape straight to (N, Cout, OH, OW) mixes images and
    channels). Use the ``im2col`` given (the active tier's: yours, when your tier is active).
    """
    xp = get_array_module(x)
    n, _, h, w = x.shape
    cout, _, kh, kw = weight.shape
    oh, ow = conv_out_size(h, kh, stride[0], padding[0]), conv_out_size(w, kw, stride[1], padding[1])
    im2col = lookup("im2col", x).im2col                            # the active tier's im2col
    # --- solution: begin ---
    cols = im2col(x, (kh, kw), stride, padding)                    # (C*kh*kw, N*OH*OW)
    w2d = weight.reshape(cout, -1)                                 # (Cout, C*kh*kw)
    y2d = w2d @ cols                                               # (Cout, N*OH*OW)
    y = y2d.reshape(cout, n, oh, ow).transpose(1, 0, 2, 3)         # (N, Cout, OH, OW)
    if bias is not None:
        y = y + bias.reshape(1, cout, 1, 1)
    return xp.ascontiguousarray(y)
    # --- solution: end ---


def backward(x, weight, gy, stride, padding, need_x, need_w):
    """Gradients of ``forward`` for ``x`` and ``weight``: ``dW2d = gY2d @ cols.T`` (cols recomputed from x) and
    ``dx = col2im(W2d.T @ gY2d)``; None where not needed.

    Shape:
        x: (N, C, H, W), weight: (Cout, C, kh, kw), gy: (N, Cout, OH, OW) -> dx: (N, C, H, W) or None,
        dweight: (Cout, C, kh, kw) or None

    Formula: with ``Y2d = W2d @ cols``, the chain rule through a matrix product gives ``dW2d = gY2d @ cols.T`` and
    ``dcols = W2d.T @ gY2d``; col2im turns ``dcols`` into ``dx``.

    Hints: ``gY2d`` is ``gy`` laid out like the forward's product: (N, Cout, OH, OW) -> (Cout, N, OH, OW) ->
    (Cout, N*OH*OW). Recompute ``cols`` from ``x`` only when ``need_w``; return None for what is not needed.
    """
    cout, _, kh, kw = weight.shape
    kernels = lookup("im2col", x)                                  # the active tier's im2col and col2im
    # --- solution: begin ---
    gy2d = gy.transpose(1, 0, 2, 3).reshape(cout, -1)              # (Cout, N*OH*OW)
    dx = dweight = None
    if need_w:
        cols = kernels.im2col(x, (kh, kw), stride, padding)        # recomputed: (C*kh*kw, N*OH*OW)
        dweight = (gy2d @ cols.T).reshape(weight.shape)            # (Cout, C*kh*kw) -> (Cout, C, kh, kw)
    if need_x:
        dcols = weight.reshape(cout, -1).T @ gy2d                  # (C*kh*kw, N*OH*OW)
        dx = kernels.col2im(dcols, x.shape, (kh, kw), stride, padding)
    return dx, dweight
    # --- solution: end ---
