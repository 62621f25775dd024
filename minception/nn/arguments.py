"""Argument checks that several layers share, so that every layer words the same mistake the same way."""
import numpy as np


def check_positive(layer, **sizes):
    """Raise ValueError unless every size is a positive integer (``bool`` is not a size).

    ``check_positive("Conv2d", in_channels=3, out_channels=0)`` raises
    ``Conv2d: out_channels must be a positive integer, got 0``.
    """
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
