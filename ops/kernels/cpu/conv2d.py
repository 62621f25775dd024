"""The fast tier's CPU convolution: the im2col -> GEMM -> col2im of ``ops/kernels/reference/conv2d.py`` (its
contract too), run in chunks of images on the CPU threads.

The arithmetic is the textbook one (``ops/kernels/reference/conv2d.py`` and ``im2col.py``); only its order is
different. Each CPU thread (``threads.parallel_for``: the calling thread and one pool worker per extra core) owns a
contiguous share of the batch, and for each chunk of ``nb`` images it

1. runs the Numba im2col (``ops/kernels/cpu/im2col.py``) into its own small column buffer
   (``buffers.thread_buffer``, about ``CHUNK_BYTES``), then
2. a *single-threaded* GEMM on it (OpenBLAS is held at one thread meanwhile: ``blas.one_thread``), then
3. writes its slice of the output; backward does the same with ``dW.T += cols @ gY.T`` and col2im.

Why this order:

* A column buffer for the whole batch is many times larger than the core's cache: writing it and reading it back
  from memory, plus the page faults of a fresh allocation, cost about as much as the GEMM itself. A chunk of about
  a megabyte that one core writes and then multiplies stays in that core's cache.
* One kind of thread is busy at a time. A parallel Numba im2col alternating with OpenBLAS's own threaded GEMM
  makes two thread pools hand over to each other on every call, and each handover costs far more than the work.
* A 1x1 stride-1 conv without padding needs no im2col at all: image ``n``'s column matrix is ``x[n]`` seen as
  ``(C, H*W)``, so with one image per chunk the GEMM reads ``x`` directly.

The weight gradient is accumulated per thread over its chunks and the per-thread sums are added in a fixed order,
so results do not depend on timing. The measurements behind these choices are in ``docs/performance.md``
(section "CPU runtime").

Entry points (the conv2d family's contract, ``ops/kernels/reference/conv2d.py``):
    forward(x, weight, bias, stride, padding) -> y
    backward(x, weight, gy, stride, padding, need_x, need_w) -> (dx or None, dweight or None)
"""
import numpy as np

from ...geometry import conv_out_size
from . import im2col
from .runtime.blas import one_thread, openblas_threads
from .runtime.buffers import thread_buffer
from .runtime.threads import parallel_for

#: target size in bytes of one worker's column buffer (one chunk of images); a chunk holds at least one image
CHUNK_BYTES = 1 << 20
#: ... but at least this many GEMM columns (chunk images x OH*OW): thinner products run far below peak
MIN_CHUNK_COLUMNS = 256
#: a 1x1 stride-1 conv on images of at least this many pixels multiplies each image in place (no im2col copy)
POINTWISE_MIN_PIXELS = 256
#: below this many multiply-adds (forward) a conv runs in the calling thread: thread handover is not worth it
MIN_THREADED_MACS = 4_000_000


def _run(job, n_images, macs):
    """Run ``job(n0, n1)`` over the batch: split among the CPU threads with OpenBLAS held at one thread meanwhile
    (``blas.one_thread``); or in the calling thread alone for small convs, when OpenBLAS is at one thread anyway
    (or is not OpenBLAS), and for a single image (whose GEMMs then use OpenBLAS's own threads: batch-1 inference).
    Returns the list of the jobs' results, in batch order."""
    if openblas_threads() <= 1 or macs < MIN_THREADED_MACS or n_images < 2:
        return parallel_for(job, n_images, parallel=False)
    with one_thread():
        return parallel_for(job, n_images)


def _chunk_images(k, p, itemsize, n):
    """Images per chunk: a column buffer of about CHUNK_BYTES, but at least MIN_CHUNK_COLUMNS GEMM columns."""
    nb = max(CHUNK_BYTES // max(1, k * p * itemsize), -(-MIN_CHUNK_COLUMNS // p))
    return max(1, min(n, nb))


def _is_pointwise(kernel, stride, padding):
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


def _geometry(x, weight, stride, padding):
    """``(kh, kw), (OH, OW), W2d: (Cout, C*kh*kw)`` (a view of the C-contiguous weight)."""
    kernel = tuple(weight.shape[2:])
    out_hw = tuple(conv_out_size(x.shape[2 + a], kernel[a], stride[a], padding[a]) for a in (0, 1))
    return kernel, out_hw, weight.reshape(weight.shape[0], -1)


def forward(x, weight, bias, stride, padding):
    """``x: (N, C, H, W)``, ``weight: (Cout, C, kh, kw)`` (both C-contiguous), ``bias: (Cout,)`` or None
    -> ``y: (N, Cout, OH, OW)``."""
    kernel, (oh, ow), w2d = _geometry(x, weight, stride, padding)
    n, c, h, w = x.shape
    cout, k = w2d.shape
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
                cols = thread_buffer("cols", k * m, x.dtype).reshape(k, m)
                im2col._im2col_kernel(x[n0:n1], kh, kw, sh, sw, ph, pw, oh, ow, cols)
            if nb == 1:
                np.matmul(w2d, cols, out=y[n0])
            else:
                tmp = thread_buffer("y", cout * m, x.dtype).reshape(cout, m)
                np.matmul(w2d, cols, out=tmp)
                y[n0:n1] = tmp.reshape(cout, n1 - n0, p).transpose(1, 0, 2)
            if b_col is not None:
                y[n0:n1] += b_col

    _run(job, n, n * p * k * cout)
    return y.reshape(n, cout, oh, ow)


def _dw_gemm(gy2d, cols, out):
    """``out = cols @ gy2d.T``: ``(K, m) @ (m, Cout) -> (K, Cout)``, the weight gradient of one chunk, *transposed*.

    Why transposed: with OpenBLAS, ``cols @ gy2d.T`` on these chunk shapes runs faster than ``gy2d @ cols.T``, with
    both operands C-contiguous (BLAS reads the transposed one in place). So each thread accumulates dW.T
    ``(K, Cout)``, and the sum is transposed once at the end (Cout*K values: nothing next to the GEMM). The
    measurements, and the slower alternatives tried (``np.einsum``, per-image products, ``np.tensordot``), are in
    ``docs/performance.md`` (section "CPU runtime").
    """
    np.matmul(cols, gy2d.T, out=out)


def backward(x, weight, gy, stride, padding, need_x, need_w):
    """Returns ``(dx or None, dweight or None)`` for ``gy: (N, Cout, OH, OW)``."""
    kernel, (oh, ow), w2d = _geometry(x, weight, stride, padding)
    n, c, h, w = x.shape
    cout, k = w2d.shape
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
                gyc = thread_buffer("gy", cout * m, x.dtype).reshape(cout, m)
                gyc.reshape(cout, n1 - n0, p)[...] = gy[n0:n1].transpose(1, 0, 2)
            direct = nb == 1 and pointwise               # the columns of image n0 are x[n0] itself
            if direct:
                cols = x[n0].reshape(c, p)
            else:
                cols = thread_buffer("cols", k * m, x.dtype).reshape(k, m)
                if need_w:
                    im2col._im2col_kernel(x[n0:n1], kh, kw, sh, sw, ph, pw, oh, ow, cols)
            if need_w:
                if dw_t is None:                         # the first chunk writes the thread's sum directly
                    dw_t = np.empty((k, cout), dtype=x.dtype)
                    _dw_gemm(gyc, cols, dw_t)
                else:
                    if chunk_t is None:
                        chunk_t = thread_buffer("dw", k * cout, x.dtype).reshape(k, cout)
                    _dw_gemm(gyc, cols, chunk_t)
                    dw_t += chunk_t
            if need_x:
                if direct:
                    np.matmul(w2d_t, gyc, out=dx[n0].reshape(c, p))
                else:
                    np.matmul(w2d_t, gyc, out=cols)      # the column gradient overwrites the columns
                    im2col._col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx[n0:n1])
        return dw_t

    partial = _run(job, n, n * p * k * cout)
    dw = None
    if need_w:
        dw_t = partial[0]
        for part in partial[1:]:                          # fixed order: deterministic
            dw_t += part
        dw = np.ascontiguousarray(dw_t.T).reshape(weight.shape)
    return dx, dw
