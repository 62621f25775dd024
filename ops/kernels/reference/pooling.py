"""Max and average pooling in plain NumPy: the reference that the Numba and CuPy kernels must reproduce.

Contract of the ``pooling`` family (every tier's pooling kernels take these arguments and return these results;
``kernel_size``, ``stride`` and ``padding`` are pairs of ints ``(kh, kw)``, ``(sh, sw)``, ``(ph, pw)``)::

    max_pool2d_forward(x, kernel_size, stride, padding) -> (y, argmax)
        x: (N, C, H, W) float32 or float64 -> y: (N, C, OH, OW) x's dtype,
        argmax: (N, C, OH, OW) argmax_dtype(kernel_size) (uint8 up to 256 window offsets, else int32)
    max_pool2d_backward(gy, argmax, x_shape, kernel_size, stride, padding) -> gx: (N, C, H, W) gy's dtype
    avg_pool2d_forward(x, kernel_size, stride, padding, count_include_pad=False) -> y: (N, C, OH, OW)
    avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, count_include_pad=False) -> gx: (N, C, H, W)

with ``OH = (H + 2*ph - kh) // sh + 1`` (OW likewise) and ``x_shape = (N, C, H, W)`` the input's shape. They may
assume what the ops check (``ops/pooling.py``): a window that fits, ``ph <= kh // 2`` and ``pw <= kw // 2`` (every
window holds a real pixel). They must not modify their inputs. ``gy`` may have any strides.

Read this file first. Everything is a loop over the ``kh * kw`` *window offsets* ``(ky, kx)``; the work for one
offset is one strided slice of the padded input, covering every output pixel at once::

    x_padded[:, :, ky + oy*sh, kx + ox*sw]  for all oy < OH, ox < OW  ==  x_padded[:, :, ky::sh, kx::sw][:, :, :OH, :OW]

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

The course hands out this file with the solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student writes the four pooling functions; the helpers above them are given
(``python -m minception.course new DIR``).
"""
import numpy as np

from autograd.backend import get_array_module

from ...geometry import conv_out_size


def argmax_dtype(kernel_size):
    """dtype of the saved argmax offsets: uint8 when every offset ``0 .. kh*kw-1`` fits in a byte, else int32."""
    kh, kw = kernel_size
    return np.dtype(np.uint8) if kh * kw <= 256 else np.dtype(np.int32)


def out_size(in_hw, kernel_size, stride, padding):
    """``(OH, OW)``: the number of window positions along each axis."""
    return tuple(conv_out_size(in_hw[a], kernel_size[a], stride[a], padding[a]) for a in (0, 1))


def pad_input(x, padding, value):
    """x: (N, C, H, W) -> (N, C, H + 2*ph, W + 2*pw), the border filled with ``value``."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    padded = get_array_module(x).full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def window_slice(ky, kx, stride, out_hw):
    """Index into a padded (N, C, Hp, Wp) array: the pixel at offset (ky, kx) of every window, shape (N, C, OH, OW)."""
    (sh, sw), (oh, ow) = stride, out_hw
    return (slice(None), slice(None),
            slice(ky, ky + sh * (oh - 1) + 1, sh),
            slice(kx, kx + sw * (ow - 1) + 1, sw))


def max_pool2d_forward(x, kernel_size, stride, padding):
    """Max pooling with -inf padding.

    Shape:
        x: (N, C, H, W) -> y: (N, C, OH, OW) (dtype of x), argmax: (N, C, OH, OW) (``argmax_dtype``), where
        ``argmax[n, c, oy, ox] = ky * kw + kx`` is the window offset of the maximum.

    Formula: ``y[n, c, oy, ox] = max_{ky, kx} x_padded[n, c, oy*sh + ky, ox*sw + kx]`` (padding is -inf).

    Hints: keep a running maximum ``best`` (start at -inf) and visit the offsets in row-major order; for each,
    ``v = x_padded[window_slice(ky, kx, stride, (OH, OW))]``. A tie goes to the *first* maximum: replace only
    where ``v > best`` (strict), so argmax names exactly one winner. Let a NaN win (``| xp.isnan(v)``).
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel_size
    oh, ow = out_size((h, w), kernel_size, stride, padding)
    # --- solution: begin ---
    x_padded = pad_input(x, padding, -np.inf)
    best = xp.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    argmax = xp.zeros((n, c, oh, ow), dtype=argmax_dtype(kernel_size))
    for ky in range(kh):
        for kx in range(kw):
            v = x_padded[window_slice(ky, kx, stride, (oh, ow))]
            wins = (v > best) | xp.isnan(v)          # strict '>': an equal value later in the window loses
            best = xp.where(wins, v, best)
            argmax[wins] = ky * kw + kx
    return best, argmax
    # --- solution: end ---


def max_pool2d_backward(gy, argmax, x_shape, kernel_size, stride, padding):
    """Route each output gradient to the input pixel that won its window.

    Shape:
        gy, argmax: (N, C, OH, OW) -> gx: (N, C, H, W), where ``x_shape = (N, C, H, W)`` is the input's shape.

    Formula: ``dy/dx`` is 1 for the one pixel that won the window (``argmax``) and 0 for the others, so
    ``gx_padded[n, c, oy*sh + ky, ox*sw + kx] += gy[n, c, oy, ox]`` where ``argmax[n, c, oy, ox] == ky*kw + kx``.

    Hints: loop over the offsets as in the forward, with a zero padded gradient; a pixel can win several
    overlapping windows, so *add* (``+=``), never assign. Drop the padding border at the end.
    """
    xp = get_array_module(gy)
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel_size, padding
    oh, ow = gy.shape[2:]
    # --- solution: begin ---
    gxp = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for ky in range(kh):
        for kx in range(kw):
            won_here = argmax == ky * kw + kx
            gxp[window_slice(ky, kx, stride, (oh, ow))] += xp.where(won_here, gy, 0)
    return gxp[:, :, ph:ph + h, pw:pw + w].copy()   # gradients that went to padding are dropped
    # --- solution: end ---


def window_counts(size, k, s, p, count_include_pad):
    """Number of pixels each window covers along one axis, shape (out,).

    With ``count_include_pad`` every window counts ``k``; otherwise only the positions inside ``[0, size)``.
    """
    out = conv_out_size(size, k, s, p)
    if count_include_pad:
        return np.full(out, k)
    start = np.arange(out) * s - p
    return np.minimum(start + k, size) - np.maximum(start, 0)


def avg_pool_divisor(in_hw, kernel_size, stride, padding, count_include_pad, dtype):
    """(OH, OW) NumPy array of the divisors: rows covered times columns covered."""
    rows = window_counts(in_hw[0], kernel_size[0], stride[0], padding[0], count_include_pad)
    cols = window_counts(in_hw[1], kernel_size[1], stride[1], padding[1], count_include_pad)
    return (rows[:, None] * cols[None, :]).astype(dtype)


def avg_pool2d_forward(x, kernel_size, stride, padding, count_include_pad=False):
    """Average pooling with zero padding.

    Shape:
        x: (N, C, H, W) -> y: (N, C, OH, OW)

    Formula: ``y[n, c, oy, ox] = sum_{ky, kx} x_padded[n, c, oy*sh + ky, ox*sw + kx] / divisor[oy, ox]``
    (padding is 0).

    Hints: sum the ``kh * kw`` strided slices, then divide by ``avg_pool_divisor(...)`` (given): with
    ``count_include_pad=False`` a window at the border counts only its real pixels, not ``kh * kw``.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel_size
    oh, ow = out_size((h, w), kernel_size, stride, padding)
    # --- solution: begin ---
    x_padded = pad_input(x, padding, 0)
    total = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            total += x_padded[window_slice(ky, kx, stride, (oh, ow))]
    divisor = avg_pool_divisor((h, w), kernel_size, stride, padding, count_include_pad, x.dtype)
    return total / xp.asarray(divisor)
    # --- solution: end ---


def avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, count_include_pad=False):
    """Each window's gradient, divided by its divisor, goes to every pixel of the window.

    Shape:
        gy: (N, C, OH, OW) -> gx: (N, C, H, W), where ``x_shape = (N, C, H, W)`` is the input's shape.

    Formula: every pixel of a window gets ``gy[n, c, oy, ox] / divisor[oy, ox]``; a pixel in several windows
    gets the sum of their shares.

    Hints: divide ``gy`` by the divisor once, then add that share onto each offset's strided slice of a zero
    padded gradient (``+=``), and drop the padding border.
    """
    xp = get_array_module(gy)
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel_size, padding
    oh, ow = gy.shape[2:]
    # --- solution: begin ---
    divisor = avg_pool_divisor((h, w), kernel_size, stride, padding, count_include_pad, gy.dtype)
    share = gy / xp.asarray(divisor)
    gxp = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for ky in range(kh):
        for kx in range(kw):
            gxp[window_slice(ky, kx, stride, (oh, ow))] += share
    return gxp[:, :, ph:ph + h, pw:pw + w].copy()
    # --- solution: end ---
