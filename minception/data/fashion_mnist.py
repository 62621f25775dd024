"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 70,000 grayscale 28x28 images of clothing in 10 classes.

The data set is four IDX files (see ``idx.py``), usually gzipped::

    train-images-idx3-ubyte.gz   60000 x 28 x 28 uint8      train-labels-idx1-ubyte.gz   60000 uint8 (0..9)
    t10k-images-idx3-ubyte.gz    10000 x 28 x 28 uint8      t10k-labels-idx1-ubyte.gz    10000 uint8 (0..9)

Where they are looked for, in order (the first folder holding ``train-images-idx3-ubyte[.gz]`` is used):
``data_dir`` (or ``$MINCEPTION_DATA``, or ``~/.cache/minception``) itself, its ``fashion-mnist/`` subfolder,
then the system's copy installed by Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/
fashion-mnist``). When none has them and downloading is allowed, the four ``.gz`` files are fetched from the
authors' repository into ``<data_dir>/fashion-mnist/``, each checked twice: the MD5 of the ``.gz`` file against
the value the authors publish, and the SHA-256 of the decompressed IDX bytes (the same for every copy of the
data set, however it was compressed: Debian's ``.gz`` files were recompressed, so their MD5 differ from the
published ones, but they decompress to the same bytes).

**From 28x28 gray to the 3x32x32 the networks take.** The networks of ``minception.models`` take RGB images of
32x32 (``small_input=True`` halves them to 16 and 8). Each image is *padded* with 2 black pixels on every side
(28 + 2 + 2 = 32) and its one channel is *repeated* three times:

- padding, not resizing: the pixels stay exactly as recorded (no interpolation blur) and the garment keeps
  its size; the border is the value of the images' own background (0: the garments are cut out on black;
  81% of the pixels in the images' top rows are exactly 0), so the network sees no edge. LeNet-5 fed
  MNIST to its 32x32 input the same way.
- repeating the channel, not a 1-channel stem: the same network code, weights layout and data pipeline serve
  CIFAR-10 and Fashion-MNIST. The cost is the first convolution's 3 input channels where 1 would do, a small
  fraction of the network's work. Three equal channels carry no more information than one.

Normalisation uses ``FASHION_MNIST_MEAN`` and ``FASHION_MNIST_STD``, the mean and standard deviation of the
padded 32x32 training images (not the 28x28 ones: the padded images are what the network sees, and these make
its input exactly zero-mean, unit-variance over the training set).

Errors are those of ``cifar10.py`` (all ``DatasetError``): ``DatasetUnavailable`` (not found and not
downloadable), ``ChecksumError`` (a download with the wrong checksum; deleted), ``CorruptDataset`` (a file is
there but is not the IDX array it should be: not a regular file, bad magic, truncated, wrong sizes, more than
its size can hold, labels outside 0..9, images and labels of different counts; the message names the file).
"""
import gzip
import hashlib
import os
import zlib

import numpy as np

from minception.files.regular import open_regular

from .cifar10 import ChecksumError, CorruptDataset, DatasetUnavailable, default_data_dir, download
from .dataset import ImageSet
from .idx import GZIP_MAGIC, read_idx

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
FOLDER_NAME = "fashion-mnist"
#: where Debian's package ``dataset-fashion-mnist`` installs the four gzipped IDX files
SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)
#: the authors' copy (their README's download links point to the same files on S3)
BASE_URLS = ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
             "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
#: MD5 of each ``.gz`` file as published in the authors' README ("Get the Data")
GZ_MD5 = {TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d", TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
          TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79", TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310"}
#: SHA-256 and size of each decompressed IDX file (hashed from Debian's copy; the same bytes as the authors')
IDX_SHA256 = {TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
              TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
              TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
              TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"}
IDX_SIZE = {TRAIN_IMAGES: 16 + 60000 * 28 * 28, TRAIN_LABELS: 8 + 60000,
            TEST_IMAGES: 16 + 10000 * 28 * 28, TEST_LABELS: 8 + 10000}
#: mean and standard deviation of the padded 32x32 training images (0..1 units; the 3 channels are equal)
FASHION_MNIST_MEAN = (0.2190,) * 3
FASHION_MNIST_STD = (0.3318,) * 3
IMAGE_SIZE = 28
PAD = 2                                    # 28 + 2 * PAD = 32


# ---------------------------------------------------------------------------------------------- reading ---
def to_rgb32(images):
    """28x28 gray images -> 3x32x32: 2 zero (background) pixels on every side, the channel repeated 3 times.

    Shape:
        images: (N, 28, 28) uint8 -> (N, 3, 32, 32) uint8.
    """
    if images.ndim != 3:
        raise ValueError(f"to_rgb32: expected gray images (N, H, W), got shape {images.shape}")
    n, h, w = images.shape
    out = np.zeros((n, 3, h + 2 * PAD, w + 2 * PAD), np.uint8)
    out[:, :, PAD:PAD + h, PAD:PAD + w] = images[:, None]
    return out


def _file_in(folder, name):
    """``folder/name`` if that raw IDX file exists, else ``folder/name.gz`` if that does, else None.

    Anything by that name counts (``lexists``), not only a regular file: a FIFO, a directory or a broken link in
    its place is then refused by ``read_idx``, saying what it is, instead of being reported as missing."""
    for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.lexists(candidate):
            return candidate
    return None


def _read_split(folder, images_name, labels_name):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one split, checked; CorruptDataset otherwise."""
    paths = []
    for name in (images_name, labels_name):
        path = _file_in(folder, name)
        if path is None:
            raise CorruptDataset(f"{os.path.join(folder, name)}[.gz]: missing; the Fashion-MNIST copy in {folder} "
                                 f"is incomplete (expected {', '.join(FILES)}, each gzipped or not)")
        paths.append(path)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise CorruptDataset(f"{paths[0]}: expected uint8 images (N, {IMAGE_SIZE}, {IMAGE_SIZE}), found "
                             f"{images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise CorruptDataset(f"{paths[1]}: expected uint8 labels (N,), found {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise CorruptDataset(f"{paths[1]}: {labels.shape[0]} labels for the {images.shape[0]} images of {paths[0]}")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise CorruptDataset(f"{paths[1]}: labels outside 0..{len(CLASS_NAMES) - 1} (max {labels.max()})")
    return to_rgb32(images), labels.astype(np.int64)


def read_fashion_mnist(folder):
    """Read the four IDX files (each gzipped or not) in ``folder``. Returns ``(train, test)`` ImageSets.

    The files' sizes are whatever their headers say (so small test copies read too); the images must be 28x28
    uint8 and the labels 0..9, one per image.

    Raises:
        DatasetUnavailable: ``folder`` does not exist.
        CorruptDataset: a file is missing, not IDX, truncated, of the wrong shape, or has labels out of range.

    Shape:
        train.images: (60000, 3, 32, 32) uint8; test.images: (10000, 3, 32, 32) uint8; labels (N,) int64.
    """
    if not os.path.isdir(folder):
        raise DatasetUnavailable(f"{folder}: no such folder")
    train = ImageSet(*_read_split(folder, TRAIN_IMAGES, TRAIN_LABELS), CLASS_NAMES)
    test = ImageSet(*_read_split(folder, TEST_IMAGES, TEST_LABELS), CLASS_NAMES)
    return train, test


def candidate_folders(root):
    """The folders searched, in order: ``root``, ``root/fashion-mnist``, then the system copies."""
    return [root, os.path.join(root, FOLDER_NAME)] + list(SYSTEM_DIRS)


def find_fashion_mnist(root):
    """The first folder of ``candidate_folders(root)`` holding ``train-images-idx3-ubyte[.gz]``, or None."""
    for folder in candidate_folders(root):
        if _file_in(folder, TRAIN_IMAGES) is not None:
            return folder
    return None


# ------------------------------------------------------------------------------------------ downloading ---
def idx_sha256(path, limit):
    """SHA-256 of the IDX bytes in ``path`` (decompressed if gzipped), reading at most ``limit + 1`` of them.

    Returns ``(hex digest, byte count)``; a count above ``limit`` means the file is larger than expected.
    """
    h, count = hashlib.sha256(), 0
    try:
        with open_regular(path, "IDX file", CorruptDataset) as (raw, _):
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            while count <= limit:
                block = stream.read(min(1 << 20, limit + 1 - count))
                if not block:
                    break
                h.update(block)
                count += len(block)
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptDataset(f"{path}: cannot read (truncated or corrupt?): {type(e).__name__}: {e}") from e
    return h.hexdigest(), count


def download_fashion_mnist(root, timeout=30.0, progress=True):
    """Fetch the four ``.gz`` files into ``root/fashion-mnist/`` (skipping those already there). Returns it.

    Each download is checked against the authors' MD5 (by ``cifar10.download``, which keeps nothing on a
    mismatch), then its decompressed bytes against ``IDX_SHA256``; a file failing either is deleted. The
    mirrors of ``BASE_URLS`` are tried in turn. The training images come last, so a download that broke off
    never leaves a folder that ``find_fashion_mnist`` takes for a complete copy: the next call resumes it.

    Raises:
        DatasetUnavailable: no mirror could deliver a file (offline, HTTP error, timeout).
        ChecksumError: a file arrived with the wrong checksum from every mirror.
    """
    folder = os.path.join(root, FOLDER_NAME)
    for name in (TRAIN_LABELS, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES):     # TRAIN_IMAGES last: see above
        dest = os.path.join(folder, name + ".gz")
        if os.path.isfile(dest):
            continue
        errors = []
        for base in BASE_URLS:
            try:
                download(base + name + ".gz", dest, md5=GZ_MD5[name], timeout=timeout, progress=progress)
            except DatasetUnavailable as e:          # ChecksumError included: try the next mirror
                errors.append(e)
                continue
            digest, size = idx_sha256(dest, IDX_SIZE[name])
            if digest == IDX_SHA256[name] and size == IDX_SIZE[name]:
                break
            os.remove(dest)
            errors.append(ChecksumError(f"{base}{name}.gz: decompressed to {size} bytes with SHA-256 {digest}, "
                                        f"expected {IDX_SIZE[name]} bytes with {IDX_SHA256[name]}; not kept"))
        else:
            if all(isinstance(e, ChecksumError) for e in errors):
                raise ChecksumError("; ".join(map(str, errors)))
            raise DatasetUnavailable("; ".join(map(str, errors)))
    return folder


def load_fashion_mnist(data_dir=None, download_missing=True, timeout=30.0, progress=True):
    """Find Fashion-MNIST (downloading it if missing and allowed) and read it. Returns ``(train, test)``.

    Args:
        data_dir: where to look first (see the module docstring); None: ``$MINCEPTION_DATA`` or
            ``~/.cache/minception``. The system copy (Debian's ``dataset-fashion-mnist``) is looked at after it.
        download_missing: fetch the four files (about 30 MB) into ``data_dir/fashion-mnist`` when none is found.
        timeout: network timeout in seconds.
        progress: show a tqdm progress bar while downloading.

    Raises:
        DatasetUnavailable: not found and not downloadable (the message says where it looked, in one line).
        CorruptDataset: found but unreadable (the message names the file).

    Shape:
        train.images: (60000, 3, 32, 32) uint8, test.images: (10000, 3, 32, 32) uint8, labels (N,) int64;
        see the module docstring for how 28x28 gray becomes 3x32x32.
    """
    root = os.path.expanduser(data_dir) if data_dir is not None else default_data_dir()
    found = find_fashion_mnist(root)
    if found is not None:
        return read_fashion_mnist(found)
    where = ", ".join(candidate_folders(root))
    hint = (f"put {', '.join(n + '.gz' for n in FILES)} in {root} or {os.path.join(root, FOLDER_NAME)}, "
            f"or install Debian's dataset-fashion-mnist")
    if not download_missing:
        raise DatasetUnavailable(f"Fashion-MNIST not found in {where} (downloading is off); {hint}")
    try:
        folder = download_fashion_mnist(root, timeout=timeout, progress=progress)
    except DatasetUnavailable as e:
        raise type(e)(f"Fashion-MNIST not found in {where} and the download failed ({e}); {hint}") from e
    return read_fashion_mnist(folder)
