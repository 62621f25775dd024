"""``tune_malloc()``: glibc's ``malloc`` asked to keep the large freed blocks of a training step for reuse. The
fast CPU tier applies it by itself, once, at its first convolution; ``MINCEPTION_SYSTEM_MALLOC=1`` opts out.

A training step allocates and frees hundreds of activation-sized arrays (1-30 MB each). With glibc's defaults,
blocks that large are served by ``mmap`` and handed back to the kernel by ``munmap`` when freed (above a
threshold that adapts, up to 32 MB), and the free top of the heap is returned to the kernel too. The next step
then asks for the same memory again and pays a page fault, and the kernel's zeroing, for every 4 KB page it
touches: about 9,000 faults (35 MB) per step of a scaled Inception-ResNet-v1 at batch 16, 2-7% of a step
(``docs/performance.md``, section "CPU runtime").

``tune_malloc()`` sets two ``mallopt`` parameters: ``M_MMAP_THRESHOLD`` to 64 MB (blocks below it come from the
heap, where a freed block is reused without faults) and ``M_TRIM_THRESHOLD`` to 1 GB (the heap keeps up to 1 GB of
free memory instead of returning it). The cost: the process's resident memory stays near its peak after a step
instead of dropping, as with PyTorch's caching allocator on the GPU. The peak itself is unchanged.

**Why by default, and how to say no.** These are settings of the whole process, so the library does not change
them silently: this is the one process-wide setting the fast tier changes for good, it is written here, in the
README and in ``ops.kernels.describe()``, and it is done only where the fast CPU tier really runs (its first
convolution; never on import, never in the reference tier or on the GPU). Before, it was an opt-in, and every
loop that users wrote themselves (the course's notebooks, ``python -m minception.course run``) ran slower than
the README's figures, which were measured with it. The alternative of a buffer pool owned by the fast tier would
keep the setting local, but it would cover only the arrays the fast kernels allocate, not NumPy's own
temporaries, so it was not built; ``docs/performance.md`` has the step measured with and without the tuning. Setting ``MINCEPTION_SYSTEM_MALLOC=1`` in the
environment (before the first convolution) keeps glibc's defaults: the call then does nothing. Elsewhere than
Linux with glibc it does nothing either. There is no undo: glibc cannot report the values it had before.
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
    """Let glibc's malloc reuse large freed blocks (see the module docstring). Idempotent, and cheap after the
    first call (the fast CPU convolution calls it every time).

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


def malloc_policy():
    """One line for ``ops.kernels.describe()``: what the fast CPU tier did, or will do, to glibc's malloc."""
    if _result is None:
        if os.environ.get("MINCEPTION_SYSTEM_MALLOC", "") not in ("", "0"):
            return "the system's defaults (MINCEPTION_SYSTEM_MALLOC is set)"
        return "freed large blocks kept from the first CPU conv on (MINCEPTION_SYSTEM_MALLOC=1: no)"
    if _result:
        return "freed large blocks kept for reuse (tune_malloc; MINCEPTION_SYSTEM_MALLOC=1: no)"
    return "the system's defaults (MINCEPTION_SYSTEM_MALLOC is set, or not glibc)"
