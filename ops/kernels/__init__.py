"""Kernels behind the differentiable ops: for each one a readable NumPy reference (``*_reference.py``, read it
first), a Numba CPU version (``*_numba.py``) and a CuPy GPU version (``*_cupy.py``) that compute the same thing.
Importing this package compiles nothing and never imports CuPy."""
