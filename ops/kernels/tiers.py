"""The two kernel tiers and the one switch between them.

Every op that has kernels asks this module for them: ``lookup(family, array)`` returns the module that holds the
active tier's kernels for the array's device. The families and the files behind them:

==============  ===============================  ==========================  ========================
family          reference tier (CPU and GPU)     fast tier, CPU              fast tier, GPU
==============  ===============================  ==========================  ========================
im2col          im2col_reference                 im2col_numba                im2col_cupy
conv2d          (none: the textbook in ops/conv) cpu/conv_chunks             conv_cupy
pooling         pool_reference                   pool_numba                  pool_cupy
batch_norm      batchnorm_reference              batchnorm_numba             batchnorm_cupy
elementwise     elementwise_reference            cpu/elementwise             elementwise_reference
==============  ===============================  ==========================  ========================

* ``reference``: the readable array code, run as written. The reference files use only operations that NumPy and
  CuPy share (``xp = get_array_module(x)``), so this tier runs on the GPU too. ``conv2d`` has no kernel of its own
  here: ``ops/conv.py`` runs its textbook im2col -> one GEMM -> col2im on the whole batch.
* ``fast`` (the default): on the CPU the Numba kernels and the CPU runtime of ``ops/kernels/cpu`` (threads, BLAS
  control, reusable buffers); on the GPU the CuPy kernels. Nothing of the fast tier is imported in the reference
  tier, so a reference run uses no Numba and no thread pool at all.

Both tiers compute the same functions; their results agree to rounding (``tests/ops/test_kernel_tiers.py``).

Choosing the tier (one setting for the whole process, read by every op call):

* ``ops.kernels.use("reference")``: from now on; ``with ops.kernels.use("reference"): ...``: inside the block only
  (the previous tier is restored on exit, even after an exception);
* the environment variable ``MINCEPTION_KERNELS=reference`` (or ``fast``), read once when ``ops`` is imported;
* ``ops.kernels.current()`` says which tier is active.

Conv, pooling and batch norm look their kernels up in ``forward`` and keep them for ``backward`` (what forward
saves, e.g. pooling's argmax, is read by the same tier), so switching tiers between a forward and its backward pass
is safe; the elementwise ops look theirs up at each call (both tiers run the same NumPy loops on each element).
Modules are imported at their first lookup: ``import ops`` imports neither Numba nor CuPy and compiles nothing.
"""
import importlib
import os

import numpy as np

from autograd.backend import is_gpu_array

TIERS = ("reference", "fast")
ENV_VAR = "MINCEPTION_KERNELS"

#: family -> (reference tier, fast tier on the CPU, fast tier on the GPU): module names inside ops.kernels
KERNELS = {
    "im2col": ("im2col_reference", "im2col_numba", "im2col_cupy"),
    "conv2d": (None, "cpu.conv_chunks", "conv_cupy"),
    "pooling": ("pool_reference", "pool_numba", "pool_cupy"),
    "batch_norm": ("batchnorm_reference", "batchnorm_numba", "batchnorm_cupy"),
    "elementwise": ("elementwise_reference", "cpu.elementwise", "elementwise_reference"),
}


def _checked(name, where):
    if name not in TIERS:
        raise ValueError(f"{where}: unknown kernel tier {name!r}; expected 'reference' (the readable NumPy/CuPy "
                         f"kernels) or 'fast' (Numba on the CPU, CuPy kernels on the GPU)")
    return name


_active = _checked(os.environ.get(ENV_VAR) or "fast", f"environment variable {ENV_VAR}")


def current():
    """The name of the active tier: ``"reference"`` or ``"fast"``."""
    return _active


class use:
    """Make ``name`` the active kernel tier.

    As a call, ``ops.kernels.use("reference")`` switches from now on. As a ``with`` block, the tier that was active
    before is restored when the block ends::

        with ops.kernels.use("reference"):
            loss = ops.softmax_cross_entropy(model(x), y)     # the readable kernels, forward...
            loss.backward()                                   # ... and backward

    Raises ValueError for a name other than ``"reference"`` or ``"fast"``.
    """

    def __init__(self, name):
        global _active
        self.name = _checked(name, "ops.kernels.use")
        self.previous = _active
        _active = self.name

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _active
        _active = self.previous
        return False

    def __repr__(self):
        return f"ops.kernels.use({self.name!r})"


_found = {}        # (family, tier, on the GPU) -> module or None, filled at the first lookup


def lookup(family, array):
    """The module with the active tier's kernels of ``family`` for ``array``'s device (NumPy: CPU, CuPy: GPU).

    Returns None for ``"conv2d"`` in the reference tier (the op's own textbook code runs). Imports the module at
    its first lookup."""
    key = (family, _active, not isinstance(array, np.ndarray) and is_gpu_array(array))
    try:
        return _found[key]
    except KeyError:
        pass
    try:
        reference, fast_cpu, fast_gpu = KERNELS[family]
    except KeyError:
        raise ValueError(f"ops.kernels.lookup: unknown kernel family {family!r}; expected one of "
                         f"{', '.join(map(repr, KERNELS))}") from None
    name = reference if _active == "reference" else fast_gpu if key[2] else fast_cpu
    _found[key] = None if name is None else importlib.import_module(f"{__package__}.{name}")
    return _found[key]
