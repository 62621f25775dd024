"""Contract check calls of the ``pooling`` family (``ops/kernels/reference/pooling.py``)."""
import numpy as np

from ..reference import pooling as reference
from .call import Call

FUNCTIONS = ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward")

#: (x shape, kernel_size, stride, padding): odd, non-square shapes, stride > 1, padding > 0 (at most kernel // 2)
GEOMETRIES = [((2, 3, 7, 6), (3, 2), (2, 1), (1, 1)),
              ((1, 2, 9, 5), (3, 3), (2, 2), (1, 0)),
              ((2, 1, 5, 8), (2, 3), (1, 2), (0, 1))]


def calls(rng, dtype):
    for shape, k, s, p in GEOMETRIES:
        size = int(np.prod(shape))
        x = (rng.permutation(size).reshape(shape) / size - 0.5).astype(dtype)     # no ties: distinct values
        window = dict(kernel_size=k, stride=s, padding=p)
        yield Call("max_pool2d_forward", dict(x=x, **window), ("y", "argmax"),
                   shapes={"y": "(N, C, OH, OW)", "argmax": "(N, C, OH, OW)"})
        y, argmax = reference.max_pool2d_forward(x, k, s, p)
        gy = rng.standard_normal(y.shape).astype(dtype)
        yield Call("max_pool2d_backward", dict(gy=gy, argmax=argmax, x_shape=shape, **window), ("gx",),
                   shapes={"gx": "x_shape"})
        for include in (False, True):
            yield Call("avg_pool2d_forward", dict(x=x, **window, count_include_pad=include), ("y",),
                       shapes={"y": "(N, C, OH, OW)"})
            yield Call("avg_pool2d_backward", dict(gy=gy, x_shape=shape, **window, count_include_pad=include),
                       ("gx",), shapes={"gx": "x_shape"})
