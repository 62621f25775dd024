"""``Dropout``: inverted dropout, active only in training mode, with its random stream in its state dict."""
import numpy as np

import ops
from autograd.backend import to_numpy

from . import init
from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the survivors by ``1/(1-p)``; identity in
    evaluation mode (so nothing needs rescaling at test time).

    Where the masks come from: mask number ``k`` of this layer (counting training-mode calls) is drawn from
    ``numpy.random.default_rng([seed, k])``. The pair ``(seed, k)`` is the layer's buffer ``rng_state``, so
    ``state_dict()`` / ``load_state_dict()`` save and restore the stream along with the weights: a run resumed
    from a checkpoint draws exactly the masks the uninterrupted run would have drawn, and nothing outside the
    layer needs to know it is random.

    Args:
        p: drop probability, in [0, 1).
        seed: the stream's seed (an int >= 0). None: the next ``nn.init.layer_seed()``, reproducible after
            ``nn.init.manual_seed``.

    Buffers:
        rng_state: int64 ``[seed, masks drawn so far]``.

    Shape:
        x: any shape -> same shape
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        if seed is None:
            seed = init.layer_seed()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"Dropout: seed must be an int in [0, 2**63), got {seed!r}")
        self.p = float(p)
        self.register_buffer("rng_state", np.array([seed, 0], dtype=np.int64))

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, True, self.next_generator())

    def next_generator(self):
        """The generator of this layer's next mask, ``numpy.random.default_rng([seed, k])``; the stream moves on
        by one (the next call draws mask ``k + 1``)."""
        seed, k = (int(v) for v in to_numpy(self.rng_state))
        self.rng_state[1] = k + 1
        return np.random.default_rng([seed, k])

    def extra_repr(self):
        return f"p={self.p}"
