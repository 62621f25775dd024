"""Argument checks shared by the optimizers, the EMA and the schedules.

A learning rate of ``inf`` or ``"0.1"`` must fail where it is given, not as NaN weights many steps later (or, for
the string, never: ``float("0.1")`` would quietly accept it). Each check returns the value in its plain Python
type, so a constructor can write ``self.eps = real_number("RMSProp", "eps", eps)``.
"""
import math
import numbers

import numpy as np

from ..files.fit import described
from ..files.shorten import shorten


def real_number(owner, name, value):
    """``value`` as a finite float, or a clear error: TypeError for anything that is not a real number (a string
    such as ``"0.1"``, a bool, None), ValueError for NaN and infinities. ``owner`` and ``name`` go in the message."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {shorten(value, 40)}")
    try:
        value = float(value)
    except OverflowError:                     # an int beyond float's range (e.g. read from a checkpoint)
        raise ValueError(f"{owner}: {name} must be finite, got {shorten(value, 40)}") from None
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    return value


def integer(owner, name, value, minimum=None):
    """``value`` as an int (``True`` and ``2.0`` are refused), at least ``minimum`` when given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {shorten(value, 40)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {shorten(value, 40)}")
    return value


def flag(owner, name, value):
    """``value`` if it is a bool (``bool("False")`` is True, so strings are refused), else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {type(value).__name__} {shorten(value, 40)}")
    return bool(value)


def of_type(owner, field, value, kind):
    """``value`` if it is a ``kind`` (e.g. dict), else a TypeError naming ``owner`` and ``field``.

    For state dicts read back from a checkpoint: ``of_type("RMSProp", "'state'", d["state"], dict)``."""
    if not isinstance(value, kind):
        raise TypeError(f"{owner}: {field} must be a {kind.__name__}, got a {described(value)}")
    return value
