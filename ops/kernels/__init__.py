"""Kernels behind the differentiable ops, in two tiers behind one switch (``tiers.py``).

For each hot loop there is a readable reference in plain array code (``*_reference.py``: read it first), a Numba
CPU version (``*_numba.py``) and a CuPy GPU version (``*_cupy.py``) that compute the same thing. The ``reference``
tier runs the reference files; the ``fast`` tier (the default) runs Numba on the CPU, with the CPU runtime of
``cpu/`` (threads, BLAS control, reusable buffers, the opt-in malloc tuning), and CuPy on the GPU.

    ops.kernels.use("reference")            # switch; or `with ops.kernels.use("reference"): ...`
    ops.kernels.current()                   # 'reference' or 'fast'
    MINCEPTION_KERNELS=reference python ... # the same, from the environment

Importing this package compiles nothing and imports neither Numba nor CuPy.
"""
from .tiers import ENV_VAR, KERNELS, TIERS, current, lookup, use

__all__ = ["use", "current", "lookup", "TIERS", "KERNELS", "ENV_VAR"]
