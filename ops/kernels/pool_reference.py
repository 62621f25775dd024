"""Max and average pooling in plain NumPy: the reference that the Numba and CuPy kernels must reproduce.

Read this file first. Everything is a loop over the ``kh * kw`` *window offsets* ``(ky, kx)``; the work for one
offset is one strided slice of the padded input, covering every output pixel at once::

    x_padded[:, :, ky + oy*sh, kx + ox*sw]  for all oy < OH, ox < OW   ==   x_padded[:, :, ky::sh, kx::sw][:, :, :OH, :OW]

Sizes (PyTorch's rule, no ceil mode): ``OH = (H + 2*ph - kh) // sh + 1`` and the same for the width.

Max pooling pads with ``-inf`` (a padded pixel never wins against a real one) and returns, besides the maxima,
the *argmax*: for each output pixel the offset ``k = ky * kw + kx`` of the winner inside its window. Ties go to
the first maximum in row-major window order (the comparison is a strict ``>``), as in PyTorch and Chainer; a NaN
in a window wins (``v > best or v is NaN``), so NaNs propagate to the output instead of being hidden. The
backward pass sends each output gradient to the one input pixel its argmax names.

Average pooling pads with zeros and divides by the window size: either the full ``kh * kw``
(``count_include_pad=True``) or only the number of real (non-padding) pixels in the window
(``count_include_pad=False``, what Inception's pool branches use). The backward pass spreads each output gradient
evenly over the window's pixels.

No ``np.add.at`` anywhere: within one window offset the strided slice names each input pixel at most once, so a
plain ``+=`` on the slice is correct; different offsets are added one after the other.

The big arrays are handled through ``xp``, the array module of the input (NumPy, or CuPy for GPU arrays), with
operations the two libraries share: the reference kernel tier runs this file as it is on either device
(``ops/kernels/tiers.py``). The divisors of average pooling are small index arithmetic, done in NumPy and moved
to the input's device.
"""
import numpy as np

from autograd.backend import get_array_module

from ..geometry import conv_out_size


def argmax_dtype(kh, kw):
    """dtype of the saved argmax offsets: uint8 when every offset ``0 .. kh*kw-1`` fits in a byte, else int32."""
    return np.dtype(np.uint8) if kh * kw <= 256 else np.dtype(np.int32)


def pad_input(x, ph, pw, value):
    """x: (N, C, H, W) -> (N, C, H + 2*ph, W + 2*pw), the border filled with ``value``."""
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    padded = get_array_module(x).full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def window_slice(ky, kx, sh, sw, oh, ow):
    """Index into a padded (N, C, Hp, Wp) array: the pixel at offset (ky, kx) of every window, shape (N, C, OH, OW)."""
    return (slice(None), slice(None),
            slice(ky, ky + sh * (oh - 1) + 1, sh),
            slice(kx, kx + sw * (ow - 1) + 1, sw))


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """Max pooling with -inf padding.

    Shape:
        x: (N, C, H, W) -> y: (N, C, OH, OW) (dtype of x), argmax: (N, C, OH, OW) (``argmax_dtype``), where
        ``argmax[n, c, oy, ox] = ky * kw + kx`` is the window offset of the maximum.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    x_padded = pad_input(x, ph, pw, -np.inf)
    best = xp.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    argmax = xp.zeros((n, c, oh, ow), dtype=argmax_dtype(kh, kw))
    for ky in range(kh):
        for kx in range(kw):
            v = x_padded[window_slice(ky, kx, sh, sw, oh, ow)]
            wins = (v > best) | xp.isnan(v)          # strict '>': an equal value later in the window loses
            best = xp.where(wins, v, best)
            argmax[wins] = ky * kw + kx
    return best, argmax


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sh, sw, ph, pw):
    """Route each output gradient to the input pixel that won its window.

    Shape:
        gy, argmax: (N, C, OH, OW) -> gx: (N, C, H, W), where (H, W) is the input size before padding.
    """
    xp = get_array_module(gy)
    n, c, oh, ow = gy.shape
    gxp = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for ky in range(kh):
        for kx in range(kw):
            won_here = argmax == ky * kw + kx
            gxp[window_slice(ky, kx, sh, sw, oh, ow)] += xp.where(won_here, gy, 0)
    return gxp[:, :, ph:ph + h, pw:pw + w].copy()   # gradients that went to padding are dropped


def window_counts(size, k, s, p, count_include_pad):
    """Number of pixels each window covers along one axis, shape (out,).

    With ``count_include_pad`` every window counts ``k``; otherwise only the positions inside ``[0, size)``.
    """
    out = conv_out_size(size, k, s, p)
    if count_include_pad:
        return np.full(out, k)
    start = np.arange(out) * s - p
    return np.minimum(start + k, size) - np.maximum(start, 0)


def avg_pool_divisor(h, w, kh, kw, sh, sw, ph, pw, count_include_pad, dtype):
    """(OH, OW) NumPy array of the divisors: rows covered times columns covered."""
    rows = window_counts(h, kh, sh, ph, count_include_pad)
    cols = window_counts(w, kw, sw, pw, count_include_pad)
    return (rows[:, None] * cols[None, :]).astype(dtype)


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, count_include_pad=False):
    """Average pooling with zero padding.

    Shape:
        x: (N, C, H, W) -> y: (N, C, OH, OW)
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    x_padded = pad_input(x, ph, pw, 0)
    total = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            total += x_padded[window_slice(ky, kx, sh, sw, oh, ow)]
    return total / xp.asarray(avg_pool_divisor(h, w, kh, kw, sh, sw, ph, pw, count_include_pad, x.dtype))


def avg_pool2d_backward(gy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad=False):
    """Each window's gradient, divided by its divisor, goes to every pixel of the window.

    Shape:
        gy: (N, C, OH, OW) -> gx: (N, C, H, W)
    """
    xp = get_array_module(gy)
    n, c, oh, ow = gy.shape
    share = gy / xp.asarray(avg_pool_divisor(h, w, kh, kw, sh, sw, ph, pw, count_include_pad, gy.dtype))
    gxp = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for ky in range(kh):
        for kx in range(kw):
            gxp[window_slice(ky, kx, sh, sw, oh, ow)] += share
    return gxp[:, :, ph:ph + h, pw:pw + w].copy()
