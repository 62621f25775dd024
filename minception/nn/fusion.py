"""``fuse(model)``: run the leading 1x1 convs of sibling branches as one conv. A rewrite for speed, never the default.

A model as built runs one conv per box of the paper's figures, and ``autograd.trace`` and ``graph.render`` show
exactly those boxes. ``model.fuse()`` (or ``nn.fuse(model)``) then rewrites it for speed; the training example
and the benchmarks call it, right after building the model.

Why it pays. Most branches of an Inception block start with a 1x1 conv unit (``ConvBNReLU``) on the block's
input. Run one by one, each is a thin matrix product (8 to 48 output channels in the scaled networks) that reads
the whole input, and in the backward pass each returns a full-size gradient for the input, which the engine then
adds up. Stacked, they are *one* conv whose weight is the units' weights concatenated along the output channels:
one wider product and one input gradient.

What it rewrites. In every module that is not a ``Sequential`` (a block: its children are branches, not a
chain), the children that are, or begin with, a 1x1 ``ConvBNReLU`` (stride 1, no padding) with the same number
of input channels form a group. Each of these units is replaced by a ``FusedHead`` that keeps the unit's own
``conv`` and ``bn``: the parameters are the same objects, under the same state-dict keys, so an optimizer built
before ``fuse()`` and every checkpoint still fit. When the block calls the first head of a group on ``x``, the
group's ``MergedHeads`` runs::

    weight = ops.concat([head.conv.weight for head in heads], axis=0)       # (sum of out_channels, C, 1, 1)
    parts = ops.split(ops.conv2d(x, weight), [out_channels of each head], axis=1)

and keeps the parts; each head then takes its own part (``= head.conv(x)``) and runs its own batch norm and ReLU.
Each weight gets its own gradient through the concat, and ``x`` one gradient instead of one per head. The block's
``forward`` does not change. The numbers are those of the unfused model up to float rounding in the products.

In a trace, the merged conv (and the weight concat and the split) is recorded inside the first head that ran,
under a name that lists every conv it stands for: ``inception_a_1.branch0.conv+branch1.0.conv+branch2.0.conv``
reads "the convs ``branch0.conv``, ``branch1.0.conv`` and ``branch2.0.conv`` of ``inception_a_1``".

A head runs its own conv, as before ``fuse()``, when nothing would be gained or something could tell: when its
conv has hooks (they expect the conv to be called; a unit that has hooks when ``fuse()`` runs is left as it is),
when fewer than two heads of the group fit the input, when the input is small next to the weights
(``WEIGHT_COPY_RATIO``), or when it is called on another input than the one its siblings' parts came from
(the group then starts over on the new input: the answer is always the head's own conv of its own input).
Each thread keeps its own parts, so threads that run the same fused model at once do not mix them.
"""
import threading

import ops
from autograd import is_grad_enabled, name_scope

from .container import Sequential
from .conv_bn_relu import ConvBNReLU
from .module import Module

#: Merge only when the input has at least this many pixels (N*H*W) per merged output channel: the merge copies
#: the weights (out_channels x C values) on every call, which must stay small next to the input (C x N*H*W) that
#: the separate convs would each read. (Batch-1 inference of the full Inception-v4 has 17x17 and 8x8 blocks whose
#: heads have 768-1,024 output channels; copying their weights there costs more than the merge saves.)
WEIGHT_COPY_RATIO = 4


def fuse(model):
    """Rewrite ``model`` in place so that sibling 1x1 head units run as one conv (see the module docstring).

    Returns ``model``. Running it again changes nothing.
    """
    for block in list(model.modules()):
        if isinstance(block, Sequential):
            continue
        groups = {}                                # in_channels -> [(path in block, owner, key, unit), ...]
        for name, child in block.named_children():
            owner, key, unit, path = block, name, child, name
            if isinstance(child, Sequential) and len(child):
                key = next(iter(child._modules))
                owner, unit, path = child, child._modules[key], f"{name}.{key}"
            if _mergeable(unit):
                groups.setdefault(unit.conv.in_channels, []).append((path, owner, key, unit))
        for heads in groups.values():
            if len(heads) < 2:
                continue
            group = MergedHeads([path for path, _, _, _ in heads])
            for index, (_, owner, key, unit) in enumerate(heads):
                head = FusedHead(unit, group, index)
                owner.add_module(key, head)
                group.heads.append(head)
    return model


def _mergeable(unit):
    """A 1x1, stride-1, unpadded ``ConvBNReLU`` without hooks, not already fused."""
    if not isinstance(unit, ConvBNReLU) or isinstance(unit, FusedHead):
        return False
    conv = unit.conv
    if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.padding != (0, 0) or conv.bias is not None:
        return False
    return not any(m.has_hooks() for m in (unit, conv, unit.bn))


class MergedHeads:
    """The shared part of one group of heads: the heads, their paths in the block, and, per thread, the parts of
    the last merged conv that no head has taken yet (with the input they came from)."""

    def __init__(self, paths):
        self.paths = list(paths)        # e.g. ["branch0", "branch1.0", "branch2.0"]
        self.heads = []                 # the FusedHead modules, in the same order (fuse() fills it)
        self._pending = {}              # thread id -> (input, grad mode, {head index: part})

    def conv_part(self, index, x):
        """``heads[index].conv(x)``, taken from one conv of ``x`` with every head's weight.

        Shape:
            x: (N, C, H, W) -> (N, heads[index].conv.out_channels, H, W)
        """
        thread = threading.get_ident()
        pending = self._pending.get(thread)
        if pending is None or pending[0] is not x or pending[1] != is_grad_enabled() or index not in pending[2]:
            members = self._members(x)
            if index not in members:
                return self.heads[index].conv(x)
            pending = self._pending[thread] = (x, is_grad_enabled(), self._merge(x, members, index))
        parts = pending[2]
        part = parts.pop(index)
        if not parts:
            del self._pending[thread]   # every part taken: keep no reference to the input
        return part

    def _members(self, x):
        """The heads that take part in a merged conv of ``x`` (none: each runs its own conv)."""
        if x.ndim != 4:
            return []
        members = [i for i, head in enumerate(self.heads) if not head.conv.has_hooks()
                   and head.conv.in_channels == x.shape[1] and head.conv.weight.dtype == x.dtype]
        pixels = x.shape[0] * x.shape[2] * x.shape[3]
        if len(members) < 2 or pixels < WEIGHT_COPY_RATIO * sum(self.heads[i].conv.out_channels for i in members):
            return []
        return members

    def _merge(self, x, members, caller):
        """One conv of ``x`` with the weights of ``members``; returns {head index: its part of the output}."""
        convs = [self.heads[i].conv for i in members]
        others = [f"{self.paths[i]}.conv" for i in members if i != caller]
        with name_scope("+".join(["conv"] + others)):         # inside the caller's scope: ".conv+b.conv+..."
            weight = ops.concat([conv.weight for conv in convs], axis=0)
            parts = ops.split(ops.conv2d(x, weight), [conv.out_channels for conv in convs], axis=1)
        return dict(zip(members, parts))


class FusedHead(ConvBNReLU):
    """A branch's 1x1 head unit after ``fuse()``: the unit's own ``conv`` and ``bn``, its conv run as its part of
    the group's merged conv (``MergedHeads.conv_part``).

    Shape:
        x: (N, in_channels, H, W) -> (N, out_channels, H, W)
    """

    def __init__(self, unit, group, index):
        Module.__init__(self)                 # not ConvBNReLU.__init__: the conv and bn are the unit's own
        self.fuse_relu = unit.fuse_relu
        self.conv = unit.conv
        self.bn = unit.bn
        self.group, self.index = group, index

    def forward(self, x):
        y = self.group.conv_part(self.index, x)            # = self.conv(x)
        if self.fuse_relu:
            return self.bn(y, relu=True)
        return ops.relu(self.bn(y))

    def extra_repr(self):
        others = [p for i, p in enumerate(self.group.paths) if i != self.index]
        return f"conv merged with {', '.join(others)}"


def _fuse_method(self):
    """Rewrite this module for speed: sibling branches' leading 1x1 conv units run as one conv; returns self.

    The same outputs and gradients up to float rounding, the same Parameter objects under the same state-dict
    keys (optimizers and checkpoints still fit); a trace then shows the merged convs. ``nn.fuse(model)`` is the
    same call; see the ``minception.nn.fusion`` docstring for what is merged and when.
    """
    return fuse(self)


_fuse_method.__name__ = _fuse_method.__qualname__ = "fuse"
Module.fuse = _fuse_method       # ``model.fuse()``: module.py cannot import this file (it builds on Module)
