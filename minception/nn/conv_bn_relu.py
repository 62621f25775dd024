"""``ConvBNReLU``: the unit every Inception conv is made of (conv without bias -> batch norm -> ReLU)."""
import ops

from .batchnorm import BatchNorm2d
from .conv import Conv2d
from .module import Module


class ConvBNReLU(Module):
    """Conv2d (no bias: BN's beta does its job) -> BatchNorm2d (eps 1e-3) -> ReLU.

    Submodules are named ``conv`` and ``bn`` so that the state-dict keys read ``conv.weight``, ``bn.weight``,
    ``bn.bias``, ``bn.running_mean``, ``bn.running_var``, ``bn.num_batches_tracked``, as in timm's
    ``BasicConv2d``. The ReLU has no state and no module: it runs inside the batch-norm op
    (``ops.batch_norm(..., relu=True)``, one pass over the data fewer each way, the same numbers), so a forward
    hook on ``bn`` sees the activation *after* the ReLU. Set ``fuse_relu=False`` to run BN and ReLU as two ops
    (``bn`` then shows the batch norm's own output, and the graph has a separate ``ReLU`` node).

    Args: as ``Conv2d`` (kernel_size, stride, padding) plus BN's ``eps`` and ``momentum``, and ``fuse_relu``.

    Shape:
        x: (N, in_channels, H, W) -> (N, out_channels, H', W') with H', W' as for Conv2d
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, eps=1e-3, momentum=0.1,
                 fuse_relu=True):
        super().__init__()
        self.fuse_relu = bool(fuse_relu)
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = BatchNorm2d(out_channels, eps=eps, momentum=momentum)

    def forward(self, x):
        if self.fuse_relu:
            return self.bn(self.conv(x), relu=True)
        return ops.relu(self.bn(self.conv(x)))
