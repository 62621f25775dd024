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

* ``_channel_sums(a, ca, b, cb)``: per channel, ``sum(a - ca)`` and ``sum((a - ca) * (b - cb))``. With
  ``a = b = x`` and ``ca = cb = s`` these are the moments; with ``a = gy, ca = 0, b = x, cb = mean`` the two
  gradient sums.
* ``_combine(u, v, cv, k1, k2, k3, out)``: ``out = k1 * u + k2 * (v - cv) + k3`` with per-channel constants.
  ``y = scale * (x - mean) + beta`` is ``k1 = 0, v = x``; the input gradient is all three terms.

Sums are accumulated in float64. Parallelism: ``_channel_sums`` uses ``prange`` over channels (each iteration owns
its channel's two sums), ``_combine`` over the ``(n, c)`` rows of the ``(N, C, L)`` array (each iteration owns its
output row); small calls run on one thread (``pool_numba.serial_if_small``). ``fastmath={"reassoc"}`` lets LLVM
reorder the float64 sums so it can vectorise them; it changes the rounding of the sums a little and nothing else
(NaNs and infinities keep their meaning).

Importing this module imports Numba but compiles nothing; each kernel compiles at its first call (once per dtype)
and is cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit, prange

from .pool_numba import serial_if_small


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _channel_sums(a, ca, b, cb):
    """a, b: (N, C, L); ca, cb: (C,) float64 -> sum(a - ca), sum((a - ca) * (b - cb)) per channel, float64."""
    n, c, l = a.shape
    s1 = np.empty(c, dtype=np.float64)
    s2 = np.empty(c, dtype=np.float64)
    for ch in prange(c):
        ac = ca[ch]
        bc = cb[ch]
        t1 = 0.0
        t2 = 0.0
        for i in range(n):
            arow = a[i, ch]
            brow = b[i, ch]
            for j in range(l):
                da = np.float64(arow[j]) - ac
                t1 += da
                t2 += da * (np.float64(brow[j]) - bc)
        s1[ch] = t1
        s2[ch] = t2
    return s1, s2


@njit(parallel=True, cache=True)
def _combine(u, v, cv, k1, k2, k3, out):
    """out = k1[c] * u + k2[c] * (v - cv[c]) + k3[c] for u, v, out: (N, C, L); constants (C,) of u's dtype.

    ``v - cv`` is formed first (rather than folding ``cv`` into ``k3``) to keep float32 exact when |mean| >> std.
    """
    n, c, l = u.shape
    for r in prange(n * c):
        i = r // c
        ch = r % c
        a1 = k1[ch]
        a2 = k2[ch]
        a3 = k3[ch]
        centre = cv[ch]
        urow = u[i, ch]
        vrow = v[i, ch]
        orow = out[i, ch]
        for j in range(l):
            orow[j] = urow[j] * a1 + (vrow[j] - centre) * a2 + a3


# ---------------------------------------------------------------- entry points (same signatures as the reference)

def forward_train(x, gamma, beta, eps):
    """x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), mean, var (biased), invstd: (C,) float64."""
    x = np.ascontiguousarray(x)
    m = x.shape[0] * x.shape[2]
    shift = x[0, :, 0].astype(np.float64)
    with serial_if_small(x.size):
        s1, s2 = _channel_sums(x, shift, x, shift)
    mu = s1 / m                                      # mean - shift
    mean = shift + mu
    var = np.maximum(s2 / m - mu * mu, 0.0)
    invstd = 1.0 / np.sqrt(var + eps)
    dt = x.dtype
    y = np.empty_like(x)
    zero = np.zeros(x.shape[1], dt)
    with serial_if_small(x.size):
        _combine(x, x, mean.astype(dt), zero, (gamma.astype(np.float64) * invstd).astype(dt), beta.astype(dt), y)
    return y, mean, var, invstd


def forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64."""
    x = np.ascontiguousarray(x)
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    dt = x.dtype
    y = np.empty_like(x)
    zero = np.zeros(x.shape[1], dt)
    with serial_if_small(x.size):
        _combine(x, x, running_mean.astype(dt), zero, (gamma.astype(np.float64) * invstd).astype(dt),
                 beta.astype(dt), y)
    return y, invstd


def _gradient_sums(gy, x, centre):
    """sum(gy) and sum(gy * (x - centre)) per channel, float64."""
    with serial_if_small(x.size):
        return _channel_sums(gy, np.zeros(x.shape[1]), x, np.asarray(centre, dtype=np.float64))


def backward_train(gy, x, mean, invstd, gamma):
    """gy, x: (N, C, L); mean, invstd: (C,) float64; gamma: (C,) -> gx: (N, C, L), ggamma: (C,), gbeta: (C,)."""
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    m = x.shape[0] * x.shape[2]
    gbeta, sum_gy_xc = _gradient_sums(gy, x, mean)
    ggamma = sum_gy_xc * invstd
    k1 = gamma.astype(np.float64) * invstd
    k2 = -k1 * invstd * ggamma / m
    k3 = -k1 * gbeta / m
    gx = np.empty_like(x)
    dt = x.dtype
    with serial_if_small(x.size):
        _combine(gy, x, mean.astype(dt), k1.astype(dt), k2.astype(dt), k3.astype(dt), gx)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)


def backward_eval(gy, x, running_mean, invstd, gamma):
    """gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64; gamma: (C,) -> gx, ggamma, gbeta."""
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    gbeta, sum_gy_xc = _gradient_sums(gy, x, running_mean)
    ggamma = sum_gy_xc * invstd
    dt = x.dtype
    gx = np.empty_like(x)
    zero = np.zeros(x.shape[1], dt)
    with serial_if_small(x.size):
        _combine(gy, gy, zero, (gamma.astype(np.float64) * invstd).astype(dt), zero, zero, gx)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)
