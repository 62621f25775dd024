"""The CIFAR-10 reader on hostile copies: pickles that ask for uninitialised memory, crash the interpreter or fill
memory, and files or archives far larger than CIFAR-10. Each gives CorruptDataset naming the file."""
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tracemalloc

import numpy as np
import pytest

from minception.data import cifar10
from minception.data.cifar10 import CorruptDataset, read_cifar10
from pickle_writer import Build, Call, Global, Raw, dumps, opcodes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROW = 3072
RECONSTRUCT = Global("numpy.core.multiarray", "_reconstruct")
NDARRAY = Global("numpy", "ndarray")


def u1():
    return Build(Call(Global("numpy", "dtype"), ("u1", False, True)), (3, "|", None, None, None, -1, -1, 0))


def array(shape, raw, dtype=None, reconstruct_args=None):
    """A NumPy array as NumPy pickles it: _reconstruct(ndarray, (0,), b'b'), then BUILD with the real state."""
    empty = Call(RECONSTRUCT, reconstruct_args or (NDARRAY, (0,), b"b"))
    return Build(empty, (1, tuple(shape), dtype or u1(), False, raw))


def parse(obj):
    return cifar10._parse_batch(dumps(obj), "batch")


def test_the_writer_matches_numpy(tmp_path):
    rows = np.arange(2 * ROW, dtype=np.uint8).reshape(2, ROW)
    images, labels = parse({b"data": array((2, ROW), rows.tobytes()), b"labels": [3, 9]})
    np.testing.assert_array_equal(images.reshape(2, ROW), rows)
    assert labels.tolist() == [3, 9]


@pytest.mark.parametrize("data, fragment", [
    # _reconstruct asked for 40 rows directly: NumPy would return uninitialised memory (heap contents).
    (Call(RECONSTRUCT, (NDARRAY, (40, ROW), b"B")), "_reconstruct must be called as NumPy pickles an array"),
    (Call(NDARRAY, ((40, ROW), "u1")), "not callable"),                 # ndarray(shape): uninitialised too
    (array((2, ROW), bytes(ROW)), "malformed pickle"),                  # fewer bytes than the shape needs
    (array((1, ROW), [0] * ROW, Build(Call(Global("numpy", "dtype"), ("O", False, True)),
                                      (3, "|", None, None, None, -1, -1, 0))), "numpy.dtype is allowed for"),
    (array((1, ROW), bytes(ROW), Build(Call(Global("numpy", "dtype"), ("u1", False, True)),
                                       (3, "|", ("a",), {"a": 1}, None, -1, -1, 0))), "dtype state"),
    (Build(Call(Global("numpy", "dtype"), ("u1", False, True)), {"x": 1}), "dtype state"),
    (Call(Global("numpy", "dtype"), ("u1", {"deep": 1}, True)), "numpy.dtype is allowed for"),
    (Call(Global("_codecs", "encode"), ("x", "zlib")), "_codecs.encode is allowed for"),
    (Call(Global("os", "system"), ("echo should never run",)), "refusing to load os.system"),
])
def test_hostile_arrays_are_refused(data, fragment):
    with pytest.raises(CorruptDataset, match="batch: not a readable CIFAR-10 pickle") as e:
        parse({b"data": data, b"labels": [0] * 40})
    assert fragment in str(e.value), str(e.value)


def test_a_deeply_nested_dict_key_does_not_crash_the_interpreter(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(dumps(Raw(b"}" + opcodes(Raw(b"N" + b"\x85" * 1_000_000)) + b"Ns")))   # {((...),): None}
    code = ("from minception.data.cifar10 import _parse_batch, CorruptDataset\n"
            f"try:\n    _parse_batch(open({str(path)!r}, 'rb').read(), 'f')\n"
            "except CorruptDataset as e:\n    print('refused:', e)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "dict keys must be plain values" in result.stdout, \
        (result.returncode, result.stderr[-500:])


def test_labels_that_share_lists_do_not_fill_memory():
    # 3000 references to one list of 3000 zeros: a few KB of pickle, 9 million ints for np.asarray.
    inner = Raw(b"](" + b"K\x00" * 3000 + b"eq\x00")              # [0, ..., 0], memoised as 0
    labels = Raw(b"](" + opcodes(inner) + b"h\x00" * 2999 + b"e")
    raw = dumps({b"data": array((1, ROW), bytes(ROW)), b"labels": labels})
    assert len(raw) < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(CorruptDataset):
            cifar10._parse_batch(raw, "batch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak


@pytest.mark.parametrize("labels, fragment", [
    ([0, 1.5], "'labels' must be a list of 2 integers"),
    ([0, [1]], "'labels' must be a list of 2 integers"),
    ({0: 1}, "'labels' must be a list of 2 integers"),
    ([0, 2 ** 80], "labels outside 0..9"),
    ([0, -1], "labels outside 0..9"),
    ([0], "found 1"),
])
def test_bad_labels(labels, fragment):
    with pytest.raises(CorruptDataset, match="batch: ") as e:
        parse({b"data": array((2, ROW), bytes(2 * ROW)), b"labels": labels})
    assert fragment in str(e.value), str(e.value)


@pytest.mark.parametrize("names, fragment", [
    (5, "'label_names' must be a list of 10 strings"),
    ([b"a", 3] + [b"x"] * 8, "'label_names' must be a list of 10 strings"),
    ([b"a"] * 9, "expected 10 label names"),
])
def test_bad_meta(names, fragment):
    with pytest.raises(CorruptDataset, match=fragment):
        cifar10._parse_meta(dumps({b"label_names": names}), "meta")


def test_oversized_and_unreadable_files_are_refused_before_reading(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}, protocol=2))
    with open(folder / "data_batch_1", "wb") as f:                  # a sparse 1 GB file: nothing is read
        f.truncate(1 << 30)
    with pytest.raises(CorruptDataset, match=r"data_batch_1: 1073741824 bytes, more than a CIFAR-10 file"):
        read_cifar10(str(folder))
    os.remove(folder / "data_batch_1")
    (folder / "data_batch_1").mkdir()
    with pytest.raises(CorruptDataset, match="data_batch_1' is a directory, not a regular file"):
        read_cifar10(str(folder))


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, size in members:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_archives_that_cannot_be_cifar_are_refused(tmp_path):
    big = _tar(tmp_path / "big.tar.gz", [("data_batch_1", cifar10.MAX_FILE_BYTES + 1)])   # compresses to ~70 KB
    with pytest.raises(CorruptDataset, match="data_batch_1 is 67108865 bytes"):
        read_cifar10(str(big))
    many = _tar(tmp_path / "many.tar.gz", [(f"junk{i}", 0) for i in range(100)])
    with pytest.raises(CorruptDataset, match="more than 64 entries"):
        read_cifar10(str(many))
    small = _tar(tmp_path / "small.tar.gz", [("data_batch_1", 50_000)]).read_bytes()
    for n, damaged in enumerate([small[:len(small) // 2], b"\x1f\x8b" + bytes(100), b"not gzip at all"]):
        path = tmp_path / f"damaged{n}.tar.gz"
        path.write_bytes(damaged)
        with pytest.raises(CorruptDataset, match="cannot read the archive"):
            read_cifar10(str(path))
