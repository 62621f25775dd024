"""``ShardedDropout``: dropout masks drawn for the whole global batch, each rank keeping the rows of its shard.

In one process, a dropout layer on a batch of ``N*B`` images draws one mask of ``N*B`` rows from its random
stream (``nn.Dropout``: mask ``k`` comes from ``default_rng([seed, k])``, the pair being the buffer
``rng_state``). To make ``N`` ranks with ``B`` images each take exactly that step, every rank holds the same stream
(``DataParallel`` broadcasts rank 0's buffers, ``rng_state`` among them) and draws the same ``N*B``-row mask; rank
``r`` uses rows ``r*B .. (r+1)*B - 1``, the rows of its own images in the global batch (the data loader gives rank
``r`` that contiguous slice of each global batch). So:

- the union of the ranks' masks is exactly the single-process mask;
- the streams stay identical on every rank, so rank 0's checkpoint restores them all on ``--resume``.

The price is drawing ``N`` times more random numbers than the shard needs. The Inception networks have one
dropout layer, on the pooled (B, 1536) features, so that is a few microseconds per step.

``shard_dropout(model, comm)`` replaces every ``nn.Dropout`` of a model by a ``ShardedDropout`` (in place) that
shares the layer's ``rng_state`` array: the stream, its state-dict key and a checkpoint's copy of it stay as they
were.
"""
from autograd import Function
from autograd.backend import get_array_module, to_numpy

from minception import nn


class ShardedDropoutFunction(Function):
    """Inverted dropout with rows ``rank*B .. (rank+1)*B`` of a mask drawn from ``rng`` for ``size*B`` rows (the
    same draw as ``ops.dropout`` on the global batch)."""

    def __init__(self, p, rng, rank, size):
        self.p, self.rng, self.rank, self.size = p, rng, rank, size

    def forward(self, x):
        xp = get_array_module(x)
        rows = x.shape[0]
        keep_all = self.rng.random((self.size * rows,) + tuple(x.shape[1:])) >= self.p   # the global mask
        keep = keep_all[self.rank * rows:(self.rank + 1) * rows]                         # this shard's rows
        self.scale = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


class ShardedDropout(nn.Dropout):
    """``nn.Dropout`` for rank ``comm.rank`` of ``comm.size`` equal shards (see the module docstring).

    Args: as ``nn.Dropout`` (``p``, ``seed``), and ``comm`` (default ``distributed.init()``).

    Shape:
        x: (B, ...) -> (B, ...), B the shard's batch size
    """

    def __init__(self, p=0.5, seed=None, comm=None):
        super().__init__(p, seed)
        if comm is None:
            from .environment import init
            comm = init()
        self.comm = comm

    @classmethod
    def from_dropout(cls, dropout, comm=None):
        """A ``ShardedDropout`` with ``dropout``'s probability, random stream (the same ``rng_state`` array),
        mode, hooks and name."""
        sharded = cls(dropout.p, seed=int(to_numpy(dropout.rng_state)[0]), comm=comm)
        sharded.register_buffer("rng_state", dropout.rng_state)     # shared: the stream goes on where it was
        sharded.train(dropout.training)
        for attr in ("_scope_name", "_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            sharded.__dict__[attr] = dropout.__dict__[attr]
        return sharded

    def forward(self, x):
        if not self.training or self.p == 0.0 or self.comm.size == 1:
            return super().forward(x)
        return ShardedDropoutFunction(self.p, self.next_generator(), self.comm.rank, self.comm.size)(x)


def shard_dropout(model, comm=None):
    """Replace every ``nn.Dropout`` of ``model`` by a ``ShardedDropout`` (in place); returns ``model``."""
    if comm is None:
        from .environment import init
        comm = init()
    for _, module in model.named_modules():
        for name, child in list(module._modules.items()):
            if isinstance(child, nn.Dropout) and not isinstance(child, ShardedDropout):
                setattr(module, name, ShardedDropout.from_dropout(child, comm))
    return model
