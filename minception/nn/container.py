"""Containers: ``Sequential`` (a chain) and ``Concat`` (parallel branches joined along channels)."""
from collections import OrderedDict

import ops

from .module import Module


def _named_items(kind, modules, named):
    """Accept ``*modules``, one dict/OrderedDict of name -> module, and/or keyword modules."""
    if len(modules) == 1 and isinstance(modules[0], dict):
        items = list(modules[0].items())
    else:
        items = [(None, m) for m in modules]
    items += list(named.items())
    for name, m in items:
        if not isinstance(m, Module):
            raise TypeError(f"{kind}: every entry must be a Module, got {type(m).__name__}"
                            + (f" for {name!r}" if name else ""))
    return items


class Sequential(Module):
    """Apply modules one after another; children are named "0", "1", ... or by the names of an OrderedDict.

    ``Sequential(conv, bn, relu)`` or ``Sequential(OrderedDict(conv=conv, bn=bn))``. Supports ``len``,
    iteration, indexing (``seq[0]``, ``seq[-1]``, ``seq[1:]`` gives a new Sequential) and ``append``.

    Shape:
        x: whatever the first module takes -> whatever the last module returns
    """

    def __init__(self, *modules):
        super().__init__()
        for i, (name, m) in enumerate(_named_items("Sequential", modules, {})):
            self.add_module(str(i) if name is None else name, m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[index][1]


class Concat(Module):
    """Run every branch on the same input and concatenate the results along ``axis`` (channels by default).

    Branches are named "branch_0", "branch_1", ... in the order given; names can be chosen instead with an
    OrderedDict (``Concat(OrderedDict(branch_0=a, pool=b))``) or keywords (``Concat(left=a, right=b)``).
    The order of concatenation is the order of registration. ``fuse()`` merges the branches' leading 1x1
    ``ConvBNReLU`` units into one conv (``nn.fusion``; the same numbers).

    Shape:
        x: (N, C, H, W) -> (N, sum of the branches' channels, H', W'); every branch must give the same H', W'
    """

    def __init__(self, *branches, axis=1, **named_branches):
        super().__init__()
        items = _named_items("Concat", branches, named_branches)
        if not items:
            raise ValueError("Concat: needs at least one branch")
        for i, (name, m) in enumerate(items):
            self.add_module(f"branch_{i}" if name is None else name, m)
        self.axis = axis

    def forward(self, x):
        return ops.concat([branch(x) for branch in self._modules.values()], axis=self.axis)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def extra_repr(self):
        return f"axis={self.axis}"
