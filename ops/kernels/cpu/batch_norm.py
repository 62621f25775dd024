"""Batch normalisation as Numba CPU kernels: the same functions, results and contract as
``ops/kernels/reference/batch_norm.py`` (read it first; the formulas are there).

Why kernels: the NumPy reference makes a pass (and usually a temporary array) per operation: ``x - mean``,
its square, the sum, the multiply, the add... about ten passes over the data for forward + backward. Here each
function reads the big arrays the least number of times the maths allows:

* training forward: one pass for the two sums (``sum(x - s)`` and ``sum((x - s)^2)`` with ``s`` the channel's
  first value, a shift that keeps the one-pass variance free of cancellation), one pass writing ``y``;
* training backward: one pass for ``sum(gy)`` and ``sum(gy * (x - mean))``, one pass writing ``gx``;
* eval forward: one pass; eval backward: one pass for the sums, one writing ``gx``.

Two kernels do all of it (fewer kernels, less compile time in a fresh process):

* ``_channel_sums(a, ca, b, cb, gate, ...)``: per channel, ``sum(a - ca)`` and ``sum((a - ca) * (b - cb))``.
  With ``a = b = x`` and ``ca = cb = s`` these are the moments; with ``a = gy, ca = 0, b = x, cb = mean`` the two
  gradient sums.
* ``_combine(u, v, cv, k1, k2, k3, gate, relu, out, ...)``: ``out = k1 * u + k2 * (v - cv) + k3`` with per-channel
  constants. ``y = scale * (x - mean) + beta`` is ``k1 = 0, v = x``; the training input gradient is all three
  terms, the eval one ``k1 * gy`` alone (``v = None``).

**Batch norm followed by ReLU** (every Inception conv unit) is fused: the forward's ``_combine`` clamps at 0 as
it writes ``y`` (``relu=True``), and the backward reads the ReLU's output ``y`` as a ``gate``: the upstream
gradient counts only where ``y > 0``. That saves the ReLU's own passes (one read and one write of the whole
tensor each way) and its saved output. When ``gate`` is ``None``, Numba compiles the kernel without the gate
(a separate specialisation; no test per element). The gate multiplies by the mask rather than selecting
(``gy * (y > 0)``, not ``gy if y > 0 else 0``), as the reference's contract says: a NaN or infinite upstream
gradient where the ReLU is off stays NaN, so both tiers agree on whether a step is finite. (The select made
it 0, and the fast tier could carry on from a step the reference tier stopped at.) Same cost: one multiply.

Sums are accumulated in float64. ``fastmath={"reassoc"}`` lets LLVM reorder the float64 sums so it can
vectorise them; it changes the rounding of the sums a little and nothing else (NaNs and infinities keep their
meaning).

Parallelism: the kernels are serial, release the GIL (``nogil=True``) and take a range of channels; each entry
point hands each CPU thread a range of channels (``runtime.threads.parallel_for``) for which it computes the sums, the
per-channel constants and the outputs. Statistics are per channel, so no thread waits for another. Tensors below
``runtime.threads.KERNEL_MIN_BYTES`` run on the calling thread alone (measurements: ``docs/performance.md``, section
"CPU runtime").

Importing this module imports Numba but compiles nothing; each kernel compiles at its first call (once per dtype)
and is cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit

from ..reference.batch_norm import update_running_stats  # noqa: F401 -- (C,) arrays: NumPy is already fast there
from .runtime import threads
from .runtime.parts import contiguous


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _channel_sums(a, ca, b, cb, gate, c0, c1, s1, s2):
    """For channels ``c0 <= ch < c1`` of a, b: (N, C, L), with ca, cb: (C,) float64:
    ``s1[ch] = sum(a - ca)``, ``s2[ch] = sum((a - ca) * (b - cb))``, in float64. With a ``gate`` (N, C, L), only
    the positions where ``gate > 0`` count (``ca`` must then be 0): ``a`` is multiplied by the mask, so a NaN or
    an infinity of ``a`` where the gate is off still makes the sums NaN, as in the reference."""
    n, c, l = a.shape
    for ch in range(c0, c1):
        ac = ca[ch]
        bc = cb[ch]
        t1 = 0.0
        t2 = 0.0
        for i in range(n):
            arow = a[i, ch]
            brow = b[i, ch]
            if gate is None:
                for j in range(l):
                    da = np.float64(arow[j]) - ac
                    t1 += da
                    t2 += da * (np.float64(brow[j]) - bc)
            else:
                grow = gate[i, ch]
                for j in range(l):
                    da = np.float64(arow[j]) * (1.0 if grow[j] > 0 else 0.0)    # NaN * 0 stays NaN
                    t1 += da
                    t2 += da * (np.float64(brow[j]) - bc)
        s1[ch] = t1
        s2[ch] = t2


@njit(cache=True, nogil=True)
def _combine(u, v, cv, k1, k2, k3, gate, relu, out, c0, c1):
    """For channels ``c0 <= ch < c1`` of u, v, out: (N, C, L), constants (C,) of u's dtype:
    ``out = k1[c] * u + k2[c] * (v - cv[c]) + k3[c]``; with a ``gate`` (N, C, L), ``u`` is multiplied by the
    mask ``gate > 0`` (a NaN or infinite ``u`` where the gate is off gives NaN, as the reference's ``gy * (y > 0)``);
    with ``relu``, ``out = max(out, 0)`` (NaN stays NaN, as ``np.maximum``). With ``v`` None (eval backward:
    ``gx = k1 * gy``) the second term is left out, not multiplied by 0: a NaN in ``x`` does not reach ``gx``,
    as in the reference, which never reads ``x`` there.

    ``v - cv`` is formed first (rather than folding ``cv`` into ``k3``) to keep float32 exact when |mean| >> std.
    """
    n, c, l = u.shape
    zero, one = out.dtype.type(0), out.dtype.type(1)
    for ch in range(c0, c1):
        a1 = k1[ch]
        a2 = k2[ch]
        a3 = k3[ch]
        centre = cv[ch]
        for i in range(n):
            urow = u[i, ch]
            orow = out[i, ch]
            if v is None:
                if gate is None:
                    for j in range(l):
                        orow[j] = urow[j] * a1 + a3
                else:
                    grow = gate[i, ch]
                    for j in range(l):
                        orow[j] = urow[j] * (one if grow[j] > zero else zero) * a1 + a3
            elif gate is None:
                vrow = v[i, ch]
                for j in range(l):
                    val = urow[j] * a1 + (vrow[j] - centre) * a2 + a3
                    orow[j] = zero if relu and val < zero else val
            else:
                vrow = v[i, ch]
                grow = gate[i, ch]
                for j in range(l):
                    g = urow[j] * (one if grow[j] > zero else zero)          # NaN * 0 stays NaN
                    orow[j] = g * a1 + (vrow[j] - centre) * a2 + a3


def _by_channel(job, array):
    """``job(c0, c1)`` over the channels of ``array`` (N, C, L): each thread owns a range of channels, their
    statistics and their outputs, so one hand-over to the threads per call is enough (and the second pass
    over a thread's channels often finds them still in its cache). Small tensors run on the calling thread:
    waking a pool thread would cost more than it saves."""
    threads.parallel_for(job, array.shape[1], parallel=array.nbytes >= threads.KERNEL_MIN_BYTES,
                         nbytes=array.nbytes)


# ---------------------------------------------------------------- entry points (same signatures as the reference)

def forward_train(x, gamma, beta, eps, relu=False):
    """x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), mean, var (biased), invstd: (C,) float64.
    With ``relu``, ``y`` is ``max(batch_norm(x), 0)``."""
    x = contiguous(x)
    n, c, l = x.shape
    m, dt = n * l, x.dtype
    shift = x[0, :, 0].astype(np.float64)
    gamma64, beta_t, zero = gamma.astype(np.float64), beta.astype(dt), np.zeros(c, dt)
    s1, s2, mean, var, invstd = (np.empty(c) for _ in range(5))
    centre, scale = np.empty(c, dt), np.empty(c, dt)
    y = np.empty_like(x)

    def channels(c0, c1):
        _channel_sums(x, shift, x, shift, None, c0, c1, s1, s2)
        k = slice(c0, c1)
        mu = s1[k] / m                               # mean - shift
        mean[k] = shift[k] + mu
        var[k] = np.maximum(s2[k] / m - mu * mu, 0.0)
        invstd[k] = 1.0 / np.sqrt(var[k] + eps)
        centre[k], scale[k] = mean[k], gamma64[k] * invstd[k]
        _combine(x, x, centre, zero, scale, beta_t, None, relu, y, c0, c1)

    _by_channel(channels, x)
    return y, mean, var, invstd


def forward_eval(x, gamma, beta, running_mean, running_var, eps, relu=False):
    """x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64.
    With ``relu``, ``y`` is ``max(batch_norm(x), 0)``."""
    x = contiguous(x)
    dt = x.dtype
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    centre, scale = running_mean.astype(dt), (gamma.astype(np.float64) * invstd).astype(dt)
    beta_t, zero = beta.astype(dt), np.zeros(x.shape[1], dt)
    y = np.empty_like(x)
    _by_channel(lambda c0, c1: _combine(x, x, centre, zero, scale, beta_t, None, relu, y, c0, c1), x)
    return y, invstd


def _backward(gy, x, centre, invstd, gamma, y, training):
    """The input gradient ``k1*gy + k2*(x - centre) + k3`` (training) or ``k1*gy`` (eval, running statistics
    are constants), with ``gy`` gated by ``y > 0`` when ``y`` (the fused ReLU's output) is given."""
    gy, x, gate = contiguous(gy), contiguous(x), None if y is None else contiguous(y)
    n, c, l = x.shape
    m, dt = n * l, x.dtype
    centre64, gamma64 = np.asarray(centre, dtype=np.float64), gamma.astype(np.float64)
    gbeta, sum_gy_xc = np.empty(c), np.empty(c)
    centre_t, zero64 = centre64.astype(dt), np.zeros(c)
    k1, k2, k3 = np.empty(c, dt), np.zeros(c, dt), np.zeros(c, dt)
    gx = np.empty_like(x)

    def channels(c0, c1):
        _channel_sums(gy, zero64, x, centre64, gate, c0, c1, gbeta, sum_gy_xc)
        k = slice(c0, c1)
        a1 = gamma64[k] * invstd[k]
        k1[k] = a1
        if training:                                  # the terms through the batch mean and variance
            k2[k] = -a1 * invstd[k] * (sum_gy_xc[k] * invstd[k]) / m
            k3[k] = -a1 * gbeta[k] / m
            _combine(gy, x, centre_t, k1, k2, k3, gate, False, gx, c0, c1)
        else:                                         # k1 * gy alone: x is not read (a NaN there stays out)
            _combine(gy, None, centre_t, k1, k2, k3, gate, False, gx, c0, c1)

    _by_channel(channels, x)
    return gx, (sum_gy_xc * invstd).astype(gamma.dtype), gbeta.astype(gamma.dtype)


def backward_train(gy, x, mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); mean, invstd: (C,) float64; gamma: (C,) -> gx: (N, C, L), ggamma: (C,), gbeta: (C,).
    With ``y`` (the output of ``forward_train(..., relu=True)``), ``gy`` is the gradient after the ReLU."""
    return _backward(gy, x, mean, invstd, gamma, y, True)


def backward_eval(gy, x, running_mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64; gamma: (C,) -> gx, ggamma, gbeta.
    With ``y`` (the output of ``forward_eval(..., relu=True)``), ``gy`` is the gradient after the ReLU."""
    return _backward(gy, x, running_mean, invstd, gamma, y, False)
