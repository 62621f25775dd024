"""Checkpoints: a nested dict of arrays and plain values, written atomically to one ``.npz`` file.

A training run's state is a tree: ``{"model": {name: array}, "optimizer": {"lr": ..., "state": {...}},
"ema": {...}, "position": {...}, ...}``. ``save_checkpoint`` stores every NumPy array of the tree as one entry
of an uncompressed ``.npz`` archive, and everything else (numbers, strings, bools, None, lists and the shape of
the tree itself) as one JSON document inside the same archive, under the key ``"__tree__.json"``. In the JSON an
array appears as ``{"__array__": "<npz key>"}``. ``load_checkpoint`` rebuilds the same tree.

Nothing is pickled, so loading a checkpoint cannot run code, and the archive is read by
``minception.files.read_npz``, which checks every size and type before it allocates anything: a truncated,
corrupt or hostile file raises ``CheckpointError`` naming it, and nothing else.

The write is atomic (``minception.files.atomic_write``): a crash at any moment leaves either the old complete
checkpoint or the new complete one, never a torn file.

``save_weights`` writes a model's state dict alone (flat ``{dotted name: array}``, the format ``Module.save``
uses), with the same atomic rename, so ``model.load("best.npz")`` reads it.
"""
import json
import os

import numpy as np

from autograd.backend import is_gpu_array, to_numpy

from ..files import NpzError, atomic_write, read_npz, write_npz
from ..files.shorten import shorten

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "save_weights", "atomic_write"]

FORMAT_VERSION = 1
TREE_KEY = "__tree__.json"
_ARRAY_TAG = "__array__"


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint file is missing, unreadable, or not a minception checkpoint, or it does not fit the run that
    loads it (the message names the file). A ValueError (and, as in earlier versions, a RuntimeError)."""


# --------------------------------------------------------------------------------------------- the tree ---
def _flatten(tree, arrays, prefix):
    """JSON-able copy of ``tree`` with every array moved into ``arrays`` (npz key -> NumPy array)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"save_checkpoint: dict keys must be str or int, got {key!r} at {prefix or '/'}")
            skey = str(key)
            if "/" in skey or skey == _ARRAY_TAG:
                raise ValueError(f"save_checkpoint: key {skey!r} at {prefix or '/'} may not contain '/' "
                                 f"or be {_ARRAY_TAG!r}")
            if skey in out:
                raise ValueError(f"save_checkpoint: keys {key!r} and {skey!r} collide at {prefix or '/'}")
            out[skey] = _flatten(value, arrays, f"{prefix}/{skey}" if prefix else skey)
        return out
    if isinstance(tree, (list, tuple)):
        return [_flatten(v, arrays, f"{prefix}/{i}") for i, v in enumerate(tree)]
    if isinstance(tree, np.ndarray) or is_gpu_array(tree):
        array = np.asarray(to_numpy(tree))
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save_checkpoint: {prefix} is a {array.dtype} array; only bool, int and float "
                            "arrays can be stored")
        arrays[prefix] = array
        return {_ARRAY_TAG: prefix}
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"save_checkpoint: cannot store {type(tree).__name__} at {prefix} "
                    "(use arrays, numbers, strings, bools, None, lists and dicts)")


def _unflatten(tree, arrays, path):
    """Rebuild the tree from its JSON form, putting the arrays back (``path`` is for error messages)."""
    if isinstance(tree, dict):
        if _ARRAY_TAG in tree:
            key = tree[_ARRAY_TAG]
            if len(tree) != 1 or not isinstance(key, str) or key not in arrays:
                raise CheckpointError(f"{path}: the checkpoint refers to an array {shorten(key)} it does not contain")
            return arrays[key]
        return {k: _unflatten(v, arrays, path) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unflatten(v, arrays, path) for v in tree]
    return tree


# --------------------------------------------------------------------------------------------- writing ---
def save_checkpoint(path, state):
    """Write the nested dict ``state`` to ``path`` (an ``.npz``), atomically. Returns ``path``.

    Args:
        path: destination file; its folder is created if needed.
        state: a dict whose leaves are NumPy (or CuPy: copied to the host) arrays, numbers, strings, bools or
            None, nested in dicts (str or int keys, no '/' in them) and lists. Floats round-trip exactly
            (JSON keeps 17 significant digits; NaN and inf are allowed); int dict keys come back as str.
    """
    arrays = {}
    tree = {"format": "minception-checkpoint", "format_version": FORMAT_VERSION,
            "state": _flatten(state, arrays, "")}
    if TREE_KEY in arrays:
        raise ValueError(f"save_checkpoint: {TREE_KEY!r} is reserved")
    return write_npz(path, {TREE_KEY: np.array(json.dumps(tree, allow_nan=True)), **arrays})


def save_weights(path, model_state):
    """Write a flat ``{dotted name: array}`` state dict to ``path`` atomically (``Module.load`` reads it)."""
    return write_npz(path, {str(key): np.asarray(to_numpy(value)) for key, value in model_state.items()})


# --------------------------------------------------------------------------------------------- reading ---
def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``. Returns the nested dict (arrays as NumPy arrays).

    Raises:
        CheckpointError (a ValueError): the file is missing, truncated, not an ``.npz``, or not a minception
            checkpoint; only this error, whatever the file holds.
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    # Opened once, only if a regular file (a FIFO, a device or a directory is refused). The tree must be stored
    # uncompressed, as save_checkpoint writes it: 4 bytes a character in the file, and parsed JSON takes at most
    # ~21 bytes a character ("[]," is a list), so the parse stays within ~6x the file's size.
    try:
        arrays = read_npz(path, kinds="biufU", what="checkpoint", stored=[TREE_KEY])
    except NpzError as e:
        raise CheckpointError(str(e)) from None
    doc = arrays.pop(TREE_KEY, None)
    if doc is None:
        raise CheckpointError(f"{path}: not a minception checkpoint (no {TREE_KEY} entry; a plain weights file? "
                              "load it with model.load(path))")
    text_arrays = [key for key, a in arrays.items() if a.dtype.kind == "U"]
    if doc.dtype.kind != "U" or doc.ndim != 0 or text_arrays:
        raise CheckpointError(f"{path}: not a minception checkpoint (text where arrays belong)")
    try:
        tree = json.loads(str(doc))
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: the checkpoint's {TREE_KEY} is not valid JSON ({e})") from None
    if not isinstance(tree, dict) or tree.get("format") != "minception-checkpoint" or "state" not in tree:
        raise CheckpointError(f"{path}: not a minception checkpoint")
    if tree.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {shorten(tree.get('format_version'))}, this code "
                              f"reads version {FORMAT_VERSION}")
    try:
        return _unflatten(tree["state"], arrays, path)
    except RecursionError:
        raise CheckpointError(f"{path}: the checkpoint's tree is nested too deeply") from None
