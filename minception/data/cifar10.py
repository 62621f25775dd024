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

Pickle can run code while loading, so the files are read with an unpickler that only builds dicts, lists,
bytes, ints and NumPy arrays; anything else is rejected as corrupt.
"""
import hashlib
import http.client
import io
import os
import pickle
import tarfile
import tempfile
import zlib
from urllib.request import urlopen

import numpy as np

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
class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only plain containers and NumPy arrays; refuses every other global a pickle may name."""

    _ndarray_globals = {"_reconstruct": np.empty(0).__reduce__()[0],
                        "_frombuffer": np.empty(0).__reduce_ex__(5)[0]}

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                      "numpy._core.numeric") and name in self._ndarray_globals:
            return self._ndarray_globals[name]
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):   # how Python 3 writes bytes in protocol 2
            import codecs
            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR file)")


def _unpickle(raw, source):
    """The dict stored in the pickle bytes ``raw``; ``source`` names the file in error messages."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as e:
        raise CorruptDataset(f"{source}: not a readable CIFAR-10 pickle (truncated or corrupt?): "
                             f"{type(e).__name__}: {e}") from e
    if not isinstance(obj, dict):
        raise CorruptDataset(f"{source}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _field(d, key, source):
    for k in (key.encode(), key):            # Python 2 pickles have bytes keys; re-pickled copies may have str
        if k in d:
            return d[k]
    raise CorruptDataset(f"{source}: the pickled dict has no {key!r} entry (keys: {sorted(map(str, d))})")


def _parse_batch(raw, source):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from the bytes of one batch file."""
    d = _unpickle(raw, source)
    data, labels = _field(d, "data", source), _field(d, "labels", source)
    size = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise CorruptDataset(f"{source}: 'data' must be a uint8 array (N, {size}), found {dtype} {shape}")
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise CorruptDataset(f"{source}: 'labels' must be {data.shape[0]} integers, found {labels.dtype} "
                             f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise CorruptDataset(f"{source}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    return data.reshape((-1,) + IMAGE_SHAPE), labels.astype(np.int64)


def _parse_meta(raw, source):
    names = _field(_unpickle(raw, source), "label_names", source)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    if len(names) != len(CLASS_NAMES):
        raise CorruptDataset(f"{source}: expected {len(CLASS_NAMES)} label names, found {len(names)}")
    return names


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
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise CorruptDataset(f"{path}: missing; the CIFAR-10 copy in {folder} is incomplete (expected "
                                 f"{', '.join(TRAIN_FILES + (TEST_FILE, META_FILE))})") from None

    return _assemble(read, lambda name: os.path.join(folder, name))


def read_cifar10_archive(archive):
    """Read the batch files straight out of ``cifar-10-python.tar.gz`` (nothing is written to disk).

    Shape:
        as ``read_cifar10_folder``.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}

            def read(name):
                if name not in members:
                    raise CorruptDataset(f"{archive}: has no {FOLDER_NAME}/{name}; not the CIFAR-10 python archive?")
                return tar.extractfile(members[name]).read()

            return _assemble(read, lambda name: f"{archive}:{FOLDER_NAME}/{name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise CorruptDataset(f"{archive}: cannot read the archive (truncated or corrupt?): "
                             f"{type(e).__name__}: {e}") from e


def read_cifar10(path):
    """Read CIFAR-10 from a ``cifar-10-batches-py`` folder or a ``cifar-10-python.tar.gz`` archive."""
    if os.path.isdir(path):
        return read_cifar10_folder(path)
    if os.path.isfile(path):
        return read_cifar10_archive(path)
    raise DatasetUnavailable(f"{path}: no such file or folder")


def find_cifar10(root):
    """The folder or archive under ``root`` to read, or None. See the module docstring for what ``root`` may be."""
    if os.path.isfile(root):
        return root
    if os.path.isfile(os.path.join(root, TRAIN_FILES[0])):
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
            with tarfile.open(archive, "r:gz") as tar:
                members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
                for name in TRAIN_FILES + (TEST_FILE, META_FILE):
                    if name not in members:
                        raise CorruptDataset(f"{archive}: has no {FOLDER_NAME}/{name}")
                    with open(os.path.join(tmp, name), "wb") as out:
                        out.write(tar.extractfile(members[name]).read())
        except (tarfile.TarError, EOFError, zlib.error) as e:
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
