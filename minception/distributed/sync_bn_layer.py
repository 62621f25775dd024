"""``SyncBatchNorm2d`` and ``sync_batch_norm(model)``: switching a model's batch norms to global-batch statistics.

Synchronised batch norm is an option, off by default: by default each replica normalises with its own shard's
statistics, as the paper's replicas did. ``sync_batch_norm(model)`` turns it on by replacing every
``nn.BatchNorm2d`` of the model, in place, with a ``SyncBatchNorm2d`` that *shares* its parameters and buffers
(the same ``Parameter`` objects and arrays, so an optimizer or EMA built before still holds the right ones, and the
state-dict keys do not change). The fused BN + ReLU of ``nn.ConvBNReLU`` keeps working: its ``bn`` is replaced
too and called with ``relu=True`` as before.

In evaluation mode a ``SyncBatchNorm2d`` is an ordinary batch norm (running statistics, no communication).
"""
from minception import nn

from .sync_bn_function import SyncBatchNorm


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are summed over the ranks of ``comm``.

    Build one from an existing layer with ``SyncBatchNorm2d.from_batch_norm(bn, comm)``, or use
    ``sync_batch_norm(model)`` for a whole network. Every rank must run its forward and backward passes through
    the same sequence of layers (each layer's two all-reduces must meet their partners on the other ranks).

    Shape:
        x: (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, num_features, eps=1e-3, momentum=0.1, comm=None):
        super().__init__(num_features, eps=eps, momentum=momentum)
        if comm is None:
            from .environment import init
            comm = init()
        self.comm = comm

    @classmethod
    def from_batch_norm(cls, bn, comm=None):
        """A ``SyncBatchNorm2d`` sharing ``bn``'s parameters, buffers, mode, hooks and name."""
        sync = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum, comm=comm)
        sync.weight, sync.bias = bn.weight, bn.bias
        for name, array in bn._buffers.items():
            sync.register_buffer(name, array, persistent=name not in bn._non_persistent)
        sync.train(bn.training)
        for attr in ("_scope_name", "_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            sync.__dict__[attr] = bn.__dict__[attr]
        return sync

    def forward(self, x, relu=False):
        if not self.training:
            return super().forward(x, relu=relu)           # running statistics: nothing to synchronise
        self.num_batches_tracked += 1
        fn = SyncBatchNorm(self.comm, self.momentum, self.eps, self.running_mean, self.running_var, relu=relu)
        return fn(x, self.weight, self.bias)

    def extra_repr(self):
        return super().extra_repr() + f", ranks={self.comm.size}"


def sync_batch_norm(model, comm=None):
    """Replace every ``nn.BatchNorm2d`` in ``model`` by a ``SyncBatchNorm2d`` sharing its state. In place;
    returns ``model`` (which may itself be replaced when it *is* a BatchNorm2d: use the return value).
    """
    if comm is None:
        from .environment import init
        comm = init()
    if isinstance(model, nn.BatchNorm2d) and not isinstance(model, SyncBatchNorm2d):
        return SyncBatchNorm2d.from_batch_norm(model, comm)
    for _, module in model.named_modules():
        for name, child in list(module._modules.items()):
            if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SyncBatchNorm2d):
                setattr(module, name, SyncBatchNorm2d.from_batch_norm(child, comm))
    return model

