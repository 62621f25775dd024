"""Read a state dict saved by ``torch.save`` (``.pth`` / ``.pt`` / ``.bin``) with NumPy only, executing nothing.

Since PyTorch 1.6 ``torch.save`` writes a zip archive::

    archive/data.pkl        a pickle of the object (here: an OrderedDict of tensors)
    archive/data/0, 1, ...  the raw bytes of each storage (little-endian, see archive/byteorder)
    archive/version, ...

Inside ``data.pkl`` each tensor is a call ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
whose ``storage`` is a *persistent id* ``("storage", torch.FloatStorage, "0", "cpu", numel)`` pointing at
``archive/data/0``. Element ``(i, j, ...)`` of the tensor is element ``offset + i*stride[0] + j*stride[1] + ...``
of its storage. An ordinary ``pickle.load`` would import torch and could run arbitrary code named in the file.

This reader unpickles with ``minception.restricted_pickle`` and a short allow-list (the OrderedDict, the two rebuild
functions, the storage types), all built afresh for each load; any other name in the file is an error. The
pickle yields only *descriptions* of tensors; after it, each tensor is checked and copied out of its storage:

- every element the (offset, size, stride) view can reach lies inside the storage: offset, sizes and strides
  are non-negative integers (Python ints, so nothing overflows), and the last element reachable is below the
  storage's length. Only then is a NumPy view made, and copied (C order, bfloat16 widened to float32);
- the path is opened once, and only if it is a regular file (``open_regular``): a FIFO, a device such as
  ``/dev/zero``, a directory or a socket is refused before a byte is read;
- members must be stored or deflated (the methods zip writers use; ``torch.save`` stores every member: the
  real file in tests/minception/test_pretrained.py has ten members, all stored, ratio 1.0). bzip2, LZMA and
  the rest are refused before anything is decompressed;
- the archive members read (``data.pkl`` and the storages) total at most the file's size, so overlapping or
  compressed zip entries cannot inflate a small file into gigabytes: a whole archive never expands. Each
  member is decompressed a chunk at a time with a running limit (``read_at_most``) at the size its header
  claims, so a deflate bomb whose header says 100 bytes stops after 100 bytes (and fails its CRC);
- the tensors total at most twice the file's size in bytes: room for tied weights (two keys, one storage) and
  small expanded tensors (stride 0), not for a 64 TiB tensor made of one float.

Every problem raises ``TorchPickleError`` naming the file and, where it can, the key and the field.

    from minception.pretrained.torch_pickle import load_torch_state_dict
    state = load_torch_state_dict("inception_v4.pth")        # {key: numpy array}

The legacy (pre-1.6, non-zip) format is not supported: re-save such a file with a recent PyTorch.
"""
from __future__ import annotations

import collections
import math
import os
import pickle
import struct
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from minception.files.bounded import read_at_most
from minception.files.regular import open_regular
from minception.restricted_pickle import RestrictedUnpickler, describe

__all__ = ["load_torch_state_dict", "TorchPickleError"]

_BF16 = "bfloat16"
# torch.<name>Storage -> element dtype on disk (little-endian); bfloat16 is widened to float32 on load.
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": _BF16,
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}
_MAX_DIMS = 64                 # NumPy's limit on the number of dimensions
_TENSOR_BYTES_PER_FILE_BYTE = 2
# The compression methods a torch file's members may use: stored (what torch.save writes) and deflate.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_OTHER_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}
# What a broken zip archive can raise while it is opened or read.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               ValueError, NotImplementedError, RuntimeError, struct.error)


class TorchPickleError(ValueError):
    """The file is not a zip-format ``torch.save`` state dict, names something outside the allow-list, or
    describes a tensor that does not fit its storage."""


class _StorageType(NamedTuple):
    """Stands for ``torch.FloatStorage`` & co. Immutable: a pickle cannot change it for the next load."""
    name: str
    dtype: str                 # NumPy dtype string, or "bfloat16"


class _StorageRef(NamedTuple):
    """A persistent id: storage ``key`` (member ``data/<key>``) of ``numel`` elements of ``kind``."""
    kind: _StorageType
    key: str
    numel: int


class _TensorSpec(NamedTuple):
    """What ``_rebuild_tensor_v2`` was asked for; checked and copied out after unpickling."""
    storage: _StorageRef
    offset: object
    size: object
    stride: object


def _refuse(message):
    raise pickle.UnpicklingError(message)


# ------------------------------------------------------------------------- the names a state dict uses ---
def _make_ordered_dict(*args):
    """``collections.OrderedDict()``: torch pickles an empty one, then fills it with SETITEMS."""
    if args not in ((), ([],)):
        _refuse(f"OrderedDict is built empty in a state dict, got arguments {describe(args)}")
    return collections.OrderedDict()


def _ignore_ordered_dict_state(obj, state):
    """BUILD on an OrderedDict carries its attributes (torch's ``_metadata``), which a reader does not need."""
    if not isinstance(state, dict):
        _refuse(f"an OrderedDict's state must be a dict, got {type(state).__name__}")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _StorageRef):
        _refuse(f"_rebuild_tensor_v2 needs a storage (a persistent id), got {type(storage).__name__}")
    return _TensorSpec(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorSpec):
        _refuse(f"_rebuild_parameter needs a tensor, got {type(data).__name__}")
    return data


def _names_for_one_load():
    """The allow-list, built for each load; nothing in it can be changed by a pickle (see restricted_pickle)."""
    names = {("collections", "OrderedDict"): _make_ordered_dict,
             ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
             ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}
    for name, dtype in _STORAGE_DTYPES.items():
        names[("torch", name)] = _StorageType(name, dtype)
    return names


def _storage_ref(pid):
    """A persistent id ``("storage", torch.<X>Storage, key, location, numel)`` -> ``_StorageRef``."""
    if type(pid) is not tuple or len(pid) != 5 or pid[0] != "storage":
        _refuse(f"persistent id must be ('storage', type, key, location, numel), got {describe(pid)}")
    _, kind, key, location, numel = pid
    if not isinstance(kind, _StorageType):
        _refuse(f"persistent id: storage type must be one of torch.{', torch.'.join(_STORAGE_DTYPES)}, "
                f"got {describe(kind)}")
    if type(key) is not str or not key or "/" in key or len(key) > 100:
        _refuse(f"persistent id: storage key must be a short name like '0', got {describe(key)}")
    if type(location) is not str:
        _refuse(f"persistent id: location must be a string like 'cpu', got {describe(location)}")
    if type(numel) is not int or numel < 0:
        _refuse(f"persistent id: numel must be a non-negative integer, got {describe(numel)}")
    return _StorageRef(kind, key, numel)


# ---------------------------------------------------------------------------------------- the archive ---
def _member(name):
    """A zip member's name for a message: as it is, unless it is long (a zip name may have 65,535 bytes)."""
    return name if len(name) <= 200 else describe(name)


class _Archive:
    """The zip members of one torch file, read under a byte budget: at most the file's size in total."""

    def __init__(self, f, size, path):
        self.path = path
        self.budget = size
        self.zip = zipfile.ZipFile(f)
        self.names = set(self.zip.namelist())
        self.storages = {}

    def read(self, name):
        info = self.zip.getinfo(name)
        if info.compress_type not in _METHODS:
            method = _OTHER_METHODS.get(info.compress_type, f"method {info.compress_type}")
            raise TorchPickleError(f"{self.path}: member {_member(name)} is compressed with {method}; torch "
                                   f"files use stored or deflate members only")
        if info.file_size > self.budget:
            raise TorchPickleError(f"{self.path}: member {_member(name)} claims {info.file_size} bytes, more "
                                   f"than the rest of the file can hold ({self.budget}); overlapping or "
                                   f"compressed entries?")
        self.budget -= info.file_size
        with self.zip.open(info) as member:      # a chunk at a time, never past what the header claims
            raw = read_at_most(member, info.file_size, f"{self.path}: member {_member(name)}", TorchPickleError)
        if len(raw) != info.file_size:
            raise TorchPickleError(f"{self.path}: member {_member(name)} holds {len(raw)} bytes, its header says "
                                   f"{info.file_size}")
        return raw

    def storage(self, prefix, ref, key_for_errors):
        """The storage's elements as a 1-D array (bfloat16 widened to float32), read once per storage key."""
        if ref.key not in self.storages:
            name = f"{prefix}/data/{ref.key}"
            if name not in self.names:
                raise TorchPickleError(f"{self.path}: tensor {describe(key_for_errors)}: its storage "
                                       f"{_member(name)} is not in the archive")
            raw = self.read(name)
            itemsize = 2 if ref.kind.dtype == _BF16 else np.dtype(ref.kind.dtype).itemsize
            if len(raw) != ref.numel * itemsize:
                raise TorchPickleError(f"{self.path}: storage {_member(name)} holds {len(raw)} bytes, but its "
                                       f"persistent id says {ref.numel} elements of {ref.kind.name} ({itemsize} "
                                       f"bytes each)")
            if ref.kind.dtype == _BF16:
                elements = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                elements = np.frombuffer(raw, ref.kind.dtype)
            self.storages[ref.key] = (ref.kind, elements)
        kind, elements = self.storages[ref.key]
        if kind != ref.kind:
            raise TorchPickleError(f"{self.path}: tensor {describe(key_for_errors)}: storage {ref.key} is read as "
                                   f"{ref.kind.name} here and as {kind.name} elsewhere")
        return elements


def _is_int(value):
    return type(value) is int          # not bool, not float


def _tensor(path, key, spec, elements, bytes_left):
    """Check ``spec`` against the storage ``elements`` and copy the tensor out, if it needs at most ``bytes_left``
    bytes. Returns a C-ordered array."""
    where = f"{path}: tensor {describe(key)}"
    offset, size, stride = spec.offset, spec.size, spec.stride
    if not _is_int(offset) or offset < 0:
        raise TorchPickleError(f"{where}: storage offset must be a non-negative integer, got {describe(offset)}")
    for field, dims in (("size", size), ("stride", stride)):
        if type(dims) not in (tuple, list) or len(dims) > _MAX_DIMS or not all(_is_int(d) and d >= 0 for d in dims):
            raise TorchPickleError(f"{where}: {field} must be at most {_MAX_DIMS} non-negative integers, got "
                                   f"{describe(dims)}")
    if len(size) != len(stride):
        raise TorchPickleError(f"{where}: size {describe(tuple(size))} and stride {describe(tuple(stride))} differ in "
                               f"length")
    size, stride = tuple(size), tuple(stride)
    count = math.prod(size)
    if count == 0:
        # NumPy refuses an empty shape whose other dimensions multiply past its address space.
        if math.prod(max(d, 1) for d in size) * elements.itemsize >= 2 ** 62:
            raise TorchPickleError(f"{where}: size {describe(size)} is too large even for an empty tensor")
        return np.zeros(size, elements.dtype)
    last = offset + sum((d - 1) * s for d, s in zip(size, stride))      # the farthest element the view reaches
    if last >= elements.size:
        raise TorchPickleError(f"{where}: size {describe(size)} with stride {describe(stride)} at offset "
                               f"{describe(offset)} reaches element {describe(last)}, past the end of its storage "
                               f"of {elements.size} elements")
    if count * elements.itemsize > bytes_left:
        raise TorchPickleError(f"{where}: size {describe(size)} would bring the tensors past "
                               f"{_TENSOR_BYTES_PER_FILE_BYTE}x the file's size; refusing to expand a small file into "
                               f"a large one")
    stride = tuple(s if d > 1 else 0 for d, s in zip(size, stride))    # unused strides may be any size; drop them
    view = np.lib.stride_tricks.as_strided(elements[offset:], shape=size,
                                           strides=tuple(s * elements.itemsize for s in stride), writeable=False)
    return np.array(view, order="C")              # a C-ordered copy, independent of the storage


def load_torch_state_dict(path) -> dict:
    """Read a zip-format ``torch.save(state_dict)`` file into ``{key: numpy array}`` (native byte order).

    A ``{"state_dict": {...}, ...}`` checkpoint gives its ``state_dict``.

    Raises:
        TorchPickleError: not a zip-format torch file, a big-endian file, a pickle naming anything besides tensors
            in (ordered) dicts, or a tensor that does not fit its storage. The message names the file.
    """
    path = os.fspath(path)
    try:
        with open_regular(path, "torch.save file", TorchPickleError) as (f, size):
            return _load(f, size, path)
    except TorchPickleError:
        raise
    except _ZIP_ERRORS as e:
        raise TorchPickleError(f"{path}: cannot read the zip archive ({type(e).__name__}: {e})") from None


def _load(f, size, path):
    """``load_torch_state_dict`` on the opened file ``f`` of ``size`` bytes (``path`` names it in messages)."""
    try:
        archive = _Archive(f, size, path)
    except zipfile.BadZipFile:
        raise TorchPickleError(f"{path}: not a zip-format torch.save file (legacy pre-1.6 files are not "
                               f"supported; re-save with a recent PyTorch, or use .safetensors)") from None
    with archive.zip:
        pickles = sorted(n for n in archive.names if n.endswith("/data.pkl") and n.count("/") == 1)
        if len(pickles) != 1:
            raise TorchPickleError(f"{path}: expected one <name>/data.pkl in the archive, found "
                                   f"{describe(pickles)}")
        prefix = pickles[0].split("/")[0]
        if f"{prefix}/byteorder" in archive.names and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise TorchPickleError(f"{path}: a big-endian file; only little-endian files are supported")
        unpickler = RestrictedUnpickler(archive.read(pickles[0]), names=_names_for_one_load(),
                                        build={collections.OrderedDict: _ignore_ordered_dict_state},
                                        persistent_load=_storage_ref)
        try:
            obj = unpickler.load()
        except pickle.UnpicklingError as e:
            raise TorchPickleError(f"{path}: {pickles[0]}: {e}") from None
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):     # {"state_dict": ..., "epoch": ...}
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise TorchPickleError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
        state, bytes_left = {}, _TENSOR_BYTES_PER_FILE_BYTE * size
        for key, spec in obj.items():
            if type(key) is not str or not isinstance(spec, _TensorSpec):
                raise TorchPickleError(f"{path}: expected a dict of tensors, but key {describe(key)} holds a "
                                       f"{type(spec).__name__}")
            elements = archive.storage(prefix, spec.storage, key)
            state[key] = _tensor(path, key, spec, elements, bytes_left)
            bytes_left -= state[key].nbytes
        return state
