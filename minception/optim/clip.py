"""Gradient clipping by global norm (Pascanu, Mikolov & Bengio 2013), as the Inception-v4 paper used.

On the GPU the norm, the clipping factor and the scaled gradients are computed on the device (a multi-tensor
reduction and one scaling launch per dtype, ``ops/kernels/cuda/multi_tensor.py``): nothing waits for the GPU until
the caller reads the norm. ``sync=False`` returns the norm as a device array, so a training loop can read it only
once per logging interval.
"""
import math
import numbers

import numpy as np

from autograd.backend import is_gpu_array
from ops.kernels import multi_tensor

from .optimizer import named_parameters


def grad_norm(params, sync=True):
    """The global L2 norm ``sqrt(sum over parameters of sum(g**2))`` of the gradients that exist.

    One number for all parameters together, so a few huge gradients count once. Returns a Python float; with
    ``sync=False``, a 0-d float64 array on the gradients' device (NumPy on the CPU), read later (e.g. ``float()``)
    without making the host wait for the GPU now.
    """
    grads = [p.grad for _, p in named_parameters(params) if p.grad is not None]
    norm, _ = _global_norm(grads)
    return float(norm) if sync else norm


def _on_gpu(grads):
    gpu = [is_gpu_array(g) for g in grads]
    if any(gpu) and not all(gpu):
        raise ValueError("clip_grad_norm: gradients are on different devices (some on the GPU, some not)")
    return bool(gpu) and gpu[0]


def _global_norm(grads, max_norm=0.0):
    """The global norm as a 0-d float64 array, and (GPU only) the clipping factor as a 1-element device array."""
    if not grads:
        return np.zeros((), np.float64), None
    if _on_gpu(grads):
        norm, factor = multi_tensor.global_norm(grads, max_norm)
        return norm.reshape(()), factor
    total = sum(_sum_of_squares(g) for g in grads)
    return np.asarray(math.sqrt(total), np.float64), None


#: elements converted to float64 at a time by ``_sum_of_squares`` (8 MB of float64)
_CHUNK = 1 << 20


def _sum_of_squares(g):
    """``sum(g**2)`` accumulated in float64 whatever ``g``'s dtype, as the GPU kernel does, so that both devices
    give the same norm (a float32 BLAS dot would round the sum to float32). Converted a chunk at a time, so a
    large float32 gradient needs no float64 copy of its whole.

    Why ``np.einsum`` and not ``np.dot``: ``np.dot`` of two long float64 vectors is OpenBLAS's ``ddot``, which
    wakes OpenBLAS's own threads; they then spin for milliseconds after the call, on the cores the next forward
    pass's convolution threads need. In the training example (clipping, and the norm logged every step) that made
    the convs of the following forward pass 50% slower and the whole step 20% slower (``docs/performance.md``,
    "The plain loop"). ``einsum`` sums the products in NumPy's own loop, on the calling thread."""
    flat = g.ravel()
    if flat.dtype == np.float64:
        return float(np.einsum("i,i->", flat, flat))
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK].astype(np.float64)
        total += float(np.einsum("i,i->", chunk, chunk))
    return total


def clip_grad_norm(params, max_norm, error_if_nonfinite=False, sync=True):
    """Scale all gradients by one factor so that their global norm is at most ``max_norm``.

    ``factor = max_norm / max(norm, max_norm)``: gradients with norm <= max_norm are untouched, larger ones
    are scaled to norm max_norm, direction kept (TF's ``clip_by_global_norm``). Call it between
    ``loss.backward()`` and ``opt.step()``. A clipped ``p.grad`` is replaced by a new array rather than scaled in
    place, so a gradient array shared by two tensors is not scaled twice. (On the GPU every gradient is replaced
    by its scaled copy, the factor being 1 when no clipping is needed: deciding would mean reading the norm.)

    Args:
        params: Tensors, ``(name, Tensor)`` pairs or a dict; parameters whose ``.grad`` is None are ignored.
        max_norm: the largest allowed global norm (> 0). The Inception-v3 paper used 2.0.
        error_if_nonfinite: raise FloatingPointError when the norm is inf or NaN (this reads the norm). Otherwise
            such gradients are left as they are and the non-finite norm is returned, so the caller can skip the
            step.
        sync: return the norm as a Python float. ``False``: as a 0-d float64 array on the gradients' device,
            so that nothing waits for the GPU (not allowed with ``error_if_nonfinite``).

    Returns:
        the global norm *before* clipping.

    Shape:
        each gradient keeps its shape; the result is a scalar.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"clip_grad_norm: max_norm must be a real number, got {type(max_norm).__name__}")
    if not max_norm > 0:       # also refuses NaN; inf is allowed (the norm is computed, nothing is clipped)
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm}")
    if error_if_nonfinite and not sync:
        raise ValueError("clip_grad_norm: error_if_nonfinite needs the norm's value, so it cannot be used with "
                         "sync=False")
    params = [p for _, p in named_parameters(params) if p.grad is not None]
    grads = [p.grad for p in params]
    norm, factor = _global_norm(grads, max_norm)
    if factor is not None:                                   # GPU: scale by the factor computed on the device
        _scale_on_gpu(params, factor)
    else:
        value = float(norm)
        if math.isfinite(value) and value > max_norm:
            scale = max_norm / value
            for p in params:
                p.grad = p.grad * p.grad.dtype.type(scale)
    if error_if_nonfinite and not math.isfinite(float(norm)):
        raise FloatingPointError(f"clip_grad_norm: the global gradient norm is {float(norm)}")
    return float(norm) if sync else norm


def _scale_on_gpu(params, factor):
    """``p.grad <- p.grad * factor[0]`` (new arrays), one launch per dtype, ``factor`` a 1-element device array."""
    import cupy
    by_dtype = {}
    for p in params:
        g = p.grad
        if g.dtype not in (np.float32, np.float64):
            raise TypeError(f"clip_grad_norm: gradients must be float32 or float64, got {g.dtype}")
        by_dtype.setdefault(g.dtype, []).append(p)
    for dtype, group in by_dtype.items():
        rows = []
        for p in group:
            rows.append((cupy.ascontiguousarray(p.grad), cupy.empty(p.grad.shape, dtype)))
        multi_tensor.SCALE(rows, [0] * len(rows), (factor,))
        for p, (_, scaled) in zip(group, rows):
            p.grad = scaled
