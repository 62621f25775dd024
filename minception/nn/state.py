"""Saving and restoring a module's state: parameters and buffers by dotted name, as NumPy arrays in a ``.npz``.

The state dict is the contract between a model and its checkpoint: the keys are the dotted attribute paths
(``"stem.conv1.conv.weight"``, ``"stem.conv1.bn.running_mean"``, ``"stem.conv1.bn.num_batches_tracked"``), the
values NumPy copies. Loading copies the values into the arrays the model already has, so every Parameter keeps its
identity (an optimizer built before the load still updates the right objects), its dtype and its device.
"""
from collections import namedtuple

import numpy as np

from autograd import Tensor
from autograd.backend import get_array_module, to_numpy

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
    the whole load is valid.

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
        value = to_numpy(value) if hasattr(value, "shape") else np.asarray(value)
        target = _current(*entries[key])
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append((key, tuple(value.shape), tuple(target.shape)))
        values[key] = value

    if mismatched or (strict and (missing or unexpected)):
        raise StateDictError(_describe(type(module).__name__, missing if strict else [],
                                       unexpected if strict else [], mismatched),
                             missing, unexpected, mismatched)
    for key, value in values.items():
        target = _current(*entries[key])
        target[...] = get_array_module(target).asarray(value)
    return LoadResult(missing, unexpected)


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
    """Write ``module.state_dict()`` to ``path`` with ``np.savez`` (NumPy adds ``.npz`` if the name lacks it).

    Returns the path written.
    """
    path = str(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with open(path, "wb") as f:
        np.savez(f, **state_dict(module))
    return path


def load_state(module, path, strict=True):
    """Load a ``.npz`` written by ``save_state`` into ``module``; returns ``LoadResult(missing, unexpected)``."""
    with np.load(str(path), allow_pickle=False) as archive:
        state = {key: archive[key] for key in archive.files}
    return load_state_dict(module, state, strict=strict)
