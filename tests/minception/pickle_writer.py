"""Write pickles opcode by opcode, for tests of the readers of untrusted pickles (``.pth`` files, CIFAR batches).

``pickle.dumps`` cannot write what these tests need: a reference to ``torch.FloatStorage`` without torch installed,
a persistent id, a BUILD aimed at an allowed global, a tuple nested a million deep. ``dumps`` here writes any tree of
plain values and the nodes below, one opcode per step, with no memo (so every reference is a fresh object):

    Global("torch", "FloatStorage")        the name a pickle imports (opcode GLOBAL)
    Call(func, args)                       func(*args) (REDUCE)
    Build(obj, state)                      obj.__setstate__(state) or obj.__dict__.update(state) (BUILD)
    PersistentId(value)                    the reader's persistent_load(value) (BINPERSID)
    Raw(b"...")                            opcodes written as given

``torch_zip`` packs a pickle and storages into the zip layout of ``torch.save``. Nothing here imports torch.
"""
from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Global:
    module: str
    name: str


@dataclass(frozen=True)
class Call:
    func: object
    args: tuple = ()


@dataclass(frozen=True)
class Build:
    obj: object
    state: object


@dataclass(frozen=True)
class PersistentId:
    value: object


@dataclass(frozen=True)
class Raw:
    opcodes: bytes


def dumps(obj, protocol=2) -> bytes:
    """The pickle of ``obj`` (plain values and the nodes above): PROTO, its opcodes, STOP."""
    return bytes([0x80, protocol]) + opcodes(obj) + b"."


def opcodes(obj) -> bytes:
    """The opcodes that push ``obj`` (no PROTO, no STOP): to splice into a ``Raw``."""
    out = io.BytesIO()
    _write(obj, out)
    return out.getvalue()


def _write(obj, out):
    if obj is None:
        out.write(b"N")
    elif obj is True or obj is False:
        out.write(b"\x88" if obj else b"\x89")
    elif isinstance(obj, int):
        if 0 <= obj < 256:
            out.write(b"K" + bytes([obj]))                                # BININT1
        elif -2 ** 31 <= obj < 2 ** 31:
            out.write(b"J" + struct.pack("<i", obj))                      # BININT
        else:
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            out.write(b"\x8a" + bytes([len(raw)]) + raw)                  # LONG1
    elif isinstance(obj, float):
        out.write(b"G" + struct.pack(">d", obj))                          # BINFLOAT
    elif isinstance(obj, str):
        raw = obj.encode("utf-8", "surrogatepass")
        out.write(b"X" + struct.pack("<I", len(raw)) + raw)               # BINUNICODE
    elif isinstance(obj, bytes):
        out.write(b"B" + struct.pack("<I", len(obj)) + obj)               # BINBYTES
    elif isinstance(obj, tuple):
        out.write(b"(")                                                   # MARK
        for item in obj:
            _write(item, out)
        out.write(b"t")                                                   # TUPLE
    elif isinstance(obj, list):
        out.write(b"](")                                                  # EMPTY_LIST, MARK
        for item in obj:
            _write(item, out)
        out.write(b"e")                                                   # APPENDS
    elif isinstance(obj, dict):
        out.write(b"}(")                                                  # EMPTY_DICT, MARK
        for key, value in obj.items():
            _write(key, out)
            _write(value, out)
        out.write(b"u")                                                   # SETITEMS
    elif isinstance(obj, Global):
        out.write(b"c" + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")
    elif isinstance(obj, Call):
        _write(obj.func, out)
        _write(tuple(obj.args), out)
        out.write(b"R")                                                   # REDUCE
    elif isinstance(obj, Build):
        _write(obj.obj, out)
        _write(obj.state, out)
        out.write(b"b")                                                   # BUILD
    elif isinstance(obj, PersistentId):
        _write(obj.value, out)
        out.write(b"Q")                                                   # BINPERSID
    elif isinstance(obj, Raw):
        out.write(obj.opcodes)
    else:
        raise TypeError(f"pickle_writer cannot write {type(obj).__name__}")


# ------------------------------------------------------------------------------------------ torch.save ---
def storage(kind, key, numel):
    """The persistent id torch writes for a storage: ("storage", torch.<kind>, key, "cpu", numel)."""
    return PersistentId(("storage", Global("torch", kind), key, "cpu", numel))


def tensor(storage_id, offset, size, stride):
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` as torch writes it."""
    return Call(Global("torch._utils", "_rebuild_tensor_v2"),
                (storage_id, offset, tuple(size), tuple(stride), False, Call(Global("collections", "OrderedDict"))))


def state_dict(entries):
    """An ``OrderedDict`` of ``entries`` (key -> tensor node), built as torch pickles one: OrderedDict() + SETITEMS."""
    pairs = b"".join(opcodes(k) + opcodes(v) for k, v in entries.items())
    return Raw(opcodes(Call(Global("collections", "OrderedDict"))) + b"(" + pairs + b"u")     # MARK ... SETITEMS


def torch_zip(pickle_bytes, storages, name="archive", byteorder=b"little") -> bytes:
    """The bytes of a ``torch.save`` zip: ``name/data.pkl``, ``name/data/<key>`` per storage, ``name/byteorder``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", pickle_bytes)
        if byteorder is not None:
            z.writestr(f"{name}/byteorder", byteorder)
        for key, raw in storages.items():
            z.writestr(f"{name}/data/{key}", raw)
        z.writestr(f"{name}/version", b"3\n")
    return buf.getvalue()
