"""Contract check calls of the ``batch_norm`` family (``ops/kernels/reference/batch_norm.py``)."""

from ..reference import batch_norm as reference
from .call import Call

FUNCTIONS = ("forward_train", "forward_eval", "backward_train", "backward_eval", "update_running_stats")

SHAPES = [(3, 4, 5), (2, 3, 1), (5, 2, 7)]       # (N, C, L)


def calls(rng, dtype):
    eps = 1e-3
    for shape in SHAPES:
        c = shape[1]
        x = (rng.standard_normal(shape) * 2.0 + 1.0).astype(dtype)
        gamma, beta = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
        rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        stats = {"mean": "(C,) float64", "var": "(C,) float64", "invstd": "(C,) float64"}
        grads = ("gx", "ggamma", "gbeta")
        for relu in (False, True):
            yield Call("forward_train", dict(x=x, gamma=gamma, beta=beta, eps=eps, relu=relu),
                       ("y", "mean", "var", "invstd"), shapes={"y": "(N, C, L)", **stats}, keywords=("relu",))
            yield Call("forward_eval", dict(x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv, eps=eps,
                                            relu=relu), ("y", "invstd"), shapes={"y": "(N, C, L)", **stats},
                       keywords=("relu",))
            y, mean, _, invstd = reference.forward_train(x, gamma, beta, eps, relu=relu)
            yield Call("backward_train", dict(gy=gy, x=x, mean=mean, invstd=invstd, gamma=gamma,
                                              y=y if relu else None), grads, keywords=("y",))
            y, invstd = reference.forward_eval(x, gamma, beta, rm, rv, eps, relu=relu)
            yield Call("backward_eval", dict(gy=gy, x=x, running_mean=rm, invstd=invstd, gamma=gamma,
                                             y=y if relu else None), grads, keywords=("y",))
        _, mean, var, _ = reference.forward_train(x, gamma, beta, eps)
        yield Call("update_running_stats", dict(running_mean=rm, running_var=rv, mean=mean, var=var, momentum=0.1,
                                                count=shape[0] * shape[2]), (),
                   in_place=("running_mean", "running_var"))
