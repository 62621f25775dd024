"""The IDX file format (LeCun's MNIST format, also Fashion-MNIST's): read one array, gzipped or not.

An IDX file is a header and then the array's values, row-major, big-endian::

    bytes 0-1   0x00 0x00                      magic: two zero bytes
    byte  2     type code                      0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                                               0x0E float64
    byte  3     number of dimensions d         (1 for labels, 3 for a stack of images)
    4 bytes x d the size of each dimension     big-endian unsigned 32-bit integers
    the values  prod(sizes) x itemsize bytes   nothing may follow them

So ``train-images-idx3-ubyte`` starts ``00 00 08 03 | 00 00 ea 60 | 00 00 00 1c | 00 00 00 1c``: uint8, three
dimensions, 60000 x 28 x 28. The files are usually distributed gzipped (``.gz``); the reader looks at the first
two bytes (gzip's ``1f 8b``) rather than at the name, so a renamed file still reads.

The file is untrusted: the header is checked before anything is allocated, the values are read in chunks up to
the size the header announces (a header that lies about the size cannot make the reader allocate more than the
file holds), and every failure is a ``CorruptDataset`` naming the file and what is wrong with it.
"""
import gzip
import math
import os
import struct
import zlib

import numpy as np

from .cifar10 import CorruptDataset

#: IDX type code -> NumPy dtype of the stored values (big-endian, as the format prescribes)
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
#: refuse files announcing more values than this many bytes (Fashion-MNIST's largest file has 47 MB)
MAX_BYTES = 1 << 30
_CHUNK = 1 << 20


def _read_exactly(stream, n, path, what):
    """``n`` bytes from ``stream``, read in chunks; CorruptDataset if the stream ends first."""
    parts, got = [], 0
    while got < n:
        block = stream.read(min(_CHUNK, n - got))
        if not block:
            raise CorruptDataset(f"{path}: truncated: the {what} needs {n} bytes, the file ends after {got}")
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def parse_idx_magic(magic, path="<idx>"):
    """``(dtype, ndim)`` from the 4 magic bytes of an IDX file; CorruptDataset when they are not IDX's."""
    if len(magic) != 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES or magic[3] == 0:
        codes = ", ".join(f"{c:02x}" for c in IDX_DTYPES)
        raise CorruptDataset(f"{path}: not an IDX file: bad magic {bytes(magic).hex(' ')} (expected 00 00, a type "
                             f"code in {{{codes}}} and a dimension count >= 1)")
    return IDX_DTYPES[magic[2]], magic[3]


def read_idx_stream(stream, path="<idx>", max_bytes=MAX_BYTES):
    """The array stored in the IDX byte stream ``stream`` (an open binary file, already decompressed).

    Returns a NumPy array in native byte order with the header's shape. ``path`` names the file in errors.
    """
    dtype, ndim = parse_idx_magic(_read_exactly(stream, 4, path, "4-byte magic"), path)
    shape = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, f"header ({ndim} sizes)"))
    what = f"{'x'.join(map(str, shape))} {dtype.name} array"
    nbytes = math.prod(shape) * dtype.itemsize          # Python ints: exact however large the sizes are
    if nbytes > max_bytes:
        raise CorruptDataset(f"{path}: the header announces a {what} ({nbytes} bytes), more than the "
                             f"{max_bytes}-byte limit")
    values = np.frombuffer(_read_exactly(stream, nbytes, path, what), dtype=dtype)
    if stream.read(1):
        raise CorruptDataset(f"{path}: bytes after the {what} the header announces (wrong sizes in the header, "
                             f"or not an IDX file)")
    return values.astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def read_idx(path, max_bytes=MAX_BYTES):
    """Read the IDX file ``path`` (gzipped or not) into a NumPy array.

    Args:
        path: the file; gzip compression is recognised by its first bytes, whatever the file is called.
        max_bytes: refuse a header announcing more bytes of values than this.

    Raises:
        CorruptDataset: the file is missing, is not IDX, has a bad magic, is truncated, has trailing bytes,
            or (gzipped) is not a valid gzip stream. Never any other error for any file contents.

    Shape:
        whatever the header says, e.g. (60000, 28, 28) uint8 images or (60000,) uint8 labels.
    """
    compressed = False
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                return read_idx_stream(raw, path, max_bytes)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return read_idx_stream(stream, path, max_bytes)
    except FileNotFoundError:
        raise CorruptDataset(f"{path}: missing") from None
    except (OSError, EOFError, zlib.error) as e:     # gzip.BadGzipFile is an OSError; EOFError: gzip cut off
        what = "the gzip stream" if compressed else "the file"
        raise CorruptDataset(f"{path}: cannot read {what} (truncated or corrupt?): {type(e).__name__}: {e}") from e


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file (gzipped when ``compress`` is True, or None and ``path`` ends in ``.gz``).

    The inverse of ``read_idx``; used to make small test files and to export data in MNIST's format.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: cannot store a {array.dtype} array of {array.ndim} dimensions in IDX "
                         f"(types: {', '.join(str(d) for d in codes)}; 1..255 dimensions)")
    dtype = IDX_DTYPES[codes[native]]
    data = (bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + np.ascontiguousarray(array, dtype=dtype).tobytes())
    if compress is None:
        compress = str(path).endswith(".gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)
    return os.fspath(path)
