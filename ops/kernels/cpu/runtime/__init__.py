"""The CPU runtime of the fast kernel tier: everything that makes the CPU kernels fast on a particular machine,
kept apart from the kernels and their math. Only the fast tier uses it; ``autograd`` and the reference tier never
import it.

* ``threads.py``   the one pool of CPU worker threads and ``parallel_for``
* ``parts.py``     elementwise NumPy work cut into parts along the batch axis (``in_parts``, ``contiguous``)
* ``blas.py``      finding OpenBLAS and holding it at one thread while our threads run (the contract is there)
* ``buffers.py``   reusable per-thread scratch buffers
* ``malloc.py``    ``tune_malloc()``, the explicit opt-in for glibc's malloc settings

No function of this package changes a process-wide setting by itself, except ``blas.one_thread`` under the
contract documented in ``blas.py`` (lowered for one convolution, restored in ``finally``) and ``tune_malloc()``,
which a program calls explicitly.
"""
