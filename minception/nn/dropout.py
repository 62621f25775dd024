"""``Dropout``: inverted dropout, active only in training mode."""
import ops

from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the survivors by ``1/(1-p)``; identity in
    evaluation mode (so nothing needs rescaling at test time).

    Args:
        p: drop probability, in [0, 1).
        rng: optional ``numpy.random.Generator`` for reproducible masks.

    Shape:
        x: any shape -> same shape
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.rng = float(p), rng

    def forward(self, x):
        return ops.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"
