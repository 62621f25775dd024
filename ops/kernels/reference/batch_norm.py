"""Batch normalisation, forward and backward, written as plain array code: the reference (read it first).

Contract of the ``batch_norm`` family (every tier's functions take these arguments and return these results; the
data ``(N, C, L)`` float32 or float64, C-contiguous; the statistics ``(C,)`` float64)::

    forward_train(x, gamma, beta, eps, relu=False) -> (y, mean, var, invstd)
    forward_eval(x, gamma, beta, running_mean, running_var, eps, relu=False) -> (y, invstd)
    backward_train(gy, x, mean, invstd, gamma, y=None) -> (gx, ggamma, gbeta)
    backward_eval(gy, x, running_mean, invstd, gamma, y=None) -> (gx, ggamma, gbeta)
    update_running_stats(running_mean, running_var, mean, var, momentum, count) -> None

``y`` and ``gx`` are ``(N, C, L)`` in x's dtype; ``ggamma`` and ``gbeta`` ``(C,)`` in gamma's dtype; ``var`` is the
biased variance. ``update_running_stats`` changes ``running_mean`` and ``running_var`` (either may be None) in
place; no other function may modify its inputs. ``gy`` may have any strides. The formulas follow.

All functions take the data as ``(N, C, L)``: the ``(N, C, H, W)`` activations reshaped with ``L = H * W`` (a
free reshape of a contiguous array; ``(N, C)`` inputs use ``L = 1``). Statistics are per channel, over the
``M = N * L`` values of axes 0 and 2.

Training (batch statistics)::

    mean = x.mean(axes 0, 2)          var = ((x - mean)**2).mean(axes 0, 2)     (biased: divide by M)
    invstd = 1 / sqrt(var + eps)      xhat = (x - mean) * invstd                y = gamma * xhat + beta

Backward, with ``gy`` the upstream gradient (sums over axes 0 and 2)::

    gbeta  = sum(gy)
    ggamma = sum(gy * xhat)
    gx     = gamma * invstd * (gy - gbeta / M - xhat * ggamma / M)

The last line is the chain rule through ``mean`` and ``var``, which both depend on every ``x`` of the channel: the
mean shifts all outputs (hence ``- gbeta / M``) and the variance rescales them (hence ``- xhat * ggamma / M``).
Because of these two terms, ``sum(gx) = 0`` and ``sum(gx * xhat) = 0``: a check with an all-ones upstream
gradient cannot see them, so gradient checks must use a random ``gy``.

Evaluation (running statistics, constants): ``y = gamma * (x - running_mean) * invstd + beta`` with
``invstd = 1 / sqrt(running_var + eps)``; then ``gx = gamma * invstd * gy`` and ``gbeta``, ``ggamma`` as above.

Batch norm followed by ReLU (every Inception conv unit): ``relu=True`` returns ``max(y, 0)`` (a NaN stays NaN),
and the backward functions then take that output as ``y=``: the ReLU's gradient is applied first,
``gy * (y > 0)``, then the batch norm's. The Numba and CUDA kernels fuse the two; here they are simply one after
the other. The gate is a multiply by the mask, not a select, in every tier: a NaN or infinite ``gy`` where the
ReLU is off gives NaN (NaN * 0, inf * 0), so it reaches ``gbeta`` and ``ggamma`` (and, in training, the whole
channel's ``gx``), and the tiers agree on whether a step is finite. In evaluation ``gx = gamma * invstd * gy``
does not read ``x``: a NaN in ``x`` reaches ``ggamma`` but not ``gx``.

Per-channel sums are accumulated in float64 and the statistics returned in float64 whatever the dtype of ``x``
(they are tiny, and float32 sums over millions of values lose digits); the big arrays stay in the dtype of ``x``.
``y`` and ``gx`` have the dtype of ``x``; ``ggamma`` and ``gbeta`` the dtype of ``gamma``.

Only array methods and operators are used, so the same code runs on CuPy arrays: the reference kernel tier runs
this file as it is on either device (``ops/kernels/tiers.py``).

The course hands out this file with the solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student writes the four forward and backward functions (``update_running_stats`` and the
helpers are given; ``python -m minception.course new DIR``).
"""
import numpy as np


def _per_channel(v, dtype):
    """(C,) -> (1, C, 1) in ``dtype``, to broadcast against (N, C, L)."""
    return v.reshape(1, -1, 1).astype(dtype)


def _channel_sum(a):
    """Sum over axes 0 and 2, accumulated in float64: (N, C, L) -> (C,) float64."""
    return a.sum(axis=(0, 2), dtype=np.float64)


def _relu_gradient(gy, y):
    """The ReLU's backward: ``gy`` where the ReLU's output ``y`` is positive, else 0 (``y=None``: no ReLU)."""
    return gy if y is None else gy * (y > 0)


def forward_train(x, gamma, beta, eps, relu=False):
    """Normalise with the batch statistics (then ReLU, if ``relu``).

    Shape:
        x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), and mean, var (biased), invstd: (C,) float64.

    Formula (per channel, over the ``M = N * L`` values of axes 0 and 2): ``mean``, the *biased* variance
    ``var = mean((x - mean)**2)`` (divide by M, not M - 1), ``invstd = 1 / sqrt(var + eps)``,
    ``y = gamma * (x - mean) * invstd + beta``, then ``max(y, 0)`` if ``relu``.

    Hints: ``_channel_sum`` sums over axes 0 and 2 in float64 and ``_per_channel`` turns a (C,) vector into a
    (1, C, 1) one of the data's dtype, ready to broadcast. Two passes (mean first, then the squares of
    ``x - mean``) avoid the cancellation of ``E[x**2] - E[x]**2``.
    """
    # --- solution: begin ---
    m = x.shape[0] * x.shape[2]
    mean = _channel_sum(x) / m
    centred = x - _per_channel(mean, x.dtype)
    var = _channel_sum(centred * centred) / m            # two passes: no cancellation as in E[x^2] - E[x]^2
    invstd = 1.0 / (var + eps) ** 0.5
    scale = gamma.astype(np.float64) * invstd
    y = centred * _per_channel(scale, x.dtype) + _per_channel(beta, x.dtype)
    if relu:
        y = y.clip(min=0)      # NaN stays NaN, as np.maximum(y, 0)
    return y, mean, var, invstd
    # --- solution: end ---


def forward_eval(x, gamma, beta, running_mean, running_var, eps, relu=False):
    """Normalise with the running statistics (then ReLU, if ``relu``).

    Shape:
        x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64.

    Formula: ``invstd = 1 / sqrt(running_var + eps)`` (in float64), ``y = gamma * (x - running_mean) * invstd +
    beta``, then ``max(y, 0)`` if ``relu``.

    Hint: the statistics are constants here: nothing is computed from the batch.
    """
    # --- solution: begin ---
    invstd = 1.0 / (running_var.astype(np.float64) + eps) ** 0.5
    scale = gamma.astype(np.float64) * invstd
    y = (x - _per_channel(running_mean, x.dtype)) * _per_channel(scale, x.dtype) + _per_channel(beta, x.dtype)
    if relu:
        y = y.clip(min=0)
    return y, invstd
    # --- solution: end ---


def backward_train(gy, x, mean, invstd, gamma, y=None):
    """Gradients of the training-mode forward; ``y``: its output when it ran with ``relu=True``.

    Shape:
        gy, x: (N, C, L); mean, invstd: (C,) float64 (from ``forward_train``); gamma: (C,); y: (N, C, L) or None
        -> gx: (N, C, L), ggamma: (C,), gbeta: (C,)

    Formula (derive it: ``mean`` and ``var`` depend on every x of the channel)::

        gbeta  = sum(gy)        ggamma = sum(gy * xhat)        (sums over axes 0 and 2, xhat = (x - mean)*invstd)
        gx     = gamma * invstd * (gy - gbeta / M - xhat * ggamma / M)

    ``gx`` is computed here as ``k1*gy + k2*(x - mean) + k3`` with per-channel constants, so the big arrays are
    touched once for the two sums and once for ``gx``.

    Hints: with ``y`` given (the forward ran with ``relu=True``), first apply the ReLU's gradient:
    ``_relu_gradient(gy, y)``. Check that ``sum(gx)`` and ``sum(gx * xhat)`` are 0 per channel; a gradient check
    needs a random ``gy`` (with all ones the two correction terms cancel out of sight).
    """
    # --- solution: begin ---
    gy = _relu_gradient(gy, y)
    m = x.shape[0] * x.shape[2]
    centred = x - _per_channel(mean, x.dtype)
    gbeta = _channel_sum(gy)
    ggamma = _channel_sum(gy * centred) * invstd           # sum(gy * xhat)
    k1 = gamma.astype(np.float64) * invstd
    k2 = -k1 * invstd * ggamma / m
    k3 = -k1 * gbeta / m
    gx = gy * _per_channel(k1, x.dtype) + centred * _per_channel(k2, x.dtype) + _per_channel(k3, x.dtype)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)
    # --- solution: end ---


def backward_eval(gy, x, running_mean, invstd, gamma, y=None):
    """Gradients of the eval-mode forward (running statistics are constants); ``y`` as in ``backward_train``.

    Shape:
        gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64 (from ``forward_eval``); gamma: (C,);
        y: (N, C, L) or None -> gx: (N, C, L), ggamma: (C,), gbeta: (C,)

    Formula: ``gx = gamma * invstd * gy`` (the statistics are constants); ``gbeta = sum(gy)``,
    ``ggamma = sum(gy * (x - running_mean) * invstd)``.

    Hint: the ReLU first, as in ``backward_train``; return ``ggamma`` and ``gbeta`` in gamma's dtype.
    """
    # --- solution: begin ---
    gy = _relu_gradient(gy, y)
    centred = x - _per_channel(running_mean, x.dtype)
    gbeta = _channel_sum(gy)
    ggamma = _channel_sum(gy * centred) * invstd
    gx = gy * _per_channel(gamma.astype(np.float64) * invstd, x.dtype)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)
    # --- solution: end ---


def update_running_stats(running_mean, running_var, mean, var, momentum, count):
    """Move the running statistics towards this batch's, in place (training mode, after ``forward_train``).

    ``running = (1 - momentum) * running + momentum * batch``, computed in float64 and stored in the buffers' dtype;
    the batch variance made unbiased (times ``count / (count - 1)``, ``count`` = N*L values per channel), as
    PyTorch does. Either buffer may be None (not tracked).

    Shape:
        running_mean, running_var: (C,) or None; mean, var: (C,) float64 (from ``forward_train``)
    """
    if running_mean is not None:
        running_mean[...] = ((1.0 - momentum) * running_mean.astype(np.float64) + momentum * mean
                             ).astype(running_mean.dtype)
    if running_var is not None:
        running_var[...] = ((1.0 - momentum) * running_var.astype(np.float64) + momentum * var * (count / (count - 1))
                            ).astype(running_var.dtype)
