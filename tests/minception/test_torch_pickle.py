"""The .pth reader on hostile files, written opcode by opcode (pickle_writer): every element a tensor view can
reach lies in its storage, one file cannot change how the next is read, and every malformed file gives a
WeightsError naming the file and the field. Nothing here needs torch."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minception.pretrained import WeightsError, read_weights
from pickle_writer import Build, Call, Global, PersistentId, Raw, dumps, opcodes, state_dict, storage, tensor, \
    torch_zip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIX = np.arange(6, dtype=np.float32)          # the storage most tests use: 0, 1, ..., 5


def write_pth(folder, name, entries, storages=None, **kw):
    path = folder / name
    path.write_bytes(torch_zip(dumps(state_dict(entries)), {"0": SIX.tobytes()} if storages is None else storages,
                               **kw))
    return path


def one_tensor(folder, offset, size, stride, numel=6, kind="FloatStorage", raw=None):
    entry = tensor(storage(kind, "0", numel), offset, size, stride)
    return write_pth(folder, "t.pth", {"w": entry}, None if raw is None else {"0": raw})


def refused(path, *fragments):
    with pytest.raises(WeightsError) as info:
        read_weights(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------ item 1: bounds ---
@pytest.mark.parametrize("offset, size, stride, expected", [
    (0, (2, 3), (3, 1), SIX.reshape(2, 3)),
    (1, (2, 2), (1, 2), np.array([[1, 3], [2, 4]], np.float32)),       # a transposed view, off the start
    (5, (), (), np.array(5, np.float32)),                                # 0-d, the last element
    (2, (3, 2), (0, 1), np.array([[2, 3]] * 3, np.float32)),             # stride 0: an expanded tensor
    (6, (0, 4), (4, 1), np.zeros((0, 4), np.float32)),                   # empty, at the end
    (3, (1, 2), (2 ** 62, 1), np.array([[3, 4]], np.float32)),           # a stride never taken may be huge
])
def test_views_inside_the_storage_are_read(tmp_path, offset, size, stride, expected):
    out = read_weights(one_tensor(tmp_path, offset, size, stride))["w"]
    assert out.shape == expected.shape and out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("offset, size, stride, field", [
    (-1, (6,), (1,), "storage offset"),              # would start one element before the buffer (heap bytes)
    (-1000, (4,), (1,), "storage offset"),
    (5, (2,), (-(1 << 40),), "stride"),              # crashed the interpreter (SIGSEGV)
    (5, (2,), (-1,), "stride"),
    (0, (-2, 3), (3, 1), "size"),
    (0, (7,), (1,), "reaches element 6"),            # one past the end
    (4, (2, 2), (1, 1), "reaches element 6"),
    (0, (2, 2), (2 ** 62, 1), "reaches element"),    # a stride whose byte offset overflows int64
    (0, (2 ** 22, 2 ** 22), (0, 0), "2x the file's size"),   # 64 TiB of one float: refused before allocating
    (True, (6,), (1,), "storage offset"),            # a bool is not an offset
    (0, (6.0,), (1,), "size"),
    (0, (2, 3), (3,), "differ in length"),
    (0, (1,) * 65, (1,) * 65, "size"),
    (0, "abc", (1,), "size"),
])
def test_views_reaching_outside_the_storage_are_refused(tmp_path, offset, size, stride, field):
    refused(one_tensor(tmp_path, offset, size, stride), "tensor 'w'", field)


def test_a_negative_stride_does_not_crash_the_interpreter(tmp_path):
    # Run in a child process: on the old reader this killed Python with SIGSEGV.
    path = one_tensor(tmp_path, 5, (2,), (-(1 << 40),))
    code = ("from minception.pretrained import read_weights, WeightsError\n"
            f"try:\n    read_weights({str(path)!r})\nexcept WeightsError as e:\n    print('refused:', e)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "refused:" in result.stdout, (result.returncode, result.stderr[-500:])


def test_tensors_may_not_outgrow_the_file(tmp_path):
    # One 1000-float storage, and a pickle whose keys all name the same tensor (memo: BINPUT once, BINGET after).
    spec = tensor(storage("FloatStorage", "0", 1000), 0, (1000,), (1,))

    def shared_views(count):
        pairs = opcodes("w0") + opcodes(spec) + b"q\x00" + b"".join(opcodes(f"w{i}") + b"h\x00"
                                                                for i in range(1, count))
        path = tmp_path / f"views{count}.pth"
        body = Raw(opcodes(Call(Global("collections", "OrderedDict"))) + b"(" + pairs + b"u")
        path.write_bytes(torch_zip(dumps(body), {"0": np.ones(1000, np.float32).tobytes()}))
        return path

    assert len(read_weights(shared_views(2))) == 2               # tied weights: two keys, one storage
    refused(shared_views(20_000), "2x the file's size")           # 80 MB of arrays from a 200 KB file


# ------------------------------------------------------------------------------------- item 2: poisoning ---
@pytest.mark.parametrize("target", [
    Global("torch", "FloatStorage"),                                   # the storage types
    Global("torch._utils", "_rebuild_tensor_v2"),                      # the rebuild functions
    Global("collections", "OrderedDict"),
])
def test_one_file_cannot_change_how_the_next_is_read(tmp_path, target):
    good = write_pth(tmp_path, "good.pth", {"w": tensor(storage("FloatStorage", "0", 6), 0, (2, 3), (3, 1))})
    for state in ({"dtype": "<i4"}, (None, {"dtype": "<i4"}), {"__defaults__": (1, 2, 3)}):
        poison = tmp_path / "poison.pth"
        poison.write_bytes(torch_zip(dumps({"w": Build(target, state)}), {}))
        refused(poison, "BUILD is refused")
    out = read_weights(good)["w"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, SIX.reshape(2, 3))


# ------------------------------------------------------------------------------- item 3: malformed files ---
def test_malformed_files_give_weights_errors(tmp_path):
    ok = tensor(storage("FloatStorage", "0", 6), 0, (6,), (1,))
    refused(write_pth(tmp_path, "a.pth", {"w": tensor(storage("FloatStorage", "7", 6), 0, (6,), (1,))}),
            "archive/data/7 is not in the archive")
    refused(write_pth(tmp_path, "b.pth", {"w": ok}, {"0": SIX.tobytes()[:-1]}),
            "storage archive/data/0 holds 23 bytes", "6 elements")
    refused(write_pth(tmp_path, "c.pth", {"w": ok}, {"0": SIX.tobytes() + bytes(4)}), "holds 28 bytes")
    bad_pid = Call(Global("torch._utils", "_rebuild_tensor_v2"), (PersistentId(("storage", 1)), 0, (1,), (1,)))
    refused(write_pth(tmp_path, "d.pth", {"w": bad_pid}), "persistent id")
    bad_kind = tensor(PersistentId(("storage", "FloatStorage", "0", "cpu", 6)), 0, (6,), (1,))
    refused(write_pth(tmp_path, "e.pth", {"w": bad_kind}), "persistent id: storage type")
    raw = dumps(state_dict({"w": ok}))
    truncated = tmp_path / "f.pth"
    truncated.write_bytes(torch_zip(raw[: len(raw) // 2], {"0": SIX.tobytes()}))
    refused(truncated, "data.pkl", "truncated")
    refused(write_pth(tmp_path, "g.pth", {"w": 3.5}), "key 'w' holds a float")
    refused(write_pth(tmp_path, "h.pth", {7: ok}), "key 7 holds")
    nested = tmp_path / "i.pth"
    nested.write_bytes(torch_zip(dumps([1, 2]), {}))
    refused(nested, "expected a dict of tensors, got list")
    refused(write_pth(tmp_path, "j.pth", {"w": ok}, byteorder=b"big"), "big-endian")
    two_kinds = {"w": ok, "v": tensor(storage("IntStorage", "0", 6), 0, (6,), (1,))}
    refused(write_pth(tmp_path, "k.pth", two_kinds), "read as IntStorage here and as FloatStorage elsewhere")


def test_names_outside_the_allow_list_are_refused(tmp_path):
    for forbidden in (Call(Global("os", "system"), ("echo should never run",)), Global("builtins", "eval"),
                      Call(Global("torch._utils", "_rebuild_tensor_v2"), (Global("numpy", "ndarray"), 0, (), ()))):
        path = tmp_path / "evil.pth"
        path.write_bytes(torch_zip(dumps({"w": forbidden}), {}))
        refused(path)


def test_broken_archives_give_weights_errors(tmp_path):
    good = write_pth(tmp_path, "good.pth", {"w": tensor(storage("FloatStorage", "0", 6), 0, (6,), (1,))})
    raw = good.read_bytes()
    for n, damaged in enumerate([raw[:100], raw[:-30], raw[:50] + b"\xff" * 40 + raw[90:], b"PK\x03\x04" + bytes(60)]):
        path = tmp_path / f"broken{n}.pth"
        path.write_bytes(damaged)
        refused(path)
    zipped = tmp_path / "two.pth"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a/data.pkl", dumps({}))
        z.writestr("b/data.pkl", dumps({}))
    refused(zipped, "expected one <name>/data.pkl")


def test_an_inflating_member_is_refused(tmp_path):
    # 50 MB of zeros, deflated to 50 KB: the member claims more bytes than the whole file has.
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/data.pkl", dumps(state_dict({"w": tensor(storage("ByteStorage", "0", 50_000_000), 0, (1,),
                                                                       (1,))})))
        z.writestr("a/data/0", bytes(50_000_000))
    refused(path, "claims 50000000 bytes, more than the rest of the file can hold")


def test_a_deeply_nested_dict_key_does_not_crash_the_interpreter(tmp_path):
    # Hashing a tuple nested a million deep overflows the C stack; the reader refuses non-plain keys before that.
    deep = Raw(b"N" + b"\x85" * 1_000_000)                          # None, then TUPLE1 a million times
    path = tmp_path / "deep.pth"
    path.write_bytes(torch_zip(dumps(Raw(b"}" + opcodes(deep) + b"Ns")), {}))      # {deep: None}
    code = ("from minception.pretrained import read_weights, WeightsError\n"
            f"try:\n    read_weights({str(path)!r})\nexcept WeightsError as e:\n    print('refused:', e)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "dict keys must be plain values" in result.stdout, \
        (result.returncode, result.stderr[-500:])


def test_a_checkpoint_dict_gives_its_state_dict(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(torch_zip(dumps({"epoch": 3, "state_dict": state_dict(
        {"w": tensor(storage("FloatStorage", "0", 6), 0, (6,), (1,))})}), {"0": SIX.tobytes()}))
    np.testing.assert_array_equal(read_weights(path)["w"], SIX)
