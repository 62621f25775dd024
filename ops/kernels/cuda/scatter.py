"""``gx[positions] += values`` with repeated positions summed, on the GPU, deterministically.

The backward of advanced indexing (``x[idx]`` with an integer array) must add up the gradients of every copy of
a repeated element. The CPU path (``ops.shape``) uses ``np.bincount`` with float64 weights, which adds the
values of each position in the order they come. ``cupy.bincount`` with weights uses atomic additions whose order
changes from run to run, so its float64 sums differ in the last bits between runs: the one non-deterministic op
the GPU path had.

Here the values are grouped by position with a sort whose keys are all different (``position * K + original
number``, K the number of values), so every sort gives the same permutation, and within a position the values
stay in their original order. One GPU thread per sorted entry then checks whether it starts a run of equal
positions; if so it adds up the run in float64, in that order, and writes the total. These are the additions
``np.bincount`` does, in the same order: the result equals the CPU's bit for bit.

A run is summed by one thread, so a position repeated a million times costs a million sequential additions; the
op is for gradients of fancy indexing, which are rare and small (the training step does not use it).
"""
import functools

import numpy as np

_SUM_RUNS = """
if (i == 0 || sorted_pos[i] != sorted_pos[i - 1]) {      // this entry starts a run of equal positions
    const long long p = sorted_pos[i];
    double total = 0.0;
    for (long long k = i; k < count && sorted_pos[k] == p; ++k) {
        total += (double)values[order[k]];                   // original order within the run
    }
    gx[p] = gx[p] + (T)total;
}
"""


@functools.lru_cache(maxsize=None)
def _kernel():
    import cupy
    return cupy.ElementwiseKernel("raw int64 sorted_pos, raw int64 order, raw T values, int64 count", "raw T gx",
                                  _SUM_RUNS, "minception_scatter_add_runs")


def scatter_add(gx, positions, values):
    """Add ``values[k]`` to ``gx[positions[k]]`` for every k, in place; repeated positions accumulate.

    Args:
        gx: 1-D C-contiguous CuPy array (a flat view of the gradient being filled).
        positions: integer CuPy array of flat positions into ``gx`` (any shape; K values).
        values: CuPy array of ``gx``'s dtype with as many elements as ``positions``.

    Shape:
        gx: (S,), positions: (K,) or any shape of K elements, values: same number of elements -> gx (S,)
    """
    import cupy
    if not (isinstance(gx, cupy.ndarray) and gx.ndim == 1 and gx.flags.c_contiguous):
        raise ValueError("scatter_add (GPU): gx must be a 1-D C-contiguous CuPy array")
    if values.dtype != gx.dtype or values.size != positions.size:
        raise ValueError(f"scatter_add (GPU): values must be {positions.size} {gx.dtype} numbers, "
                         f"got {values.size} {values.dtype}")
    count = positions.size
    if count == 0:
        return gx
    if gx.size * count >= 2 ** 63:
        raise ValueError(f"scatter_add (GPU): {count} positions into {gx.size} elements is too large for its "
                         "int64 sort keys")
    pos = positions.reshape(-1).astype(np.int64, copy=False)
    values = cupy.ascontiguousarray(values.reshape(-1))
    order = cupy.argsort(pos * count + cupy.arange(count, dtype=np.int64))   # unique keys: one permutation
    sorted_pos = cupy.ascontiguousarray(pos[order])
    _kernel()(sorted_pos, order, values, count, gx, size=count)
    return gx
