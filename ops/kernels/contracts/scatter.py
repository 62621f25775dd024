"""Contract check calls of the ``scatter`` family (``ops/kernels/reference/scatter.py``)."""

from .call import Call

FUNCTIONS = ("scatter_add",)


def calls(rng, dtype):
    for size, count in ((7, 20), (13, 5)):
        gx = rng.standard_normal(size).astype(dtype)
        positions = rng.integers(0, size, count)                  # repeats
        values = rng.standard_normal(count).astype(dtype)
        yield Call("scatter_add", dict(gx=gx, positions=positions, values=values), (), in_place=("gx",))
