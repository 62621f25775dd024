"""The data-set readers (IDX / Fashion-MNIST, CIFAR-10) on hostile files, each case in a child process with a
memory limit and a time limit (``hostile.run_limited``), so that a regression is one failed test, not a dead run.

Each case must end in the library's own error (``CorruptDataset``) naming the file and what is wrong: never a
hang (a FIFO), never memory far beyond the file's size (a gzip bomb, ``/dev/zero``), never a traceback from
formatting the message (an integer of 5,000 digits, 255 dimensions).
"""
import os
import pickle
import socket
import struct
import zlib

import numpy as np
import pytest

from hostile import run_limited

MEMORY_MB = 1024
SECONDS = 60

READ_IDX = """
import os
from minception.data.idx import read_idx
read_idx(os.environ["HOSTILE_PATH"])
"""
READ_CIFAR = """
import os
from minception.data.cifar10 import read_cifar10
read_cifar10(os.environ["HOSTILE_PATH"])
"""


def refused(code, path, fragments, seconds=SECONDS, memory_mb=MEMORY_MB):
    """Run ``code`` on ``path`` under the limits; it must raise CorruptDataset whose message names ``path`` and
    holds every fragment."""
    result = run_limited(code, memory_mb=memory_mb, seconds=seconds, env={"HOSTILE_PATH": str(path)})
    assert result.outcome == "raised" and result.error_type == "CorruptDataset", result.report()
    for fragment in (os.path.basename(str(path)),) + tuple(fragments):
        assert fragment in result.message, result.report()
    return result.message


#: what the message says of each. open(2) itself refuses a Unix socket (ENXIO, "No such device or address")
#: before fstat could name it, so its message is the system's.
KINDS = {"fifo": ["a FIFO", "not a regular file"], "directory": ["a directory, not a regular file"],
         "dev-zero": ["a character device, not a regular file"], "socket": ["cannot open"]}


def make(path, kind):
    """Put a FIFO, a directory, a link to /dev/zero or a listening Unix socket at ``path``; returns the socket."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        server = socket.socket(socket.AF_UNIX)
        try:
            server.bind(str(path))
        except OSError as e:                         # a socket path is limited to about 100 characters
            server.close()
            pytest.skip(f"cannot bind a Unix socket at {path}: {e}")
        return server
    return None


def idx_header(code, shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def gzip_of_zeros(path, header, zeros):
    """A gzip file of ``header`` then ``zeros`` zero bytes, compressed as it is written (no big buffer here)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)              # wbits 31: the gzip container
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(packer.compress(header))
        for start in range(0, zeros, len(block)):
            f.write(packer.compress(block[:min(len(block), zeros - start)]))
        f.write(packer.flush())
    return path


# ------------------------------------------------------------------------------------------------ IDX ---
def test_a_gzip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    # About 1 MB of gzip announcing (and holding) 1,369,000 x 28 x 28 zeros: 1 GiB of images.
    shape = (1_369_000, 28, 28)
    path = gzip_of_zeros(tmp_path / "train-images-idx3-ubyte.gz", idx_header(0x08, shape), int(np.prod(shape)))
    assert os.path.getsize(path) < 2 << 20
    refused(READ_IDX, path, ["1369000x28x28 uint8", "gzip"])


def test_a_header_claiming_more_than_the_file_holds_is_refused_before_reading(tmp_path):
    # A sparse file of 1000 MB whose header claims 1073 MB: nothing of it needs to be read to know it is wrong.
    path = tmp_path / "t10k-images-idx3-ubyte"
    with open(path, "wb") as f:
        f.write(idx_header(0x08, (1_369_000, 28, 28)))
        f.truncate(1000 << 20)
    refused(READ_IDX, path, ["1369000x28x28 uint8", "truncated"], memory_mb=512)


def test_an_idx_file_of_255_dimensions(tmp_path):
    path = tmp_path / "many-dims-idx"
    path.write_bytes(idx_header(0x08, (1,) * 255) + b"\x07")
    refused(READ_IDX, path, ["255 dimensions"])


def test_an_idx_file_of_255_huge_dimensions_says_so_in_one_short_line(tmp_path):
    path = tmp_path / "many-huge-dims-idx"
    path.write_bytes(idx_header(0x08, (0xFFFFFFFF,) * 255))
    message = refused(READ_IDX, path, ["255 dimensions"])
    assert len(message) < 300, message


@pytest.mark.parametrize("kind", KINDS)
def test_an_idx_path_that_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / f"labels-{kind}"
    server = make(path, kind)
    try:
        refused(READ_IDX, path, KINDS[kind], seconds=20)
    finally:
        if server is not None:
            server.close()


def test_fashion_mnist_names_a_fifo_in_place_of_a_file(tmp_path):
    """A FIFO in the data folder is refused, not taken for a missing file and not waited on."""
    from minception.data.idx import write_idx
    for name, array in (("train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8)),
                        ("t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8)),
                        ("t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))):
        write_idx(tmp_path / name, array)
    os.mkfifo(tmp_path / "train-labels-idx1-ubyte")
    code = "import os\nfrom minception.data.fashion_mnist import read_fashion_mnist\n" \
           "read_fashion_mnist(os.environ['HOSTILE_PATH'])\n"
    result = run_limited(code, memory_mb=MEMORY_MB, seconds=20, env={"HOSTILE_PATH": str(tmp_path)})
    assert result.outcome == "raised" and result.error_type == "CorruptDataset", result.report()
    assert "train-labels-idx1-ubyte" in result.message and "FIFO" in result.message, result.report()


# -------------------------------------------------------------------------------------------- CIFAR-10 ---
def cifar_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}, protocol=2))
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_a_cifar_batch_that_is_not_a_regular_file(tmp_path, kind):
    folder = cifar_folder(tmp_path)
    server = make(folder / "data_batch_1", kind)
    try:
        refused(READ_CIFAR, folder, KINDS[kind] + ["data_batch_1"], seconds=20)
    finally:
        if server is not None:
            server.close()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_cifar_archive_that_is_not_a_regular_file(tmp_path, kind):
    archive = tmp_path / "cifar-10-python.tar.gz"
    make(archive, kind)
    refused(READ_CIFAR, archive, KINDS[kind], seconds=20)


def one_row_batch(labels, extra=None):
    d = {b"data": np.zeros((len(labels), 3072), np.uint8), b"labels": labels}
    d.update(extra or {})
    return pickle.dumps(d, protocol=2)


def test_a_cifar_label_of_5000_digits(tmp_path):
    folder = cifar_folder(tmp_path)
    (folder / "data_batch_1").write_bytes(one_row_batch([10 ** 5000]))
    refused(READ_CIFAR, folder, ["labels outside 0..9", "digits"])


def test_a_cifar_dict_key_of_5000_digits(tmp_path):
    folder = cifar_folder(tmp_path)
    raw = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), 10 ** 5000: 1}, protocol=2)
    (folder / "data_batch_1").write_bytes(raw)
    refused(READ_CIFAR, folder, ["no 'labels' entry", "digits"])


def test_a_cifar_archive_that_expands_far_beyond_its_size(tmp_path):
    # 60 MB of zeros in place of a batch: gzip packs it into about 60 KB, and no real CIFAR-10 archive does that.
    import tarfile

    class Zeros:
        def __init__(self, n):
            self.left = n

        def read(self, n=-1):
            n = self.left if n < 0 else min(n, self.left)
            self.left -= n
            return bytes(n)

    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("batches.meta", "data_batch_1"):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = 60 << 20
            tar.addfile(info, Zeros(info.size))
    refused(READ_CIFAR, archive, ["expand", "gzip"])
