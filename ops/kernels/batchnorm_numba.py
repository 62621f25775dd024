"""Batch normalisation as Numba CPU kernels: the same functions and results as ``batchnorm_reference`` (read it
first; the formulas are there).

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
  constants. ``y = scale * (x - mean) + beta`` is ``k1 = 0, v = x``; the input gradient is all three terms.

**Batch norm followed by ReLU** (every Inception conv unit) is fused: the forward's ``_combine`` clamps at 0 as
it writes ``y`` (``relu=True``), and the backward reads the ReLU's output ``y`` as a ``gate``: the upstream
gradient counts only where ``y > 0``. That saves the ReLU's own passes (one read and one write of the whole
tensor each way) and its saved output. When ``gate`` is ``None``, Numba compiles the kernel without the gate
(a separate specialisation; no test per element).

Sums are accumulated in float64. ``fastmath={"reassoc"}`` lets LLVM reorder the float64 sums so it can
vectorise them; it changes the rounding of the sums a little and nothing else (NaNs and infinities keep their
meaning).

Parallelism: the kernels are serial and release the GIL (``nogil=True``); each takes a range of channels (the
sums: each channel's two sums belong to one range) or of ``(n, c)`` rows (``_combine``: each output row belongs
to one range), and ``autograd.parallel.parallel_for`` runs the ranges on the engine's CPU threads (tensors below
``PARALLEL_MIN_BYTES`` on the calling thread alone).

Importing this module imports Numba but compiles nothing; each kernel compiles at its first call (once per dtype)
and is cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit

from autograd.parallel import parallel_for

#: tensors smaller than this run on the calling thread: handing a range to another thread costs more
PARALLEL_MIN_BYTES = 1 << 20


def _in_parallel(job, n, array):
    """``job(lo, hi)`` over ``range(n)``, on all CPU threads when ``array`` is big enough to pay for it."""
    parallel_for(job, n, parallel=array.nbytes >= PARALLEL_MIN_BYTES)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _channel_sums(a, ca, b, cb, gate, c0, c1, s1, s2):
    """For channels ``c0 <= ch < c1`` of a, b: (N, C, L), with ca, cb: (C,) float64:
    ``s1[ch] = sum(a - ca)``, ``s2[ch] = sum((a - ca) * (b - cb))``, in float64. With a ``gate`` (N, C, L), only
    the positions where ``gate > 0`` count (``ca`` must then be 0)."""
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
                    da = np.float64(arow[j]) if grow[j] > 0 else 0.0
                    t1 += da
                    t2 += da * (np.float64(brow[j]) - bc)
        s1[ch] = t1
        s2[ch] = t2


@njit(cache=True, nogil=True)
def _combine(u, v, cv, k1, k2, k3, gate, relu, out, r0, r1):
    """For rows ``r0 <= r < r1`` of the ``N*C`` rows of u, v, out: (N, C, L), constants (C,) of u's dtype:
    ``out = k1[c] * u + k2[c] * (v - cv[c]) + k3[c]``; with a ``gate`` (N, C, L), ``u`` counts only where
    ``gate > 0``; with ``relu``, ``out = max(out, 0)`` (NaN stays NaN, as ``np.maximum``).

    ``v - cv`` is formed first (rather than folding ``cv`` into ``k3``) to keep float32 exact when |mean| >> std.
    """
    n, c, l = u.shape
    zero = out.dtype.type(0)
    for r in range(r0, r1):
        i = r // c
        ch = r % c
        a1 = k1[ch]
        a2 = k2[ch]
        a3 = k3[ch]
        centre = cv[ch]
        urow = u[i, ch]
        vrow = v[i, ch]
        orow = out[i, ch]
        if gate is None:
            for j in range(l):
                val = urow[j] * a1 + (vrow[j] - centre) * a2 + a3
                orow[j] = zero if relu and val < zero else val
        else:
            grow = gate[i, ch]
            for j in range(l):
                g = urow[j] if grow[j] > zero else zero
                orow[j] = g * a1 + (vrow[j] - centre) * a2 + a3


def _sums(a, ca, b, cb, gate=None):
    """Per-channel float64 sums of ``_channel_sums`` over all channels, on all threads for big tensors."""
    c = a.shape[1]
    s1, s2 = np.empty(c), np.empty(c)
    _in_parallel(lambda lo, hi: _channel_sums(a, ca, b, cb, gate, lo, hi, s1, s2), c, a)
    return s1, s2


def _affine(u, v, cv, k1, k2, k3, out, gate=None, relu=False):
    """``_combine`` over all rows, on all threads for big tensors; returns ``out``."""
    rows = u.shape[0] * u.shape[1]
    _in_parallel(lambda lo, hi: _combine(u, v, cv, k1, k2, k3, gate, relu, out, lo, hi), rows, u)
    return out


# ---------------------------------------------------------------- entry points (same signatures as the reference)

def forward_train(x, gamma, beta, eps, relu=False):
    """x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), mean, var (biased), invstd: (C,) float64.
    With ``relu``, ``y`` is ``max(batch_norm(x), 0)``."""
    x = np.ascontiguousarray(x)
    m = x.shape[0] * x.shape[2]
    shift = x[0, :, 0].astype(np.float64)
    s1, s2 = _sums(x, shift, x, shift)
    mu = s1 / m                                      # mean - shift
    mean = shift + mu
    var = np.maximum(s2 / m - mu * mu, 0.0)
    invstd = 1.0 / np.sqrt(var + eps)
    dt = x.dtype
    zero = np.zeros(x.shape[1], dt)
    y = _affine(x, x, mean.astype(dt), zero, (gamma.astype(np.float64) * invstd).astype(dt), beta.astype(dt),
                np.empty_like(x), relu=relu)
    return y, mean, var, invstd


def forward_eval(x, gamma, beta, running_mean, running_var, eps, relu=False):
    """x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64.
    With ``relu``, ``y`` is ``max(batch_norm(x), 0)``."""
    x = np.ascontiguousarray(x)
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    dt = x.dtype
    zero = np.zeros(x.shape[1], dt)
    y = _affine(x, x, running_mean.astype(dt), zero, (gamma.astype(np.float64) * invstd).astype(dt),
                beta.astype(dt), np.empty_like(x), relu=relu)
    return y, invstd


def _gate(y):
    return None if y is None else np.ascontiguousarray(y)


def backward_train(gy, x, mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); mean, invstd: (C,) float64; gamma: (C,) -> gx: (N, C, L), ggamma: (C,), gbeta: (C,).
    With ``y`` (the output of ``forward_train(..., relu=True)``), ``gy`` is the gradient after the ReLU."""
    gy, x, gate = np.ascontiguousarray(gy), np.ascontiguousarray(x), _gate(y)
    m = x.shape[0] * x.shape[2]
    gbeta, sum_gy_xc = _sums(gy, np.zeros(x.shape[1]), x, np.asarray(mean, dtype=np.float64), gate)
    ggamma = sum_gy_xc * invstd
    k1 = gamma.astype(np.float64) * invstd
    k2 = -k1 * invstd * ggamma / m
    k3 = -k1 * gbeta / m
    dt = x.dtype
    gx = _affine(gy, x, mean.astype(dt), k1.astype(dt), k2.astype(dt), k3.astype(dt), np.empty_like(x), gate)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)


def backward_eval(gy, x, running_mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64; gamma: (C,) -> gx, ggamma, gbeta.
    With ``y`` (the output of ``forward_eval(..., relu=True)``), ``gy`` is the gradient after the ReLU."""
    gy, x, gate = np.ascontiguousarray(gy), np.ascontiguousarray(x), _gate(y)
    gbeta, sum_gy_xc = _sums(gy, np.zeros(x.shape[1]), x, np.asarray(running_mean, dtype=np.float64), gate)
    ggamma = sum_gy_xc * invstd
    dt = x.dtype
    zero = np.zeros(x.shape[1], dt)
    gx = _affine(gy, gy, zero, (gamma.astype(np.float64) * invstd).astype(dt), zero, zero, np.empty_like(x), gate)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)
