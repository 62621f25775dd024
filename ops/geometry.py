"""Window geometry shared by convolution and pooling: pairs, padding rules and output sizes.

Every sliding-window op (conv2d, max_pool2d, avg_pool2d) takes a kernel size, a stride and a padding that may be
written as one int (same for height and width) or as a pair ``(for_height, for_width)``. These helpers turn such
arguments into plain ``(int, int)`` pairs and check them, so that every op reports bad input the same way: the
error names the op, the argument and what was expected.

The output size of a window op along one axis is::

    out = (size + 2 * pad - kernel) // stride + 1

e.g. a 32-pixel row, kernel 3, stride 2, no padding: (32 - 3) // 2 + 1 = 15 windows.
"""
import numbers


def as_pair(value, name, op="op"):
    """Return ``value`` as a pair of Python ints ``(for_height, for_width)``.

    ``value`` is an int (used for both axes) or a tuple/list of two ints. Booleans and floats are refused.

    Raises:
        TypeError: ``value`` is neither an int nor a pair of ints; the message names ``op`` and ``name``.

    >>> as_pair(3, "kernel_size")
    (3, 3)
    >>> as_pair((1, 7), "kernel_size")
    (1, 7)
    """
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints (for height, for width), got {value!r}")


def normalize_stride(stride, op="op"):
    """Return the stride as a pair ``(sh, sw)`` of positive ints.

    Raises:
        TypeError: not an int or a pair of ints.
        ValueError: a stride is zero or negative.
    """
    sh, sw = as_pair(stride, "stride", op)
    if sh <= 0 or sw <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride!r}")
    return sh, sw


def normalize_padding(padding, kernel_size, op="op"):
    """Return the zero padding as a pair ``(ph, pw)``: the rows added at the top *and* at the bottom, the columns
    added on the left *and* on the right.

    Args:
        padding: an int, a pair ``(ph, pw)``, ``"valid"`` (no padding) or ``"same"``. ``"same"`` pads
            ``(k - 1) // 2`` on each side of each axis, which keeps the image size at stride 1; it needs an odd
            kernel size on both axes (an even kernel cannot be centred: the padding would have to differ between
            the two sides).
        kernel_size: the window size, an int or a pair ``(kh, kw)``.
        op: the op name used in error messages.

    Raises:
        TypeError: padding is not an int, a pair of ints or one of the two strings.
        ValueError: negative padding, an unknown string, or ``"same"`` with an even kernel size.

    >>> normalize_padding("same", (1, 7))
    (0, 3)
    """
    kh, kw = as_pair(kernel_size, "kernel_size", op)
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if kh % 2 == 0 or kw % 2 == 0:
                raise ValueError(f"{op}: padding='same' needs an odd kernel size on both axes (it pads (k-1)//2 "
                                 f"on each side), got kernel size {kh}x{kw} (height x width), which has an even "
                                 f"side; pad explicitly instead")
            return (kh - 1) // 2, (kw - 1) // 2
        raise ValueError(f"{op}: padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    ph, pw = as_pair(padding, "padding", op)
    if ph < 0 or pw < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    return ph, pw


def conv_out_size(size, k, s, p):
    """Number of window positions along one axis: ``(size + 2p - k) // s + 1``.

    Args:
        size: the input length (height or width), before padding.
        k: the kernel (window) length; s: the stride; p: the padding added on *each* side.

    Returns a value < 1 when the window does not fit into the padded input; callers check that
    (see ``check_window_fits``).
    """
    return (size + 2 * p - k) // s + 1


def check_window_fits(in_hw, kernel_size, padding, op="op"):
    """Raise a ValueError naming ``op`` if the kernel is larger than the padded input on either axis.

    Args:
        in_hw: the input ``(H, W)``; kernel_size: ``(kh, kw)``; padding: ``(ph, pw)``.
    """
    (h, w), (kh, kw), (ph, pw) = in_hw, kernel_size, padding
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{op}: kernel size {kh}x{kw} is larger than the padded input "
                         f"{h + 2 * ph}x{w + 2 * pw} (input {h}x{w}, padding {ph},{pw}); "
                         f"expected kernel <= input + 2 * padding on each axis")


def window_out_shape(in_hw, kernel_size, stride, padding):
    """Output ``(OH, OW)`` of a window op on an input of size ``in_hw = (H, W)`` (all arguments are pairs)."""
    (h, w), (kh, kw), (sh, sw), (ph, pw) = in_hw, kernel_size, stride, padding
    return conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)


def conv_as_gemm(x, weight, stride, padding):
    """A convolution's shapes as im2col + one GEMM sees them, for the fast tiers (NumPy or CuPy arrays):
    ``(kh, kw), (OH, OW), W2d`` with ``W2d: (Cout, C*kh*kw)`` a view of the C-contiguous ``weight``.

    Shape:
        x: (N, C, H, W), weight: (Cout, C, kh, kw); stride, padding: pairs
    """
    kernel = tuple(weight.shape[2:])
    return kernel, window_out_shape(x.shape[2:], kernel, stride, padding), weight.reshape(weight.shape[0], -1)


def is_pointwise(kernel_size, stride, padding):
    """True for a 1x1 window with stride 1 and no padding (all arguments pairs): image ``n``'s im2col columns are
    then ``x[n]`` itself seen as ``(C, H*W)``, so the fast convolutions skip the copy."""
    return tuple(kernel_size) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


pair = as_pair  # short alias
