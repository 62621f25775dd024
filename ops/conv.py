"""``conv2d``: 2-D convolution (cross-correlation, as in every framework) by im2col and matrix products.

The idea, for an input ``x: (N, C, H, W)`` and a weight ``W: (Cout, C, kh, kw)``:

1. **im2col** copies every input window into a column: ``cols: (C*kh*kw, N*OH*OW)``
   (``ops/kernels/im2col_reference.py`` is the readable version; read it first).
2. **One GEMM**: ``Y2d = W2d @ cols`` with ``W2d = W.reshape(Cout, C*kh*kw)``: ``(Cout, N*OH*OW)``,
   reordered to ``(N, Cout, OH, OW)``.
3. Backward, given ``gY2d: (Cout, N*OH*OW)``:
   ``dW2d = gY2d @ cols.T`` (im2col is *recomputed* from the saved ``x``: the column buffer is up to
   ``kh*kw`` times larger than ``x``, so it is never kept from forward to backward), and
   ``dx = col2im(W2d.T @ gY2d)``, where col2im adds every column entry back onto the pixel it came from.
   ``db`` is ``gY`` summed over N, OH and OW.

On the GPU (CuPy) this is done literally, on the whole batch: im2col and col2im are CuPy kernels
(``ops/kernels/im2col_cupy.py``) and the products are cuBLAS calls.

On the CPU the same arithmetic runs in **chunks of images** on the engine's CPU threads (``autograd.parallel``:
the calling thread and one pool worker per extra core; 2 threads here), each thread owning a contiguous share of
the batch. For each chunk of ``nb`` images a thread
runs the Numba im2col into its own small column buffer (about ``CHUNK_BYTES``: it stays in the core's cache),
then a *single-threaded* GEMM on it, then writes its slice of the output. Why (measured on the 2-core development
machine, float32, batch 64, Inception shapes; see ``bench/conv.py``):

* a column buffer for the whole batch is 17-150 MB: writing it and reading it back from memory, plus the page
  faults of a fresh allocation, cost 40-110% of the GEMM time; a 1 MB buffer that one core writes and then
  multiplies stays in that core's cache;
* a ``prange`` (parallel) Numba im2col alternating with OpenBLAS's own 2-thread GEMM was 2-14x *slower* than
  this: the two thread pools spin-wait while the other works, so every handover cost milliseconds on 2 cores.
  Here only one kind of thread is busy at a time: while the threads run, OpenBLAS is limited to 1 thread
  (``_run``) and called from each of them. (Bonus: on a machine shared with other jobs, one-thread GEMMs degrade
  gracefully, where OpenBLAS's 2-thread GEMM, which waits for its slowest thread, slows down 10x or more);
* a 1x1 stride-1 conv without padding needs no im2col at all: image ``n``'s column matrix is ``x[n]`` seen as
  ``(C, H*W)``, so with one image per chunk the GEMM reads ``x`` directly.

The weight gradient is accumulated per thread over its chunks, as ``dW.T += cols_chunk @ gY_chunk.T`` (the
fastest layout here: see ``_dw_gemm``), and the per-thread sums are added in a fixed order, so results do not
depend on timing. ``import ops`` imports neither Numba nor CuPy: the kernels are imported at the first call.

If NumPy's BLAS is not OpenBLAS (so its thread count cannot be set), the chunks run one after the other in the
calling thread with the BLAS multi-threaded as usual.
"""
import ctypes
import threading

import numpy as np

from autograd import Function
from autograd.backend import get_array_module, is_gpu_array
from autograd.allocator import keep_freed_memory
from autograd.parallel import parallel_for

from .geometry import as_pair, check_window_fits, normalize_padding, normalize_stride, window_out_shape

#: target size in bytes of one worker's column buffer (one chunk of images); a chunk holds at least one image
CHUNK_BYTES = 1 << 20
#: ... but at least this many GEMM columns (chunk images x OH*OW): thinner products run far below peak
MIN_CHUNK_COLUMNS = 256
#: a 1x1 stride-1 conv on images of at least this many pixels multiplies each image in place (no im2col copy)
POINTWISE_MIN_PIXELS = 256
#: below this many multiply-adds (forward) a conv runs in the calling thread: thread handover is not worth it
_MIN_THREADED_MACS = 4_000_000


# =====================================================================================  argument checks

def _shape(t):
    return tuple(t.shape)


def conv2d_geometry(x_shape, w_shape, b_shape, stride, padding, op="conv2d"):
    """Check a conv2d call's shapes and return ``(kh, kw), (sh, sw), (ph, pw), (OH, OW)``.

    Raises ValueError/TypeError naming ``op``: x or weight not 4-D, channel mismatch, empty kernel, bias not
    ``(Cout,)``, non-positive stride, negative padding, "same" with an even kernel, kernel larger than the
    padded input.
    """
    if len(x_shape) != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got a {len(x_shape)}-D array of shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"{op}: expected weight of shape (out_channels, in_channels, kh, kw), got a "
                         f"{len(w_shape)}-D array of shape {w_shape}")
    n, c, h, w = x_shape
    cout, cin, kh, kw = w_shape
    if cin != c:
        raise ValueError(f"{op}: x has {c} channels (shape {x_shape}) but weight expects {cin} input channels "
                         f"(shape {w_shape}); expected x.shape[1] == weight.shape[1]")
    if min(w_shape) <= 0 or min(x_shape) <= 0:
        raise ValueError(f"{op}: empty x or weight: x {x_shape}, weight {w_shape}")
    if b_shape is not None and tuple(b_shape) != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},) (one value per output channel of weight "
                         f"{w_shape}), got {tuple(b_shape)}")
    stride = normalize_stride(stride, op)
    padding = normalize_padding(padding, (kh, kw), op)
    check_window_fits((h, w), (kh, kw), padding, op)
    return (kh, kw), stride, padding, window_out_shape((h, w), (kh, kw), stride, padding)


def _check_dtypes(op, x, weight, bias):
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is not None and np.dtype(t.dtype) not in (np.float32, np.float64):
            raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype} (shape {_shape(t)})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but x has dtype {x.dtype}; convert one of them")


# =====================================================================================  CPU: threads

class _OpenBLAS:
    """Read and set the thread count of the OpenBLAS that NumPy uses (found among the loaded libraries)."""

    def __init__(self):
        self.get = self.set = None
        try:
            with open("/proc/self/maps") as f:
                paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
        except OSError:           # not Linux: leave the BLAS alone
            return
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_", ""):
                for suffix in ("64_", ""):
                    get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                    set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                    if get is not None and set_ is not None:
                        get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                        self.get, self.set = get, set_
                        return


_blas = None
_local = threading.local()      # per-thread reusable buffers
_run_lock = threading.Lock()    # one threaded conv at a time: the OpenBLAS thread count is process-wide


def _openblas():
    global _blas
    if _blas is None:
        _blas = _OpenBLAS()
        keep_freed_memory()          # first CPU conv: let malloc reuse big freed blocks (autograd/allocator.py)
    return _blas


def _buffer(name, size, dtype):
    """A reusable 1-D buffer of at least ``size`` elements, private to the calling thread (grows, never shrinks).
    Reusing it avoids allocating and first-touching megabytes on every call."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
    key = (name, np.dtype(dtype))
    buf = store.get(key)
    if buf is None or buf.size < size:
        buf = store[key] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size]


def _run(job, n_images, macs):
    """Run ``job(n0, n1)`` over the batch: split among the CPU threads (``autograd.parallel``) with OpenBLAS
    limited to 1 thread meanwhile; or in the calling thread alone for small convs, when OpenBLAS is held at one
    thread, and for a single image (whose GEMMs then use OpenBLAS's own threads: batch-1 inference).
    Returns the list of the jobs' results, in batch order."""
    blas = _openblas()
    before = blas.get() if blas.get is not None else 1
    if before <= 1 or macs < _MIN_THREADED_MACS or n_images < 2:
        return parallel_for(job, n_images, parallel=False)     # one image: OpenBLAS keeps its own threads
    with _run_lock:
        blas.set(1)
        try:
            return parallel_for(job, n_images)
        finally:
            blas.set(before)


def _kernels_cpu():
    from .kernels import im2col_numba      # imported on first use: `import ops` compiles and imports nothing
    return im2col_numba


def _chunk_images(k, p, itemsize, n):
    """Images per chunk: a column buffer of about CHUNK_BYTES, but at least MIN_CHUNK_COLUMNS GEMM columns."""
    nb = max(CHUNK_BYTES // max(1, k * p * itemsize), -(-MIN_CHUNK_COLUMNS // p))
    return max(1, min(n, nb))


def _is_pointwise(kernel, stride, padding):
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


# =====================================================================================  CPU: forward / backward

def _forward_cpu(x, w2d, bias, kernel, stride, padding, out_hw):
    """``x: (N, C, H, W)``, ``w2d: (Cout, K)`` -> ``y: (N, Cout, OH, OW)``."""
    kern = _kernels_cpu()
    n, c, h, w = x.shape
    cout, k = w2d.shape
    oh, ow = out_hw
    p = oh * ow
    y = np.empty((n, cout, p), dtype=x.dtype)
    pointwise = _is_pointwise(kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    b_col = None if bias is None else bias.reshape(cout, 1)

    def job(lo, hi):
        nb = _chunk_images(k, p, x.itemsize, hi - lo)
        if pointwise and p >= POINTWISE_MIN_PIXELS:       # big images: per-image GEMM on x itself, no copy
            nb = 1
        for n0 in range(lo, hi, nb):
            n1 = min(hi, n0 + nb)
            m = (n1 - n0) * p
            if nb == 1 and pointwise:
                cols = x[n0].reshape(c, p)
            else:
                cols = _buffer("cols", k * m, x.dtype).reshape(k, m)
                kern._im2col_kernel(x[n0:n1], kh, kw, sh, sw, ph, pw, oh, ow, cols)
            if nb == 1:
                np.matmul(w2d, cols, out=y[n0])
            else:
                tmp = _buffer("y", cout * m, x.dtype).reshape(cout, m)
                np.matmul(w2d, cols, out=tmp)
                y[n0:n1] = tmp.reshape(cout, n1 - n0, p).transpose(1, 0, 2)
            if b_col is not None:
                y[n0:n1] += b_col

    _run(job, n, n * p * k * cout)
    return y.reshape(n, cout, oh, ow)


def _dw_gemm(gy2d, cols, out):
    """``out = cols @ gy2d.T``: ``(K, m) @ (m, Cout) -> (K, Cout)``, the weight gradient of one chunk, *transposed*.

    Layout (measured on this machine's OpenBLAS 0.3.31, SkylakeX kernels, one thread, float32, the chunk shapes
    of bench/conv.py): computing dW.T as ``cols @ gy2d.T`` ran at 128-149 GFLOP/s, 6-15% faster than
    ``gy2d @ cols.T`` (110-137), with both operands C-contiguous (BLAS reads the transposed one in place; F-order
    copies gained nothing). So each thread accumulates dW.T (K, Cout), and the sum is transposed once at the
    end (Cout*K values: nothing next to the GEMM). The traps are elsewhere: ``np.einsum`` on the same operands
    (no BLAS without ``optimize=True``) ran 8-10x slower (12-17 GFLOP/s), and on the whole batch with 2 BLAS
    threads per-image products summed ran 2-4x slower, ``np.tensordot`` on 3-D operands 2-5x slower, and any
    2-thread GEMM sharing the cores with another busy thread pool 10-40x slower.
    """
    np.matmul(cols, gy2d.T, out=out)


def _backward_cpu(x, w2d, gy, kernel, stride, padding, out_hw, need_x, need_w):
    """Returns ``(dx or None, dW2d or None)`` for ``gy: (N, Cout, OH, OW)``."""
    kern = _kernels_cpu()
    n, c, h, w = x.shape
    cout, k = w2d.shape
    oh, ow = out_hw
    p = oh * ow
    # a view, no copy, when gy is a channel slice of a concat's gradient (each gy[i] is then C-order); any other
    # strides still give the right answer (np.matmul copies what BLAS cannot read)
    gy = gy.reshape(n, cout, p)
    dx = np.empty_like(x) if need_x else None
    pointwise = _is_pointwise(kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    w2d_t = w2d.T

    def job(lo, hi):
        nb = _chunk_images(k, p, x.itemsize, hi - lo)
        if pointwise and p >= POINTWISE_MIN_PIXELS:
            nb = 1
        dw_t = chunk_t = None                           # this thread's dW.T, (K, Cout)
        for n0 in range(lo, hi, nb):
            n1 = min(hi, n0 + nb)
            m = (n1 - n0) * p
            if nb == 1:
                gyc = gy[n0]
            else:
                gyc = _buffer("gy", cout * m, x.dtype).reshape(cout, m)
                gyc.reshape(cout, n1 - n0, p)[...] = gy[n0:n1].transpose(1, 0, 2)
            direct = nb == 1 and pointwise               # the columns of image n0 are x[n0] itself
            if direct:
                cols = x[n0].reshape(c, p)
            else:
                cols = _buffer("cols", k * m, x.dtype).reshape(k, m)
                if need_w:
                    kern._im2col_kernel(x[n0:n1], kh, kw, sh, sw, ph, pw, oh, ow, cols)
            if need_w:
                if dw_t is None:                         # the first chunk writes the thread's sum directly
                    dw_t = np.empty((k, cout), dtype=x.dtype)
                    _dw_gemm(gyc, cols, dw_t)
                else:
                    if chunk_t is None:
                        chunk_t = _buffer("dw", k * cout, x.dtype).reshape(k, cout)
                    _dw_gemm(gyc, cols, chunk_t)
                    dw_t += chunk_t
            if need_x:
                if direct:
                    np.matmul(w2d_t, gyc, out=dx[n0].reshape(c, p))
                else:
                    np.matmul(w2d_t, gyc, out=cols)      # the column gradient overwrites the columns
                    kern._col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx[n0:n1])
        return dw_t

    partial = _run(job, n, n * p * k * cout)
    dw = None
    if need_w:
        dw_t = partial[0]
        for part in partial[1:]:                          # fixed order: deterministic
            dw_t += part
        dw = np.ascontiguousarray(dw_t.T)
    return dx, dw


# =====================================================================================  GPU

def _forward_gpu(x, w2d, bias, kernel, stride, padding, out_hw):
    import cupy as cp
    n, c, h, w = x.shape
    cout = w2d.shape[0]
    oh, ow = out_hw
    if _is_pointwise(kernel, stride, padding):
        y = cp.matmul(w2d, x.reshape(n, c, h * w))        # batched GEMM, already (N, Cout, P)
    else:
        from .kernels import im2col_cupy
        cols = im2col_cupy.im2col(x, kernel, stride, padding)
        y = cp.ascontiguousarray((w2d @ cols).reshape(cout, n, oh * ow).transpose(1, 0, 2))
    if bias is not None:
        y += bias.reshape(cout, 1)
    return y.reshape(n, cout, oh, ow)


def _backward_gpu(x, w2d, gy, kernel, stride, padding, out_hw, need_x, need_w):
    import cupy as cp
    n, c, h, w = x.shape
    cout, k = w2d.shape
    oh, ow = out_hw
    gy3 = cp.ascontiguousarray(gy).reshape(n, cout, oh * ow)
    dx = dw = None
    if _is_pointwise(kernel, stride, padding):
        if need_w:   # one GEMM over all pixels: (Cout, N*P) @ (N*P, C); no (N, Cout, C) intermediate
            gy2d = cp.ascontiguousarray(gy3.transpose(1, 0, 2)).reshape(cout, -1)
            x2d = cp.ascontiguousarray(x.reshape(n, c, h * w).transpose(1, 0, 2)).reshape(c, -1)
            dw = gy2d @ x2d.T
        if need_x:
            dx = cp.matmul(w2d.T, gy3).reshape(x.shape)
        return dx, dw
    from .kernels import im2col_cupy
    gy2d = cp.ascontiguousarray(gy3.transpose(1, 0, 2)).reshape(cout, n * oh * ow)
    if need_w:
        dw = gy2d @ im2col_cupy.im2col(x, kernel, stride, padding).T
    if need_x:
        dx = im2col_cupy.col2im(w2d.T @ gy2d, x.shape, kernel, stride, padding)
    return dx, dw


# =====================================================================================  the op

class Conv2d(Function):
    """``y = conv2d(x, W) (+ b)``; saves ``x`` and ``W`` (never the column buffer) for backward."""

    lowers_to_im2col = True    # a matrix product with an im2col column matrix (MemoryHook reports its size)

    def __init__(self, kernel_size, stride, padding, out_hw):
        self.kernel_size, self.stride, self.padding, self.out_hw = kernel_size, stride, padding, out_hw

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        w2d = xp.ascontiguousarray(weight).reshape(weight.shape[0], -1)
        self.x, self.w2d, self.w_shape = x, w2d, weight.shape
        forward = _forward_gpu if xp is not np else _forward_cpu
        return forward(x, w2d, bias, self.kernel_size, self.stride, self.padding, self.out_hw)

    def backward(self, gy):
        need = self.needs_input_grad
        backward = _backward_gpu if is_gpu_array(gy) else _backward_cpu
        dx, dw = backward(self.x, self.w2d, gy, self.kernel_size, self.stride, self.padding, self.out_hw,
                          need[0], need[1])
        if dw is not None:
            dw = dw.reshape(self.w_shape)
        if len(need) == 3:
            db = gy.sum(axis=(0, 2, 3)) if need[2] else None
            return dx, dw, db
        return dx, dw


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) of NCHW images.

    Args:
        x: Tensor or array ``(N, C, H, W)``, float32 or float64.
        weight: ``(out_channels, C, kh, kw)``, same dtype. A kernel written 1x7 is ``kh = 1``, ``kw = 7``.
        bias: ``(out_channels,)`` or None.
        stride: int or ``(sh, sw)``, positive.
        padding: int, ``(ph, pw)``, ``"valid"`` (0) or ``"same"`` (``(k-1)//2`` zeros on each side of each axis;
            odd kernels only).

    Returns:
        Tensor ``(N, out_channels, OH, OW)``.

    Shape:
        x: (N, C, H, W), weight: (Cout, C, kh, kw), bias: (Cout,) -> (N, Cout, OH, OW),
        OH = (H + 2*ph - kh) // sh + 1, OW = (W + 2*pw - kw) // sw + 1
    """
    b_shape = None if bias is None else _shape(bias)
    kernel, stride, padding, out_hw = conv2d_geometry(_shape(x), _shape(weight), b_shape, stride, padding)
    _check_dtypes("conv2d", x, weight, bias)
    fn = Conv2d(kernel, stride, padding, out_hw)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
