"""Contract check calls of the ``im2col`` family (``ops/kernels/reference/im2col.py``)."""

from .call import Call

FUNCTIONS = ("im2col", "col2im")

#: (x shape, kernel_size, stride, padding): odd, non-square shapes, a stride > 1 and padding > 0
GEOMETRIES = [((2, 3, 7, 5), (3, 2), (2, 1), (1, 0)),
              ((1, 2, 6, 9), (2, 3), (1, 2), (0, 1)),
              ((2, 1, 5, 5), (3, 3), (2, 2), (1, 1))]


def calls(rng, dtype):
    for shape, k, s, p in GEOMETRIES:
        x = rng.standard_normal(shape).astype(dtype)
        n, c, h, w = shape
        oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
        cols = rng.standard_normal((c * k[0] * k[1], n * oh * ow)).astype(dtype)
        yield Call("im2col", dict(x=x, kernel_size=k, stride=s, padding=p), ("cols",),
                   shapes={"cols": "(C*kh*kw, N*OH*OW)"})
        yield Call("col2im", dict(cols=cols, x_shape=shape, kernel_size=k, stride=s, padding=p), ("dx",),
                   shapes={"dx": "x_shape"})
