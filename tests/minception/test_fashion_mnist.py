"""Fashion-MNIST and the IDX reader, on small IDX files written here (gzipped and raw). Never touches the network.

The files are written byte by byte from the format's definition (``idx_bytes`` below), not with the library's
own ``write_idx``, so a reader and writer that agreed on a wrong format would still fail here.
"""
import gzip
import hashlib
import os
import shutil
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minception import data
from minception.data import cifar10, fashion_mnist
from minception.data.cifar10 import ChecksumError, CorruptDataset, DatasetError, DatasetUnavailable
from minception.data.fashion_mnist import (FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
                                           load_fashion_mnist, read_fashion_mnist)
from minception.data.idx import read_idx, write_idx

DEBIAN_COPY = fashion_mnist.SYSTEM_DIRS[0]        # read before the fixture below hides it from the loader


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """No network, no $MINCEPTION_DATA, and no system copy unless a test installs one."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(cifar10, "urlopen", refuse)
    monkeypatch.delenv("MINCEPTION_DATA", raising=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())


def idx_bytes(code, shape, payload):
    """An IDX file: 00 00, type code, ndim, big-endian uint32 sizes, then ``payload``."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def write(path, content, gz):
    with open(path, "wb") as f:
        f.write(gzip.compress(content) if gz else content)
    return path


def write_fashion_folder(folder, n_train=7, n_test=5, gz=True, seed=0):
    """The four Fashion-MNIST files with random 28x28 images; returns {name: array written}."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for images_name, labels_name, n in ((TRAIN_IMAGES, TRAIN_LABELS, n_train), (TEST_IMAGES, TEST_LABELS, n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write(os.path.join(folder, images_name + suffix), idx_bytes(0x08, images.shape, images.tobytes()), gz)
        write(os.path.join(folder, labels_name + suffix), idx_bytes(0x08, labels.shape, labels.tobytes()), gz)
        arrays[images_name], arrays[labels_name] = images, labels
    return arrays


# --------------------------------------------------------------------------------------------- IDX reader ---
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_decodes_every_type_big_endian(tmp_path, gz):
    cases = [(0x08, np.uint8, [0, 1, 255]), (0x09, np.int8, [-128, 0, 127]), (0x0B, np.int16, [-2, 258, 3]),
             (0x0C, np.int32, [-70000, 1, 2 ** 30]), (0x0D, np.float32, [0.5, -1.25, 3e8]),
             (0x0E, np.float64, [1e-300, -2.5, 7.0])]
    for code, dtype, values in cases:
        expected = np.array(values, dtype=dtype).reshape(3, 1)
        path = write(tmp_path / f"a{code}", idx_bytes(code, (3, 1), expected.astype(np.dtype(dtype).newbyteorder(">"))
                                                       .tobytes()), gz)
        got = read_idx(path)
        assert got.dtype == dtype and got.dtype.isnative and got.shape == (3, 1)
        np.testing.assert_array_equal(got, expected)
    # big-endian on disk: 01 02 is 258, not 513
    path = write(tmp_path / "be", idx_bytes(0x0B, (1,), b"\x01\x02"), gz)
    assert read_idx(path).tolist() == [258]


def test_gzip_is_recognised_by_content_not_by_name(tmp_path):
    payload = idx_bytes(0x08, (2, 2), bytes([1, 2, 3, 4]))
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", payload, gz=False)), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(read_idx(write(tmp_path / "packed", payload, gz=True)), [[1, 2], [3, 4]])


@pytest.mark.parametrize("dtype", ["u1", "i1", "<i2", ">i4", "f4", "f8"])
def test_write_idx_round_trips(tmp_path, dtype):
    a = (np.arange(30).reshape(2, 3, 5) * 7 - 40).astype(dtype)
    for name in ("a.idx", "a.idx.gz"):
        back = read_idx(write_idx(tmp_path / name, a))
        assert back.dtype == a.dtype.newbyteorder("=")
        np.testing.assert_array_equal(back, a)
    with pytest.raises(ValueError, match="write_idx"):
        write_idx(tmp_path / "bad", np.zeros(3, np.int64))


GOOD = idx_bytes(0x08, (2, 3), bytes(range(6)))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("content, message", [
    (b"", "ends after 0"),
    (b"\x00\x00", "ends after 2"),
    (b"\x01\x00\x08\x01" + bytes(8), "bad magic 01 00 08 01"),
    (b"\x00\x00\x07\x01" + bytes(8), "bad magic"),                  # 0x07 is no type code
    (b"\x00\x00\x08\x00" + bytes(8), "bad magic"),                  # zero dimensions
    (GOOD[:6], r"header \(2 sizes\) needs 8 bytes"),
    (GOOD[:-1], "2x3 uint8 array needs 6 bytes, the file ends after 5"),
    (GOOD + b"\x00", "bytes after the 2x3 uint8 array"),
    (idx_bytes(0x0E, (4,), bytes(31)), "needs 32 bytes"),
    (idx_bytes(0x08, (65536, 65536, 65536), b""), "more than the"),    # 2**48 bytes announced: refused, no allocation
], ids=["empty", "short-magic", "magic-not-zero", "bad-type", "no-dims", "short-header", "truncated", "trailing",
        "truncated-float64", "huge"])
def test_read_idx_rejects_corrupt_files(tmp_path, gz, content, message):
    path = write(tmp_path / "f", content, gz)
    with pytest.raises(CorruptDataset, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_broken_gzip_and_missing_files(tmp_path):
    packed = gzip.compress(idx_bytes(0x08, (1000,), bytes(np.random.default_rng(0).integers(0, 256, 1000,
                                                                                          dtype=np.uint8))))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[:len(packed) // 2])
    with pytest.raises(CorruptDataset, match="cut.gz: (truncated|cannot read the gzip stream)"):
        read_idx(cut)
    garbled = tmp_path / "garbled.gz"
    garbled.write_bytes(packed[:10] + bytes(b ^ 0x5A for b in packed[10:]))
    with pytest.raises(CorruptDataset, match="garbled.gz"):
        read_idx(garbled)
    with pytest.raises(CorruptDataset, match="missing"):
        read_idx(tmp_path / "nothing")
    with pytest.raises(CorruptDataset, match="is a directory, not a regular file"):
        read_idx(tmp_path)                       # a folder


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=64),                                                   # anything at all
    st.tuples(st.integers(0, len(GOOD) + 4), st.binary(max_size=8)).map(     # a valid file, cut and extended
        lambda cut: GOOD[:cut[0]] + cut[1]),
    st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)).map(       # a valid file, one byte changed
        lambda flip: GOOD[:flip[0]] + bytes([GOOD[flip[0]] ^ flip[1]]) + GOOD[flip[0] + 1:])),
    st.booleans(), st.integers(0, 40))
def test_fuzz_read_idx_raises_only_corrupt_dataset(content, gz, cut_gzip):
    """Whatever the bytes (raw, gzipped, or a gzip stream cut short), read_idx returns an array whose size
    matches its header, or raises CorruptDataset; nothing else escapes."""
    raw = gzip.compress(content) if gz else content
    if gz and cut_gzip:
        raw = raw[:max(len(raw) - cut_gzip, 0)]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fuzz")
        with open(path, "wb") as f:
            f.write(raw)
        try:
            array = read_idx(path, max_bytes=1 << 16)
        except CorruptDataset:
            return
    ndim = content[3]
    assert array.ndim == ndim
    assert len(content) == 4 + 4 * ndim + array.nbytes


# ---------------------------------------------------------------------------------------------- the data set ---
@pytest.mark.parametrize("gz", [True, False])
def test_read_folder_pads_to_32_and_repeats_the_channel(tmp_path, gz):
    arrays = write_fashion_folder(tmp_path, gz=gz)
    train, test = read_fashion_mnist(tmp_path)
    for split, images_name, labels_name in ((train, TRAIN_IMAGES, TRAIN_LABELS), (test, TEST_IMAGES, TEST_LABELS)):
        n = len(arrays[labels_name])
        assert split.images.shape == (n, 3, 32, 32) and split.images.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(split.images[:, c, 2:30, 2:30], arrays[images_name])
        border = np.ones((32, 32), bool)
        border[2:30, 2:30] = False
        assert not split.images[:, :, border].any()                 # the 2-pixel frame is black (0)
        np.testing.assert_array_equal(split.labels, arrays[labels_name])
        assert split.labels.dtype == np.int64
        assert split.class_names[0] == "T-shirt/top" and split.class_names[9] == "Ankle boot"


def test_mixed_raw_and_gzipped_files_read(tmp_path):
    arrays = write_fashion_folder(tmp_path, gz=True)
    os.remove(tmp_path / (TEST_LABELS + ".gz"))
    write(tmp_path / TEST_LABELS, idx_bytes(0x08, arrays[TEST_LABELS].shape, arrays[TEST_LABELS].tobytes()), False)
    _, test = read_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(test.labels, arrays[TEST_LABELS])


def _replace(folder, name, content):
    os.remove(os.path.join(folder, name + ".gz"))
    write(os.path.join(folder, name + ".gz"), content, gz=True)


@pytest.mark.parametrize("name, content, message", [
    (TRAIN_IMAGES, idx_bytes(0x08, (7, 27, 28), bytes(7 * 27 * 28)), r"expected uint8 images \(N, 28, 28\)"),
    (TRAIN_IMAGES, idx_bytes(0x0C, (7, 28, 28), bytes(4 * 7 * 28 * 28)), "found int32"),
    (TRAIN_LABELS, idx_bytes(0x08, (6,), bytes(6)), "6 labels for the 7 images"),
    (TRAIN_LABELS, idx_bytes(0x08, (7, 1), bytes(7)), r"expected uint8 labels \(N,\)"),
    (TEST_LABELS, idx_bytes(0x08, (5,), bytes([0, 1, 2, 10, 3])), r"labels outside 0..9 \(max 10\)"),
    (TEST_IMAGES, b"\x08\x03\x00\x00" + bytes(20), "bad magic"),
    (TEST_IMAGES, idx_bytes(0x08, (5, 28, 28), bytes(100)), "truncated"),
], ids=["27x28", "int32-images", "fewer-labels", "2d-labels", "label-10", "bad-magic", "truncated"])
def test_corrupt_data_set_files_name_the_file(tmp_path, name, content, message):
    write_fashion_folder(tmp_path)
    _replace(tmp_path, name, content)
    with pytest.raises(CorruptDataset, match=message) as info:
        read_fashion_mnist(tmp_path)
    assert name in str(info.value)


def test_incomplete_folder_names_the_missing_file(tmp_path):
    write_fashion_folder(tmp_path)
    os.remove(tmp_path / (TEST_IMAGES + ".gz"))
    with pytest.raises(CorruptDataset, match="t10k-images-idx3-ubyte.*missing.*incomplete"):
        load_fashion_mnist(tmp_path, download_missing=False)


def test_load_looks_in_the_folder_its_subfolder_then_the_system_copy(tmp_path, monkeypatch):
    write_fashion_folder(tmp_path / "a", n_train=3)
    assert len(load_fashion_mnist(tmp_path / "a", download_missing=False)[0]) == 3
    write_fashion_folder(tmp_path / "b" / "fashion-mnist", n_train=4)
    assert len(load_fashion_mnist(tmp_path / "b", download_missing=False)[0]) == 4
    monkeypatch.setenv("MINCEPTION_DATA", str(tmp_path / "b"))
    assert len(load_fashion_mnist(download_missing=False)[0]) == 4
    write_fashion_folder(tmp_path / "system", n_train=5)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (str(tmp_path / "system"),))
    assert len(load_fashion_mnist(tmp_path / "empty", download_missing=False)[0]) == 5
    assert len(load_fashion_mnist(tmp_path / "a", download_missing=False)[0]) == 3     # data_dir comes first


def test_not_found_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetUnavailable, match="not found in .*empty.*downloading is off") as info:
        load_fashion_mnist(tmp_path / "empty", download_missing=False)
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetUnavailable, match="no such folder"):
        read_fashion_mnist(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------ download ---
@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A fake mirror: ``download(url, dest, md5)`` copies the file named by the URL from ``served`` (checking
    the MD5 the way ``cifar10.download`` does) and records the URLs asked for. The pinned checksums are
    replaced by those of the tiny files."""
    served = tmp_path / "served"
    arrays = write_fashion_folder(served, n_train=6, n_test=4, gz=True)
    asked = []

    def fake_download(url, dest, md5=None, timeout=None, progress=None):
        asked.append(url)
        source = served / url.rsplit("/", 1)[1]
        if not source.exists():
            raise DatasetUnavailable(f"could not download {url}: HTTP Error 404")
        if md5 is not None and hashlib.md5(source.read_bytes()).hexdigest() != md5:
            raise ChecksumError(f"{url}: wrong MD5")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(source, dest)
        return dest

    monkeypatch.setattr(fashion_mnist, "download", fake_download)
    monkeypatch.setattr(fashion_mnist, "GZ_MD5", {n: hashlib.md5((served / (n + ".gz")).read_bytes()).hexdigest()
                                                  for n in FILES})
    raw = {n: gzip.decompress((served / (n + ".gz")).read_bytes()) for n in FILES}
    monkeypatch.setattr(fashion_mnist, "IDX_SHA256", {n: hashlib.sha256(b).hexdigest() for n, b in raw.items()})
    monkeypatch.setattr(fashion_mnist, "IDX_SIZE", {n: len(b) for n, b in raw.items()})
    return served, arrays, asked


def test_download_fetches_checks_and_reads(tmp_path, mirror):
    served, arrays, asked = mirror
    train, test = load_fashion_mnist(tmp_path / "root", progress=False)
    assert sorted(os.listdir(tmp_path / "root" / "fashion-mnist")) == sorted(n + ".gz" for n in FILES)
    assert asked[-1].endswith(TRAIN_IMAGES + ".gz")                # the training images come last
    assert all(url.startswith(fashion_mnist.BASE_URLS[0]) for url in asked)
    np.testing.assert_array_equal(train.images[:, 0, 2:30, 2:30], arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(test.labels, arrays[TEST_LABELS])
    asked.clear()
    load_fashion_mnist(tmp_path / "root", progress=False)          # found now: nothing is fetched
    assert asked == []


def test_download_rejects_a_payload_with_the_wrong_sha256(tmp_path, mirror, monkeypatch):
    monkeypatch.setitem(fashion_mnist.IDX_SHA256, TEST_LABELS, "0" * 64)
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz: decompressed to .* not kept") as info:
        load_fashion_mnist(tmp_path / "root", progress=False)
    assert "Fashion-MNIST not found in" in str(info.value)
    folder = tmp_path / "root" / "fashion-mnist"
    assert not (folder / (TEST_LABELS + ".gz")).exists()
    assert not (folder / (TRAIN_IMAGES + ".gz")).exists()          # so the folder is not taken as complete


def test_download_tries_the_next_mirror_and_reports_all_failures(tmp_path, mirror, monkeypatch):
    served, _, asked = mirror
    os.remove(served / (TRAIN_IMAGES + ".gz"))
    with pytest.raises(DatasetUnavailable, match="404.*404") as info:
        load_fashion_mnist(tmp_path / "root", progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert [u for u in asked if TRAIN_IMAGES in u] == [b + TRAIN_IMAGES + ".gz" for b in fashion_mnist.BASE_URLS]
    # a later call, with the file back, resumes: only the missing file is fetched
    write_fashion_folder(tmp_path / "again", n_train=6, n_test=4)
    shutil.copyfile(tmp_path / "again" / (TRAIN_IMAGES + ".gz"), served / (TRAIN_IMAGES + ".gz"))
    monkeypatch.setitem(fashion_mnist.GZ_MD5, TRAIN_IMAGES,
                        hashlib.md5((served / (TRAIN_IMAGES + ".gz")).read_bytes()).hexdigest())
    monkeypatch.setitem(fashion_mnist.IDX_SHA256, TRAIN_IMAGES, hashlib.sha256(
        gzip.decompress((served / (TRAIN_IMAGES + ".gz")).read_bytes())).hexdigest())
    asked.clear()
    load_fashion_mnist(tmp_path / "root", progress=False)
    assert asked == [fashion_mnist.BASE_URLS[0] + TRAIN_IMAGES + ".gz"]


def test_idx_sha256_is_the_same_for_gzipped_and_raw_copies(tmp_path):
    content = idx_bytes(0x08, (3, 5), bytes(range(15)))
    expected = hashlib.sha256(content).hexdigest()
    assert fashion_mnist.idx_sha256(write(tmp_path / "r", content, False), 1000) == (expected, len(content))
    assert fashion_mnist.idx_sha256(write(tmp_path / "g", content, True), 1000) == (expected, len(content))
    assert fashion_mnist.idx_sha256(tmp_path / "g", 10)[1] == 11          # stops reading past the limit


@pytest.mark.skipif(not os.path.isdir(DEBIAN_COPY), reason="Debian's dataset-fashion-mnist is not installed")
def test_pinned_checksums_match_the_system_copy():
    """The pinned SHA-256 and sizes are those of the real data set (Debian's copy, when installed)."""
    for name in FILES:
        assert fashion_mnist.idx_sha256(os.path.join(DEBIAN_COPY, name + ".gz"), fashion_mnist.IDX_SIZE[name]) == (
            fashion_mnist.IDX_SHA256[name], fashion_mnist.IDX_SIZE[name])


# ---------------------------------------------------------------------------------------------- by name ---
def test_load_dataset_by_name(tmp_path):
    write_fashion_folder(tmp_path, n_train=8)
    loaded = data.load_dataset("fashion-mnist", data_dir=tmp_path, download_missing=False)
    train, test, description, mean, std = loaded
    assert len(train) == 8 and "Fashion-MNIST" in description
    assert mean == data.FASHION_MNIST_MEAN and std == data.FASHION_MNIST_STD
    synthetic = data.load_dataset("synthetic", synthetic_sizes=(20, 10))
    assert (len(synthetic.train), len(synthetic.test)) == (20, 10) and len(synthetic.mean) == 3
    np.testing.assert_allclose(synthetic.mean, data.channel_stats(synthetic.train.images)[0])
    with pytest.raises(DatasetError):
        data.load_dataset("cifar10", data_dir=tmp_path / "none", download_missing=False)
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        data.load_dataset("mnist")


def test_published_statistics_are_those_of_the_padded_images():
    """FASHION_MNIST_MEAN/STD describe the 32x32 padded images: for 28x28 statistics m, s (the published
    0.2860, 0.3530), padding with 1024 - 784 zeros gives mean m * 784/1024 and the matching spread."""
    m28, s28 = 0.2860, 0.3530
    f = 784 / 1024
    mean32 = m28 * f
    std32 = np.sqrt(f * (s28 ** 2 + m28 ** 2) - mean32 ** 2)
    assert data.FASHION_MNIST_MEAN == (round(mean32, 4),) * 3
    assert data.FASHION_MNIST_STD == (round(std32, 4),) * 3
