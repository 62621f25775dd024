"""``.npz`` archives (NumPy's zip of ``.npy`` arrays), written atomically and read without trusting the file.

A weights file or a checkpoint may come from anywhere, so reading one must not be able to do more than fail
with ``NpzError``: never run code (no pickles: object arrays are refused), never read outside the file, and
never allocate more memory than the file can honestly need. ``numpy.load`` trusts the sizes written in the file
(an array header may claim 2**40 elements), so ``read_npz`` reads each member itself:

0. the path is opened once, and only if it is a regular file (``open_regular``: a FIFO, a device such as
   ``/dev/zero``, a directory or a socket is refused before a byte is read, and nothing waits on a FIFO);
1. the zip directory: member names must end in ``.npy`` and be unique; only the two compression methods NumPy
   writes (stored, deflate) are accepted; no member may claim more bytes than the archive holds (times
   deflate's largest ratio for a compressed one), and all members together may expand to at most
   ``MAX_EXPANSION`` times the file's size plus ``EXPANSION_SLACK`` bytes (see there for why those numbers);
2. each ``.npy`` header (parsed by NumPy's header reader, which evaluates no code): a plain numeric dtype (bool,
   int, uint, float; unicode text where the caller allows it), a shape of non-negative ints, and exactly as many
   data bytes as shape x itemsize;
3. only then the data, decompressed a chunk at a time straight into the array (never more than the member's
   header claims, so a deflate bomb whose header says 100 bytes yields 100 bytes and a CRC error), which the
   zip layer checks against the member's CRC-32.

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
from .bounded import CHUNK
from .regular import open_regular
from .shorten import shorten

#: dtype kinds of arrays: bool, signed and unsigned ints, floats
NUMERIC_KINDS = "biuf"
#: the most that deflate can expand data (about 1032:1); a compressed member claiming more is lying
_DEFLATE_MAX_RATIO = 1100
#: All members of one archive may expand to at most MAX_EXPANSION x the file's size + EXPANSION_SLACK bytes.
#: Measured: ``np.savez`` (what ``Module.save`` and checkpoints write) stores, ratio 1.0; ``np.savez_compressed``
#: of inception_resnet_v2's 224 MB of float32 weights gives 1.08x, and with an all-zero momentum buffer of the
#: same size 2.15x. Zeros alone reach ~1000x, which the slack covers for small files (a zero-initialized test
#: model); a 1 MB file claiming 1 GB is refused before anything is decompressed.
MAX_EXPANSION = 16
EXPANSION_SLACK = 64 << 20
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class NpzError(ValueError):
    """An ``.npz`` file is missing, truncated, corrupt or not a plain array archive (the message names the file)."""


def write_npz(path, arrays):
    """Write ``{name: array}`` to ``path`` as an uncompressed ``.npz``, atomically (see ``atomic_write``).

    Arrays are stored as given (NumPy arrays; convert CuPy arrays first). Returns ``path``.
    """
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path, kinds=NUMERIC_KINDS, what=".npz file", stored=()):
    """Read every array of the ``.npz`` at ``path``. Returns ``{name: numpy array}`` (writable copies).

    Args:
        path: the file.
        kinds: the dtype kinds accepted (``"biuf"``: bool, int, uint, float; add ``"U"`` for text).
        what: what the file is to the caller ("checkpoint", "state file"), for the message when it cannot be
            opened or is not a regular file.
        stored: names of arrays whose members must be stored, not compressed, so that they take no more memory
            than their bytes in the file (a checkpoint's JSON tree, which the caller then parses).
    Raises:
        NpzError (a ValueError): the file is missing, is not a regular file, is not a zip, is truncated or
            corrupt, expands to more than ``MAX_EXPANSION`` x its size + ``EXPANSION_SLACK``, or holds something
            other than plain arrays of the accepted kinds.
    """
    path = os.fspath(path)
    with open_regular(path, what, NpzError) as (f, file_size):
        return _read_open(f, file_size, kinds, path, set(stored))


def _read_open(f, file_size, kinds, path, stored):
    """``read_npz`` on the opened file ``f`` of ``file_size`` bytes (``path`` names it in messages)."""
    try:
        with zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise NpzError(f"{path}: the archive lists a member twice")
            budget = MAX_EXPANSION * file_size + EXPANSION_SLACK
            claimed = sum(info.file_size for info in infos)
            if claimed > budget:
                raise NpzError(f"{path}: its members claim {claimed:,} bytes in all from a file of {file_size:,}; "
                               f"at most {MAX_EXPANSION} x the file's size + {EXPANSION_SLACK >> 20} MB is read "
                               f"(a decompression bomb?)")
            return {info.filename[:-len(".npy")]: _read_member(archive, info, file_size, kinds, path, stored)
                    for info in infos}
    except NpzError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            TypeError, OverflowError, struct.error, UnicodeDecodeError, NotImplementedError, RuntimeError,
            MemoryError, SyntaxError, tokenize.TokenError) as e:
        # (NumPy's .npy header parser tokenizes the header text: a damaged one can raise TokenError/SyntaxError)
        raise NpzError(f"{path}: cannot read it as an .npz archive (truncated or corrupt?): "
                       f"{type(e).__name__}: {e}") from None


def _read_member(archive, info, file_size, kinds, path, stored):
    """One ``.npy`` member, checked as the module docstring says."""
    where = f"{path}: member {shorten(info.filename)}"
    if not info.filename.endswith(".npy"):
        raise NpzError(f"{where} is not an .npy array")
    if info.flag_bits & 0x1:
        raise NpzError(f"{where} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise NpzError(f"{where} uses compression method {info.compress_type}; .npz files use stored or deflate")
    if info.compress_type != zipfile.ZIP_STORED and info.filename[:-len(".npy")] in stored:
        raise NpzError(f"{where} is compressed; it must be stored as written (np.savez)")
    if info.compress_size > file_size:
        raise NpzError(f"{where} claims {info.compress_size} bytes, more than the whole file ({file_size})")
    most = info.compress_size if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO * info.compress_size
    if info.file_size > most:
        raise NpzError(f"{where} claims {info.file_size} bytes from {info.compress_size} stored ones")
    with archive.open(info) as member:
        f = _Chunked(member)
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise NpzError(f"{where}: unsupported .npy format version {version}")
        shape, fortran_order, dtype = _HEADER_READERS[version](f)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in kinds:
            raise NpzError(f"{where} has dtype {dtype}; expected one of the kinds {kinds!r} (object arrays, "
                           "which need pickle, are never read)")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise NpzError(f"{where} has an invalid shape {shorten(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise NpzError(f"{where}: the header says {shorten(nbytes)} bytes of data (shape {shorten(shape)}, "
                           f"{dtype}), the member holds {info.file_size - f.tell()}")
        data = np.empty(nbytes, np.uint8)           # nbytes <= the member's claimed size, which the budget bounds
        if f.readinto(data) != nbytes:
            raise NpzError(f"{where} is truncated")
    array = data.view(dtype).reshape(shape, order="F" if fortran_order else "C")
    return array.copy() if fortran_order else array


class _Chunked:
    """A zip member read at most ``CHUNK`` bytes per call to the decompressor.

    ``ZipExtFile.read(n)`` hands ``n`` to zlib as the output limit and only then cuts the result to the size the
    header claims: one ``read(2**31)`` (NumPy's header reader asks for what the header length field says) of a
    member whose header lies lets a small deflate stream expand to gigabytes. In chunks, at most ``CHUNK`` bytes
    past the claimed size are ever produced.
    """

    def __init__(self, member):
        self.member, self.position = member, 0

    def read(self, n=-1):
        parts, left = [], n if n >= 0 else float("inf")
        while left > 0:
            part = self.member.read(int(min(CHUNK, left)))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
        self.position += len(data)
        return data

    def readinto(self, buffer):
        """Fill ``buffer`` (a uint8 array) chunk by chunk; returns the number of bytes read."""
        filled = 0
        while filled < len(buffer):
            part = self.member.read(min(CHUNK, len(buffer) - filled))
            if not part:
                break
            buffer[filled:filled + len(part)] = np.frombuffer(part, np.uint8)
            filled += len(part)
        self.position += filled
        return filled

    def tell(self):
        return self.position
