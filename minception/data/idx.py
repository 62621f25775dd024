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

The file is untrusted, and the format makes it cheap to distrust: the header fixes the size of everything that
follows, so ``read_idx`` checks that size before it allocates a byte for the values:

- the path must be a regular file (``files.open_regular``: a FIFO, a device such as ``/dev/zero`` or a directory
  is refused by what it is, never read or waited on);
- at most ``MAX_NDIM`` dimensions (real files have 1 or 3; NumPy itself stops at 32 or 64, with a traceback) and
  at most ``max_bytes`` of values;
- a raw file must hold exactly the header and the values it announces: a header claiming more than the file
  holds is refused before reading;
- a gzipped file may announce at most ``MAX_GZIP_RATIO`` times its own size plus ``GZIP_SLACK``: that is how
  far real IDX files expand (Fashion-MNIST 1.8 to 2.0 times, MNIST 4.75), so a few kilobytes of gzip that claim
  a gigabyte of zeros (a decompression bomb) are refused before they are unpacked.

The values are then read into one buffer of the announced size, never further. Reading an IDX file therefore
takes at most the values' size (twice that for multi-byte types, which are byte-swapped), and that size is at
most the file's (raw) or ``MAX_GZIP_RATIO`` x the file's + ``GZIP_SLACK`` (gzipped). Every failure is a
``CorruptDataset`` naming the file and what is wrong with it, in a message that quotes no unbounded value.
"""
import gzip
import math
import os
import struct
import zlib

import numpy as np

from minception.files.regular import open_regular
from minception.files.shorten import shorten

from .cifar10 import CorruptDataset

#: IDX type code -> NumPy dtype of the stored values (big-endian, as the format prescribes)
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
#: refuse files announcing more values than this many bytes (Fashion-MNIST's largest file has 47 MB)
MAX_BYTES = 1 << 30
#: the most dimensions a header may announce: every NumPy version has at least 32 (real IDX files use 1 or 3)
MAX_NDIM = 32
#: how many times its own size a gzipped IDX file may expand to (plus ``GZIP_SLACK``). Real files need at most
#: about 5: Fashion-MNIST's (Debian's copy) expand 1.78 (images) to 2.03 (labels) times; MNIST's mostly black
#: digits 4.75 (9,912,422 bytes of gzip for 47,040,016 of IDX, by the sizes its authors publish)
MAX_GZIP_RATIO = 8
#: what a small gzipped file may expand to whatever its ratio: a few KB of mostly-zero test images must still read
GZIP_SLACK = 1 << 20
_CHUNK = 1 << 20


def _shape_text(shape):
    """``60000x28x28``; at most 4 sizes written out, so the text stays short whatever the header says."""
    text = "x".join(map(str, shape[:4]))
    return text if len(shape) <= 4 else f"{text}x... ({len(shape)} dimensions)"


def _count(n):
    """``47,040,000``, or a short description when a hostile header multiplies to hundreds of digits."""
    return f"{n:,}" if n < 10 ** 18 else shorten(n)


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


def _read_header(stream, path, max_bytes):
    """``(dtype, shape, header bytes, value bytes, description)`` from the start of an IDX stream, checked."""
    dtype, ndim = parse_idx_magic(_read_exactly(stream, 4, path, "4-byte magic"), path)
    if ndim > MAX_NDIM:
        raise CorruptDataset(f"{path}: the header announces {ndim} dimensions; an IDX file may have 1 to "
                             f"{MAX_NDIM} (images have 3, labels 1)")
    shape = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, f"header ({ndim} sizes)"))
    what = f"{_shape_text(shape)} {dtype.name} array"
    nbytes = math.prod(shape) * dtype.itemsize          # Python ints: exact however large the sizes are
    if nbytes > max_bytes:
        raise CorruptDataset(f"{path}: the header announces a {what} ({_count(nbytes)} bytes), more than the "
                             f"{max_bytes:,}-byte limit")
    return dtype, shape, 4 + 4 * ndim, nbytes, what


def _read_values(stream, dtype, shape, nbytes, path, what):
    """The ``nbytes`` of values into one buffer of that size, then the check that nothing follows them."""
    buffer, got = bytearray(nbytes), 0
    view = memoryview(buffer)
    while got < nbytes:
        n = stream.readinto(view[got:got + _CHUNK])
        if not n:
            raise CorruptDataset(f"{path}: truncated: the {what} needs {_count(nbytes)} bytes, the file ends "
                                 f"after {got:,}")
        got += n
    view.release()
    if stream.read(1):
        raise CorruptDataset(f"{path}: bytes after the {what} the header announces (wrong sizes in the header, "
                             f"or not an IDX file)")
    values = np.frombuffer(buffer, dtype=dtype)
    return values.astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def read_idx_stream(stream, path="<idx>", max_bytes=MAX_BYTES):
    """The array stored in the IDX byte stream ``stream`` (an open binary file, already decompressed).

    Returns a NumPy array in native byte order with the header's shape. ``path`` names the file in errors. The
    stream's own length is not known here, so only ``max_bytes`` bounds the buffer: ``read_idx`` checks the
    header against the file's size as well.
    """
    dtype, shape, _, nbytes, what = _read_header(stream, path, max_bytes)
    return _read_values(stream, dtype, shape, nbytes, path, what)


def read_idx(path, max_bytes=MAX_BYTES, max_gzip_ratio=MAX_GZIP_RATIO):
    """Read the IDX file ``path`` (gzipped or not) into a NumPy array.

    Args:
        path: the file; gzip compression is recognised by its first bytes, whatever the file is called.
        max_bytes: refuse a header announcing more bytes of values than this.
        max_gzip_ratio: refuse a gzipped file whose header announces more than this many times the file's size
            (plus ``GZIP_SLACK``); see ``MAX_GZIP_RATIO``.

    Raises:
        CorruptDataset: the path is missing or not a regular file, the file is not IDX, has a bad magic, is
            truncated, has trailing bytes, announces more than it can hold, or (gzipped) is not a valid gzip
            stream. Never any other error for any file contents.

    Shape:
        whatever the header says, e.g. (60000, 28, 28) uint8 images or (60000,) uint8 labels.
    """
    if not os.path.lexists(path):                    # only to say "missing" rather than the OS's words
        raise CorruptDataset(f"{path}: missing")
    compressed = False
    try:
        with open_regular(path, "IDX file", CorruptDataset) as (raw, size):
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                dtype, shape, header, nbytes, what = _read_header(raw, path, max_bytes)
                if header + nbytes > size:
                    raise CorruptDataset(f"{path}: truncated: the {what} needs {_count(nbytes)} bytes, the file "
                                         f"ends after {size - header:,}")
                if header + nbytes < size:
                    raise CorruptDataset(f"{path}: {size - header - nbytes:,} bytes after the {what} the header "
                                         f"announces (wrong sizes in the header, or not an IDX file)")
                return _read_values(raw, dtype, shape, nbytes, path, what)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                dtype, shape, header, nbytes, what = _read_header(stream, path, max_bytes)
                most = max_gzip_ratio * size + GZIP_SLACK
                if header + nbytes > most:
                    raise CorruptDataset(
                        f"{path}: the header announces a {what} ({_count(nbytes)} bytes), but a gzip file of "
                        f"{size:,} bytes expands to at most {most:,} ({max_gzip_ratio}x + 1 MiB; real IDX files "
                        f"need 5x): a damaged file or a decompression bomb")
                return _read_values(stream, dtype, shape, nbytes, path, what)
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
    if native not in codes or array.ndim == 0 or array.ndim > MAX_NDIM:
        raise ValueError(f"write_idx: cannot store a {array.dtype} array of {array.ndim} dimensions in IDX "
                         f"(types: {', '.join(str(d) for d in codes)}; 1..{MAX_NDIM} dimensions, what read_idx "
                         f"reads)")
    dtype = IDX_DTYPES[codes[native]]
    data = (bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + np.ascontiguousarray(array, dtype=dtype).tobytes())
    if compress is None:
        compress = str(path).endswith(".gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)
    return os.fspath(path)
