"""``Conv2d``: 2-D convolution (cross-correlation, as in every framework) over NCHW images."""
import numpy as np

import ops
from ops.geometry import as_pair, normalize_padding, normalize_stride

from . import init
from .arguments import check_positive
from .module import Module, Parameter


class Conv2d(Module):
    """2-D convolution layer.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: int or ``(kh, kw)``; ``1x7`` means ``(1, 7)``: height 1, width 7.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``"same"`` (``(k-1)//2`` on each side; odd kernels) or ``"valid"`` (0).
            Stored resolved, as a pair.
        bias: add a learned per-channel bias (zeros at start). Convs followed by batch norm use ``bias=False``.
    Weight ``(out_channels, in_channels, kh, kw)``, He-normal: std ``sqrt(2 / (in_channels*kh*kw))`` (``nn.init``).

    Shape:
        x: (N, in_channels, H, W) -> (N, out_channels, H', W'),
        H' = (H + 2*ph - kh) // sh + 1, W' = (W + 2*pw - kw) // sw + 1
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        check_positive("Conv2d", in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = as_pair(kernel_size, "kernel_size", "Conv2d")
        if min(self.kernel_size) <= 0:
            raise ValueError(f"Conv2d: kernel_size must be positive, got {kernel_size!r}")
        self.stride = normalize_stride(stride, "Conv2d")
        self.padding = normalize_padding(padding, self.kernel_size, "Conv2d")
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels, kh, kw), np.float32))
        init.he_normal_(self.weight)
        self.register_parameter("bias", Parameter(np.zeros(self.out_channels, np.float32)) if bias else None)

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")
