"""``run_branches``: run the branches of an Inception block on the same input, their leading 1x1 convs as one.

Readable meaning: ``[branch(x) for branch in branches]``.

Most Inception branches start with a 1x1 conv unit (``ConvBNReLU``) on the block's input. Run one by one, each of
these is a thin matrix product (8 to 48 output channels in the scaled networks) that reads the whole input, and in
the backward pass each one returns a full-size gradient for the input, which the engine then adds up. Stacked,
they are *one* conv whose weight is the units' weights concatenated along the output channels (``ops.concat`` of
the weights, so each unit's weight still gets its own gradient): one bigger product, one input gradient. Its
output is split by channels and each part goes through its own unit's batch norm (with the ReLU) and the rest of
its branch. The numbers are those of the branches run one by one, up to float rounding in the products.

What the merge saves, measured: docs/performance.md ("Fused ops and merged branch heads").

A branch's head is merged only when nothing can tell the difference: it is a ``ConvBNReLU`` (the branch itself or
the first module of a ``Sequential`` branch) with a 1x1 kernel, stride 1, no padding and ``fuse_relu``, and none
of the branch, the unit, its conv or its bn has hooks (a hook expects its module to be called); and only when the
input is big next to the weights (``WEIGHT_COPY_RATIO``). Set ``MERGE_HEADS = False`` (module attribute) to run
every branch as written, one by one.
"""
from autograd.config import name_scope

import ops

from .container import Sequential
from .conv_bn_relu import ConvBNReLU

#: merge the leading 1x1 units of sibling branches into one conv (False: run the branches one by one)
MERGE_HEADS = True
#: ... only when the input has at least this many pixels (N*H*W) per merged output channel: the merge copies the
#: weights (out_channels x C values) on every call, which must stay small next to the input (C x N*H*W) that
#: the separate convs would each read. (Batch-1 inference of full Inception-v4 has 17x17 and 8x8 blocks whose
#: heads have 768-1,024 output channels: copying their weights made it 10% slower.)
WEIGHT_COPY_RATIO = 4


def _head(branch):
    """``(unit, rest)`` when ``branch`` starts with a mergeable 1x1 unit (``rest``: the modules after it), else
    None."""
    if isinstance(branch, ConvBNReLU):
        unit, rest = branch, []
    elif isinstance(branch, Sequential) and len(branch) and isinstance(branch[0], ConvBNReLU):
        unit, rest = branch[0], list(branch)[1:]
    else:
        return None
    conv = unit.conv
    if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.padding != (0, 0) or not unit.fuse_relu:
        return None
    if any(m.has_hooks() for m in (branch, unit, conv, unit.bn)):
        return None
    return unit, rest


def _path(branch, unit):
    """The module path of ``unit`` inside the block, as the module calls would record it."""
    names = [branch._scope_name] if unit is branch else [branch._scope_name, unit._scope_name]
    return [n for n in names if n is not None]


def run_branches(x, *branches):
    """Run every branch on ``x``; returns their outputs, in order.

    Equal to ``[branch(x) for branch in branches]``; the branches' 1x1 head units run as one conv (see the module
    docstring). The merged conv is recorded under the scope ``"<branch>+<branch>..."`` of the heads it stands for.

    Shape:
        x: (N, C, H, W) -> a list with each branch's output
    """
    heads = [_head(b) for b in branches] if MERGE_HEADS else [None] * len(branches)
    merged = [i for i, h in enumerate(heads) if h is not None]
    units = [heads[i][0] for i in merged]
    pixels = x.shape[0] * x.shape[2] * x.shape[3] if x.ndim == 4 else 0
    fits = all(u.conv.in_channels == x.shape[1] and u.conv.weight.dtype == x.dtype for u in units) if x.ndim == 4 \
        else False                   # otherwise each branch reports its own error
    if len(merged) < 2 or not fits or pixels < WEIGHT_COPY_RATIO * sum(u.conv.out_channels for u in units):
        return [branch(x) for branch in branches]
    paths = [_path(branches[i], heads[i][0]) for i in merged]
    with name_scope("+".join(".".join(p) for p in paths)):
        weight = ops.concat([unit.conv.weight for unit in units], axis=0)
        parts = ops.split(ops.conv2d(x, weight), [unit.conv.out_channels for unit in units], axis=1)
    outputs = {}
    for i, part, path in zip(merged, parts, paths):
        unit, rest = heads[i]
        y = _in_scope(path, lambda: unit.bn(part, relu=True))
        for module in rest:
            y = _in_scope(path[:1], lambda m=module, y=y: m(y))
        outputs[i] = y
    return [outputs[i] if i in outputs else branch(x) for i, branch in enumerate(branches)]


def _in_scope(path, call):
    """``call()`` with the module path ``path`` pushed, as calling the modules along it would."""
    if not path:
        return call()
    with name_scope(path[0]):
        return _in_scope(path[1:], call)
