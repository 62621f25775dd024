"""Read a state dict saved by ``torch.save`` (``.pth`` / ``.pt`` / ``.bin``) with NumPy only, executing nothing.

Since PyTorch 1.6 ``torch.save`` writes a zip archive::

    archive/data.pkl        a pickle of the object (here: an OrderedDict of tensors)
    archive/data/0, 1, ...  the raw bytes of each storage (little-endian, see archive/byteorder)
    archive/version, ...

Inside ``data.pkl`` each tensor is a call ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
whose ``storage`` is a *persistent id* ``("storage", torch.FloatStorage, "0", "cpu", numel)`` pointing at
``archive/data/0``. An ordinary ``pickle.load`` would import torch and could run arbitrary code named in the file.
This reader's unpickler knows a short allow-list of names (the OrderedDict, the two rebuild functions, the storage
types) and maps each to a NumPy equivalent; any other name in the file is an error. Tensors become NumPy arrays
(``as_strided`` over the storage, then copied), bfloat16 widened to float32.

    from minception.pretrained.torch_pickle import load_torch_state_dict
    state = load_torch_state_dict("inception_v4.pth")        # {key: numpy array}

The legacy (pre-1.6, non-zip) format is not supported: re-save such a file with a recent PyTorch.
"""
from __future__ import annotations

import collections
import pickle
import zipfile

import numpy as np

__all__ = ["load_torch_state_dict", "TorchPickleError"]


class TorchPickleError(ValueError):
    """The file is not a zip-format ``torch.save`` state dict, or names something outside the allow-list."""


class _StorageType:
    """Stands for ``torch.FloatStorage`` & co.: remembers the element dtype."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


_BF16 = "bfloat16"
_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": _BF16,
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}.items()}


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset])          # 0-d array
    if any(d == 0 for d in size):
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((d - 1) * s for d, s in zip(size, stride))
    if last >= storage.size:
        raise TorchPickleError(f"a tensor of size {size} stride {stride} at offset {storage_offset} runs past its "
                               f"storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view, order="C")              # a C-ordered copy, independent of the storage


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise TorchPickleError(f"the file names {module}.{name}, which a plain state dict does not contain; "
                               f"refusing to load it (save model.state_dict(), not the model object)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchPickleError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, _numel = pid
        if not isinstance(storage_type, _StorageType):
            raise TorchPickleError(f"unsupported storage type {storage_type!r}")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            if storage_type.dtype == _BF16:
                bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
                self.storages[key] = bits.view(np.float32)
            else:
                self.storages[key] = np.frombuffer(raw, storage_type.dtype)
        return self.storages[key]


def load_torch_state_dict(path) -> dict:
    """Read a zip-format ``torch.save(state_dict)`` file into ``{key: numpy array}`` (native byte order).

    Raises:
        TorchPickleError: not a zip-format torch file, a big-endian file, or a pickle naming anything besides
            tensors in (ordered) dicts.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise TorchPickleError(f"{path}: not a zip-format torch.save file (legacy pre-1.6 files are not "
                               f"supported; re-save with a recent PyTorch, or use .safetensors)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise TorchPickleError(f"{path}: expected one <name>/data.pkl in the archive, found {pickles}")
        prefix = pickles[0].split("/")[0]
        if f"{prefix}/byteorder" in archive.namelist() and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise TorchPickleError(f"{path}: a big-endian file; only little-endian files are supported")
        with archive.open(pickles[0]) as f:
            obj = _Unpickler(f, archive, prefix).load()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):     # {"state_dict": ..., "epoch": ...}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchPickleError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)
