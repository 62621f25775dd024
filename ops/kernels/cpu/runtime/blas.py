"""OpenBLAS's thread count: finding it, and the one place where the fast tier changes it.

The fast CPU convolution (``ops/kernels/cpu/conv2d.py``) runs its chunks of images on our own CPU threads, each
thread calling *single-threaded* GEMMs on its own chunk. OpenBLAS must then use one thread, or its own pool would
compete with ours for the same cores. OpenBLAS's thread count is a setting of the whole process, so changing it is
done under this contract (``one_thread()``):

* The count is lowered to 1 only while one threaded convolution runs, and restored in a ``finally`` to the value
  read when the block began: after every convolution the process's setting is what it was before, whether the
  convolution returned or raised.
* A lock lets only one such block run at a time. Two convolutions in different threads therefore never interleave
  their save and restore (the second would otherwise save the 1 set by the first and leave 1 behind for good).
* While a block runs, BLAS calls made by other threads of the process (a user's own ``np.dot``) run on one thread:
  the same results, possibly slower. A change of the count made by another thread meanwhile is undone at the end
  of the block.
* Nothing is changed when NumPy's BLAS is not OpenBLAS (its count cannot be read), when the count is already 1,
  or for a convolution of a single image (batch-1 inference, whose GEMMs use OpenBLAS's threads: ``conv2d.py``
  decides). Every convolution of several images holds it at one thread, small ones in the calling thread too:
  OpenBLAS's threads keep spinning for a while after a threaded GEMM, on the cores the next conv needs.

OpenBLAS is found among the libraries loaded into the process (``/proc/self/maps``, Linux) and called through
``ctypes``; elsewhere ``openblas()`` finds nothing and the convolution runs its chunks in the calling thread with
the BLAS multi-threaded as usual.
"""
import ctypes
import threading
from contextlib import contextmanager


class OpenBLAS:
    """Read and set the thread count of the OpenBLAS that NumPy uses. ``get``/``set`` are None when none is found."""

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
_one_thread_lock = threading.Lock()


def openblas():
    """The process's ``OpenBLAS`` handle (found once)."""
    global _blas
    if _blas is None:
        _blas = OpenBLAS()
    return _blas


def openblas_threads():
    """OpenBLAS's current thread count, or 1 when it cannot be read (not OpenBLAS: treated as "leave it alone")."""
    blas = openblas()
    return blas.get() if blas.get is not None else 1


@contextmanager
def one_thread():
    """Run the ``with`` block with OpenBLAS at one thread, then restore the count (the contract above)."""
    blas = openblas()
    if blas.set is None:
        yield
        return
    with _one_thread_lock:
        before = blas.get()
        blas.set(1)
        try:
            yield
        finally:
            blas.set(before)
