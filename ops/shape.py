"""Ops that move values without computing new ones: reshape, transpose, flatten, indexing, concat, split."""
import numpy as np

from autograd import Function, Tensor
from autograd.backend import get_array_module

from . import kernels


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        return gy.transpose(np.argsort(self.axes).tolist())


class GetItem(Function):
    """``x[index]`` for basic and advanced NumPy indices; repeated indices accumulate their gradients."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.x_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy            # basic slices never repeat an element
        else:
            _scatter_add(xp, gx, self.index, gy)
        return gx


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


def _scatter_add(xp, gx, index, gy):
    """gx[index] += gy with repeated indices summed, by the active tier's ``scatter`` kernel on flat positions
    (``ops/kernels/reference/scatter.py``: np.bincount; the fast tier's GPU kernel is deterministic)."""
    positions = xp.arange(gx.size).reshape(gx.shape)[index]
    kernels.lookup("scatter", gx).scatter_add(gx.reshape(-1), positions.reshape(-1),
                                             gy.reshape(-1).astype(gx.dtype, copy=False))


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return kernels.lookup("elementwise", xs[0]).concatenate(xs, self.axis)     # the active tier's copy

    def backward(self, gy):
        # Each input's gradient is its slice of gy: a view, not a copy. The ops that receive these gradients
        # either work on strided arrays directly (ReLU's multiply, a nested concat's split) or make them
        # contiguous themselves (conv, batch norm, pooling), so a copy here would be one more pass over the
        # block's output for nothing (Inception blocks: 10-30% of the activations each step).
        xp = get_array_module(gy)
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(g if need else None for g, need in zip(xp.split(gy, bounds, axis=self.axis), self.needs_input_grad))


class Split(Function):
    def __init__(self, sizes, axis):
        self.sizes, self.axis = sizes, axis

    def forward(self, x):
        xp = get_array_module(x)
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp.split(x, bounds, axis=self.axis))

    def backward(self, *gys):
        return get_array_module(*gys).concatenate(gys, axis=self.axis)


def reshape(x, shape):
    """A tensor with the same values in ``shape`` (one entry may be -1)."""
    shape = tuple(shape)
    size = int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and size != x.size) or (-1 in shape and (size == 0 or x.size % size)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}")
    return Reshape(shape)(x)


def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None)."""
    if axes is not None and sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Transpose(None if axes is None else tuple(a % x.ndim for a in axes))(x)


def flatten(x, start_axis=1):
    """Merge the axes from ``start_axis`` on: (N, C, H, W) -> (N, C*H*W)."""
    return reshape(x, x.shape[:start_axis] + (-1,))


def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index)(x)


def concat(tensors, axis=1):
    """Join tensors along ``axis``; every other axis must match.

    Shape:
        inputs ``(N, C_i, H, W)`` with ``axis=1`` -> ``(N, sum C_i, H, W)``.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    ndim = tensors[0].ndim
    ax = axis % ndim
    for i, t in enumerate(tensors):
        if t.ndim != ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if k != ax):
            shapes = ", ".join(str(tuple(u.shape)) for u in tensors)
            raise ValueError(f"concat: along axis {axis} all other axes must match; got shapes {shapes}")
    return Concat(ax)(*tensors)


def split(x, sizes, axis=1):
    """Split ``x`` along ``axis`` into pieces of the given ``sizes`` (a list) or into ``sizes`` equal parts (an int)."""
    ax = axis % x.ndim
    n = x.shape[ax]
    if isinstance(sizes, int):
        if sizes <= 0 or n % sizes:
            raise ValueError(f"split: cannot split axis {axis} of size {n} into {sizes} equal parts")
        sizes = [n // sizes] * sizes
    if sum(sizes) != n or any(s <= 0 for s in sizes):
        raise ValueError(f"split: sizes {list(sizes)} must be positive and add up to {n} (axis {axis} of {x.shape})")
    return Split(list(sizes), ax)(x)
