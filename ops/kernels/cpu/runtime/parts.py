"""Elementwise NumPy work cut into parts along the batch axis, the parts run on the fast tier's CPU threads.

``in_parts(fn, out, *arrays)`` computes ``fn(*arrays, out)`` (an elementwise NumPy call that writes into
``out``) with ``out`` and the arrays cut into slices along axis 0, the slices running at the same time
(``threads.parallel_for``). The result is the plain call's, bit for bit: each element is computed by the same
NumPy loop, only on another thread. ``contiguous(a)`` is ``np.ascontiguousarray`` with the copy made that way.

Elementwise work is memory-bound, and waking a sleeping pool thread has a fixed cost, so only outputs of at least
``PARALLEL_MIN_BYTES`` are split (measurements: ``docs/performance.md``, section "CPU runtime").
"""
import numpy as np

from . import threads

#: elementwise NumPy work below this many output bytes runs in the calling thread
PARALLEL_MIN_BYTES = 4 << 20


def in_parts(fn, out, *arrays):
    """Compute ``fn(*arrays, out)`` (an elementwise NumPy call writing into ``out``) and return ``out``.

    Readable meaning: ``fn(*arrays, out)``. For NumPy arrays of at least ``PARALLEL_MIN_BYTES``: ``out`` and every
    array with the same leading length are cut into slices along axis 0, and ``fn`` runs on the slices in
    parallel. Arrays with another leading length (scalars, broadcast operands) are passed whole to every piece,
    so broadcasting works as in the plain call.

    Shape:
        out: (N, ...); arrays: (N, ...) or anything that broadcasts against a slice (n, ...) of out
    """
    n = out.shape[0] if out.ndim else 0
    if n < 2 or out.nbytes < PARALLEL_MIN_BYTES or not isinstance(out, np.ndarray):
        fn(*arrays, out)
        return out

    def piece(lo, hi):
        fn(*[a[lo:hi] if getattr(a, "ndim", 0) == out.ndim and a.shape[0] == n else a for a in arrays],
           out[lo:hi])

    threads.parallel_for(piece, n, nbytes=out.nbytes)
    return out


def _copy_into(a, out):
    np.copyto(out, a)


def contiguous(a):
    """``np.ascontiguousarray(a)`` for a NumPy array, the copy (when one is needed) made on all cores for big
    arrays. Gradients arriving through a channel concatenation are strided views of the concat's gradient; the
    kernels want C-order arrays, and a one-core copy of a whole activation would leave the other cores idle."""
    if a.flags.c_contiguous:
        return a
    return in_parts(_copy_into, np.empty(a.shape, a.dtype), a)
