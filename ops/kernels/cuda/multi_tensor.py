"""One GPU kernel launch for a whole list of arrays: the optimizer step, the EMA update and gradient clipping.

An Inception network has hundreds of parameters, most of them small (a BatchNorm's gamma has a few dozen values).
Updating them one kernel per parameter costs hundreds of launches per step, and at batch 64 the GPU spends
more time waiting for launches than computing. Here one launch covers every parameter of a dtype:

* the host lists the arrays (``rows``: for each parameter, its data, gradient and state arrays, all of one size)
  and cuts every parameter into chunks of ``CHUNK`` values, one GPU block per chunk;
* it packs, into one int64 array (``pack_table``), the arrays' device addresses, their sizes, a per-parameter
  flag (weight decay on or off), and for each block the parameter and the first value it handles;
* the table goes to the GPU with ``cupy.asarray`` (an asynchronous copy through pinned memory: the host does not
  wait for the GPU), and the kernel's block ``b`` updates values ``start .. start + CHUNK`` of its parameter.

Layout of the table, for K parameters with A arrays each and B blocks::

    [ address of array a of parameter k, at a*K + k      (A*K entries)
      size of parameter k                                 (K)
      flag of parameter k                                 (K)
      parameter of block b                                (B)
      first value of block b                              (B) ]

The update itself is the same per-element formula as the plain array code of ``minception/optim`` (``sgd_update``,
``rmsprop_update``, ``EMA.update``), written once in CUDA (``body``) with ``e`` the value's number inside its
parameter. Every value is written by one thread, so the result does not depend on timing. The reductions of
gradient clipping sum each block's values in a fixed order and then the blocks' sums in a fixed order:
deterministic as well.

``block_layout``, ``pack_table`` and ``kernel_source`` are plain Python/NumPy (tested without a GPU); CuPy is
imported only when a kernel runs. The optimizers reach this module through ``ops.kernels.multi_tensor`` (imported
at its first use) and use it on the GPU in every kernel tier: the per-parameter array code is its reference.
"""
import functools

import numpy as np

BLOCK = 256                 # threads per block
CHUNK = BLOCK * 16          # values per block: 16 per thread


@functools.lru_cache(maxsize=64)
def block_layout(sizes):
    """For parameters of ``sizes`` (a tuple), which parameter and which first value each block handles.

    Returns ``(block_param, block_start)``, two int64 arrays of length B = sum(ceil(size / CHUNK)).
    """
    sizes = np.asarray(sizes, np.int64)
    blocks = (sizes + CHUNK - 1) // CHUNK
    block_param = np.repeat(np.arange(len(sizes), dtype=np.int64), blocks)
    first_block = np.cumsum(blocks) - blocks                     # number of the first block of each parameter
    block_start = (np.arange(int(blocks.sum()), dtype=np.int64) - first_block[block_param]) * CHUNK
    return block_param, block_start


def pack_table(addresses, sizes, flags):
    """The int64 table of the module docstring.

    Args:
        addresses: K rows of A device addresses (ints), one row per parameter.
        sizes: K sizes (number of values of each parameter; every array of a row has that size).
        flags: K ints (0 or 1), read by the kernel body as ``flag``.

    Returns:
        ``(table, n_blocks)``.
    """
    sizes = tuple(int(s) for s in sizes)
    block_param, block_start = block_layout(sizes)
    columns = np.asarray(addresses, dtype=np.int64).reshape(len(sizes), -1).T.reshape(-1)   # a*K + k
    table = np.concatenate([columns, np.asarray(sizes, np.int64), np.asarray(flags, np.int64),
                            block_param, block_start])
    return table, len(block_param)


_TEMPLATE = r"""
typedef __T__ T;
#define BLOCK __BLOCK__
#define CHUNK __CHUNK__

extern "C" __global__ void __NAME__(const long long* table, int n_params, int n_blocks__SCALARS__) {
    const long long* sizes = table + __A__ * (long long)n_params;
    const long long* flags = sizes + n_params;
    const long long* block_param = flags + n_params;
    const long long* block_start = block_param + n_blocks;
    const long long k = block_param[blockIdx.x];              // this block's parameter ...
    const long long start = block_start[blockIdx.x];          // ... and its values start .. end
    const long long end = min(start + (long long)CHUNK, sizes[k]);
__ARRAYS__
    for (long long e = start + threadIdx.x; e < end; e += BLOCK) {
__BODY__
    }
}
"""


def kernel_source(name, arrays, scalars, body, dtype_name):
    """CUDA source of a multi-tensor kernel.

    Args:
        name: the kernel's name.
        arrays: names of the A arrays of a row, in table order; a name starting with ``"const "`` is read-only.
        scalars: C declarations of the scalar arguments after the table, e.g. ``("T lr", "int nesterov")``.
        body: CUDA statements for one value ``e``; they see the arrays by name, the scalars and ``flag``.
        dtype_name: ``"float32"`` or ``"float64"`` (the type ``T`` of every array).
    """
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    lines = []
    for a, spec in enumerate(arrays):
        const = spec.startswith("const ")
        var = spec[len("const "):] if const else spec
        qual = "const T*" if const else "T*"
        lines.append(f"    {qual} {var} = ({qual})table[{a} * (long long)n_params + k];")
    if "flag" in body:
        lines.append("    const bool flag = flags[k] != 0;")
    code = _TEMPLATE.replace("__T__", ctype).replace("__BLOCK__", str(BLOCK)).replace("__CHUNK__", str(CHUNK))
    code = code.replace("__NAME__", name).replace("__A__", str(len(arrays)))
    code = code.replace("__SCALARS__", "".join(", " + s for s in scalars))
    body = "\n".join("        " + line.strip() for line in body.strip().splitlines())
    return code.replace("__ARRAYS__", "\n".join(lines)).replace("__BODY__", body)


@functools.lru_cache(maxsize=None)
def _compiled(name, arrays, scalars, body, dtype_name):
    import cupy
    return cupy.RawKernel(kernel_source(name, arrays, scalars, body, dtype_name), name)


class MultiTensorKernel:
    """A kernel that applies ``body`` to every value of every row of arrays, in one launch per call.

    Args:
        name, arrays, scalars, body: as for ``kernel_source``.
    """

    def __init__(self, name, arrays, scalars, body):
        self.name, self.arrays, self.scalars, self.body = name, tuple(arrays), tuple(scalars), body
        self._last = None        # (key, device table) of the last launch: reused while the addresses stay

    def source(self, dtype_name):
        return kernel_source(self.name, self.arrays, self.scalars, self.body, dtype_name)

    def __call__(self, rows, flags, scalar_values):
        """Launch over ``rows`` (K tuples of A C-contiguous CuPy arrays of one dtype; the arrays of a row have
        one size), with per-row ``flags`` and the scalar argument values (NumPy scalars of the right C type)."""
        import cupy
        kept = [(row, int(bool(flag))) for row, flag in zip(rows, flags) if row[0].size]
        if not kept:
            return
        rows, flags = [row for row, _ in kept], [flag for _, flag in kept]
        dtype = rows[0][0].dtype
        addresses = tuple(a.data.ptr for row in rows for a in row)
        sizes = tuple(row[0].size for row in rows)
        key = (addresses, sizes, tuple(flags))
        if self._last is not None and self._last[0] == key:
            table, n_blocks = self._last[1]
        else:
            host, n_blocks = pack_table(np.reshape(addresses, (len(rows), -1)), sizes, flags)
            table = cupy.asarray(host)
            self._last = (key, (table, n_blocks))
        kernel = _compiled(self.name, self.arrays, self.scalars, self.body, dtype.name)
        kernel((n_blocks,), (BLOCK,), (table, np.int32(len(rows)), np.int32(n_blocks)) + tuple(scalar_values))


def decay_groups(batch):
    """Split ``(data, grad, state, weight_decay)`` items by dtype and by weight-decay value, so that one launch
    has one ``wd`` scalar and a per-parameter flag: yields ``(dtype, wd, items)`` where every item's decay is 0 or
    ``wd`` (one group per dtype unless parameters of a dtype decay by different non-zero amounts)."""
    by_dtype = {}
    for item in batch:
        by_dtype.setdefault(item[0].dtype, []).append(item)
    for dtype, items in by_dtype.items():
        values = sorted({item[3] for item in items if item[3]})
        if len(values) <= 1:
            yield dtype, (values[0] if values else 0.0), items
            continue
        undecayed = [item for item in items if not item[3]]
        for i, value in enumerate(values):
            yield dtype, value, (undecayed if i == 0 else []) + [item for item in items if item[3] == value]


def check_rows(rows):
    """True when every array of every row is a C-contiguous CuPy array of the row's first array's size and the
    rows share one dtype (what ``MultiTensorKernel`` needs)."""
    if not rows:
        return True
    dtype = rows[0][0].dtype
    return all(a.flags.c_contiguous and a.dtype == dtype and a.size == row[0].size for row in rows for a in row)


# ---------------------------------------------------------------------------------------------- the updates
SGD_MOMENTUM = MultiTensorKernel(
    "minception_sgd_momentum_multi", ("p", "const g", "buf"), ("T lr", "T momentum", "T wd", "int nesterov"),
    """
    T gw = g[e];
    if (flag) gw += wd * p[e];                 // weight decay only where it applies: never g + 0 * p
    const T b = momentum * buf[e] + gw;
    buf[e] = b;
    p[e] -= lr * (nesterov ? gw + momentum * b : b);
    """)

SGD_PLAIN = MultiTensorKernel(
    "minception_sgd_multi", ("p", "const g"), ("T lr", "T wd"),
    """
    T gw = g[e];
    if (flag) gw += wd * p[e];
    p[e] -= lr * gw;
    """)

RMSPROP = MultiTensorKernel(
    "minception_rmsprop_multi", ("p", "const g", "ms", "mom"),
    ("T lr", "T decay", "T one_minus_decay", "T eps", "T momentum", "T wd", "int inside"),
    """
    T gw = g[e];
    if (flag) gw += wd * p[e];
    const T m2 = decay * ms[e] + one_minus_decay * (gw * gw);
    ms[e] = m2;
    const T denom = inside ? sqrt(m2 + eps) : sqrt(m2) + eps;
    const T v = momentum * mom[e] + lr * gw / denom;
    mom[e] = v;
    p[e] -= v;
    """)

EMA = MultiTensorKernel(
    "minception_ema_multi", ("avg", "const value"), ("T one_minus_d",),
    """
    avg[e] -= one_minus_d * (avg[e] - value[e]);
    """)

SCALE = MultiTensorKernel(
    "minception_scale_multi", ("const g", "out"), ("const double* factor",),
    """
    out[e] = g[e] * (T)factor[0];
    """)


# ---------------------------------------------------------------------------------------------- global norm
_NORM_SOURCE = r"""
typedef __T__ T;
#define BLOCK __BLOCK__
#define CHUNK __CHUNK__

// Pass 1: block b writes the float64 sum of squares of its chunk to partial[b] (thread order, then a tree).
extern "C" __global__ void minception_sum_of_squares_multi(const long long* table, int n_params, int n_blocks,
                                                           double* partial) {
    __shared__ double s[BLOCK];
    const long long* sizes = table + n_params;
    const long long* block_param = sizes + 2 * (long long)n_params;      // (flags are unused)
    const long long* block_start = block_param + n_blocks;
    const long long k = block_param[blockIdx.x];
    const long long start = block_start[blockIdx.x];
    const long long end = min(start + (long long)CHUNK, sizes[k]);
    const T* g = (const T*)table[k];
    double acc = 0.0;
    for (long long e = start + threadIdx.x; e < end; e += BLOCK) acc += (double)g[e] * (double)g[e];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int half = BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}
"""

_FINISH_SOURCE = r"""
#define BLOCK __BLOCK__

// Pass 2, one block: the global norm sqrt(sum of the partials) in a fixed order, and the clipping factor
// max_norm / norm when the norm is finite and above max_norm, else 1.
extern "C" __global__ void minception_norm_finish(const double* partial, long long n, double max_norm,
                                                  double* norm, double* factor) {
    __shared__ double s[BLOCK];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < n; i += BLOCK) acc += partial[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int half = BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        const double total = sqrt(s[0]);
        norm[0] = total;
        factor[0] = (isfinite(total) && max_norm > 0.0 && total > max_norm) ? max_norm / total : 1.0;
    }
}
"""


def norm_sources(dtype_name):
    """The CUDA sources of the two global-norm kernels (pass 1 for ``dtype_name`` gradients, pass 2)."""
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    fill = lambda s: s.replace("__T__", ctype).replace("__BLOCK__", str(BLOCK)).replace("__CHUNK__", str(CHUNK))
    return fill(_NORM_SOURCE), fill(_FINISH_SOURCE)


@functools.lru_cache(maxsize=None)
def _norm_kernels(dtype_name):
    import cupy
    first, finish = norm_sources(dtype_name)
    return (cupy.RawKernel(first, "minception_sum_of_squares_multi"),
            cupy.RawKernel(finish, "minception_norm_finish"))


def global_norm(grads, max_norm=0.0):
    """The global L2 norm of CuPy arrays and the clipping factor for ``max_norm``, both as 1-element float64
    device arrays, computed without the host waiting for the GPU.

    ``max_norm <= 0`` means no clipping (factor 1). Returns ``(norm, factor)``.
    """
    import cupy
    groups = {}
    for g in grads:
        if g.size:
            groups.setdefault(g.dtype.name, []).append(cupy.ascontiguousarray(g))
    layouts = {name: pack_table([[g.data.ptr] for g in group], [g.size for g in group], [0] * len(group))
               for name, group in groups.items()}
    total_blocks = sum(n for _, n in layouts.values())
    partial = cupy.empty(total_blocks, np.float64) if total_blocks else cupy.zeros(1, np.float64)
    offset = 0
    for name, group in groups.items():
        host, n_blocks = layouts[name]
        first, _ = _norm_kernels(name)
        first((n_blocks,), (BLOCK,), (cupy.asarray(host), np.int32(len(group)), np.int32(n_blocks),
                                      partial[offset:offset + n_blocks]))
        offset += n_blocks
    norm, factor = cupy.empty(1, np.float64), cupy.empty(1, np.float64)
    _norm_kernels("float64")[1]((1,), (BLOCK,), (partial, np.int64(partial.size), np.float64(max_norm), norm, factor))
    return norm, factor
