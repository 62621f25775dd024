"""Making every replica start from the same point: broadcast rank 0's parameters and buffers.

Data parallelism keeps one copy of the model per rank and relies on every copy staying identical: the same
starting values plus the same averaged gradient each step give the same values after it. Seeding the
initialisation the same everywhere usually gives equal starting values too, but "usually" is not enough (a
rank that seeded differently, or loaded other weights, would drift silently), so the values are copied from
rank 0 once, before training, and on every rank at the same time.
"""
from autograd.backend import get_array_module


def broadcast_parameters(model, comm=None, root=0):
    """Overwrite every parameter and buffer of ``model`` with the values of rank ``root``, in place.

    Parameters and buffers are visited in the order of their names (the same on every rank); a buffer that is
    ``None`` is skipped. Single process: returns at once. Returns ``model``.
    """
    if comm is None:
        from .environment import init
        comm = init()
    if comm.size == 1:
        return model
    arrays = sorted([(name, p.data) for name, p in model.named_parameters()]
                    + [(name, b) for name, b in model.named_buffers() if b is not None], key=lambda item: item[0])
    for _, array in arrays:
        broadcast_array_(comm, array, root)
    return model


def broadcast_array_(comm, array, root=0):
    """``comm.broadcast_`` for any array, contiguous or not (a strided one goes through a contiguous copy)."""
    if array.flags.c_contiguous:
        return comm.broadcast_(array, root)
    xp = get_array_module(array)
    staging = xp.ascontiguousarray(array)
    comm.broadcast_(staging, root)
    array[...] = staging
    return array

