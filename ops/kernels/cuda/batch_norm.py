"""Batch normalisation as CuPy GPU kernels: the same functions, results and contract as
``ops/kernels/reference/batch_norm.py`` (read it first; the formulas are there).

Why kernels: the reference runs unchanged on CuPy, but as about twenty small kernel launches per call, which
costs about 1 ms per batch-norm layer on an H100 whatever the size (launch and Python overhead, measured by
``bench/pool_bn.py``); Inception has a batch norm after every convolution. Here each direction is a per-channel
reduction (one or two ``RawKernel`` launches) and one ``ElementwiseKernel`` over the data:

* the reduction sums, per channel, ``x - s`` and ``(x - s)^2`` (forward; ``s`` is the channel's first value, a
  shift that keeps the one-pass variance free of cancellation) or ``gy`` and ``gy * (x - centre)`` (backward),
  with float64 accumulators, and finishes the per-channel maths (mean, variance, 1/std; or the two gradient sums
  and the three coefficients of the input gradient);
* the elementwise kernel applies the per-channel coefficients: ``affine`` (forward) or ``input_grad``.

The reduction splits each channel's ``M = N*L`` values over ``parts`` blocks (``blocks_per_channel``, chosen from
M alone), so that a layer with few channels and many values per channel still fills the GPU: a stem layer with
32 channels and 1.4M values each runs 32 * 256 blocks, not 32. Block ``g`` of a channel takes the values
``k = g*BLOCK + t, k + parts*BLOCK, ...`` (thread ``t``), adds them up in that order, and the block's threads are
then summed in a fixed tree. With ``parts > 1`` the blocks write their two partial sums and a second kernel adds
a channel's ``parts`` partials, again in a fixed order. Nothing depends on timing or on the GPU's size: the
results are the same bits on every run and every GPU.

Index arithmetic is done in ``idx_t``: 32-bit when the data has fewer than 2**31 elements, 64-bit otherwise
(``indexing.py``). Arguments are checked and converted at the kernel boundary: data float32/float64, every
per-channel array of shape (C,) and cast to the type the kernel reads (``gy`` to x's dtype, the float64
statistics to float64), everything C-contiguous.

Evaluation needs no reduction in the forward (``affine`` with the running statistics). Batch norm followed by
ReLU (``relu=True`` / ``y=``, as in the reference) takes the ReLU into ``affine``, and its backward gates ``gy``
in one elementwise pass before the reduction: ``gy * (y > 0)``, a multiply by the mask, so a NaN or infinite
``gy`` where the ReLU is off stays NaN, as the reference's contract says. In evaluation the input gradient is
``k1 * gy`` alone (``scale_grad``; ``x`` is not read, as in the reference). The running statistics are updated
by one small kernel (``update_running_stats``): the reference's float64 formula on (C,) arrays is a dozen
launches per layer, and the GPU is bound by launches at the sizes of the scaled networks (docs/performance.md,
"GPU").

Kernels are compiled once per dtype and index type (``lru_cache``). This module imports CuPy only inside its
functions, so it can be imported on a machine without CuPy or without a GPU.
"""
import functools

import numpy as np

from .indexing import PARAM_TYPE, index_type, preamble

BLOCK = 256                 # threads per block (a power of two: the tree sum halves it)
VALUES_PER_THREAD = 16      # a channel gets one more block per BLOCK * VALUES_PER_THREAD values ...
MAX_PARTS = 256             # ... up to this many blocks


def blocks_per_channel(m):
    """How many blocks share one channel's ``m`` values: about ``VALUES_PER_THREAD`` values per thread, at least
    1 and at most ``MAX_PARTS``. A function of ``m`` only, so the summation order never depends on the GPU."""
    return int(min(MAX_PARTS, max(1, m // (BLOCK * VALUES_PER_THREAD))))


def reduction_index_type(x_shape, parts):
    """The index type of the reduction for an (N, C, L) array: indices stay below its size plus one stride."""
    n, c, l = x_shape
    return index_type(n * c * l + parts * BLOCK)


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

// The per-channel statistics from the two sums of (x - shift) and (x - shift)^2 over m values.
__device__ void finish_moments(idx_t ch, double s1, double s2, double shift, idx_t m, double eps,
                               const T* gamma, double* mean, double* var, double* invstd,
                               T* centre_t, T* scale_t) {
    const double mu = s1 / (double)m;
    double v = s2 / (double)m - mu * mu;
    if (v < 0.0) v = 0.0;
    const double inv = 1.0 / sqrt(v + eps);
    mean[ch] = shift + mu; var[ch] = v; invstd[ch] = inv;
    centre_t[ch] = (T)(shift + mu);
    scale_t[ch] = (T)((double)gamma[ch] * inv);
}

// From the sums of gy and gy * (x - centre): ggamma, gbeta and the input-gradient coefficients
// gx = k1 * gy + k2 * (x - centre) + k3 (k2 = k3 = 0 in evaluation mode).
__device__ void finish_grads(idx_t ch, double s1, double s2, double cen, idx_t m, const T* gamma,
                             const double* invstd, int training, T* ggamma, T* gbeta, T* centre_t,
                             T* k1, T* k2, T* k3) {
    const double inv = invstd[ch], gb = s1, gg = s2 * inv, a1 = (double)gamma[ch] * inv;
    ggamma[ch] = (T)gg; gbeta[ch] = (T)gb; centre_t[ch] = (T)cen; k1[ch] = (T)a1;
    k2[ch] = training ? (T)(-a1 * inv * gg / (double)m) : (T)0;
    k3[ch] = training ? (T)(-a1 * gb / (double)m) : (T)0;
}

// Adds a channel's `parts` partial sums (pairs in `partial`) in a fixed order; result in sa[0], sb[0].
__device__ void sum_partials(double* sa, double* sb, const double* partial, idx_t ch, int parts) {
    double s1 = 0.0, s2 = 0.0;
    for (int p = threadIdx.x; p < parts; p += BLOCK) {
        const idx_t at = 2 * ((idx_t)ch * parts + p);
        s1 += partial[at]; s2 += partial[at + 1];
    }
    block_sum2(sa, sb, s1, s2);
}

// Training forward, pass 1: grid of C * parts blocks (block b = ch * parts + part).
extern "C" __global__ void moments(const T* x, idx_t n, idx_t c, idx_t l, int parts, double eps,
                                   const T* gamma, double* partial, double* mean, double* var, double* invstd,
                                   T* centre_t, T* scale_t) {
    __shared__ double sa[BLOCK], sb[BLOCK];
    const idx_t ch = blockIdx.x / parts, part = blockIdx.x % parts;
    const double shift = (double)x[ch * l];          // x[0, ch, 0]
    double s1 = 0.0, s2 = 0.0;
    // this block's share of channel ch: values k = part*BLOCK + t, then every parts*BLOCK further, of the
    // (N, C, L) array (value k is row k / l, column k % l); (row, j) are advanced instead of divided each step
    const idx_t stride = (idx_t)parts * BLOCK, qs = stride / l, rs = stride % l;
    const idx_t k0 = part * BLOCK + threadIdx.x;
    idx_t row = k0 / l, j = k0 % l;
    while (row < n) {
        const idx_t idx = (row * c + ch) * l + j;
        const double d = (double)x[idx] - shift;
        s1 += d; s2 += d * d;
        row += qs; j += rs;
        if (j >= l) { j -= l; ++row; }
    }
    block_sum2(sa, sb, s1, s2);
    if (threadIdx.x == 0) {
        if (parts == 1) {
            finish_moments(ch, sa[0], sb[0], shift, n * l, eps, gamma, mean, var, invstd, centre_t, scale_t);
        } else {
            partial[2 * blockIdx.x] = sa[0]; partial[2 * blockIdx.x + 1] = sb[0];
        }
    }
}

// Training forward, pass 2 (only when parts > 1): one block per channel.
extern "C" __global__ void moments_finish(const T* x, const double* partial, idx_t n, idx_t l, int parts,
                                          double eps, const T* gamma, double* mean, double* var,
                                          double* invstd, T* centre_t, T* scale_t) {
    __shared__ double sa[BLOCK], sb[BLOCK];
    const idx_t ch = blockIdx.x;
    sum_partials(sa, sb, partial, ch, parts);
    if (threadIdx.x == 0)
        finish_moments(ch, sa[0], sb[0], (double)x[ch * l], n * l, eps, gamma, mean, var, invstd,
                       centre_t, scale_t);
}

// Backward, pass 1: grid of C * parts blocks.
extern "C" __global__ void grad_sums(const T* gy, const T* x, const double* centre, idx_t n, idx_t c, idx_t l,
                                     int parts, const T* gamma, const double* invstd, int training,
                                     double* partial, T* ggamma, T* gbeta, T* centre_t, T* k1, T* k2, T* k3) {
    __shared__ double sa[BLOCK], sb[BLOCK];
    const idx_t ch = blockIdx.x / parts, part = blockIdx.x % parts;
    const double cen = centre[ch];
    double s1 = 0.0, s2 = 0.0;
    // the same walk over this block's share of channel ch as in moments
    const idx_t stride = (idx_t)parts * BLOCK, qs = stride / l, rs = stride % l;
    const idx_t k0 = part * BLOCK + threadIdx.x;
    idx_t row = k0 / l, j = k0 % l;
    while (row < n) {
        const idx_t idx = (row * c + ch) * l + j;
        const double g = (double)gy[idx];
        s1 += g; s2 += g * ((double)x[idx] - cen);
        row += qs; j += rs;
        if (j >= l) { j -= l; ++row; }
    }
    block_sum2(sa, sb, s1, s2);
    if (threadIdx.x == 0) {
        if (parts == 1) {
            finish_grads(ch, sa[0], sb[0], cen, n * l, gamma, invstd, training, ggamma, gbeta, centre_t,
                         k1, k2, k3);
        } else {
            partial[2 * blockIdx.x] = sa[0]; partial[2 * blockIdx.x + 1] = sb[0];
        }
    }
}

// Backward, pass 2 (only when parts > 1): one block per channel.
extern "C" __global__ void grad_sums_finish(const double* partial, const double* centre, idx_t n, idx_t l,
                                            int parts, const T* gamma, const double* invstd, int training,
                                            T* ggamma, T* gbeta, T* centre_t, T* k1, T* k2, T* k3) {
    __shared__ double sa[BLOCK], sb[BLOCK];
    const idx_t ch = blockIdx.x;
    sum_partials(sa, sb, partial, ch, parts);
    if (threadIdx.x == 0)
        finish_grads(ch, sa[0], sb[0], centre[ch], n * l, gamma, invstd, training, ggamma, gbeta, centre_t,
                     k1, k2, k3);
}
"""


def reduction_source(dtype_name, itype):
    """The CUDA source of the reduction kernels for ``dtype_name`` data and ``itype`` index arithmetic."""
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    return preamble(itype) + _REDUCTIONS.replace("__T__", ctype).replace("__BLOCK__", str(BLOCK))


@functools.lru_cache(maxsize=None)
def _reductions(dtype_name, itype):
    """``{name: RawKernel}`` of the four reduction kernels (compiled once per dtype and index type)."""
    import cupy
    module = cupy.RawModule(code=reduction_source(dtype_name, itype))
    return {name: module.get_function(name) for name in ("moments", "moments_finish", "grad_sums",
                                                           "grad_sums_finish")}


@functools.lru_cache(maxsize=None)
def _elementwise(itype):
    import cupy
    sizes = f"{PARAM_TYPE[itype]} c, {PARAM_TYPE[itype]} l"
    suffix = "_i32" if itype == "int" else "_i64"
    # relu: y = max(y, 0) in the same pass (a NaN stays NaN: NaN < 0 is false)
    affine = cupy.ElementwiseKernel(
        "T x, raw T centre, raw T scale, raw T shift, bool relu, " + sizes, "T y",
        "const idx_t ch = ((idx_t)i / l) % c; const T v = (x - centre[ch]) * scale[ch] + shift[ch];"
        "y = (relu && v < (T)0) ? (T)0 : v;",
        "minception_bn_affine" + suffix, preamble=preamble(itype))
    input_grad = cupy.ElementwiseKernel(
        "T gy, T x, raw T centre, raw T k1, raw T k2, raw T k3, " + sizes, "T gx",
        "const idx_t ch = ((idx_t)i / l) % c; gx = gy * k1[ch] + (x - centre[ch]) * k2[ch] + k3[ch];",
        "minception_bn_input_grad" + suffix, preamble=preamble(itype))
    # evaluation: gx = k1 * gy alone. x is not read, so a NaN in x does not reach gx (the reference never reads
    # x there either), which ``(x - centre) * 0`` would not give
    scale_grad = cupy.ElementwiseKernel(
        "T gy, raw T k1, " + sizes, "T gx", "const idx_t ch = ((idx_t)i / l) % c; gx = gy * k1[ch];",
        "minception_bn_scale_grad" + suffix, preamble=preamble(itype))
    return affine, input_grad, scale_grad


@functools.lru_cache(maxsize=None)
def _relu_gate():
    """The ReLU's backward in one pass: ``gy * (y > 0)``, a multiply by the mask as in the reference, not a select:
    a NaN or infinite ``gy`` where the ReLU is off stays NaN (NaN * 0), so both tiers agree on a non-finite step."""
    import cupy
    return cupy.ElementwiseKernel("T gy, T y", "T g", "g = gy * (T)(y > (T)0);", "minception_relu_gate")


@functools.lru_cache(maxsize=None)
def _running_update():
    """``reference.batch_norm.update_running_stats`` as one kernel (the NumPy formula is a dozen launches)."""
    import cupy
    return cupy.ElementwiseKernel(
        "float64 mean, float64 var, float64 momentum, float64 unbias", "T running_mean, T running_var",
        "running_mean = (T)((1.0 - momentum) * (double)running_mean + momentum * mean);"
        "running_var = (T)((1.0 - momentum) * (double)running_var + momentum * var * unbias);",
        "minception_bn_running_update")


# ----------------------------------------------------------------------------------- the kernel boundary
def _data(op, name, a):
    """``a`` as a C-contiguous float32/float64 (N, C, L) CuPy array, or a clear error."""
    import cupy
    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"{op} (GPU): {name} must be a CuPy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op} (GPU): supports float32 and float64, got {name} of dtype {a.dtype}")
    if a.ndim != 3:
        raise ValueError(f"{op} (GPU): {name} must have shape (N, C, L), got {a.shape}")
    return cupy.ascontiguousarray(a)


def _like(op, name, a, shape, dtype):
    """``a`` (a CuPy array of ``shape``) as a C-contiguous array of ``dtype``: what the kernel reads."""
    import cupy
    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"{op} (GPU): {name} must be a CuPy array, got {type(a).__name__}")
    if a.shape != tuple(shape):
        raise ValueError(f"{op} (GPU): {name} must have shape {tuple(shape)}, got {a.shape}")
    return cupy.ascontiguousarray(a, dtype=dtype)


def _ints(itype, *values):
    """Scalar kernel arguments of the C type ``idx_t``."""
    t = np.int32 if itype == "int" else np.int64
    return tuple(t(v) for v in values)


# ----------------------------------------------------------------------------------- forward
def forward_train(x, gamma, beta, eps, relu=False):
    """x: (N, C, L); gamma, beta: (C,) -> y: (N, C, L), mean, var (biased), invstd: (C,) float64 (``relu``:
    y = max(y, 0))."""
    import cupy
    op = "batch_norm"
    x = _data(op, "x", x)
    n, c, l = x.shape
    gamma, beta = _like(op, "gamma", gamma, (c,), x.dtype), _like(op, "beta", beta, (c,), x.dtype)
    parts = blocks_per_channel(n * l)
    itype = reduction_index_type(x.shape, parts)
    kernels = _reductions(x.dtype.name, itype)
    mean, var, invstd = (cupy.empty(c, np.float64) for _ in range(3))
    centre_t, scale_t = cupy.empty(c, x.dtype), cupy.empty(c, x.dtype)
    partial = cupy.empty(2 * c * parts if parts > 1 else 1, np.float64)
    nn, cc, ll = _ints(itype, n, c, l)
    kernels["moments"]((c * parts,), (BLOCK,), (x, nn, cc, ll, np.int32(parts), np.float64(eps), gamma, partial,
                                                mean, var, invstd, centre_t, scale_t))
    if parts > 1:
        kernels["moments_finish"]((c,), (BLOCK,), (x, partial, nn, ll, np.int32(parts), np.float64(eps), gamma,
                                                   mean, var, invstd, centre_t, scale_t))
    y = _elementwise(index_type(x.size))[0](x, centre_t, scale_t, beta, bool(relu), c, l)
    return y, mean, var, invstd


def forward_eval(x, gamma, beta, running_mean, running_var, eps, relu=False):
    """x: (N, C, L); gamma, beta, running_mean, running_var: (C,) -> y: (N, C, L), invstd: (C,) float64 (``relu``:
    y = max(y, 0))."""
    import cupy
    op = "batch_norm (eval)"
    x = _data(op, "x", x)
    n, c, l = x.shape
    gamma, beta = _like(op, "gamma", gamma, (c,), np.float64), _like(op, "beta", beta, (c,), x.dtype)
    running_mean = _like(op, "running_mean", running_mean, (c,), x.dtype)
    running_var = _like(op, "running_var", running_var, (c,), np.float64)
    invstd = 1.0 / cupy.sqrt(running_var + eps)
    scale = (gamma * invstd).astype(x.dtype)
    y = _elementwise(index_type(x.size))[0](x, running_mean, scale, beta, bool(relu), c, l)
    return y, invstd


def update_running_stats(running_mean, running_var, mean, var, momentum, count):
    """In place, as ``reference.batch_norm.update_running_stats`` (same arguments), in one kernel when both buffers
    exist and share a float dtype; otherwise the reference's formula."""
    if (running_mean is None or running_var is None or running_mean.dtype != running_var.dtype
            or running_mean.dtype not in (np.float32, np.float64) or running_mean.shape != running_var.shape
            or not (running_mean.flags.c_contiguous and running_var.flags.c_contiguous)):
        from ..reference import batch_norm
        return batch_norm.update_running_stats(running_mean, running_var, mean, var, momentum, count)
    shape = running_mean.shape
    mean = _like("batch_norm running statistics", "mean", mean, shape, np.float64)
    var = _like("batch_norm running statistics", "var", var, shape, np.float64)
    _running_update()(mean, var, float(momentum), count / (count - 1.0), running_mean, running_var)


# ----------------------------------------------------------------------------------- backward
def _backward(gy, x, centre, invstd, gamma, training, y):
    import cupy
    op = "batch_norm backward"
    x = _data(op, "x", x)
    n, c, l = x.shape
    gy = _like(op, "gy", gy, x.shape, x.dtype)
    if y is not None:
        gy = _relu_gate()(gy, _like(op, "y", y, x.shape, x.dtype))    # the ReLU's gradient first
    centre = _like(op, "centre", centre, (c,), np.float64)
    invstd = _like(op, "invstd", invstd, (c,), np.float64)
    gamma_t = _like(op, "gamma", gamma, (c,), x.dtype)
    parts = blocks_per_channel(n * l)
    itype = reduction_index_type(x.shape, parts)
    kernels = _reductions(x.dtype.name, itype)
    ggamma, gbeta, centre_t, k1, k2, k3 = (cupy.empty(c, x.dtype) for _ in range(6))
    partial = cupy.empty(2 * c * parts if parts > 1 else 1, np.float64)
    nn, cc, ll = _ints(itype, n, c, l)
    kernels["grad_sums"]((c * parts,), (BLOCK,), (gy, x, centre, nn, cc, ll, np.int32(parts), gamma_t, invstd,
                                                  np.int32(training), partial, ggamma, gbeta, centre_t, k1, k2, k3))
    if parts > 1:
        kernels["grad_sums_finish"]((c,), (BLOCK,), (partial, centre, nn, ll, np.int32(parts), gamma_t, invstd,
                                                     np.int32(training), ggamma, gbeta, centre_t, k1, k2, k3))
    _, input_grad, scale_grad = _elementwise(index_type(x.size))
    gx = input_grad(gy, x, centre_t, k1, k2, k3, c, l) if training else scale_grad(gy, k1, c, l)
    return gx, ggamma.astype(gamma.dtype, copy=False), gbeta.astype(gamma.dtype, copy=False)


def backward_train(gy, x, mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); mean, invstd: (C,) float64; gamma: (C,) -> gx: (N, C, L), ggamma: (C,), gbeta: (C,).
    ``y``: the forward's output when it ran with ``relu=True``."""
    return _backward(gy, x, mean, invstd, gamma, True, y)


def backward_eval(gy, x, running_mean, invstd, gamma, y=None):
    """gy, x: (N, C, L); running_mean: (C,); invstd: (C,) float64; gamma: (C,) -> gx, ggamma, gbeta.
    ``y``: the forward's output when it ran with ``relu=True``."""
    return _backward(gy, x, running_mean, invstd, gamma, False, y)
