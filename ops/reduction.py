"""Reductions: sum, mean and max over an axis (or all axes), with ``keepdims``."""
from autograd import Function
from autograd.backend import get_array_module


def _normalize_axis(op, axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes))


def _expand(gy, axes, x_shape):
    """Put back the reduced axes (as size 1) so ``gy`` broadcasts against the input."""
    shape = [1 if i in axes else n for i, n in enumerate(x_shape)]
    return gy.reshape(shape)


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_expand(gy, self.axes, self.x_shape), self.x_shape).copy()


class Mean(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        count = 1
        for a in self.axes:
            count *= self.x_shape[a]
        g = _expand(gy, self.axes, self.x_shape) / count
        return xp.broadcast_to(g.astype(gy.dtype, copy=False), self.x_shape).copy()


class Max(Function):
    """Maximum over axes. The gradient goes to the first maximal element of each reduced slice
    (the same tie rule as max pooling), so it is a valid subgradient and deterministic."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        xp = get_array_module(x)
        self.x_shape = x.shape
        # move reduced axes last and flatten them, so one argmax finds the first maximum in row-major order
        kept = [i for i in range(x.ndim) if i not in self.axes]
        moved = xp.transpose(x, kept + list(self.axes)).reshape([x.shape[i] for i in kept] + [-1])
        self.kept = kept
        self.index = moved.argmax(axis=-1)
        y = xp.take_along_axis(moved, self.index[..., None], axis=-1)[..., 0]
        if self.keepdims:
            y = y.reshape([1 if i in self.axes else n for i, n in enumerate(x.shape)])
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        kept_shape = [self.x_shape[i] for i in self.kept]
        reduced = [self.x_shape[i] for i in self.axes]
        g = xp.zeros(kept_shape + [int(_prod(reduced))], dtype=gy.dtype)
        xp.put_along_axis(g, self.index[..., None], gy.reshape(kept_shape + [1]), axis=-1)
        g = g.reshape(kept_shape + reduced)
        inverse = xp.argsort(xp.asarray(self.kept + list(self.axes))).tolist()
        return xp.ascontiguousarray(xp.transpose(g, inverse))


def _prod(values):
    p = 1
    for v in values:
        p *= v
    return p


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (int, tuple or None for all)."""
    return Sum(_normalize_axis("sum", axis, x.ndim), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (int, tuple or None for all)."""
    return Mean(_normalize_axis("mean", axis, x.ndim), keepdims)(x)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; ties send the gradient to the first maximum in row-major order."""
    return Max(_normalize_axis("max", axis, x.ndim), keepdims)(x)
