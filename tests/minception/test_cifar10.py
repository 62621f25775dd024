"""CIFAR-10 reader and downloader, on tiny files written here in CIFAR's exact format. Never touches the network."""
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest

from minception.data import cifar10
from minception.data.cifar10 import (ChecksumError, CorruptDataset, DatasetError, DatasetUnavailable,
                                     load_cifar10, read_cifar10)

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = {f"data_batch_{i}": 3 for i in range(1, 6)} | {"test_batch": 4}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a URL fails the test; no environment variable leaks in."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(cifar10, "urlopen", refuse)
    monkeypatch.delenv("MINCEPTION_DATA", raising=False)


def write_cifar_folder(folder, seed=0):
    """Write data_batch_1..5, test_batch, batches.meta as Python-2-style pickles; return the raw rows written."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    rows = {}
    for name, n in PER_BATCH.items():
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(d, f, protocol=2)
        rows[name] = (data, labels)
    meta = {b"num_cases_per_batch": 3, b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072}
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return rows


def make_archive(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


@pytest.fixture
def cifar(tmp_path):
    folder = tmp_path / "copy" / "cifar-10-batches-py"
    rows = write_cifar_folder(folder)
    archive = make_archive(folder, tmp_path / "cifar-10-python.tar.gz")
    return folder, archive, rows


def check_sets(train, test, rows):
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (4, 3, 32, 32)
    assert train.labels.dtype == np.int64 and test.labels.dtype == np.int64
    assert train.class_names == tuple(NAMES) and test.class_names == tuple(NAMES)
    data = np.concatenate([rows[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((rows[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    np.testing.assert_array_equal(train.labels, labels)
    np.testing.assert_array_equal(test.labels, rows["test_batch"][1])
    # row layout: 1024 red values, then 1024 green, then 1024 blue, each plane row-major 32x32
    for n, c, y, x in [(0, 0, 0, 0), (4, 0, 1, 2), (7, 1, 31, 0), (14, 2, 5, 31)]:
        assert train.images[n, c, y, x] == data[n, c * 1024 + y * 32 + x]
    np.testing.assert_array_equal(train.images.reshape(15, -1), data)
    np.testing.assert_array_equal(test.images.reshape(4, -1), rows["test_batch"][0])


def test_read_folder(cifar):
    folder, _, rows = cifar
    check_sets(*read_cifar10(str(folder)), rows)


def test_read_archive(cifar):
    _, archive, rows = cifar
    check_sets(*read_cifar10(str(archive)), rows)


def test_load_finds_folder_parent_and_archive(cifar, tmp_path):
    folder, archive, rows = cifar
    for place in (folder, folder.parent, archive, tmp_path):      # tmp_path holds only the archive
        check_sets(*load_cifar10(data_dir=str(place), download_missing=False), rows)


def test_env_var_lookup_and_data_dir_precedence(cifar, tmp_path, monkeypatch):
    folder, _, rows = cifar
    monkeypatch.setenv("MINCEPTION_DATA", str(folder.parent))
    check_sets(*load_cifar10(download_missing=False), rows)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailable, match="empty"):
        load_cifar10(data_dir=str(empty), download_missing=False)


def test_not_found_offline_message(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        load_cifar10(data_dir=str(tmp_path), download_missing=False)
    msg = str(info.value)
    assert str(tmp_path) in msg and "MINCEPTION_DATA" in msg and "\n" not in msg


def test_missing_batch_file_named(cifar):
    folder, _, _ = cifar
    os.remove(folder / "data_batch_3")
    with pytest.raises(CorruptDataset, match="data_batch_3"):
        read_cifar10(str(folder))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_corrupt_pickle_named(cifar, damage):
    folder, _, _ = cifar
    path = folder / "data_batch_2"
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[:len(raw) // 2], "garbage": b"\x80\x02not a pickle at all",
                      "empty": b""}[damage])
    with pytest.raises(CorruptDataset, match="data_batch_2"):
        read_cifar10(str(folder))


def test_wrong_content_named(cifar):
    folder, _, _ = cifar
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(CorruptDataset, match=r"test_batch.*\(N, 3072\)"):
        read_cifar10(str(folder))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, f, protocol=2)
    with pytest.raises(CorruptDataset, match="test_batch.*0..9"):
        read_cifar10(str(folder))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0]}, f, protocol=2)
    with pytest.raises(CorruptDataset, match="test_batch.*'data'"):
        read_cifar10(str(folder))


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_with_foreign_objects_refused(cifar):
    folder, _, _ = cifar
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [_Evil()]}, f, protocol=2)
    with pytest.raises(CorruptDataset, match="batches.meta.*refusing"):
        read_cifar10(str(folder))


def test_truncated_archive_named(cifar, tmp_path):
    _, archive, _ = cifar
    raw = archive.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CorruptDataset, match="bad.tar.gz"):
        read_cifar10(str(bad))


# -------------------------------------------------------------------------------------------- download ---
class FakeResponse(io.BytesIO):
    def __init__(self, payload, length=None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}


def serve(monkeypatch, payload, length=None, calls=None):
    def fake_urlopen(url, timeout=None):
        assert url == cifar10.URL and timeout is not None
        if calls is not None:
            calls.append(url)
        return FakeResponse(payload, length)
    monkeypatch.setattr(cifar10, "urlopen", fake_urlopen)


def test_download_checksum_extract_and_read(cifar, tmp_path, monkeypatch):
    _, archive, rows = cifar
    payload = archive.read_bytes()
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(payload).hexdigest())
    calls = []
    serve(monkeypatch, payload, calls=calls)
    root = tmp_path / "fresh"
    check_sets(*load_cifar10(data_dir=str(root), progress=False), rows)
    assert calls == [cifar10.URL]
    assert (root / "cifar-10-python.tar.gz").read_bytes() == payload
    assert sorted(os.listdir(root / "cifar-10-batches-py")) == sorted(list(PER_BATCH) + ["batches.meta"])
    assert not [n for n in os.listdir(root) if n.endswith(".part")]
    # a second load reads the unpacked folder and does not download again
    check_sets(*load_cifar10(data_dir=str(root), progress=False), rows)
    assert len(calls) == 1


def test_download_wrong_checksum(cifar, tmp_path, monkeypatch):
    _, archive, _ = cifar
    serve(monkeypatch, archive.read_bytes())          # the real MD5 of the official archive cannot match
    root = tmp_path / "fresh"
    with pytest.raises(ChecksumError, match=cifar10.MD5) as info:
        load_cifar10(data_dir=str(root), progress=False)
    assert isinstance(info.value, DatasetUnavailable)
    assert os.listdir(root) == []                      # nothing partial left behind


def test_download_offline_and_broken_transfer(cifar, tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")
    monkeypatch.setattr(cifar10, "urlopen", offline)
    with pytest.raises(DatasetUnavailable, match="name resolution") as info:
        load_cifar10(data_dir=str(tmp_path / "a"), progress=False)
    assert "\n" not in str(info.value) and isinstance(info.value, DatasetError)
    _, archive, _ = cifar
    payload = archive.read_bytes()
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(payload).hexdigest())
    serve(monkeypatch, payload[:100], length=len(payload))
    with pytest.raises(DatasetUnavailable, match="broke off"):
        load_cifar10(data_dir=str(tmp_path / "b"), progress=False)
    assert os.listdir(tmp_path / "b") == []


def test_download_function_writes_atomically(tmp_path, monkeypatch):
    payload = b"x" * 5000
    serve(monkeypatch, payload)
    dest = tmp_path / "sub" / "file.bin"
    cifar10.download(cifar10.URL, str(dest), md5=hashlib.md5(payload).hexdigest(), progress=False, chunk=1024)
    assert dest.read_bytes() == payload
    assert cifar10.md5_of(str(dest)) == hashlib.md5(payload).hexdigest()
