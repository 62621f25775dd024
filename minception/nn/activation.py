"""``ReLU`` as a module (for ``Sequential``; inside a ``forward`` simply call ``ops.relu``)."""
import ops

from .module import Module


class ReLU(Module):
    """``max(x, 0)`` elementwise.

    Shape:
        x: any shape -> same shape
    """

    def forward(self, x):
        return ops.relu(x)
