"""CIFAR-10 (Krizhevsky 2009): read the official "python version", download it when it is missing.

The archive ``cifar-10-python.tar.gz`` unpacks to ``cifar-10-batches-py/`` holding ``data_batch_1`` ..
``data_batch_5`` (10,000 training images each), ``test_batch`` (10,000) and ``batches.meta``. Each is a Python 2
pickle of a dict: ``b"data"`` a uint8 array (10000, 3072) whose rows are the red, green and blue 32x32 planes in
row-major order, ``b"labels"`` a list of ints 0..9; ``batches.meta`` has ``b"label_names"``. Reshaping a row to
(3, 32, 32) therefore gives a CHW image with no copy.

Where the data is looked for, in order: the ``data_dir`` argument, else the ``MINCEPTION_DATA`` environment
variable, else ``~/.cache/minception``. That place may be the ``cifar-10-batches-py`` folder itself, a folder
containing it, a folder containing the archive, or the archive file. When nothing is there and downloading is
allowed, the archive is fetched from the official address, its MD5 checked, and unpacked next to it.

Errors (all subclasses of ``DatasetError``, so a caller can fall back to synthetic data with one ``except``):
``DatasetUnavailable`` (nothing found and no download: offline, refused, or ``ChecksumError``),
``CorruptDataset`` (a file is there but truncated, not a CIFAR pickle, or incomplete; the message names it).

Pickle can run code while loading, so the files are read with ``minception.restricted_pickle``: it builds only
dicts, lists, bytes, numbers and NumPy arrays of plain numeric types; anything else is rejected as corrupt.
Memory stays bounded by what a CIFAR-10 file can honestly hold:

- every file is opened once with ``files.open_regular``: a FIFO (which would block), a device (``/dev/zero``
  says it has 0 bytes and never ends), a directory or a socket is refused by what it is, before a byte is read;
- a batch file over ``MAX_FILE_BYTES`` (64 MB; a batch is 31 MB) is refused by the opened file's size, and at
  most that size is read;
- in the archive, a member over ``MAX_FILE_BYTES`` is refused by its header, and all members together may hold
  at most ``MAX_ARCHIVE_RATIO`` times the archive's size plus ``ARCHIVE_SLACK``: the real archive expands 1.1
  times (its images are noise to gzip), so a few hundred KB of gzip claiming 64 MB batches of zeros is refused
  before it is unpacked.

So a malformed or hostile copy raises ``CorruptDataset`` naming the file, and never exhausts memory or hangs.
"""
import hashlib
import http.client
import os
import pickle
import tarfile
import tempfile
import zlib
from urllib.request import urlopen

import numpy as np

from minception.files.bounded import read_at_most
from minception.files.regular import open_regular
from minception.files.shorten import shorten
from minception.restricted_pickle import RestrictedUnpickler

from .dataset import ImageSet

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ENV_VAR = "MINCEPTION_DATA"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)


class DatasetError(RuntimeError):
    """Base class of the data errors."""


class DatasetUnavailable(DatasetError):
    """The data set is not on disk and could not be downloaded (offline, HTTP error, timeout, bad checksum)."""


class ChecksumError(DatasetUnavailable):
    """A downloaded file's MD5 is not the expected one (the file is deleted, not kept)."""


class CorruptDataset(DatasetError):
    """A file of the data set exists but cannot be read: truncated, not a CIFAR pickle, or missing a part."""


def default_data_dir():
    """``$MINCEPTION_DATA`` if set, else ``~/.cache/minception``."""
    return os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "minception")


# ---------------------------------------------------------------------------------------------- reading ---
# A batch file is about 31 MB (10,000 rows of 3,072 bytes, plus labels and file names); the meta file is tiny.
# Anything much larger is not CIFAR-10, and reading it whole could exhaust memory.
MAX_FILE_BYTES = 64 << 20
_MAX_ARCHIVE_MEMBERS = 64          # the official archive has 8 entries
#: how many times its own size the archive's members may hold together (plus ``ARCHIVE_SLACK``): the official
#: archive is 170,498,071 bytes for about 186 MB of batches, 1.1 times; 4 leaves room for any honest repacking
MAX_ARCHIVE_RATIO = 4
#: what a small archive may hold whatever its ratio (a test copy of a few rows of zeros)
ARCHIVE_SLACK = 1 << 20


class _NdarrayClass:
    """Stands for the global ``numpy.ndarray``, which a pickled array names only as an argument of
    ``_reconstruct``. The real class is never handed to the pickle: called, it would allocate uninitialised memory
    of any shape the file asks for."""
    __slots__ = ()

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayClass()
# The element types a CIFAR pickle may use (uint8 pixels; the rest for re-pickled copies). No object arrays.
_DTYPE_CODES = {"u1", "i1", "b1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"}


def _refuse(message):
    raise pickle.UnpicklingError(message)


def _text(value):
    """A Python 2 ``str`` arrives as bytes (``encoding="bytes"``); a Python 3 one as str."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _reconstruct(subtype, shape, typecode):
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b"b")``: the empty array that BUILD then fills."""
    if subtype is not _NDARRAY or shape != (0,) or _text(typecode) != "b":
        _refuse(f"_reconstruct must be called as NumPy pickles an array, (ndarray, (0,), 'b'), got "
                f"{shorten((subtype, shape, typecode))}")
    return np.empty(0, np.int8)          # zero elements: nothing uninitialised can leak out


def _make_dtype(code, align=False, copy=False):
    """``numpy.dtype(code, align, copy)`` for the plain numeric codes only."""
    code = _text(code)
    if type(code) is not str or code not in _DTYPE_CODES or type(align) is not bool or type(copy) is not bool:
        _refuse(f"numpy.dtype is allowed for {sorted(_DTYPE_CODES)}, got {shorten((code, align, copy))}")
    return np.dtype(code)


def _check_dtype_state(dtype, state):
    """BUILD on a dtype: NumPy's state ``(3, byteorder, None, None, None, -1, -1, 0)``. The dtype already is what
    ``_make_dtype`` made; a state asking for anything else (fields, another byte order) is refused."""
    if (type(state) is not tuple or len(state) != 8 or state[0] != 3 or state[2:] != (None, None, None, -1, -1, 0)
            or _text(state[1]) not in ("|", "<", "=")):
        _refuse(f"dtype state {shorten(state)} is not that of a plain little-endian {dtype}")


def _fill_array(array, state):
    """BUILD on the empty array from ``_reconstruct``: ``(version, shape, dtype, fortran_order, raw bytes)``.
    NumPy itself checks that the bytes are exactly what the shape needs."""
    if (type(state) is not tuple or len(state) != 5 or type(state[1]) is not tuple
            or not all(type(d) is int and d >= 0 for d in state[1]) or not isinstance(state[2], np.dtype)
            or type(state[4]) is not bytes):
        _refuse(f"array state must be (version, shape, dtype, fortran_order, bytes), got {shorten(state)}")
    array.__setstate__(state)


def _frombuffer(buffer, dtype, shape, order):
    """``numpy.core.numeric._frombuffer``: how protocol 5 pickles an array in band."""
    if type(buffer) not in (bytes, bytearray) or not isinstance(dtype, np.dtype) or type(shape) is not tuple \
            or order not in ("C", "F"):
        _refuse(f"_frombuffer(buffer, dtype, shape, order) got {shorten((buffer, dtype, shape, order))}")
    return np.frombuffer(buffer, dtype).reshape(shape, order=order).copy()


def _encode(text, encoding):
    """``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at protocol 2."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        _refuse(f"_codecs.encode is allowed for (str, 'latin1'), got {shorten((text, encoding))}")
    return text.encode("latin-1")


def _names_for_one_load():
    names = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _make_dtype, ("_codecs", "encode"): _encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names[(module, "_reconstruct")] = _reconstruct
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        names[(module, "_frombuffer")] = _frombuffer
    return names


def _unpickle(raw, source):
    """The dict stored in the pickle bytes ``raw``; ``source`` names the file in error messages.

    Pickle can run code while loading, so the bytes are read by ``minception.restricted_pickle`` with only the
    names a pickled NumPy array needs (each replaced by a function that checks its arguments)."""
    unpickler = RestrictedUnpickler(raw, names=_names_for_one_load(), encoding="bytes",
                                    build={np.ndarray: _fill_array, np.dtype: _check_dtype_state})
    try:
        obj = unpickler.load()
    except pickle.UnpicklingError as e:
        raise CorruptDataset(f"{source}: not a readable CIFAR-10 pickle (truncated or corrupt?): {e}") from e
    if not isinstance(obj, dict):
        raise CorruptDataset(f"{source}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _field(d, key, source):
    for k in (key.encode(), key):            # Python 2 pickles have bytes keys; re-pickled copies may have str
        if k in d:
            return d[k]
    keys = sorted(map(shorten, d))        # shortened: a key may be an int of 5,000 digits
    raise CorruptDataset(f"{source}: the pickled dict has no {key!r} entry (keys: {', '.join(keys[:10])}"
                         f"{', ...' if len(keys) > 10 else ''})")


def _labels(labels, count, source):
    """``labels`` (a list of ints 0..9, or a 1-D integer array) as int64 ``(count,)``. Checked element by element
    before NumPy sees it: ``np.asarray`` of nested lists that share items could fill memory."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        values = labels
    elif type(labels) is list and all(type(v) is int for v in labels):
        values = labels
    else:
        raise CorruptDataset(f"{source}: 'labels' must be a list of {count} integers, found "
                             f"{type(labels).__name__}")
    if len(values) != count:
        raise CorruptDataset(f"{source}: 'labels' must be {count} integers (one per row of 'data'), found "
                             f"{len(values)}")
    if count and (min(values) < 0 or max(values) >= len(CLASS_NAMES)):
        raise CorruptDataset(f"{source}: labels outside 0..9 (min {shorten(min(values))}, max "
                             f"{shorten(max(values))})")
    return np.array(values, dtype=np.int64)


def _parse_batch(raw, source):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from the bytes of one batch file."""
    d = _unpickle(raw, source)
    data, labels = _field(d, "data", source), _field(d, "labels", source)
    size = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise CorruptDataset(f"{source}: 'data' must be a uint8 array (N, {size}), found {dtype} {shape}")
    return data.reshape((-1,) + IMAGE_SHAPE), _labels(labels, data.shape[0], source)


def _parse_meta(raw, source):
    names = _field(_unpickle(raw, source), "label_names", source)
    if type(names) not in (list, tuple) or not all(type(n) in (bytes, str) for n in names):
        raise CorruptDataset(f"{source}: 'label_names' must be a list of {len(CLASS_NAMES)} strings, found "
                             f"{type(names).__name__}")
    if len(names) != len(CLASS_NAMES):
        raise CorruptDataset(f"{source}: expected {len(CLASS_NAMES)} label names, found {len(names)}")
    return tuple(_text(n) for n in names)


def _assemble(read, describe):
    """Build (train, test) from ``read(file_name) -> bytes``; ``describe(file_name)`` names it in errors."""
    class_names = _parse_meta(read(META_FILE), describe(META_FILE))
    parts = [_parse_batch(read(f), describe(f)) for f in TRAIN_FILES]
    train = ImageSet(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), class_names)
    test = ImageSet(*_parse_batch(read(TEST_FILE), describe(TEST_FILE)), class_names)
    return train, test


def read_cifar10_folder(folder):
    """Read ``cifar-10-batches-py/`` (the folder holding the batch files). Returns ``(train, test)`` ImageSets.

    Shape:
        train.images: (50000, 3, 32, 32) uint8; test.images: (10000, 3, 32, 32) uint8; labels int64.
    """
    def read(name):
        path = os.path.join(folder, name)
        if not os.path.lexists(path):                 # only to say "missing" rather than the OS's words
            raise CorruptDataset(f"{path}: missing; the CIFAR-10 copy in {folder} is incomplete (expected "
                                 f"{', '.join(TRAIN_FILES + (TEST_FILE, META_FILE))})")
        with open_regular(path, "CIFAR-10 file", CorruptDataset) as (f, size):
            if size > MAX_FILE_BYTES:
                raise CorruptDataset(f"{path}: {size} bytes, more than a CIFAR-10 file can hold "
                                     f"({MAX_FILE_BYTES}); not CIFAR-10?")
            try:
                return f.read(size)                   # the size of the opened file: a file growing now adds nothing
            except OSError as e:                      # an I/O error
                raise CorruptDataset(f"{path}: cannot be read ({type(e).__name__}: {e})") from None

    return _assemble(read, lambda name: os.path.join(folder, name))


def _archive_members(tar, archive, archive_size):
    """``{file name: TarInfo}`` of the regular files in the archive, refusing archives that cannot be CIFAR-10's:
    more than a few dozen entries, a wanted file over ``MAX_FILE_BYTES``, or members holding together more than
    ``MAX_ARCHIVE_RATIO`` x ``archive_size`` + ``ARCHIVE_SLACK`` bytes. (tarfile finds each header by unpacking
    the data before it, so the sizes the headers claim are what reading the archive unpacks.)"""
    members, total, most = {}, 0, MAX_ARCHIVE_RATIO * archive_size + ARCHIVE_SLACK
    for count, member in enumerate(tar, 1):       # one header at a time: never a list of millions of entries
        if count > _MAX_ARCHIVE_MEMBERS:
            raise CorruptDataset(f"{archive}: more than {_MAX_ARCHIVE_MEMBERS} entries; not the CIFAR-10 python "
                                 f"archive?")
        name = os.path.basename(member.name)
        if member.isfile() and name in TRAIN_FILES + (TEST_FILE, META_FILE):
            if member.size > MAX_FILE_BYTES:
                raise CorruptDataset(f"{archive}: {FOLDER_NAME}/{name} is {member.size} bytes, more than a "
                                     f"CIFAR-10 file can hold ({MAX_FILE_BYTES}); not the CIFAR-10 python archive?")
            members[name] = member
        total += member.size
        if total > most:
            raise CorruptDataset(f"{archive}: its members expand to more than {most:,} bytes, {MAX_ARCHIVE_RATIO}x "
                                 f"this gzip file's {archive_size:,} + 1 MiB (the real archive expands 1.1x): a "
                                 f"damaged file or a decompression bomb")
    return members


def _member_bytes(tar, members, name, archive):
    """The bytes of one member, read 1 MB at a time and never more than ``MAX_FILE_BYTES``: a header that lies
    about the size costs no more memory than the data that is really there."""
    if name not in members:
        raise CorruptDataset(f"{archive}: has no {FOLDER_NAME}/{name}; not the CIFAR-10 python archive?")
    return read_at_most(tar.extractfile(members[name]), MAX_FILE_BYTES, f"{archive}: {FOLDER_NAME}/{name}",
                        CorruptDataset)


_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, ValueError, UnicodeError)


def read_cifar10_archive(archive):
    """Read the batch files straight out of ``cifar-10-python.tar.gz`` (nothing is written to disk).

    Shape:
        as ``read_cifar10_folder``.
    """
    try:
        with open_regular(archive, "CIFAR-10 archive", CorruptDataset) as (f, size), \
                tarfile.open(fileobj=f, mode="r:gz") as tar:
            members = _archive_members(tar, archive, size)
            return _assemble(lambda name: _member_bytes(tar, members, name, archive),
                             lambda name: f"{archive}:{FOLDER_NAME}/{name}")
    except _ARCHIVE_ERRORS as e:
        raise CorruptDataset(f"{archive}: cannot read the archive (truncated or corrupt?): "
                             f"{type(e).__name__}: {e}") from e


def read_cifar10(path):
    """Read CIFAR-10 from a ``cifar-10-batches-py`` folder or a ``cifar-10-python.tar.gz`` archive."""
    if os.path.isdir(path):
        return read_cifar10_folder(path)
    if os.path.lexists(path):              # a file, or something else by that name: the archive reader says which
        return read_cifar10_archive(path)
    raise DatasetUnavailable(f"{path}: no such file or folder")


def find_cifar10(root):
    """The folder or archive under ``root`` to read, or None. See the module docstring for what ``root`` may be."""
    # lexists, not isfile: a FIFO or a device by those names is then refused by the reader, saying what it is,
    # rather than taken for nothing there (and a download started beside it)
    if os.path.lexists(root) and not os.path.isdir(root):
        return root
    if os.path.lexists(os.path.join(root, TRAIN_FILES[0])):
        return root
    for name in (FOLDER_NAME, ARCHIVE_NAME):
        candidate = os.path.join(root, name)
        if os.path.exists(candidate):
            return candidate
    return None


# ------------------------------------------------------------------------------------------ downloading ---
def md5_of(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download(url, dest, md5=None, timeout=30.0, progress=True, chunk=1 << 20):
    """Fetch ``url`` into the file ``dest``, atomically, checking its MD5. Returns ``dest``.

    The bytes go to a temporary file beside ``dest`` (hashed as they arrive, with a tqdm progress bar) that is
    renamed to ``dest`` only when complete and matching ``md5``; on any failure it is deleted, so ``dest``
    never holds a partial file. ``timeout`` (seconds) applies to connecting and to each read.

    Raises:
        DatasetUnavailable: no connection, HTTP error, timeout, or the transfer broke off.
        ChecksumError: the downloaded bytes have the wrong MD5.
    """
    from tqdm import tqdm

    folder = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".part", dir=folder)
    except OSError as e:
        raise DatasetUnavailable(f"cannot download {url}: cannot write to {folder}: {e}") from e
    try:
        h, received = hashlib.md5(), 0
        try:
            with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
                          desc=os.path.basename(dest)) as bar:
                    for block in iter(lambda: response.read(chunk), b""):
                        out.write(block)
                        h.update(block)
                        received += len(block)
                        bar.update(len(block))
                if total is not None and received != total:
                    raise OSError(f"transfer broke off after {received} of {total} bytes")
        except (OSError, http.client.HTTPException) as e:   # URLError, HTTPError, timeouts, resets, IncompleteRead
            raise DatasetUnavailable(f"could not download {url}: {e}") from e
        if md5 is not None and h.hexdigest() != md5:
            raise ChecksumError(f"{url}: downloaded file has MD5 {h.hexdigest()}, expected {md5}; not kept")
        os.replace(tmp, dest)
        tmp = None
        return dest
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def extract_cifar10(archive, root):
    """Unpack the batch files of ``archive`` into ``root/cifar-10-batches-py`` (atomically). Returns that folder.

    Only the expected file names are written (never paths taken from the archive), into a temporary folder
    that is renamed when complete.
    """
    target = os.path.join(root, FOLDER_NAME)
    tmp = tempfile.mkdtemp(prefix=FOLDER_NAME + ".", suffix=".part", dir=root)
    try:
        try:
            with open_regular(archive, "CIFAR-10 archive", CorruptDataset) as (f, size), \
                    tarfile.open(fileobj=f, mode="r:gz") as tar:
                members = _archive_members(tar, archive, size)
                for name in TRAIN_FILES + (TEST_FILE, META_FILE):
                    raw = _member_bytes(tar, members, name, archive)
                    with open(os.path.join(tmp, name), "wb") as out:
                        out.write(raw)
        except _ARCHIVE_ERRORS as e:
            raise CorruptDataset(f"{archive}: cannot unpack (truncated or corrupt?): {e}") from e
        if not os.path.exists(target):
            os.replace(tmp, target)
            tmp = None
        return target
    finally:
        if tmp is not None:
            for name in os.listdir(tmp):
                os.remove(os.path.join(tmp, name))
            os.rmdir(tmp)


def load_cifar10(data_dir=None, download_missing=True, timeout=30.0, progress=True):
    """Find CIFAR-10 (downloading it if missing and allowed) and read it. Returns ``(train, test)`` ImageSets.

    Args:
        data_dir: where to look (see the module docstring); None: ``$MINCEPTION_DATA`` or ``~/.cache/minception``.
        download_missing: fetch the official archive (about 163 MB) into ``data_dir`` when nothing is found.
        timeout: network timeout in seconds.
        progress: show a tqdm progress bar while downloading.

    Raises:
        DatasetUnavailable: not found and not downloadable (the message says where it looked, in one line).
        CorruptDataset: found but unreadable (the message names the file).

    Shape:
        train.images: (50000, 3, 32, 32) uint8, test.images: (10000, 3, 32, 32) uint8, labels (N,) int64.
    """
    root = os.path.expanduser(data_dir) if data_dir is not None else default_data_dir()
    found = find_cifar10(root)
    if found is not None:
        return read_cifar10(found)
    if not download_missing:
        raise DatasetUnavailable(f"CIFAR-10 not found in {root} (downloading is off); set {ENV_VAR} or data_dir "
                                 f"to a folder holding {FOLDER_NAME}/ or {ARCHIVE_NAME}")
    try:
        archive = download(URL, os.path.join(root, ARCHIVE_NAME), md5=MD5, timeout=timeout, progress=progress)
    except DatasetUnavailable as e:
        raise type(e)(f"CIFAR-10 not found in {root} and the download failed ({e}); set {ENV_VAR} or data_dir "
                      f"to a folder holding {FOLDER_NAME}/ or {ARCHIVE_NAME}") from e
    return read_cifar10_folder(extract_cifar10(archive, root))
