"""The kernel tiers and the one table every op with kernels reads.

A *family* is a set of kernels that one op (or a few) needs; a *tier* is a choice of one implementation per family.
``lookup(family, array)`` returns the active tier's implementation for the array's device (NumPy: CPU, CuPy: GPU).
The built-in tiers and the files behind them:

=============  ==============================  =========================  ===========================
family         reference tier (CPU and GPU)    fast tier, CPU             fast tier, GPU
=============  ==============================  =========================  ===========================
im2col         reference/im2col.py             cpu/im2col.py              cuda/im2col.py
conv2d         reference/conv2d.py             cpu/conv2d.py              cuda/conv2d.py
pooling        reference/pooling.py            cpu/pooling.py             cuda/pooling.py
batch_norm     reference/batch_norm.py         cpu/batch_norm.py          cuda/batch_norm.py
elementwise    reference/elementwise.py        cpu/elementwise.py         reference/elementwise.py
scatter        reference/scatter.py            reference/scatter.py       cuda/scatter.py
loss           reference/loss.py               reference/loss.py          reference/loss.py
=============  ==============================  =========================  ===========================

* ``reference``: the readable array code, run as written. The reference files use only what NumPy and CuPy share
  (``xp = get_array_module(x)``), so this tier runs on the GPU too. Nothing of the fast tier is imported in this
  tier, so a reference run uses no Numba and no thread pool at all.
* ``fast`` (the default): Numba kernels and the CPU runtime of ``cpu/`` on the CPU, CuPy kernels on the GPU.
* tiers of your own, added with ``ops.kernels.register(tier, family, implementation)`` (``registry.py``): a tier
  that lacks a family runs the reference's for it. A registered implementation serves both devices, as the
  reference does.

Every tier's kernels of a family take the same arguments and return the same results: the family's *contract*,
stated in the docstring of its reference file and checked by ``ops.kernels.check`` (``contracts/``).

Choosing the tier (one setting for the whole process, read by every op call):

* ``ops.kernels.use("reference")``: from now on; ``with ops.kernels.use("reference"): ...``: inside the block only
  (the previous tier is restored on exit, even after an exception);
* the environment variable ``MINCEPTION_KERNELS=reference`` (or ``fast``), read once when ``ops`` is imported;
* ``ops.kernels.current()`` names the active tier, ``ops.kernels.describe()`` says what each family runs in it.

Conv, pooling and batch norm look their kernels up in ``forward`` and keep them for ``backward`` (what forward
saves, e.g. pooling's argmax, is read by the same tier), so switching tiers between a forward and its backward pass
is safe; the elementwise ops look theirs up at each call. A lookup is one dict read after the first one for a
(family, tier, device); modules are imported at that first lookup: ``import ops`` imports neither Numba nor CuPy
and compiles nothing.
"""
import importlib
import os

import numpy as np

from autograd.backend import is_gpu_array

ENV_VAR = "MINCEPTION_KERNELS"

#: the kernel families, in the order ``describe`` lists them
FAMILIES = ("im2col", "conv2d", "pooling", "batch_norm", "elementwise", "scatter", "loss")

#: the built-in tiers (``registered_tiers()`` lists every registered one)
TIERS = ("reference", "fast")

#: tier -> family -> (implementation for NumPy arrays, implementation for CuPy arrays). A string names a module
#: inside ``ops.kernels``, imported at its first lookup; anything else is a registered object.
_table = {
    "reference": {family: (f"reference.{family}", f"reference.{family}") for family in FAMILIES},
    "fast": {
        "im2col": ("cpu.im2col", "cuda.im2col"),
        "conv2d": ("cpu.conv2d", "cuda.conv2d"),
        "pooling": ("cpu.pooling", "cuda.pooling"),
        "batch_norm": ("cpu.batch_norm", "cuda.batch_norm"),
        "elementwise": ("cpu.elementwise", "reference.elementwise"),
        "scatter": ("reference.scatter", "cuda.scatter"),
        "loss": ("reference.loss", "reference.loss"),      # (N, K) logits: too small to need another kernel
    },
}


def _tier_names():
    return ", ".join(map(repr, _table))


def checked_tier(name, where):
    """``name`` if it is a registered tier, else a ValueError (TypeError for a non-string) naming ``where``."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: expected the name of a kernel tier, got {type(name).__name__} {name!r}; "
                        f"give your kernels a tier first: ops.kernels.register('mine', 'im2col', module)")
    if name not in _table:
        raise ValueError(f"{where}: unknown kernel tier {name!r}; the registered tiers are {_tier_names()} "
                         f"(ops.kernels.register adds one)")
    return name


def checked_family(family, where):
    """``family`` if it is a kernel family, else a ValueError naming ``where`` and the families."""
    if family not in FAMILIES:
        raise ValueError(f"{where}: unknown kernel family {family!r}; expected one of "
                         f"{', '.join(map(repr, FAMILIES))}")
    return family


def _tier_from_environment():
    name = os.environ.get(ENV_VAR) or "fast"
    if name not in _table:
        raise ValueError(f"environment variable {ENV_VAR}: unknown kernel tier {name!r}; expected 'reference' or "
                         f"'fast' (a tier your program registers is chosen with ops.kernels.use(name) after "
                         f"registering it: {ENV_VAR} is read when ops is imported)")
    return name


_active = _tier_from_environment()


def current():
    """The name of the active tier: ``"reference"``, ``"fast"`` or a registered one."""
    return _active


def registered_tiers():
    """The names of the registered tiers, the built-in ones first."""
    return tuple(_table)


class use:
    """Make the registered tier ``name`` the active kernel tier.

    As a call, ``ops.kernels.use("reference")`` switches from now on. As a ``with`` block, the tier that was active
    before is restored when the block ends::

        with ops.kernels.use("reference"):
            loss = ops.softmax_cross_entropy(model(x), y)     # the readable kernels, forward...
            loss.backward()                                   # ... and backward

    Raises ValueError for a name that is not registered (the message lists the registered tiers).
    """

    def __init__(self, name):
        global _active
        self.name = checked_tier(name, "ops.kernels.use")
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


_found = {}        # (family, tier, on the GPU) -> implementation, filled at the first lookup


def lookup(family, array):
    """The active tier's implementation of ``family`` for ``array``'s device (NumPy: CPU, CuPy: GPU): a module or a
    registered object with the family's functions. Imports a built-in module at its first lookup."""
    key = (family, _active, not isinstance(array, np.ndarray) and is_gpu_array(array))
    try:
        return _found[key]
    except KeyError:
        pass
    checked_family(family, "ops.kernels.lookup")
    implementation = _entry(_active, family)[1][key[2]]
    if isinstance(implementation, str):
        implementation = importlib.import_module(f"{__package__}.{implementation}")
    _found[key] = implementation
    return implementation


def _entry(tier, family):
    """``(the tier that provides family, (CPU implementation, GPU implementation))``: ``tier``'s own entry, or the
    reference's when ``tier`` has none for this family."""
    if family in _table[tier]:
        return tier, _table[tier][family]
    return "reference", _table["reference"][family]


def add_implementation(tier, family, implementation):
    """Put ``implementation`` into the table as ``tier``'s ``family`` (a new tier is created), for both devices.

    No checks: ``ops.kernels.register`` (``registry.py``) checks the names and the contract first."""
    _table.setdefault(tier, {})[family] = (implementation, implementation)
    _found.clear()


def remove_tier(tier):
    """Take ``tier`` out of the table (``ops.kernels.unregister`` checks that it is not built-in or active)."""
    del _table[tier]
    _found.clear()


def _implementation_name(implementation):
    if isinstance(implementation, str):
        return f"{__package__}.{implementation}"
    name = getattr(implementation, "__name__", None)
    return name if isinstance(name, str) else f"a {type(implementation).__name__} object"


def describe(tier=None):
    """Which implementation each family runs in ``tier`` (default: the active tier), as text::

        kernel tier 'student' (active); family, tier it comes from, implementation:
          im2col       student    my_im2col
          conv2d       reference  ops.kernels.reference.conv2d
          ...

    Where the CPU and the GPU run different code, both are named. Where the CPU convolution is the fast tier's, a
    last line says what it does to glibc's malloc (``ops/kernels/cpu/runtime/malloc.py``).
    """
    tier = _active if tier is None else checked_tier(tier, "ops.kernels.describe")
    active = " (active)" if tier == _active else ""
    lines = [f"kernel tier {tier!r}{active}; family, tier it comes from, implementation:"]
    malloc = None
    for family in FAMILIES:
        source, (cpu, gpu) = _entry(tier, family)
        cpu, gpu = _implementation_name(cpu), _implementation_name(gpu)
        where = cpu if cpu == gpu else f"CPU {cpu}, GPU {gpu}"
        lines.append(f"  {family:<12} {source:<10} {where}")
        if family == "conv2d" and cpu == "ops.kernels.cpu.conv2d":
            from .cpu.runtime.malloc import malloc_policy
            malloc = f"  malloc: {malloc_policy()}"
    return "\n".join(lines + ([malloc] if malloc else []))


class LazyModule:
    """Stands for the module ``name``, imported at the first attribute read.

    ``ops.kernels.multi_tensor`` is one: the optimizers' multi-tensor CUDA kernels, which the optimizers use on
    the GPU in every tier. A program that never updates GPU parameters never imports the module."""

    def __init__(self, name):
        self._name = name
        self._module = None

    def __getattr__(self, attribute):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self):
        return f"<lazily imported module {self._name!r}>"


#: the optimizers' one-launch updates on the GPU (``ops/kernels/cuda/multi_tensor.py``), imported at first use
multi_tensor = LazyModule(f"{__package__}.cuda.multi_tensor")
