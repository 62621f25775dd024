"""The CPU worker threads: one small pool shared by every parallel piece of CPU work in the engine.

NumPy runs an elementwise operation on one core, and our Numba kernels are compiled serial. To use every core,
the work is cut into contiguous ranges (of images, channels, rows...) and the ranges run at the same time in
Python threads: NumPy, Numba (``nogil=True``) and BLAS all release the GIL while they compute, so the threads
really run in parallel.

Why one pool of our own, instead of Numba's ``parallel=True``: with Numba's OpenMP threads beside OpenBLAS's
and our conv workers there were three thread pools on two cores, and OpenMP threads spin for a while after each
parallel kernel, taking a core from whoever runs next. On the 2-core development machine that cost 25-35% of a
scaled Inception training step (``bench/train_step.py``). Here, at any moment, only one kind of thread is busy:
the calling thread and ``cpu_threads() - 1`` pool workers, which sleep (no spinning) when there is nothing to do.
The price of sleeping: waking a worker takes 40-100 us here, so small tensors are better done on one thread
(each caller decides with a size threshold).

``parallel_for(job, n)`` is the one primitive: ``job(lo, hi)`` on contiguous parts of ``range(n)``, the calling
thread doing the last part itself. Calls made from inside a job run serially (a worker waiting for the same
pool could deadlock it), so kernels can use ``parallel_for`` without knowing who calls them. ``in_parts`` is the
elementwise form used by the ops: ``out[...] = fn(*arrays)`` cut along axis 0.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: elementwise NumPy work below this many output bytes runs in the calling thread. Waking a sleeping pool thread
#: costs 40-100 us on the 2-core development machine, and elementwise work is memory-bound: ``np.add`` into a
#: new array took 262 us in one thread and 255 us in two at 2 MB, 523 / 463 us at 4 MB, 1,073 / 804 us at 8 MB.
PARALLEL_MIN_BYTES = 4 << 20
#: the Numba kernels (batch norm, pooling) run on the calling thread below this many bytes of data: one batch-norm
#: call measured 181 us alone vs 214 us on 2 threads at 1 MB forward, 332 vs 272 us backward
KERNEL_MIN_BYTES = 1 << 20

_threads = None
_pool = None                    # (ThreadPoolExecutor, workers, pid of the process that made it)
_pool_lock = threading.Lock()
_local = threading.local()      # .inside: this thread is running a part of a parallel_for


def cpu_threads():
    """Threads for CPU work: ``OMP_NUM_THREADS`` if set (as BLAS and the benchmarks read it), else the number of
    cores this process may run on (its CPU affinity, e.g. under ``taskset``). Read once."""
    global _threads
    if _threads is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):            # not Linux
            cores = os.cpu_count() or 1
        env = os.environ.get("OMP_NUM_THREADS", "")
        _threads = max(1, min(int(env) if env.isdigit() else cores, cores))
    return _threads


def _workers(n):
    """A pool with at least ``n`` worker threads (made again after a fork: the child inherits no threads)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[1] < n or _pool[2] != os.getpid():
            _pool = (ThreadPoolExecutor(n, thread_name_prefix="minception-cpu"), n, os.getpid())
        return _pool[0]


def split(n, parts):
    """Bounds of ``parts`` contiguous, nearly equal ranges of ``range(n)``: ``[0, ..., n]`` (``parts + 1`` values)."""
    return [n * i // parts for i in range(parts + 1)]


def _part(job, lo, hi):
    _local.inside = True
    try:
        return job(lo, hi)
    finally:
        _local.inside = False


def parallel_for(job, n, parallel=True):
    """Run ``job(lo, hi)`` over ``range(n)`` and return the jobs' results, in order.

    Readable meaning: ``[job(0, n)]``. With ``parallel`` (and more than one thread, ``n > 1``, and not already
    inside a job) the range is cut into ``min(cpu_threads(), n)`` contiguous parts that run at the same time: the
    calling thread does the last part, pool workers the others. Jobs must write disjoint outputs; whatever they
    return is combined by the caller, in a fixed order, so results never depend on timing.
    """
    parts = min(cpu_threads(), n) if parallel else 1
    if parts < 2 or getattr(_local, "inside", False):
        return [job(0, n)]
    bounds = split(n, parts)
    pool = _workers(parts - 1)
    futures = [pool.submit(_part, job, bounds[i], bounds[i + 1]) for i in range(parts - 1)]
    try:
        last = _part(job, bounds[-2], bounds[-1])
    finally:
        results = [f.result() for f in futures]    # wait for every part, even when ours failed
    return results + [last]


def in_parts(fn, out, *arrays):
    """Compute ``fn(*arrays, out)`` (an elementwise NumPy call writing into ``out``) and return ``out``.

    Readable meaning: ``fn(*arrays, out)``. Fast path, for NumPy arrays of at least ``PARALLEL_MIN_BYTES``:
    ``out`` and every array with the same leading length are cut into slices along axis 0, and ``fn`` runs on
    the slices in parallel (``parallel_for``). Arrays with another leading length (scalars, broadcast operands)
    are passed whole to every piece, so broadcasting works as in the plain call.

    Shape:
        out: (N, ...); arrays: (N, ...) or anything that broadcasts against a slice (n, ...) of out
    """
    n = out.shape[0] if out.ndim else 0
    if n < 2 or out.nbytes < PARALLEL_MIN_BYTES or not isinstance(out, np.ndarray):
        fn(*arrays, out)
        return out

    def piece(lo, hi):
        fn(*[a[lo:hi] if getattr(a, "ndim", 0) == out.ndim and a.shape[0] == n else a for a in arrays],
           out[lo:hi])

    parallel_for(piece, n)
    return out


def _copy_into(a, out):
    np.copyto(out, a)


def contiguous(a):
    """``np.ascontiguousarray(a)`` for a NumPy array, the copy (when one is needed) made on all cores for big
    arrays. Gradients arriving through a channel concatenation are strided views of the concat's gradient; the
    kernels want C-order arrays, and a one-core copy of a whole activation would leave the other cores idle."""
    if a.flags.c_contiguous:
        return a
    return in_parts(_copy_into, np.empty(a.shape, a.dtype), a)
