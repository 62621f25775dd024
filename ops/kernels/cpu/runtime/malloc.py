"""``tune_malloc()``: an explicit opt-in that asks glibc's ``malloc`` to keep the large freed blocks of a training
step for reuse.

A training step allocates and frees hundreds of activation-sized arrays (1-30 MB each). With glibc's defaults,
blocks that large are served by ``mmap`` and handed back to the kernel by ``munmap`` when freed (above a
threshold that adapts, up to 32 MB), and the free top of the heap is returned to the kernel too. The next step
then asks for the same memory again and pays a page fault, and the kernel's zeroing, for every 4 KB page it
touches: tens of megabytes per step of a scaled Inception network (``docs/performance.md``, section "CPU runtime").

``tune_malloc()`` sets two ``mallopt`` parameters: ``M_MMAP_THRESHOLD`` to 64 MB (blocks below it come from the
heap, where a freed block is reused without faults) and ``M_TRIM_THRESHOLD`` to 1 GB (the heap keeps up to 1 GB of
free memory instead of returning it). The cost: the process's resident memory stays near its peak after a step
instead of dropping, as with PyTorch's caching allocator on the GPU. The peak itself is unchanged.

This changes a setting of the whole process, so no library call does it: a program asks for it once, at start-up
(``examples/train_cifar_scaled.py`` and the ``bench/`` scripts do). Setting ``MINCEPTION_SYSTEM_MALLOC=1`` in the
environment makes the call do nothing (to compare with glibc's defaults). Elsewhere than Linux with glibc it does
nothing either. There is no undo: glibc cannot report the values it had before.
"""
import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1          # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 1 << 30

_result = None                  # True / False once tune_malloc() has run


def tune_malloc():
    """Let glibc's malloc reuse large freed blocks (see the module docstring). Idempotent.

    Returns True if the settings are in effect, False where they do not apply (not glibc) or were turned off with
    ``MINCEPTION_SYSTEM_MALLOC=1``.
    """
    global _result
    if _result is None:
        _result = _apply()
    return _result


def _apply():
    if os.environ.get("MINCEPTION_SYSTEM_MALLOC", "") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):            # not glibc (musl, for example)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
