"""Contract check calls of the ``conv2d`` family (``ops/kernels/reference/conv2d.py``)."""
from .call import Call

FUNCTIONS = ("forward", "backward")

#: (x shape, weight shape, stride, padding, bias): odd, non-square shapes and kernels, stride > 1, padding > 0,
#: and a 1x1 kernel (the fast tiers' shortcut)
GEOMETRIES = [((2, 3, 7, 5), (4, 3, 3, 2), (2, 1), (1, 1), True),
              ((1, 2, 6, 9), (3, 2, 1, 3), (1, 2), (0, 1), False),
              ((3, 5, 4, 3), (2, 5, 1, 1), (1, 1), (0, 0), True)]


def calls(rng, dtype):
    for x_shape, w_shape, s, p, has_bias in GEOMETRIES:
        x = rng.standard_normal(x_shape).astype(dtype)
        weight = rng.standard_normal(w_shape).astype(dtype)
        bias = rng.standard_normal(w_shape[0]).astype(dtype) if has_bias else None
        n, _, h, w = x_shape
        oh, ow = (h + 2 * p[0] - w_shape[2]) // s[0] + 1, (w + 2 * p[1] - w_shape[3]) // s[1] + 1
        gy = rng.standard_normal((n, w_shape[0], oh, ow)).astype(dtype)
        yield Call("forward", dict(x=x, weight=weight, bias=bias, stride=s, padding=p), ("y",),
                   shapes={"y": "(N, Cout, OH, OW)"})
        for need_x, need_w in ((True, True), (True, False), (False, True)):
            yield Call("backward", dict(x=x, weight=weight, gy=gy, stride=s, padding=p, need_x=need_x,
                                        need_w=need_w), ("dx", "dweight"),
                       shapes={"dx": "x.shape", "dweight": "weight.shape"})
