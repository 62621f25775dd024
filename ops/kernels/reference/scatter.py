"""The scatter-add of the fancy-indexing backward in plain array code: the reference.

Contract of the ``scatter`` family::

    scatter_add(gx, positions, values) -> None
        gx:        (S,) float32 or float64, C-contiguous: changed in place
        positions: (K,) integer, every entry in [0, S); repeats allowed
        values:    (K,) gx's dtype
    gx[positions[k]] += values[k] for every k; the values of a repeated position add up in float64, in the order
    of k, starting from 0, and the total is added to gx in gx's dtype. positions and values must not change.

The backward of ``x[idx]`` with an integer array ``idx`` must add up the gradients of every copy of a repeated
element: ``gx[idx] += gy`` would keep only one of them. ``bincount`` with weights is exactly the sum described
above. ``np.add.at`` would compute the same, much more slowly.

On the GPU, ``cupy.bincount`` adds with atomics in an order that changes from run to run, so its float64 sums may
differ in the last bits between runs; the fast tier's kernel (``ops/kernels/cuda/scatter.py``) does np.bincount's
additions in np.bincount's order, bit for bit.
"""
import numpy as np

from autograd.backend import get_array_module


def scatter_add(gx, positions, values):
    """``gx[positions[k]] += values[k]`` for every k, in place, repeated positions summed in float64.

    Shape:
        gx: (S,), positions: (K,), values: (K,) -> None (gx changed)
    """
    xp = get_array_module(gx)
    totals = xp.bincount(positions, weights=values.astype(np.float64), minlength=gx.size)   # (S,) float64
    gx += totals.astype(gx.dtype)
