"""Contract check calls of the ``elementwise`` family (``ops/kernels/reference/elementwise.py``)."""
from .call import Call

FUNCTIONS = ("relu", "relu_backward", "add", "multiply", "concatenate", "residual_add", "residual_add_backward")


def calls(rng, dtype):
    def sample(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, r, gy = sample(3, 4, 5, 2), sample(3, 4, 5, 2), sample(3, 4, 5, 2)
    yield Call("relu", dict(x=x), ("y",))
    yield Call("relu_backward", dict(gy=gy, y=x.clip(min=0)), ("gx",))
    for a, b in ((x, r), (x, sample(4, 1, 1)), (sample(3, 1, 5, 2), x)):      # same shapes, then broadcasting
        yield Call("add", dict(a=a, b=b), ("y",))
        yield Call("multiply", dict(a=a, b=b), ("y",))
    yield Call("concatenate", dict(xs=[sample(3, 2, 4, 5), sample(3, 1, 4, 5), sample(3, 4, 4, 5)], axis=1), ("y",))
    yield Call("concatenate", dict(xs=[sample(2, 3), sample(1, 3)], axis=0), ("y",))
    scale = dtype(0.17)
    for relu in (True, False):
        y = x + scale * r
        yield Call("residual_add", dict(x=x, r=r, scale=scale, relu=relu), ("y",))
        for need_x, need_r in ((True, True), (False, True), (True, False)):
            yield Call("residual_add_backward", dict(gy=gy, y=y.clip(min=0) if relu else None, scale=scale,
                                                     need_x=need_x, need_r=need_r), ("gx", "gr"))
