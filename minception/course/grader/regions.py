"""Named parts of a result, so that the report can say *where* the wrong elements are.

Each function returns a boolean mask shaped like one result; ``compare.where_text`` says "only <phrase>" when
every wrong element lies inside a mask. The masks are computed with the reference kernels on arrays of ones:
im2col of ones is 0 exactly where a column entry was copied from the padding, col2im(im2col(ones)) counts how
many windows hold each pixel, and average pooling of ones with the padding counted is below 1 exactly for the
windows that reach into the padding.
"""
import numpy as np

from ops.kernels.reference import im2col, pooling


def padding_entries(x_shape, kernel_size, stride, padding):
    """cols-shaped mask ``(C*kh*kw, N*OH*OW)``: the entries copied from the zero padding."""
    return im2col.im2col(np.ones(x_shape), kernel_size, stride, padding) == 0


def overlapping_pixels(x_shape, kernel_size, stride, padding):
    """x-shaped mask ``(N, C, H, W)``: the pixels that lie in more than one window."""
    ones = np.ones(x_shape)
    return im2col.col2im(im2col.im2col(ones, kernel_size, stride, padding), x_shape, kernel_size, stride,
                         padding) > 1


def windows_in_padding(x_shape, kernel_size, stride, padding):
    """y-shaped mask ``(N, C, OH, OW)``: the windows that reach into the padding border."""
    return pooling.avg_pool2d_forward(np.ones(x_shape), kernel_size, stride, padding, count_include_pad=True) < 1


def border_pixels(x_shape, kernel_size, stride, padding):
    """x-shaped mask: the pixels of the windows that reach into the padding border."""
    touching = windows_in_padding(x_shape, kernel_size, stride, padding).astype(np.float64)
    spread = pooling.avg_pool2d_backward(touching, x_shape, kernel_size, stride, padding, count_include_pad=True)
    return spread > 0


def tie_windows(x, kernel_size, stride, padding):
    """y-shaped mask: the windows whose maximum appears more than once (padding never counts)."""
    (kh, kw) = kernel_size
    oh, ow = pooling.out_size(x.shape[2:], kernel_size, stride, padding)
    padded = pooling.pad_input(x, padding, -np.inf)
    windows = [padded[pooling.window_slice(ky, kx, stride, (oh, ow))] for ky in range(kh) for kx in range(kw)]
    best = np.max(windows, axis=0)
    return np.sum([w == best for w in windows], axis=0) > 1


def relu_off(y):
    """Where the ReLU's output is 0 (the ReLU was off: no gradient passes)."""
    return np.asarray(y) <= 0
