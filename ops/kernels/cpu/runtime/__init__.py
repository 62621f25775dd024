"""The CPU runtime of the fast kernel tier: everything that makes the CPU kernels fast on a particular machine,
kept apart from the kernels and their math. Only the fast tier uses it; ``autograd`` and the reference tier never
import it.

* ``threads.py``   the one pool of CPU worker threads and ``parallel_for``
* ``parts.py``     elementwise NumPy work cut into parts along the batch axis (``in_parts``, ``contiguous``)
* ``blas.py``      finding OpenBLAS and holding it at one thread while our threads run (the contract is there)
* ``buffers.py``   reusable per-thread scratch buffers
* ``malloc.py``    ``tune_malloc()``: glibc's malloc keeps freed large blocks (the fast CPU conv applies it once)

Two functions of this package change a process-wide setting, each under a written contract: ``blas.one_thread``
(OpenBLAS lowered to one thread for one convolution, restored in ``finally``; ``blas.py``) and ``tune_malloc()``
(applied once by the fast tier's first CPU convolution, reported by ``ops.kernels.describe()``, turned off by
``MINCEPTION_SYSTEM_MALLOC=1``; ``malloc.py``). The pool of ``threads.py`` is private to this package.
"""
