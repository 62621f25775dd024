"""The CPU worker threads of the fast tier: one small pool shared by every parallel piece of CPU work.

NumPy runs an elementwise operation on one core, and the Numba kernels are compiled serial. To use every core,
the work is cut into contiguous ranges (of images, channels, planes...) and the ranges run at the same time in
Python threads: NumPy, Numba (``nogil=True``) and BLAS all release the GIL while they compute, so the threads
really run in parallel.

Why one pool of our own instead of Numba's ``parallel=True``: Numba's OpenMP threads beside OpenBLAS's and our
conv workers would make three thread pools, and OpenMP threads spin for a while after each parallel kernel,
taking a core from whoever runs next. Here, at any moment, only one kind of thread is busy: the calling thread
and ``cpu_threads() - 1`` pool workers, which sleep (no spinning) when there is nothing to do. The price of
sleeping is the time it takes to wake a worker, so small tensors are better done on one thread; each caller
decides with a size threshold (``KERNEL_MIN_BYTES`` here, ``parts.PARALLEL_MIN_BYTES`` for elementwise work).
Measurements: ``docs/performance.md``, section "CPU runtime".

``parallel_for(job, n)`` is the one primitive: ``job(lo, hi)`` on contiguous parts of ``range(n)``, the calling
thread doing the last part itself. Calls made from inside a job run serially (a worker waiting for the same
pool could deadlock it), so kernels can use ``parallel_for`` without knowing who calls them.

Nothing here changes a process-wide setting: the pool is private to this package and its threads sleep when idle.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

#: the Numba kernels (batch norm, pooling) run on the calling thread when their data is smaller than this:
#: below it, waking a pool thread costs about as much as the second thread saves
KERNEL_MIN_BYTES = 1 << 20
#: memory-bound work (elementwise, batch norm, pooling) is cut into parts of at least this many bytes, however many
#: threads there are: at 16 threads a 4 MB tensor is 8 parts, not 16 of 256 KB, each costing a thread wake-up
MIN_PART_BYTES = 512 << 10

_threads = None
_forced = None                  # use_threads(n) in effect: n
_pool = None                    # (ThreadPoolExecutor, workers, pid of the process that made it)
_pool_lock = threading.Lock()
_local = threading.local()      # .inside: this thread is running a part of a parallel_for


def cpu_threads():
    """Threads for CPU work: ``OMP_NUM_THREADS`` if set (as BLAS and the benchmarks read it), else the number of
    cores this process may run on (its CPU affinity, e.g. under ``taskset``). Read once. Inside ``use_threads(n)``:
    ``n``."""
    global _threads
    if _forced is not None:
        return _forced
    if _threads is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):            # not Linux
            cores = os.cpu_count() or 1
        env = os.environ.get("OMP_NUM_THREADS", "")
        _threads = max(1, min(int(env) if env.isdigit() else cores, cores))
    return _threads


@contextmanager
def use_threads(n):
    """Run the ``with`` block with the fast tier's CPU work split for ``n`` threads (the calling thread and
    ``n - 1`` pool workers), even more than there are cores.

    The results do not change: every split of a reduction is fixed by the shapes, never by the thread count
    (``ops/kernels/cpu/conv2d.py``). The tests use this to show it on any machine; it is also a way to take the
    fast tier off the other cores for a while (``use_threads(1)``). Only this package's pool is affected: BLAS and
    every other process-wide setting stay as they are. Not for use from several threads at once."""
    global _forced
    if int(n) < 1:
        raise ValueError(f"use_threads: n must be at least 1, got {n}")
    before, _forced = _forced, int(n)
    try:
        yield
    finally:
        _forced = before


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


def parallel_for(job, n, parallel=True, nbytes=None):
    """Run ``job(lo, hi)`` over ``range(n)`` and return the jobs' results, in order.

    Readable meaning: ``[job(0, n)]``. With ``parallel`` (and more than one thread, ``n > 1``, and not already
    inside a job) the range is cut into ``min(cpu_threads(), n)`` contiguous parts that run at the same time: the
    calling thread does the last part, pool workers the others. ``nbytes``, the size of the data the job goes
    through, caps the parts at one per ``MIN_PART_BYTES``. Jobs must write disjoint outputs; whatever they
    return is combined by the caller, in a fixed order, so results never depend on timing.
    """
    parts = min(cpu_threads(), n) if parallel else 1
    if nbytes is not None and MIN_PART_BYTES > 0:
        parts = min(parts, max(1, nbytes // MIN_PART_BYTES))
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

