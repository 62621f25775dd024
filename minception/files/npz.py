"""``.npz`` archives (NumPy's zip of ``.npy`` arrays), written atomically and read without trusting the file.

A weights file or a checkpoint may come from anywhere, so reading one must not be able to do more than fail
with ``NpzError``: never run code (no pickles: object arrays are refused), never read outside the file, and
never allocate more memory than the file can fill. ``numpy.load`` trusts the sizes written in the file (an
array header may claim 2**40 elements), so ``read_npz`` reads each member itself:

1. the zip directory: member names must end in ``.npy`` and be unique; only the two compression methods NumPy
   writes (stored, deflate) are accepted, and no member may claim more bytes than the archive holds (times
   deflate's largest ratio for a compressed one);
2. each ``.npy`` header (parsed by NumPy's header reader, which evaluates no code): a plain numeric dtype (bool,
   int, uint, float; unicode text where the caller allows it), a shape of non-negative ints, and exactly as many
   data bytes as shape x itemsize;
3. only then the data, which the zip layer checks against the member's CRC-32.

Anything else that goes wrong while reading (a bad zip, a truncated file, a broken deflate stream) is turned
into ``NpzError`` naming the file.
"""
import math
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from .atomic import atomic_write

#: dtype kinds of arrays: bool, signed and unsigned ints, floats
NUMERIC_KINDS = "biuf"
#: the most that deflate can expand data (about 1032:1); a compressed member claiming more is lying
_DEFLATE_MAX_RATIO = 1100
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class NpzError(ValueError):
    """An ``.npz`` file is missing, truncated, corrupt or not a plain array archive (the message names the file)."""


def write_npz(path, arrays):
    """Write ``{name: array}`` to ``path`` as an uncompressed ``.npz``, atomically (see ``atomic_write``).

    Arrays are stored as given (NumPy arrays; convert CuPy arrays first). Returns ``path``.
    """
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path, kinds=NUMERIC_KINDS):
    """Read every array of the ``.npz`` at ``path``. Returns ``{name: numpy array}`` (writable copies).

    Args:
        path: the file.
        kinds: the dtype kinds accepted (``"biuf"``: bool, int, uint, float; add ``"U"`` for text).
    Raises:
        NpzError (a ValueError): the file is missing, is not a zip, is truncated or corrupt, or holds something
            other than plain arrays of the accepted kinds.
    """
    path = os.fspath(path)
    try:
        file_size = os.path.getsize(path)
    except OSError as e:
        raise NpzError(f"{path}: cannot open ({e.strerror or e})") from None
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise NpzError(f"{path}: the archive lists a member twice")
            return {info.filename[:-len(".npy")]: _read_member(archive, info, file_size, kinds, path)
                    for info in infos}
    except NpzError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            TypeError, OverflowError, struct.error, UnicodeDecodeError, NotImplementedError, RuntimeError,
            MemoryError, SyntaxError, tokenize.TokenError) as e:
        # (NumPy's .npy header parser tokenizes the header text: a damaged one can raise TokenError/SyntaxError)
        raise NpzError(f"{path}: cannot read it as an .npz archive (truncated or corrupt?): "
                       f"{type(e).__name__}: {e}") from None


def _read_member(archive, info, file_size, kinds, path):
    """One ``.npy`` member, checked as the module docstring says."""
    where = f"{path}: member {info.filename!r}"
    if not info.filename.endswith(".npy"):
        raise NpzError(f"{where} is not an .npy array")
    if info.flag_bits & 0x1:
        raise NpzError(f"{where} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise NpzError(f"{where} uses compression method {info.compress_type}; .npz files use stored or deflate")
    if info.compress_size > file_size:
        raise NpzError(f"{where} claims {info.compress_size} bytes, more than the whole file ({file_size})")
    most = info.compress_size if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO * info.compress_size
    if info.file_size > most:
        raise NpzError(f"{where} claims {info.file_size} bytes from {info.compress_size} stored ones")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise NpzError(f"{where}: unsupported .npy format version {version}")
        shape, fortran_order, dtype = _HEADER_READERS[version](f)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in kinds:
            raise NpzError(f"{where} has dtype {dtype}; expected one of the kinds {kinds!r} (object arrays, "
                           "which need pickle, are never read)")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise NpzError(f"{where} has an invalid shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise NpzError(f"{where}: the header says {nbytes} bytes of data (shape {shape}, {dtype}), the "
                           f"member holds {info.file_size - f.tell()}")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise NpzError(f"{where} is truncated")
    flat = np.frombuffer(data, dtype=dtype)
    return flat.reshape(shape, order="F" if fortran_order else "C").copy()
