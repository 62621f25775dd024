"""The fast tier's CPU convolution: the im2col -> GEMM -> col2im of ``ops/kernels/reference/conv2d.py`` (its
contract too), run in chunks of images on the CPU threads.

The arithmetic is the textbook one (``ops/kernels/reference/conv2d.py`` and ``im2col.py``); only its order is
different. The batch is cut into a fixed number of contiguous *parts* that depends on the conv's shape and
work, never on the number of threads (``_parts``). The CPU threads (``threads.parallel_for``: the calling thread
and one pool worker per extra core) share out the parts, and for each part, chunk by chunk of ``nb`` images, a
thread

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

**The same numbers at any thread count.** The weight gradient is a sum over the batch. Each part accumulates its
own chunks in order, and the parts' sums are added in part order at the end (``_sum_parts``). The parts, the
chunks and so every GEMM's shape are fixed by the shapes alone, so 1, 2, 3 or 16 threads (or a run without
threads) compute exactly the same float32 additions in the same order: bit-identical results, and training that
does not depend on the machine's core count. Sizing the parts by work (``MIN_PART_MACS``, at most ``MAX_PARTS``)
also keeps tiny convs from being cut into parts too small to be worth a thread. The measurements behind these
choices are in ``docs/performance.md`` (section "CPU runtime").

Entry points (the conv2d family's contract, ``ops/kernels/reference/conv2d.py``):
    forward(x, weight, bias, stride, padding) -> y
    backward(x, weight, gy, stride, padding, need_x, need_w) -> (dx or None, dweight or None)
"""
import numpy as np

from ...geometry import conv_as_gemm, is_pointwise
from . import im2col
from .runtime.blas import one_thread, openblas_threads
from .runtime.buffers import thread_buffer
from .runtime.malloc import tune_malloc
from .runtime.threads import KERNEL_MIN_BYTES, parallel_for, split

#: target size in bytes of one worker's column buffer (one chunk of images); a chunk holds at least one image
CHUNK_BYTES = 1 << 20
#: ... but at least this many GEMM columns (chunk images x OH*OW): thinner products run far below peak
MIN_CHUNK_COLUMNS = 256
#: a 1x1 stride-1 conv on images of at least this many pixels multiplies each image in place (no im2col copy)
POINTWISE_MIN_PIXELS = 256
#: below this many multiply-adds (forward) a conv runs in the calling thread: thread handover is not worth it
MIN_THREADED_MACS = 2_000_000
#: the batch is cut into at most this many parts (enough for 16 threads) ...
MAX_PARTS = 16
#: ... of at least this many multiply-adds each (forward) and MIN_CHUNK_COLUMNS GEMM columns, at most one per image
MIN_PART_MACS = 1_000_000


def _parts(n_images, pixels, macs):
    """Bounds of the parts of the batch, ``[0, ..., n_images]``, nearly equal: as many parts as the work allows
    (``macs // MIN_PART_MACS``, and ``MIN_CHUNK_COLUMNS`` columns of ``pixels`` output pixels per image each), at
    least 1 and at most ``min(n_images, MAX_PARTS)``. A function of the shapes only, never of the thread count,
    so that the weight gradient's sum has the same order on every machine (module docstring)."""
    by_work = min(macs // MIN_PART_MACS, n_images * pixels // MIN_CHUNK_COLUMNS)
    return split(n_images, max(1, min(n_images, MAX_PARTS, by_work)))


def _run(part_job, bounds, macs):
    """Run ``part_job(i, n0, n1)`` for every part ``i`` of the batch (images ``bounds[i]:bounds[i + 1]``).

    * Several images: the parts shared among the CPU threads, OpenBLAS held at one thread meanwhile
      (``blas.one_thread``). A small conv (``MIN_THREADED_MACS``) or a single part runs in the calling thread,
      OpenBLAS still held at one thread: a GEMM on OpenBLAS's own threads would leave them spinning for a while
      after it returns, on the cores that the next conv's parts need (measured: the stem's tiny first conv made
      the next convs of the forward pass up to 2x slower, ``docs/performance.md``).
    * A single image (batch-1 inference): in the calling thread, the GEMMs on OpenBLAS's own threads.

    Either way each part is computed the same way, so the results are the same."""
    n_parts = len(bounds) - 1

    def job(lo, hi):
        for i in range(lo, hi):
            part_job(i, bounds[i], bounds[i + 1])

    if openblas_threads() <= 1 or bounds[-1] < 2:
        parallel_for(job, n_parts, parallel=False)
        return
    with one_thread():
        parallel_for(job, n_parts, parallel=macs >= MIN_THREADED_MACS)


def _chunk_images(k, p, itemsize, n):
    """Images per chunk: a column buffer of about CHUNK_BYTES, but at least MIN_CHUNK_COLUMNS GEMM columns."""
    nb = max(CHUNK_BYTES // max(1, k * p * itemsize), -(-MIN_CHUNK_COLUMNS // p))
    return max(1, min(n, nb))


def forward(x, weight, bias, stride, padding):
    """``x: (N, C, H, W)``, ``weight: (Cout, C, kh, kw)`` (both C-contiguous), ``bias: (Cout,)`` or None
    -> ``y: (N, Cout, OH, OW)``."""
    tune_malloc()                           # once: glibc keeps the step's large freed blocks (runtime/malloc.py)
    kernel, (oh, ow), w2d = conv_as_gemm(x, weight, stride, padding)
    n, c, h, w = x.shape
    cout, k = w2d.shape
    p = oh * ow
    y = np.empty((n, cout, p), dtype=x.dtype)
    pointwise = is_pointwise(kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    b_col = None if bias is None else bias.reshape(cout, 1)
    macs = n * p * k * cout

    def part(i, lo, hi):
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

    _run(part, _parts(n, p, macs), macs)
    return y.reshape(n, cout, oh, ow)


def _dw_gemm(gy2d, cols, out):
    """``out = cols @ gy2d.T``: ``(K, m) @ (m, Cout) -> (K, Cout)``, the weight gradient of one chunk, *transposed*.

    Why transposed: with OpenBLAS, ``cols @ gy2d.T`` on these chunk shapes runs faster than ``gy2d @ cols.T``, with
    both operands C-contiguous (BLAS reads the transposed one in place). So each part accumulates dW.T
    ``(K, Cout)``, and the sum is transposed once at the end (Cout*K values: nothing next to the GEMM). The
    measurements, and the slower alternatives tried (``np.einsum``, per-image products, ``np.tensordot``), are in
    ``docs/performance.md`` (section "CPU runtime").
    """
    np.matmul(cols, gy2d.T, out=out)


def backward(x, weight, gy, stride, padding, need_x, need_w):
    """Returns ``(dx or None, dweight or None)`` for ``gy: (N, Cout, OH, OW)``."""
    kernel, (oh, ow), w2d = conv_as_gemm(x, weight, stride, padding)
    n, c, h, w = x.shape
    cout, k = w2d.shape
    p = oh * ow
    # a view, no copy, when gy is a channel slice of a concat's gradient (each gy[i] is then C-order); any other
    # strides still give the right answer (np.matmul copies what BLAS cannot read)
    gy = gy.reshape(n, cout, p)
    dx = np.empty_like(x) if need_x else None
    pointwise = is_pointwise(kernel, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    w2d_t = w2d.T
    macs = n * p * k * cout
    bounds = _parts(n, p, macs)
    dw_parts = np.empty((len(bounds) - 1, k, cout), dtype=x.dtype) if need_w else None   # each part's dW.T

    def part(i, lo, hi):
        nb = _chunk_images(k, p, x.itemsize, hi - lo)
        if pointwise and p >= POINTWISE_MIN_PIXELS:
            nb = 1
        chunk_t = None
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
                if n0 == lo:                             # the part's first chunk writes its sum directly
                    _dw_gemm(gyc, cols, dw_parts[i])
                else:
                    if chunk_t is None:
                        chunk_t = thread_buffer("dw", k * cout, x.dtype).reshape(k, cout)
                    _dw_gemm(gyc, cols, chunk_t)
                    dw_parts[i] += chunk_t
            if need_x:
                if direct:
                    np.matmul(w2d_t, gyc, out=dx[n0].reshape(c, p))
                else:
                    np.matmul(w2d_t, gyc, out=cols)      # the column gradient overwrites the columns
                    im2col._col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx[n0:n1])

    _run(part, bounds, macs)
    dw = None if dw_parts is None else np.ascontiguousarray(_sum_parts(dw_parts).T).reshape(weight.shape)
    return dx, dw


def _sum_parts(partials):
    """``partials[0] + partials[1] + ...`` (P, K, Cout) -> (K, Cout), always added in part order, so the result
    does not depend on how many threads computed the parts. Big sums are cut by rows (K) among the threads: each
    element is still the same additions in the same order."""
    out = partials[0]

    def rows(lo, hi):
        for part in partials[1:]:
            out[lo:hi] += part[lo:hi]

    if len(partials) > 1:
        parallel_for(rows, out.shape[0], parallel=partials.nbytes >= KERNEL_MIN_BYTES, nbytes=partials.nbytes)
    return out
