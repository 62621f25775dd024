"""Registering kernels of your own: ``ops.kernels.register(tier, family, implementation)``.

A tier of your own starts empty; each ``register`` call gives it one family (or replaces the one it had), after
the family's contract check (``contracts/``) has passed. Families the tier lacks run the reference's, so a tier
with only an ``im2col`` trains a whole network on that im2col: the reference conv2d asks the table for it::

    import types
    from ops.kernels.reference import im2col as reference_im2col
    mine = types.SimpleNamespace(im2col=reference_im2col.im2col, col2im=reference_im2col.col2im)
    ops.kernels.register("student", "im2col", mine)      # runs the check; KernelContractError if it fails
    with ops.kernels.use("student"):
        ...                                              # every conv2d runs mine.im2col and mine.col2im
    print(ops.kernels.describe("student"))               # im2col from 'student', the rest from 'reference'

The built-in tiers, ``reference`` and ``fast``, cannot be changed or removed.
"""
from . import tiers
from .contracts import assert_contract


def _own_tier(tier, where):
    if not isinstance(tier, str) or not tier:
        raise TypeError(f"{where}: the tier must be a non-empty name (str), got {type(tier).__name__} {tier!r}")
    if tier in tiers.TIERS:
        raise ValueError(f"{where}: {tier!r} is a built-in tier and cannot be changed; give your kernels a tier "
                         f"of their own, e.g. ops.kernels.register('student', ...)")
    return tier


def register(tier, family, implementation):
    """Make ``implementation`` the ``family`` kernels of ``tier`` (created if new), on the CPU and the GPU.

    Args:
        tier: a name other than ``"reference"`` and ``"fast"``; then ``ops.kernels.use(tier)`` selects it.
        family: one of ``ops.kernels.FAMILIES``.
        implementation: a module, or any object (e.g. ``types.SimpleNamespace``), with the family's functions
            (``ops.kernels.contracts.FUNCTIONS[family]``), as stated in ``ops/kernels/reference/<family>.py``.

    Returns the contract check's report. Raises ``KernelContractError`` (a ValueError) with the report when the
    implementation breaks the contract (nothing is registered then), ValueError for a built-in tier or an
    unknown family.
    """
    where = f"ops.kernels.register({tier!r}, {family!r}, ...)"
    _own_tier(tier, where)
    tiers.checked_family(family, where)
    report = assert_contract(family, implementation, where)
    tiers.add_implementation(tier, family, implementation)
    return report


def unregister(tier):
    """Remove the registered tier ``tier`` and all its families (not a built-in tier, not the active one)."""
    where = f"ops.kernels.unregister({tier!r})"
    tiers.checked_tier(_own_tier(tier, where), where)
    if tier == tiers.current():
        raise ValueError(f"{where}: {tier!r} is the active tier; switch first, e.g. ops.kernels.use('fast')")
    tiers.remove_tier(tier)
