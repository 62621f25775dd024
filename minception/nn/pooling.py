"""Pooling layers: ``MaxPool2d``, ``AvgPool2d`` and ``GlobalAvgPool2d``."""
import ops
from ops.geometry import as_pair, normalize_padding, normalize_stride

from .module import Module


class _Pool2d(Module):
    op_name = "Pool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size", self.op_name)
        if min(self.kernel_size) <= 0:
            raise ValueError(f"{self.op_name}: kernel_size must be positive, got {kernel_size!r}")
        self.stride = self.kernel_size if stride is None else normalize_stride(stride, self.op_name)
        self.padding = normalize_padding(padding, self.kernel_size, self.op_name)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each window; padding counts as -inf (never chosen).

    Args:
        kernel_size: int or (kh, kw); stride: defaults to kernel_size; padding: int, pair, "same" or "valid".

    Shape:
        x: (N, C, H, W) -> (N, C, (H + 2*ph - kh) // sh + 1, (W + 2*pw - kw) // sw + 1)
    """
    op_name = "MaxPool2d"

    def forward(self, x):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Mean over each window.

    Args:
        kernel_size, stride, padding: as MaxPool2d.
        count_include_pad: divide by the full window size (True) or only by the number of real pixels in it
            (False, the default here and TensorFlow's behaviour; Inception blocks use 3x3/1/pad 1 pools this way).

    Shape:
        x: (N, C, H, W) -> (N, C, H', W') as MaxPool2d
    """
    op_name = "AvgPool2d"

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=False):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class GlobalAvgPool2d(Module):
    """Mean over all pixels of each channel (the Inception head before dropout and the classifier).

    Shape:
        x: (N, C, H, W) -> (N, C)
    """

    def forward(self, x):
        return ops.global_avg_pool2d(x)
