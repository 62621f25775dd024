"""Checkpoints: a nested dict of arrays and plain values, written atomically to one ``.npz`` file.

A training run's state is a tree: ``{"model": {name: array}, "optimizer": {"lr": ..., "state": {...}},
"ema": {...}, "epoch": 3, "rng": {...}, ...}``. ``save_checkpoint`` stores every NumPy array of the tree as
one entry of an uncompressed ``.npz`` archive, and everything else (numbers, strings, bools, None, lists and
the shape of the tree itself) as one JSON document inside the same archive, under the key ``"__tree__.json"``.
In the JSON an array appears as ``{"__array__": "<npz key>"}``. ``load_checkpoint`` rebuilds the same tree.
Nothing is pickled, so loading a checkpoint cannot run code (``np.load(..., allow_pickle=False)``).

Atomic write: the archive goes to a temporary file in the destination folder, is flushed and ``fsync``-ed,
then renamed over the destination with ``os.replace`` (atomic on POSIX and Windows within one file system),
and the folder is ``fsync``-ed so the rename itself survives a power cut. A crash at any moment therefore
leaves either the old complete checkpoint or the new complete one, never a torn file; a failed write deletes
its temporary file.

``save_weights`` writes a model's state dict alone (flat ``{dotted name: array}``, the format ``Module.save``
uses), with the same atomic rename, so ``model.load("best.npz")`` reads it.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from autograd.backend import is_gpu_array, to_numpy

FORMAT_VERSION = 1
TREE_KEY = "__tree__.json"
_ARRAY_TAG = "__array__"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not a minception checkpoint (the message names the file)."""


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
        if array.dtype == object:
            raise TypeError(f"save_checkpoint: {prefix} is an object array; only numeric arrays can be stored")
        arrays[prefix] = array
        return {_ARRAY_TAG: prefix}
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"save_checkpoint: cannot store {type(tree).__name__} at {prefix} "
                    "(use arrays, numbers, strings, bools, None, lists and dicts)")


def _unflatten(tree, archive, path):
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY_TAG}:
            key = tree[_ARRAY_TAG]
            if key not in archive.files:
                raise CheckpointError(f"{path}: the checkpoint lists array {key!r} but does not contain it")
            return archive[key]
        return {k: _unflatten(v, archive, path) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unflatten(v, archive, path) for v in tree]
    return tree


# --------------------------------------------------------------------------------------- atomic writes ---
def _fsync_folder(folder):
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it to ``path`` atomically.

    The temporary file is flushed and fsync-ed before the rename; if ``write`` (or anything else) fails, the
    temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())        # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    _fsync_folder(folder)
    return path


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
    doc = np.array(json.dumps(tree, allow_nan=True))

    def write(f):
        np.savez(f, **{TREE_KEY: doc}, **arrays)

    return atomic_write(path, write)


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``. Returns the nested dict (arrays as NumPy arrays).

    Raises:
        CheckpointError: the file is missing, truncated, not an ``.npz``, or not a minception checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if TREE_KEY not in archive.files:
                raise CheckpointError(f"{path}: not a minception checkpoint (no {TREE_KEY} entry; a plain "
                                      "weights file? load it with model.load(path))")
            tree = json.loads(str(archive[TREE_KEY]))
            if tree.get("format") != "minception-checkpoint":
                raise CheckpointError(f"{path}: not a minception checkpoint")
            if tree.get("format_version") != FORMAT_VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {tree.get('format_version')}, "
                                      f"this code reads version {FORMAT_VERSION}")
            # materialise every array while the archive is open
            return _unflatten(tree["state"], archive, path)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e


def save_weights(path, model_state):
    """Write a flat ``{dotted name: array}`` state dict to ``path`` atomically (``Module.load`` reads it)."""
    arrays = {}
    for key, value in model_state.items():
        arrays[str(key)] = np.asarray(to_numpy(value))

    def write(f):
        np.savez(f, **arrays)

    return atomic_write(path, write)

