"""Weight files and checkpoints built to hurt the reader (issue 21, items 1-3 and 12): decompression bombs,
compression methods no torch file uses, a safetensors header of empty objects, an .npz that honestly expands a
thousandfold, paths that are not regular files, and an integer too long to print.

Each case that could take the machine down runs in a child process with an address-space limit and a time limit
(``hostile.run_limited``): on a reader that regresses, the test fails with "memory" or "timeout" instead of
taking CI with it. Every case must end in the library's own error, naming the file.
"""
import io
import json
import os
import socket
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from hostile import run_limited
from minception.pretrained import WeightsError, read_weights
from minception.pretrained.safetensors import SafetensorsError, read_header
from pickle_writer import Raw, dumps, state_dict, storage, tensor, torch_zip

MEMORY_MB = 1024
SECONDS = 60
GiB = 1 << 30


def expect_refused(code, path, error, *fragments, seconds=SECONDS):
    """Run ``code`` (which reads ``os.environ['HOSTILE_PATH']``) in a limited child; it must raise ``error``
    naming ``path`` and each fragment."""
    result = run_limited(code, memory_mb=MEMORY_MB, seconds=seconds, env={"HOSTILE_PATH": str(path)})
    assert result.outcome == "raised" and result.error_type == error, result.report()
    for fragment in (str(path),) + fragments:
        assert fragment in result.message, result.report()
    return result.message


READ_WEIGHTS = "import os; from minception.pretrained import read_weights; read_weights(os.environ['HOSTILE_PATH'])"
MODULE_LOAD = """
import os
from minception import nn
nn.Linear(2, 2).load(os.environ['HOSTILE_PATH'])
"""
LOAD_CHECKPOINT = ("import os; from minception.train.checkpoint import load_checkpoint; "
                   "load_checkpoint(os.environ['HOSTILE_PATH'])")


# ------------------------------------------------------------------------------------ zip, by hand ---
def zip_bytes(members):
    """A zip archive whose headers say what the test wants: ``members`` is a list of
    ``(name, method, payload, claimed_size, crc)``; ``payload`` is written as the member's compressed bytes."""
    out, central = io.BytesIO(), []
    for name, method, payload, claimed, crc in members:
        offset, raw_name = out.tell(), name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload), claimed,
                              len(raw_name), 0) + raw_name + payload)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, len(payload),
                                   claimed, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
    start, directory = out.tell(), b"".join(central)
    out.write(directory)
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0))
    return out.getvalue()


def stored(name, data):
    return name, zipfile.ZIP_STORED, data, len(data), zlib.crc32(data)


def deflated_zeros(prefix, zeros):
    """Raw deflate of ``prefix`` + ``zeros`` zero bytes, made a MiB at a time; returns (payload, size, crc)."""
    packer, chunk, parts, crc = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(1 << 20), [], zlib.crc32(prefix)
    parts.append(packer.compress(prefix))
    for _ in range(zeros // len(chunk)):
        parts.append(packer.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(packer.flush())
    return b"".join(parts), len(prefix) + zeros, crc


@pytest.fixture(scope="module")
def gigabyte_of_zeros():
    """1 GiB of zeros in about 1 MB of deflate (made once: ~2 s)."""
    return deflated_zeros(b"", GiB)


def pth_members(numel=25):
    pkl = dumps(state_dict({"w": tensor(storage("FloatStorage", "0", numel), 0, (numel,), (1,))}))
    return [stored("archive/data.pkl", pkl), stored("archive/byteorder", b"little")]


# ---------------------------------------------------------------------------------- item 1: memory ---
def test_a_pth_deflate_bomb_whose_header_claims_100_bytes_stops_at_100(tmp_path, gigabyte_of_zeros):
    # before: zipfile asked zlib for up to 2 GiB in one call, 1 MB -> 1 GiB resident, then MemoryError
    payload, _, crc = gigabyte_of_zeros
    path = tmp_path / "bomb.pth"
    path.write_bytes(zip_bytes(pth_members() + [("archive/data/0", zipfile.ZIP_DEFLATED, payload, 100, crc)]))
    expect_refused(READ_WEIGHTS, path, "WeightsError")


@pytest.mark.parametrize("method, name", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA")])
def test_pth_members_compressed_with_bzip2_or_lzma_are_refused(tmp_path, method, name):
    # a well-formed archive that zipfile reads happily: before, it loaded
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for member, _, data, _, _ in pth_members(numel=2):
            z.writestr(member, data)
        z.writestr("archive/data/0", np.zeros(2, np.float32).tobytes())
    path = tmp_path / f"{name}.pth"
    path.write_bytes(buf.getvalue())
    message = expect_refused(READ_WEIGHTS, path, "WeightsError", "member archive/", name)
    assert "stored or deflate" in message


def test_a_deflated_pth_still_loads(tmp_path):
    # zip writers may deflate; only the methods torch files never use are refused
    raw = torch_zip(dumps(state_dict({"w": tensor(storage("FloatStorage", "0", 4), 0, (4,), (1,))})),
                    {"0": np.arange(4, dtype=np.float32).tobytes()})
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    path = tmp_path / "deflated.pth"
    path.write_bytes(buf.getvalue())
    np.testing.assert_array_equal(read_weights(path)["w"], np.arange(4, dtype=np.float32))


def test_an_npz_that_honestly_expands_a_thousandfold_is_refused_before_decompressing(tmp_path, gigabyte_of_zeros):
    # before: each member was checked against deflate's largest ratio only, and 1 MB took 2.1 GB
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (GiB,)})
    payload, size, crc = deflated_zeros(header.getvalue(), GiB)
    path = tmp_path / "zeros.npz"
    path.write_bytes(zip_bytes([("w.npy", zipfile.ZIP_DEFLATED, payload, size, crc)]))
    for code, error in ((READ_WEIGHTS, "WeightsError"), (MODULE_LOAD, "StateFileError"),
                        (LOAD_CHECKPOINT, "CheckpointError")):
        expect_refused(code, path, error, "decompression bomb")


def test_a_small_npz_of_zeros_still_loads(tmp_path):
    # zeros compress ~1000x; a small file of them (a zero-initialized test model) is within the slack
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, w=np.zeros(4 << 20, np.float32))
    assert os.path.getsize(path) < 100_000
    assert read_weights(path)["w"].shape == (4 << 20,)


def test_a_checkpoint_whose_tree_is_compressed_is_refused_before_it_is_parsed(tmp_path):
    # JSON parses to ~21 bytes a character ("[]," is a list); stored, a character takes 4 bytes of the file, but
    # compressed, 10 M characters fit in ~40 KB. save_checkpoint stores the tree, so only a stored one is read.
    from minception.train.checkpoint import CheckpointError, TREE_KEY, load_checkpoint
    path = tmp_path / "tree.npz"
    np.savez_compressed(path, **{TREE_KEY: np.array("[" + "[]," * (10 ** 7 // 3) + "[]]")})
    assert os.path.getsize(path) < 1 << 20
    with pytest.raises(CheckpointError, match="must be stored") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def write_empty_objects_header(path, size):
    """A safetensors file whose header is ``{"a0":{},"a1":{},...}``, about ``size`` bytes long."""
    count = size // len('"a0000000":{},')
    text = ("{" + ",".join(f'"a{i:07d}":{{}}' for i in range(count)) + "}").encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    return len(text)


def test_a_95_mb_safetensors_header_of_empty_objects_is_refused_by_its_length(tmp_path):
    # before: 99 MB of them became 2.5 GB of dicts; 95 MB pass the old 100 MB cap and exceed 1 GB
    path = tmp_path / "objects.safetensors"
    write_empty_objects_header(path, 95 << 20)
    expect_refused(READ_WEIGHTS, path, "WeightsError", "header length")


def test_a_header_of_empty_objects_under_the_cap_stops_at_the_second(tmp_path):
    # below the length cap the parser stops at the second object that is not a tensor entry, having built little
    path = tmp_path / "objects.safetensors"
    length = write_empty_objects_header(path, 7 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(SafetensorsError, match="lack the fields") as info:
            read_header(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 4 * length, f"{peak:,} bytes traced for a header of {length:,}"      # before: ~25x


def test_a_safetensors_header_longer_than_the_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 6 << 20) + b"{}")
    with pytest.raises(SafetensorsError, match="does not fit in a file of 10 bytes"):
        read_header(path)


# ------------------------------------------------------------------------- item 2: regular files only ---
def fifo(tmp_path, name):
    path = tmp_path / name
    os.mkfifo(path)
    return path, "FIFO"


def dev_zero(tmp_path, name):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    path = tmp_path / name
    os.symlink("/dev/zero", path)
    return path, "character device"


def directory(tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    return path, "directory"


def unix_socket(tmp_path, name):
    path = tmp_path / name
    if len(str(path)) > 100:
        pytest.skip("the temporary folder's path is too long for a socket")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()                                 # the socket file stays
    return path, ""                              # opening one fails ("No such device or address")


NOT_REGULAR = [fifo, dev_zero, directory, unix_socket]
if not hasattr(os, "mkfifo") or not hasattr(socket, "AF_UNIX"):
    NOT_REGULAR = [directory]


@pytest.mark.parametrize("make", NOT_REGULAR, ids=lambda f: f.__name__)
@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".pth"])
def test_read_weights_refuses_what_is_not_a_regular_file(tmp_path, make, suffix):
    path, kind = make(tmp_path, "w" + suffix)
    expect_refused(READ_WEIGHTS, path, "WeightsError", kind, seconds=20)


@pytest.mark.parametrize("make", NOT_REGULAR, ids=lambda f: f.__name__)
@pytest.mark.parametrize("code, error", [(MODULE_LOAD, "StateFileError"), (LOAD_CHECKPOINT, "CheckpointError")],
                         ids=["Module.load", "load_checkpoint"])
def test_state_files_and_checkpoints_refuse_what_is_not_a_regular_file(tmp_path, make, code, error):
    path, kind = make(tmp_path, "last.npz")
    expect_refused(code, path, error, kind, seconds=20)


# ------------------------------------------------------------------- item 3: messages that cannot fail ---
def test_a_5000_digit_integer_in_a_pickle_is_described_not_printed(tmp_path):
    # before: formatting it raised ValueError inside the message, reported as "cannot read the zip archive"
    huge = (-10 ** 5000).to_bytes(2100, "little", signed=True)
    offset = Raw(b"\x8b" + struct.pack("<i", len(huge)) + huge)          # LONG4: -10**5000
    pkl = dumps(state_dict({"w": tensor(storage("FloatStorage", "0", 6), offset, (6,), (1,))}))
    path = tmp_path / "long.pth"
    path.write_bytes(torch_zip(pkl, {"0": bytes(24)}))
    with pytest.raises(WeightsError) as info:
        read_weights(path)
    message = str(info.value)
    assert str(path) in message and "storage offset" in message and "digits" in message, message
    assert len(message) < 300 + len(str(path)), message


def test_a_long_key_in_a_checkpoint_tree_is_shortened(tmp_path):
    from minception.train.checkpoint import CheckpointError, TREE_KEY, load_checkpoint
    tree = {"format": "minception-checkpoint", "format_version": 1, "state": {"__array__": "k" * 100_000}}
    path = tmp_path / "c.npz"
    np.savez(path, **{TREE_KEY: np.array(json.dumps(tree))})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert len(str(info.value)) < 200 + len(str(path)), str(info.value)[:300]


def test_restricted_pickle_describe_cannot_fail():
    from minception.restricted_pickle import describe
    assert "digits" in describe(10 ** 5000)
    assert len(describe([[["x" * 10 ** 6]] * 10 ** 5])) < 1000
