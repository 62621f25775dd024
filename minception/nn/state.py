"""Saving and restoring a module's state: parameters and buffers by dotted name, as NumPy arrays in a ``.npz``.

The state dict is the contract between a model and its checkpoint: the keys are the dotted attribute paths
(``"stem.conv1.conv.weight"``, ``"stem.conv1.bn.running_mean"``, ``"stem.conv1.bn.num_batches_tracked"``), the
values NumPy copies. Loading copies the values into the arrays the model already has, so every Parameter keeps its
identity (an optimizer built before the load still updates the right objects), its dtype and its device.

Files: ``save_state`` writes the state dict as an ``.npz`` atomically (a failed write leaves the previous file
whole), and ``load_state`` reads one with ``minception.files.read_npz``, which trusts nothing in the file: a
damaged or hostile file raises ``StateFileError`` naming it.
"""
from collections import namedtuple

import numpy as np

from autograd import Tensor
from autograd.backend import get_array_module, to_numpy

from ..files import NpzError, read_npz, write_npz
from ..files.fit import fitted_array

LoadResult = namedtuple("LoadResult", ["missing", "unexpected"])


class StateDictError(KeyError, ValueError):
    """Raised by ``load_state_dict`` when keys are missing, unexpected or mis-shaped; the message lists them all.

    It is both a KeyError and a ValueError, so either ``except`` clause catches it.
    """

    def __init__(self, message, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.message = message
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)

    def __str__(self):               # KeyError would print the repr of the message, quotes and "\n" included
        return self.message


class StateFileError(ValueError):
    """Raised by ``load_state`` (``Module.load``) when the file is missing, truncated, corrupt or not a plain array
    archive; the message names the file."""


def _entries(module):
    """(dotted name, owner module, attribute, is_parameter) for every parameter and buffer, shared ones under every
    name they have (as in PyTorch: a checkpoint then loads whichever path a reader looks under)."""
    out = []
    for path, m in module.named_modules(remove_duplicate=False):
        prefix = f"{path}." if path else ""
        for name, p in m._parameters.items():
            if p is not None:
                out.append((prefix + name, m, name, True))
        for name, b in m._buffers.items():
            if b is not None and name not in m._non_persistent:
                out.append((prefix + name, m, name, False))
    return out


def _current(m, attr, is_param):
    return m._parameters[attr].data if is_param else m._buffers[attr]


def state_dict(module):
    """Dotted name -> NumPy copy of every parameter and buffer (parameters first within each module).

    Returns:
        dict[str, numpy.ndarray]; ``num_batches_tracked`` is a 0-d int64 array.
    """
    return {key: np.array(to_numpy(_current(m, attr, is_param)), copy=True)
            for key, m, attr, is_param in _entries(module)}


def load_state_dict(module, state, strict=True):
    """Copy ``state`` (dotted name -> array) into ``module``'s parameters and buffers.

    Values are cast to the model's dtype and copied onto the model's device, in place. Nothing is copied unless
    the whole load is valid: ``check_state_dict`` checks every value first, then ``apply_state_dict`` copies.

    Args:
        state: a dict (or an ``np.load`` result) of arrays, Tensors or numbers.
        strict: when True, any missing or unexpected key is an error. When False, the keys present on both sides
            are loaded and the others reported.
    Returns:
        ``LoadResult(missing, unexpected)``: sorted lists of key names.
    Raises:
        StateDictError (a KeyError and a ValueError): when strict and keys are missing or unexpected, and, strict
        or not, when a key's shape differs (a silently skipped tensor is a classic fine-tuning bug: delete such
        keys from ``state`` first, e.g. a classifier with a different number of classes). The message lists the
        missing keys, the unexpected keys and the mis-shaped keys with both shapes.
        TypeError or ValueError naming the key: a value that is not an array or a number, of another kind of
        dtype (a float for an integer buffer), or out of the range of the model's dtype.
    """
    values, result = check_state_dict(module, state, strict=strict)
    apply_state_dict(module, values)
    return result


def check_state_dict(module, state, strict=True):
    """The first half of ``load_state_dict``: check ``state`` against ``module`` and change nothing.

    Returns ``(values, LoadResult(missing, unexpected))``: ``values`` maps each key to load to a NumPy array of
    exactly the shape and dtype of the model's array, ready for ``apply_state_dict``. Raises as ``load_state_dict``.
    """
    entries = {key: (m, attr, is_param) for key, m, attr, is_param in _entries(module)}
    keys = list(state.keys())
    missing = sorted(k for k in entries if k not in state)
    unexpected = sorted(k for k in keys if k not in entries)
    values, mismatched = {}, []
    for key in keys:
        if key not in entries:
            continue
        value = state[key]
        if isinstance(value, Tensor):
            value = value.data
        target = _current(*entries[key])
        shape = tuple(value.shape) if hasattr(value, "shape") else () if isinstance(value, (int, float)) else None
        if shape is not None and shape != tuple(target.shape):
            mismatched.append((key, shape, tuple(target.shape)))
            continue
        values[key] = value

    if mismatched or (strict and (missing or unexpected)):
        raise StateDictError(_describe(type(module).__name__, missing if strict else [],
                                       unexpected if strict else [], mismatched),
                             missing, unexpected, mismatched)
    for key, value in values.items():
        target = _current(*entries[key])
        values[key] = fitted_array(key, value, target.shape, target.dtype, scalars=True)
    return values, LoadResult(missing, unexpected)


def apply_state_dict(module, values):
    """The second half of ``load_state_dict``: copy ``values`` (from ``check_state_dict``) into the module's
    arrays, in place. Every value has its target's shape and dtype, so no copy can fail half-way."""
    entries = {key: (m, attr, is_param) for key, m, attr, is_param in _entries(module)}
    for key, value in values.items():
        target = _current(*entries[key])
        target[...] = get_array_module(target).asarray(value)


def _describe(owner, missing, unexpected, mismatched, limit=20):
    def listing(keys):
        shown = ", ".join(keys[:limit])
        return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")

    lines = [f"Error(s) in loading state dict for {owner}:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {listing(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {listing(unexpected)}")
    if mismatched:
        shown = [f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched]
        lines.append(f"  mis-shaped keys ({len(mismatched)}): " + listing(shown))
    return "\n".join(lines)


def save_state(module, path):
    """Write ``module.state_dict()`` to ``path`` as an ``.npz`` (``.npz`` is added if the name lacks it).

    The write is atomic: the archive goes to a temporary file that replaces ``path`` only once it is complete, so
    a failure (a full disk, a file-size limit, a kill) leaves an earlier file at ``path`` as it was.
    Returns the path written.
    """
    path = str(path)
    if not path.endswith(".npz"):
        path += ".npz"
    return write_npz(path, state_dict(module))


def load_state(module, path, strict=True):
    """Load a ``.npz`` written by ``save_state`` into ``module``; returns ``LoadResult(missing, unexpected)``.

    Raises:
        StateFileError (a ValueError): the file cannot be read as an archive of numeric arrays.
        StateDictError: the arrays do not fit the module (see ``load_state_dict``).
    """
    try:
        state = read_npz(path, what="state file")
    except NpzError as e:
        raise StateFileError(str(e)) from None
    return load_state_dict(module, state, strict=strict)
