"""The fast tier's CPU kernels (Numba), one file per family, and their runtime (``runtime/``).

Each kernel file computes what its reference (``ops/kernels/reference/``, same file name) computes, with the same
functions and arguments (the family's contract), and agrees with it to rounding:

* ``im2col.py``       im2col and col2im (Numba)
* ``conv2d.py``       the chunked, threaded convolution (im2col -> GEMM per chunk of images, on all cores)
* ``pooling.py``      max and average pooling (Numba, phase planes)
* ``batch_norm.py``   batch normalisation with its fused ReLU (Numba)
* ``elementwise.py``  ReLU, add, multiply, concat, residual add: the reference's NumPy calls, cut into parts

``runtime/`` is what makes these fast on a particular machine, kept apart from the kernels' math: the CPU threads,
the parts, the BLAS control, the reusable buffers, and the malloc tuning, ``tune_malloc()``, which the fast
convolution applies at its first call (``MINCEPTION_SYSTEM_MALLOC=1`` opts out; importable from here as
``ops.kernels.cpu.tune_malloc``). Only the fast tier uses this package; ``autograd`` and the reference tier
never import it. Importing it compiles nothing (each Numba kernel compiles at its first call, cached on disk).
"""
from .runtime.malloc import tune_malloc

__all__ = ["tune_malloc"]
