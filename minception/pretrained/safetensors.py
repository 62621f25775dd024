"""Read and write the safetensors format with NumPy only.

A ``.safetensors`` file is three parts, one after the other::

    [8 bytes]  N, the header length, an unsigned 64-bit little-endian integer
    [N bytes]  a JSON object (UTF-8), maybe padded at the end with spaces:
               {"features.0.conv.weight": {"dtype": "F32", "shape": [32, 3, 3, 3],
                                           "data_offsets": [0, 3456]},
                ...,
                "__metadata__": {"format": "pt"}}          # optional, str -> str
    [rest]     the raw bytes of every tensor, little-endian, C (row-major) order.
               ``data_offsets`` = [begin, end) are byte positions counted from the start of this part.

That is the whole format: no pickles, so loading a file cannot run code. Hugging Face's hub (and so timm)
distributes weights this way. This module needs neither PyTorch nor the ``safetensors`` package.

    from minception.pretrained.safetensors import load_file, save_file, read_header
    tensors = load_file("model.safetensors")          # {name: numpy array}
    save_file({"w": np.zeros((2, 3), np.float32)}, "tiny.safetensors", metadata={"format": "pt"})
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

__all__ = ["load_file", "save_file", "read_header", "SafetensorsError", "DTYPES"]

# safetensors dtype name -> NumPy dtype (always little-endian on disk).
DTYPES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
}
# bfloat16 has no NumPy dtype; it is the top half of a float32, so it is widened to float32 on load.
_BF16_BYTES = 2
_NAMES = {dt: name for name, dt in DTYPES.items()}

# Refuse absurd headers before allocating for them (the reference implementation uses the same 100 MB bound).
_MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file (or uses a dtype this reader does not support)."""


def read_header(path):
    """Parse only the header of a safetensors file.

    Returns ``(tensors, metadata, data_start)``: ``tensors`` maps each name to ``{"dtype", "shape",
    "data_offsets"}``; ``metadata`` is the ``__metadata__`` dict (``{}`` if absent); ``data_start`` is the byte
    position where the tensor data begins.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors file (needs an 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise SafetensorsError(f"{path}: header length {n} does not fit in a file of {size} bytes; not a safetensors file?")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    data_len = size - data_start
    _validate(path, header, data_len)
    return header, metadata, data_start


def _itemsize(dtype_name):
    if dtype_name == "BF16":
        return _BF16_BYTES
    if dtype_name not in DTYPES:
        raise SafetensorsError(f"dtype {dtype_name!r} is not supported (supported: {sorted(DTYPES) + ['BF16']})")
    return DTYPES[dtype_name].itemsize


def _validate(path, header, data_len):
    """Every entry well formed, sizes consistent, no overlaps, nothing past the end of the file."""
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise SafetensorsError(f"{path}: entry {name!r} needs dtype, shape and data_offsets, got {info!r}")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"{path}: entry {name!r} has an invalid shape {shape!r}")
        begin, end = info["data_offsets"]
        expected = int(np.prod(shape, dtype=np.int64)) * _itemsize(info["dtype"])
        if end - begin != expected:
            raise SafetensorsError(f"{path}: entry {name!r} ({info['dtype']} {tuple(shape)}) needs {expected} bytes, "
                                   f"its data_offsets [{begin}, {end}) hold {end - begin}")
        if begin < 0 or end > data_len:
            raise SafetensorsError(f"{path}: entry {name!r} data_offsets [{begin}, {end}) run past the "
                                   f"{data_len} data bytes (truncated file?)")
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: entries {n0!r} and {n1!r} overlap")


def load_file(path, names=None):
    """Load tensors from a safetensors file as NumPy arrays.

    Args:
        path: the file.
        names: optional iterable of tensor names to load (default: all).
    Returns:
        dict name -> array, in file order. BF16 tensors come back as float32; every other dtype as stored.
        Arrays are writable copies, independent of the file.
    """
    header, _, data_start = read_header(path)
    wanted = header if names is None else {k: header[k] for k in names}
    if not wanted:
        return {}
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start) if os.path.getsize(path) > data_start \
        else np.zeros(0, np.uint8)
    out = {}
    for name, info in wanted.items():
        begin, _ = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data, dtype="<u2", count=count, offset=begin).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            dt = DTYPES[info["dtype"]]
            arr = np.frombuffer(data, dtype=dt, count=count, offset=begin).astype(dt.newbyteorder("="), copy=True)
        out[name] = arr.reshape(shape)   # a writable copy in native byte order, independent of the file
    del data
    return out


def save_file(tensors, path, metadata=None):
    """Write a dict of NumPy arrays as a safetensors file.

    Args:
        tensors: dict name -> array (any dtype in ``DTYPES``); written in C order, little-endian.
        path: destination file.
        metadata: optional dict str -> str, stored under ``__metadata__``.
    """
    header = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_file: metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    blobs, offset = [], 0
    for name, arr in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"save_file: invalid tensor name {name!r}")
        arr = np.asarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        if dt not in _NAMES:
            raise TypeError(f"save_file: tensor {name!r} has dtype {arr.dtype}, which safetensors cannot store "
                            f"(supported: {sorted(str(d) for d in _NAMES)})")
        raw = np.ascontiguousarray(arr, dtype=dt).tobytes()
        header[name] = {"dtype": _NAMES[dt], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)     # pad so the data starts on an 8-byte boundary, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
