"""Weights files (``Module.save`` / ``Module.load``) and the ``.npz`` reader under them: atomic writes, and only
the library's own errors for files that are missing, truncated, corrupt or hostile (issue 12, items 7 and 8)."""
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minception import nn
from minception.files import NpzError, atomic_write, read_npz, remove_stale_temp_files, write_npz
from minception.files import npz as npz_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_net(seed=0):
    nn.init.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.1), nn.Linear(5, 3))


# ------------------------------------------------------------------------- Module.save is atomic (item 7) ---
def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    small_net(0).save(path)
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 the first bytes of an archive")
        raise OSError(27, "File too large")

    monkeypatch.setattr(npz_module.np, "savez", crash)
    with pytest.raises(OSError, match="too large"):
        small_net(1).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs the resource module (RLIMIT_FSIZE)")
def test_a_save_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    """The issue's repro: ``ulimit -f`` makes the write fail part-way (Python ignores SIGXFSZ, so it is EFBIG)."""
    path = tmp_path / "model.npz"
    net = small_net(0)
    net.save(path)
    before = path.read_bytes()
    script = (
        "import resource, sys\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from minception import nn\n"
        "nn.init.manual_seed(1)\n"
        "net = nn.Sequential(nn.Linear(600, 500))\n"        # about 1.2 MB, over the limit below
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    net.save({str(path)!r})\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "refused" in out.stdout, out.stderr
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]
    small_net(5).load(path)                             # still a complete, loadable file


# ------------------------------------------------------------------- Module.load on bad files (item 8) ---
@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "pickle"])
def test_loading_a_damaged_weights_file_raises_the_librarys_error_naming_it(tmp_path, damage):
    path = tmp_path / "weights.npz"
    net = small_net(0)
    net.save(path)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"this is not a zip archive at all")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:                                               # an object array: numpy would need pickle to read it
        np.savez(path, **{"0.weight": np.array([{"a": 1}], dtype=object)})
    target = small_net(1)
    before = target.state_dict()
    with pytest.raises(nn.StateFileError, match="weights.npz") as info:
        target.load(path)
    assert isinstance(info.value, ValueError)
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_loading_a_missing_weights_file_names_it(tmp_path):
    with pytest.raises(nn.StateFileError, match="nope.npz"):
        small_net(0).load(tmp_path / "nope.npz")


def test_save_and_load_round_trip_the_dropout_stream(tmp_path):
    net = small_net(0)
    net.train()
    from autograd import Tensor
    net(Tensor(np.ones((2, 6), np.float32)))
    net.save(tmp_path / "w.npz")
    other = small_net(3)
    other.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(other[2].rng_state, net[2].rng_state)


# ------------------------------------------------------------------------------- the .npz reader itself ---
def _archive(members):
    """Bytes of a zip with the given {name: bytes} members (stored)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(shape, dtype="<f4", data=b""):
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


@pytest.mark.parametrize("members, match", [
    ({"a.npy": _npy((2 ** 40,))}, "header says"),                     # claims 4 TB: never allocated
    ({"a.npy": _npy((3,), data=b"\0" * 8)}, "header says"),           # 8 bytes where 12 are needed
    ({"a.npy": _npy((-1,), data=b"")}, "shape"),
    ({"a.npy": _npy((1,), dtype="|O", data=b"\0" * 8)}, "dtype"),
    ({"a.npy": _npy((1,), dtype="<c16", data=b"\0" * 16)}, "dtype"),
    ({"a.txt": b"hello"}, "not an .npy"),
    ({"a.npy": b"\x93NUMPY\x09\x00rest"}, "version"),
])
def test_the_reader_refuses_what_numpy_would_trust(tmp_path, members, match):
    path = tmp_path / "x.npz"
    path.write_bytes(_archive(members))
    with pytest.raises(NpzError, match=match):
        read_npz(path)


def test_the_reader_reads_what_write_npz_wrote(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b/c": np.array(7, dtype=np.int64),
              "f": np.asfortranarray(np.arange(6.0).reshape(3, 2)), "t": np.array([True, False])}
    write_npz(tmp_path / "x.npz", arrays)
    back = read_npz(tmp_path / "x.npz")
    assert back.keys() == arrays.keys()
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype and back[k].flags.writeable


def test_remove_stale_temp_files_touches_only_the_named_files(tmp_path):
    for name in ("last.npz.0a1b2c3d.tmp", "last.npz", "last.npz.tmp", "lastXnpz.1.tmp", "notes.tmp"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temp_files(tmp_path, ["last.npz"])
    assert [os.path.basename(p) for p in removed] == ["last.npz.0a1b2c3d.tmp"]
    assert sorted(os.listdir(tmp_path)) == ["last.npz", "last.npz.tmp", "lastXnpz.1.tmp", "notes.tmp"]


def test_atomic_write_gives_new_files_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f", lambda f: f.write(b"x"))
    finally:
        os.umask(mask)
    assert (os.stat(tmp_path / "f").st_mode & 0o777) == 0o644
