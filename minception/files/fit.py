"""Does a value read from a file fit the array it is about to replace? Checked before anything is copied.

Loading state (a model's weights, an optimizer's moments, an EMA's averages) copies each value into an array the
program already holds. If the copy of the tenth array fails (a list where an array belongs, a wrong shape, a
float where an int buffer is), the first nine are already overwritten and the object is half old, half new. So
the loaders of ``nn.state``, ``optim`` and ``train.run_state`` work in two phases: ``fitted_array`` checks each
value and returns it as a host array already in the target's dtype, and only when every value passed does the
second phase copy them, which can then no longer fail.

The rule for dtypes: the kind must match (a float where a float is, an integer where an integer is, a bool where
a bool is); the size may differ (a float64 file loads into a float32 model, rounded), as long as no value changes
class on the way: a finite float that overflows the narrower type, or an integer out of its range, is refused.
"""
import numpy as np

from autograd.backend import is_gpu_array, to_numpy

from .shorten import shorten

_KIND_NAMES = {"f": "float", "i": "integer", "u": "integer", "b": "bool"}


def described(value):
    """What ``value`` is, in a few words, for a message: ``list of 4 items``, ``float inf``, ``str '3'``."""
    if isinstance(value, (list, tuple, dict)):
        return f"{type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {shorten(value, 40)}"


def _kind(dtype):
    return _KIND_NAMES.get(np.dtype(dtype).kind)


def fitted_array(field, value, shape, dtype, scalars=False):
    """``value`` as a NumPy array of ``shape`` and ``dtype``, or a ValueError/TypeError naming ``field``.

    Args:
        field: what the value is, for the message (e.g. ``"optimizer state 'momentum' of 'fc.weight'"``).
        value: a NumPy or CuPy array (or, with ``scalars``, a Python or NumPy number for a 0-d target).
        shape, dtype: those of the array the value will be copied into.
    Returns:
        a NumPy array of exactly ``shape`` and ``dtype`` (a copy when a cast was needed), safe to copy in.
    """
    if scalars and isinstance(value, (bool, int, float, np.generic)):
        value = np.asarray(value)
    if not (isinstance(value, np.ndarray) or is_gpu_array(value)):
        raise TypeError(f"{field}: is a {described(value)}, expected an array of shape {tuple(shape)}")
    value = np.asarray(to_numpy(value))
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{field}: has shape {tuple(value.shape)}, expected {tuple(shape)}")
    dtype = np.dtype(dtype)
    if _kind(value.dtype) is None or _kind(value.dtype) != _kind(dtype):
        article = "an" if str(value.dtype)[0] in "aeiou" else "a"
        raise TypeError(f"{field}: is {article} {value.dtype} array, expected {_kind(dtype) or 'a'} values ({dtype})")
    if value.dtype == dtype:
        return value
    if dtype.kind in "iu" and value.size and not np.can_cast(value.dtype, dtype):
        info = np.iinfo(dtype)
        low, high = int(value.min()), int(value.max())
        if low < info.min or high > info.max:
            raise ValueError(f"{field}: values {shorten(low)}..{shorten(high)} do not fit {dtype}")
    with np.errstate(over="ignore"):
        cast = value.astype(dtype)
    if dtype.kind == "f" and value.size and not np.can_cast(value.dtype, dtype):
        if np.count_nonzero(np.isfinite(value)) != np.count_nonzero(np.isfinite(cast)):
            raise ValueError(f"{field}: holds values too large for {dtype}")
    return cast
