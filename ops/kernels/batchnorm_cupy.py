"""Batch normalisation as CuPy GPU kernels: the same functions and results as ``batchnorm_reference`` (read it
first; the formulas are there).

Why kernels: the reference runs unchanged on CuPy, but as about twenty small kernel launches per call, which
costs about 1 ms per batch-norm layer on an H100 whatever the size (launch and Python overhead, measured by
``bench/pool_bn.py``); Inception has a batch norm after every convolution. Here each direction is two kernels:

* a per-channel reduction (``RawKernel``, one block per channel, float64 accumulators, a fixed tree reduction
  in shared memory, so the result is deterministic) whose thread 0 also finishes the per-channel maths
  (mean, variance, 1/std; or the two gradient sums and the three coefficients of the input gradient);
* one ``ElementwiseKernel`` over the data that applies the per-channel coefficients.

Training forward: ``moments`` (sums of ``x - s`` and ``(x - s)^2``, ``s`` the channel's first value, a shift that
keeps the one-pass variance free of cancellation) then ``affine``. Training backward: ``grad_sums`` then
``input_grad``. Evaluation needs no reduction in the forward (``affine`` with the running statistics).

Batch norm followed by ReLU (``relu=True`` / ``y=``, as in the reference) is composed here from CuPy's own
elementwise operations (``maximum``, and ``gy * (y > 0)`` before the backward), not fused into the kernels.

Kernels are compiled once per dtype (memoised). This module imports CuPy only inside its functions, so it can be
imported on a machine without CuPy or without a GPU.
"""
import functools

import numpy as np

_BLOCK = 256

_REDUCTIONS = r"""
typedef __T__ T;
#define BLOCK __BLOCK__

// Sum a and b over the block (fixed tree order: deterministic). Result in sa[0], sb[0].
__device__ void block_sum2(double* sa, double* sb, double a, double b) {
    const int t = threadIdx.x;
    sa[t] = a; sb[t] = b;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) { sa[t] += sa[t + s]; sb[t] += sb[t + s]; }
        __syncthreads();
    }
}

extern "C" __global__ void moments(const T* x, long long n, long long c, long long l, double eps,
                                   const T* gamma, double* mean, double* var, double* invstd,
                                   T* centre_t, T* scale_t) {
    __shared__ double sa[BLOCK], sb[BLOCK];
    const double shift = (double)x[blockIdx.x * l];          // x[0, ch, 0]
    double s1 = 0.0, s2 = 0.0;
    const long long ch = blockIdx.x, m = n * l;
    // one block per channel: its threads walk the N*L values of channel ch of the (N, C, L) array side by
    // side, BLOCK apart, keeping (row, j) instead of dividing a flat index at every step
    const long long qs = BLOCK / l, rs = BLOCK % l;
    long long row = threadIdx.x / l, j = threadIdx.x % l;
    while (row < n) {
        const long long idx = (row * c + ch) * l + j;
        const double d = (double)x[idx] - shift;
        s1 += d; s2 += d * d;
        row += qs; j += rs;
        if (j >= l) { j -= l; ++row; }
    }
    block_sum2(sa, sb, s1, s2);
    if (threadIdx.x == 0) {
        const double mu = sa[0] / (double)m;
        double v = sb[0] / (double)m - mu * mu;
        if (v < 0.0) v = 0.0;
        const double inv = 1.0 / sqrt(v + eps);
        mean[ch] = shift + mu; var[ch] = v; invstd[ch] = inv;
        centre_t[ch] = (T)(shift + mu);
        scale_t[ch] = (T)((double)gamma[ch] * inv);
    }
}

// Sums of gy and gy * (x - centre); then ggamma, gbeta and the input-gradient coefficients
// gx = k1 * gy + k2 * (x - centre) + k3 (k2 = k3 = 0 in evaluation mode).
extern "C" __global__ void grad_sums(const T* gy, const T* x, const double* centre, long long n, long long c,
                                     long long l, const T* gamma, const double* invstd, int training,
                                     T* ggamma, T* gbeta, T* centre_t, T* k1, T* k2, T* k3) {
    __shared__ double sa[BLOCK], sb[BLOCK];
    const double cen = centre[blockIdx.x];
    double s1 = 0.0, s2 = 0.0;
    const long long ch = blockIdx.x, m = n * l;
    // one block per channel: its threads walk the N*L values of channel ch of the (N, C, L) array side by
    // side, BLOCK apart, keeping (row, j) instead of dividing a flat index at every step
    const long long qs = BLOCK / l, rs = BLOCK % l;
    long long row = threadIdx.x / l, j = threadIdx.x % l;
    while (row < n) {
        const long long idx = (row * c + ch) * l + j;
        const double g = (double)gy[idx];
        s1 += g; s2 += g * ((double)x[idx] - cen);
        row += qs; j += rs;
        if (j >= l) { j -= l; ++row; }
    }
    block_sum2(sa, sb, s1, s2);
    if (threadIdx.x == 0) {
        const double inv = invstd[ch], gb = sa[0], gg = sb[0] * inv, a1 = (double)gamma[ch] * inv;
        ggamma[ch] = (T)gg; gbeta[ch] = (T)gb; centre_t[ch] = (T)cen; k1[ch] = (T)a1;
        k2[ch] = training ? (T)(-a1 * inv * gg / (double)m) : (T)0;
        k3[ch] = training ? (T)(-a1 * gb / (double)m) : (T)0;
    }
}
"""


@functools.lru_cache(maxsize=None)
def _reductions(dtype_name):
    import cupy
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    module = cupy.RawModule(code=_REDUCTIONS.replace("__T__", ctype).replace("__BLOCK__", str(_BLOCK)))
    return module.get_function("moments"), module.get_function("grad_sums")


@functools.lru_cache(maxsize=None)
def _elementwise():
    import cupy
    affine = cupy.ElementwiseKernel(
        "T x, raw T centre, raw T scale, raw T shift, int64 c, int64 l", "T y",
        "const ptrdiff_t ch = (i / l) % c; y = (x - centre[ch]) * scale[ch] + shift[ch];",
        "minception_bn_affine")
    input_grad = cupy.ElementwiseKernel(
        "T gy, T x, raw T centre, raw T k1, raw T k2, raw T k3, int64 c, int64 l", "T gx",
        "const ptrdiff_t ch = (i / l) % c; gx = gy * k1[ch] + (x - centre[ch]) * k2[ch] + k3[ch];",
        "minception_bn_input_grad")
    return affine, input_grad


def _check_dtype(x):
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"batch_norm (GPU): supports float32 and float64, got {x.dtype}")
    return x.dtype.name


def forward_train(x, gamma, beta, eps, relu=False):
    """x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), mean, var (biased), invstd: (C,) float64 (``relu``:
    y = max(y, 0))."""
    import cupy
    x = cupy.ascontiguousarray(x)
    n, c, l = x.shape
    moments, _ = _reductions(_check_dtype(x))
    mean, var, invstd = (cupy.empty(c, np.float64) for _ in range(3))
    centre_t, scale_t = cupy.empty(c, x.dtype), cupy.empty(c, x.dtype)
    moments((c,), (_BLOCK,), (x, np.int64(n), np.int64(c), np.int64(l), np.float64(eps),
                              cupy.ascontiguousarray(gamma, dtype=x.dtype), mean, var, invstd, centre_t, scale_t))
    y = _elementwise()[0](x, centre_t, scale_t, beta.astype(x.dtype, copy=False), c, l)
    return _relu(y, relu), mean, var, invstd


def forward_eval(x, gamma, beta, running_mean, running_var, eps, relu=False):
    """x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64 (``relu``:
    y = max(y, 0))."""
    import cupy
    x = cupy.ascontiguousarray(x)
    n, c, l = x.shape
    invstd = 1.0 / cupy.sqrt(running_var.astype(np.float64) + eps)
    scale = (gamma.astype(np.float64) * invstd).astype(x.dtype)
    y = _elementwise()[0](x, running_mean.astype(x.dtype), scale, beta.astype(x.dtype, copy=False), c, l)
    return _relu(y, relu), invstd


def _relu(y, relu):
    if relu:
        import cupy
        cupy.maximum(y, 0, out=y)
    return y


def _backward(gy, x, centre, invstd, gamma, training, y):
    import cupy
    if y is not None:
        gy = gy * (y > 0)                        # the ReLU's gradient first
    gy, x = cupy.ascontiguousarray(gy), cupy.ascontiguousarray(x)
    n, c, l = x.shape
    _, grad_sums = _reductions(_check_dtype(x))
    ggamma, gbeta, centre_t, k1, k2, k3 = (cupy.empty(c, x.dtype) for _ in range(6))
    grad_sums((c,), (_BLOCK,), (gy, x, cupy.ascontiguousarray(centre, dtype=np.float64), np.int64(n), np.int64(c),
                                np.int64(l), cupy.ascontiguousarray(gamma, dtype=x.dtype), invstd,
                                np.int32(training), ggamma, gbeta, centre_t, k1, k2, k3))
    gx = _elementwise()[1](gy, x, centre_t, k1, k2, k3, c, l)
    return gx, ggamma.astype(gamma.dtype, copy=False), gbeta.astype(gamma.dtype, copy=False)


def backward_train(gy, x, mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); mean, invstd: (C,) float64; gamma: (C,) -> gx: (N, C, L), ggamma: (C,), gbeta: (C,).
    ``y``: the forward's output when it ran with ``relu=True``."""
    return _backward(gy, x, mean, invstd, gamma, True, y)


def backward_eval(gy, x, running_mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64; gamma: (C,) -> gx, ggamma, gbeta.
    ``y``: the forward's output when it ran with ``relu=True``."""
    return _backward(gy, x, running_mean, invstd, gamma, False, y)
