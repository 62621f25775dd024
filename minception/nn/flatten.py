"""``Flatten``: merge the trailing axes, e.g. (N, C, 1, 1) -> (N, C) before a classifier."""
import ops

from .module import Module


class Flatten(Module):
    """Merge the axes from ``start_axis`` on.

    Shape:
        x: (N, C, H, W) -> (N, C*H*W) (with ``start_axis=1``)
    """

    def __init__(self, start_axis=1):
        super().__init__()
        self.start_axis = int(start_axis)

    def forward(self, x):
        return ops.flatten(x, self.start_axis)

    def extra_repr(self):
        return f"start_axis={self.start_axis}"
