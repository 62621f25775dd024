"""Batch normalisation as Numba CPU kernels: the same functions and results as ``batchnorm_reference`` (read it
first; the formulas are there).

Why kernels: the NumPy reference makes a pass (and usually a temporary array) per operation: ``x - mean``,
its square, the sum, the multiply, the add... about ten passes over the data for forward + backward. Here each
function reads the big arrays the least number of times the maths allows:

* training forward: one pass for the two sums (``sum(x - s)`` and ``sum((x - s)^2)`` with ``s`` the channel's
  first value, a shift that keeps the one-pass variance free of cancellation), one pass writing ``y``;
* training backward: one pass for ``sum(gy)`` and ``sum(gy * (x - mean))``, one pass writing ``gx``;
* eval forward: one pass; eval backward: one pass for the sums, one writing ``gx``.

Sums are accumulated in float64. Parallelism: reductions use ``prange`` over channels (each iteration owns its
channel's two sums), element-wise passes over the ``(n, c)`` rows of the ``(N, C, L)`` array (each iteration
owns its output row). ``fastmath={"reassoc"}`` lets LLVM reorder the float64 sums so it can vectorise them; it
changes the rounding of the sums a little and nothing else (NaNs and infinities keep their meaning).

Importing this module imports Numba but compiles nothing; each kernel compiles at its first call (once per dtype)
and is cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit, prange

_REASSOC = {"reassoc"}


@njit(parallel=True, cache=True, fastmath=_REASSOC)
def _channel_moments(x):
    """(N, C, L) -> mean (C,), biased var (C,), both float64, in one pass over x."""
    n, c, l = x.shape
    m = n * l
    mean = np.empty(c, dtype=np.float64)
    var = np.empty(c, dtype=np.float64)
    for ch in prange(c):
        shift = np.float64(x[0, ch, 0])
        s = 0.0
        ss = 0.0
        for b in range(n):
            row = x[b, ch]
            for j in range(l):
                d = np.float64(row[j]) - shift
                s += d
                ss += d * d
        mu = s / m
        mean[ch] = shift + mu
        var[ch] = max(ss / m - mu * mu, 0.0)
    return mean, var


@njit(parallel=True, cache=True, fastmath=_REASSOC)
def _channel_grad_sums(gy, x, mean):
    """sum(gy) and sum(gy * (x - mean)) per channel, float64, in one pass over gy and x."""
    n, c, l = x.shape
    sum_gy = np.empty(c, dtype=np.float64)
    sum_gy_xc = np.empty(c, dtype=np.float64)
    for ch in prange(c):
        mu = mean[ch]
        s = 0.0
        sx = 0.0
        for b in range(n):
            grow = gy[b, ch]
            xrow = x[b, ch]
            for j in range(l):
                g = np.float64(grow[j])
                s += g
                sx += g * (np.float64(xrow[j]) - mu)
        sum_gy[ch] = s
        sum_gy_xc[ch] = sx
    return sum_gy, sum_gy_xc


@njit(parallel=True, cache=True)
def _channel_affine(x, center, scale, shift, out):
    """out = (x - center[c]) * scale[c] + shift[c], row by row; the constants have the dtype of x.

    Subtracting the centre first (rather than folding it into the shift) keeps float32 exact when
    |mean| >> std."""
    n, c, l = x.shape
    for r in prange(n * c):
        b = r // c
        ch = r % c
        mu = center[ch]
        a = scale[ch]
        d = shift[ch]
        xrow = x[b, ch]
        orow = out[b, ch]
        for j in range(l):
            orow[j] = (xrow[j] - mu) * a + d


@njit(parallel=True, cache=True)
def _input_grad(gy, x, mean, k1, k2, k3, out):
    """out = k1[c] * gy + k2[c] * (x - mean[c]) + k3[c], row by row; all constants have the dtype of x."""
    n, c, l = x.shape
    for r in prange(n * c):
        b = r // c
        ch = r % c
        a1 = k1[ch]
        a2 = k2[ch]
        a3 = k3[ch]
        mu = mean[ch]
        grow = gy[b, ch]
        xrow = x[b, ch]
        orow = out[b, ch]
        for j in range(l):
            orow[j] = grow[j] * a1 + (xrow[j] - mu) * a2 + a3


# ---------------------------------------------------------------- entry points (same signatures as the reference)

def forward_train(x, gamma, beta, eps):
    """x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), mean, var (biased), invstd: (C,) float64."""
    x = np.ascontiguousarray(x)
    mean, var = _channel_moments(x)
    invstd = 1.0 / np.sqrt(var + eps)
    dt = x.dtype
    y = np.empty_like(x)
    _channel_affine(x, mean.astype(dt), (gamma.astype(np.float64) * invstd).astype(dt), beta.astype(dt), y)
    return y, mean, var, invstd


def forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64."""
    x = np.ascontiguousarray(x)
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    dt = x.dtype
    y = np.empty_like(x)
    _channel_affine(x, running_mean.astype(dt), (gamma.astype(np.float64) * invstd).astype(dt), beta.astype(dt), y)
    return y, invstd


def backward_train(gy, x, mean, invstd, gamma):
    """gy, x: (N, C, L); mean, invstd: (C,) float64; gamma: (C,) -> gx: (N, C, L), ggamma: (C,), gbeta: (C,)."""
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    m = x.shape[0] * x.shape[2]
    gbeta, sum_gy_xc = _channel_grad_sums(gy, x, mean)
    ggamma = sum_gy_xc * invstd
    k1 = gamma.astype(np.float64) * invstd
    k2 = -k1 * invstd * ggamma / m
    k3 = -k1 * gbeta / m
    gx = np.empty_like(x)
    dt = x.dtype
    _input_grad(gy, x, mean.astype(dt), k1.astype(dt), k2.astype(dt), k3.astype(dt), gx)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)


def backward_eval(gy, x, running_mean, invstd, gamma):
    """gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64; gamma: (C,) -> gx, ggamma, gbeta."""
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    gbeta, sum_gy_xc = _channel_grad_sums(gy, x, running_mean.astype(np.float64))
    ggamma = sum_gy_xc * invstd
    gx = np.empty_like(x)
    scale = (gamma.astype(np.float64) * invstd).astype(x.dtype)
    zero = np.zeros_like(scale)
    _channel_affine(gy, zero, scale, zero, gx)
    return gx, ggamma.astype(gamma.dtype), gbeta.astype(gamma.dtype)
