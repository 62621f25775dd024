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

That is the whole format: no pickles, so loading a file cannot run code. This reader opens the path once, only if
it is a regular file (``open_regular``); checks the header length against the file's size and ``_MAX_HEADER``
before reading it; parses the JSON with limits on its shape (``_HeaderDecoder``); and reads each tensor into an
array of exactly its checked size, so memory stays within the file's size (twice that for BF16, widened).
Hugging Face's hub (and so timm) distributes weights this way. This module needs neither PyTorch nor the
``safetensors`` package.

    from minception.pretrained.safetensors import load_file, save_file, read_header
    tensors = load_file("model.safetensors")          # {name: numpy array}
    save_file({"w": np.zeros((2, 3), np.float32)}, "tiny.safetensors", metadata={"format": "pt"})
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner
import math
import os
import struct

import numpy as np

from minception.files.regular import open_regular
from minception.restricted_pickle import describe

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

# Refuse absurd headers before reading them. Measured: timm's inception_v4 header is 76 KB (747 tensors),
# inception_resnet_v2's 110 KB (1,102 tensors); 8 MB leaves room for ~80,000 tensors. (The reference
# implementation allows 100 MB, which a header of `{}` values turned into 2.5 GB of Python objects.)
_MAX_HEADER = 8 << 20
_FIELDS = ("dtype", "shape", "data_offsets")
_MAX_DIMS = 64                      # NumPy's limit on the number of dimensions


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file (or uses a dtype this reader does not support)."""


def read_header(path):
    """Parse and check only the header of a safetensors file.

    Returns ``(tensors, metadata, data_start)``: ``tensors`` maps each name to ``{"dtype", "shape",
    "data_offsets"}``; ``metadata`` is the ``__metadata__`` dict (``{}`` if absent); ``data_start`` is the byte
    position where the tensor data begins. Every entry has been checked (see ``_validate``), so the offsets can be
    used as they are.

    Raises:
        SafetensorsError: the message names the file, the entry and the field at fault.
    """
    path = os.fspath(path)
    with open_regular(path, "safetensors file", SafetensorsError) as (f, size):
        return _read_header(f, size, path)


def _read_header(f, size, path):
    """``read_header`` on the opened file ``f`` of ``size`` bytes: the length field is checked against the file's
    size and ``_MAX_HEADER`` before the header is read, and the JSON is parsed with limits (``_HeaderDecoder``)."""
    head = f.read(8)
    if len(head) < 8:
        raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors file (needs an 8-byte header "
                               f"length)")
    (n,) = struct.unpack("<Q", head)
    if 8 + n > size:
        raise SafetensorsError(f"{path}: header length {n:,} does not fit in a file of {size:,} bytes; not a "
                               f"safetensors file?")
    if n > _MAX_HEADER:
        raise SafetensorsError(f"{path}: header length {n:,} is more than the {_MAX_HEADER:,} bytes this reader "
                               f"accepts (timm's largest header is about 110 KB)")
    raw = f.read(n)
    if len(raw) != n:
        raise SafetensorsError(f"{path}: the header ends past the end of the file (it changed while being read?)")
    try:
        header = _HeaderDecoder(path).decode(raw.decode("utf-8"))
    except SafetensorsError:
        raise
    except (UnicodeDecodeError, ValueError) as e:          # ValueError: bad JSON, or an integer of 5000 digits
        raise SafetensorsError(f"{path}: the header is not valid UTF-8 JSON ({e})") from None
    except RecursionError:
        raise SafetensorsError(f"{path}: the header is not valid safetensors JSON (nested too deeply)") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{path}: field '__metadata__' must map strings to strings")
    data_start = 8 + n
    _validate(path, header, size - data_start)
    return header, metadata, data_start


class _HeaderDecoder(json.JSONDecoder):
    """A JSON parser that stops as soon as the text cannot be a safetensors header, before building it.

    ``json.loads`` builds every object first; 99 MB of ``{"a":{},"b":{},...}`` became 2.5 GB of dicts before any
    field was looked at. This decoder uses the json module's own Python scanner with three limits checked while
    parsing: objects nest at most three deep (the header, an entry or ``__metadata__``, and one stray object
    where a field's value belongs), arrays hold neither arrays nor objects (a shape is a flat list), and among
    the inner objects at most two (``__metadata__`` and one stray, so that ``_validate`` can name its entry and
    field) lack the fields of a tensor entry. (Python itself refuses integers of more than 4,300 digits.) What a
    header may then hold is about ten times its size in Python objects. Each entry's values are checked
    afterwards by ``_validate``.
    """

    def __init__(self, path):
        super().__init__(object_pairs_hook=self._finish_object)
        self.path, self.depth, self.in_array, self.other_objects = path, 0, False, 0
        self.parse_object, self.parse_array = self._parse_object, self._parse_array
        self.scan_once = json.scanner.py_make_scanner(self)       # the Python scanner calls the two above

    def _refuse(self, why):
        raise SafetensorsError(f"{self.path}: the header is not valid safetensors JSON ({why})")

    def _parse_object(self, s_and_end, *args):
        if self.depth >= 3 or self.in_array:
            self._refuse("nested too deeply: objects appear only as the header's entries and '__metadata__'")
        self.depth += 1
        try:
            return json.decoder.JSONObject(s_and_end, *args)
        finally:
            self.depth -= 1

    def _parse_array(self, s_and_end, scan_once):
        if self.in_array:
            self._refuse("nested too deeply: a shape or data_offsets is a flat list of integers")
        self.in_array = True
        try:
            return json.decoder.JSONArray(s_and_end, scan_once)
        finally:
            self.in_array = False

    def _finish_object(self, pairs):
        if self.depth >= 2 and not all(field in (key for key, _ in pairs) for field in _FIELDS):
            self.other_objects += 1
            if self.other_objects > 2:
                self._refuse("three inner objects lack the fields dtype, shape and data_offsets of a tensor "
                             "entry; only '__metadata__' may")
        return dict(pairs)


def _itemsize(dtype_name):
    if dtype_name == "BF16":
        return _BF16_BYTES
    return DTYPES[dtype_name].itemsize


def _is_int(value):
    return type(value) is int                   # JSON true/false are bools, which Python also counts as ints


def _validate(path, header, data_len):
    """Every entry well formed, sizes consistent (in Python ints: no overflow), and every data byte owned by
    exactly one tensor: no overlaps, no gaps, nothing past the end of the file (as the reference implementation
    requires)."""
    spans = []
    for name, info in header.items():
        where = f"{path}: entry {describe(name)}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise SafetensorsError(f"{where} needs the fields dtype, shape and data_offsets, got {describe(info)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or (dtype not in DTYPES and dtype != "BF16"):
            raise SafetensorsError(f"{where}: field 'dtype' is {describe(dtype)}, which is not supported "
                                   f"(supported: {', '.join(sorted(DTYPES) + ['BF16'])})")
        if not isinstance(shape, list) or len(shape) > _MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape):
            raise SafetensorsError(f"{where}: field 'shape' must be a list of at most {_MAX_DIMS} non-negative "
                                   f"integers, got {describe(shape)}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
            raise SafetensorsError(f"{where}: field 'data_offsets' must be two integers [begin, end], got "
                                   f"{describe(offsets)}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise SafetensorsError(f"{where}: field 'data_offsets' [{begin}, {end}) must lie within the "
                                   f"{data_len} data bytes (truncated file?); they run past them")
        if math.prod(max(d, 1) for d in shape) * _itemsize(dtype) >= 2 ** 62:   # NumPy refuses such shapes, even empty
            raise SafetensorsError(f"{where}: field 'shape' {describe(shape)} is too large for an array")
        expected = math.prod(shape) * _itemsize(dtype)
        if end - begin != expected:
            raise SafetensorsError(f"{where} ({dtype} {tuple(shape)}) needs {expected} bytes, its field "
                                   f"'data_offsets' [{begin}, {end}) holds {end - begin}")
        spans.append((begin, end, name))
    spans.sort()
    covered = 0
    for begin, end, name in spans:
        if begin < covered:
            raise SafetensorsError(f"{path}: entry {describe(name)} overlaps the entry before it in the file")
        if begin > covered:
            raise SafetensorsError(f"{path}: data bytes [{covered}, {begin}) belong to no tensor (entry "
                                   f"{describe(name)} starts after a gap)")
        covered = end
    if covered != data_len:
        raise SafetensorsError(f"{path}: the last {data_len - covered} data bytes belong to no tensor")


def load_file(path, names=None):
    """Load tensors from a safetensors file as NumPy arrays.

    Args:
        path: the file.
        names: optional iterable of tensor names to load (default: all).
    Returns:
        dict name -> array, in file order. BF16 tensors come back as float32; every other dtype as stored.
        Arrays are writable copies, independent of the file.
    Raises:
        SafetensorsError: a malformed file (the message names the file and the field), or a name not in it.
    """
    path = os.fspath(path)
    # One open, of a regular file only; plain reads, no memory map: a file truncated meanwhile gives a short read.
    with open_regular(path, "safetensors file", SafetensorsError) as (f, size):
        header, _, data_start = _read_header(f, size, path)
        if names is not None:
            missing = [n for n in names if n not in header]
            if missing:
                raise SafetensorsError(f"{path}: no tensor named {', '.join(map(describe, missing[:5]))} in "
                                       f"the file")
        out = {}
        for name, info in header.items():
            if names is not None and name not in names:
                continue
            begin, end = info["data_offsets"]
            stored = np.dtype("<u2") if info["dtype"] == "BF16" else DTYPES[info["dtype"]]
            arr = np.empty(tuple(info["shape"]), stored)
            f.seek(data_start + begin)
            if f.readinto(arr.reshape(-1).view(np.uint8)) != end - begin:      # fills every byte, or fails
                raise SafetensorsError(f"{path}: entry {describe(name)} ends past the end of the file (it "
                                       f"changed while being read?)")
            if info["dtype"] == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            out[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
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
