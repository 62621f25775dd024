"""How the CPU engine asks glibc's ``malloc`` to treat the large arrays of a training step.

A training step allocates and frees hundreds of activation-sized arrays (1-30 MB each). With glibc's defaults,
blocks that large are served by ``mmap`` and handed back to the kernel by ``munmap`` when freed (above a
threshold that adapts, up to 32 MB), and the free top of the heap is returned to the kernel too. The next step
then asks for the same memory again and pays a page fault, and the kernel's zeroing, for every 4 KB page it
touches: about 30 MB per step of a scaled Inception network, 6-9% of the step on the 2-core development machine
(``bench/train_step.py``; the minor-fault count comes from ``resource.getrusage``).

``keep_freed_memory()`` sets two ``mallopt`` parameters once: ``M_MMAP_THRESHOLD`` to 64 MB (blocks below it come
from the heap, where a freed block is reused without faults) and ``M_TRIM_THRESHOLD`` to 1 GB (the heap keeps up
to 1 GB of free memory instead of returning it). The cost: the process's resident memory stays near its peak
after a step instead of dropping, as with PyTorch's caching allocator on the GPU. The peak itself is unchanged.

The engine calls it when it first runs a convolution on the CPU. Set ``MINCEPTION_SYSTEM_MALLOC=1`` in the
environment to keep glibc's defaults. Elsewhere than Linux with glibc it does nothing.
"""
import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1          # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 1 << 30

_done = False


def keep_freed_memory():
    """Tune glibc's malloc to reuse freed large blocks (see the module docstring). Idempotent; returns True if
    the settings were applied, False where they do not apply or were turned off."""
    global _done
    if _done:
        return _done is True
    _done = "skipped"
    if os.environ.get("MINCEPTION_SYSTEM_MALLOC", "") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):            # not glibc (musl, for example)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _done = True
    return _done is True
