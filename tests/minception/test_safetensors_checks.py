"""The safetensors reader on malformed headers: each gives a SafetensorsError (a WeightsError through read_weights)
naming the file and the field, computed with Python integers (no int64 overflow), and never a raw exception."""
import json
import struct

import numpy as np
import pytest

from minception.pretrained import WeightsError, read_weights
from minception.pretrained.safetensors import SafetensorsError, load_file, read_header


def write(tmp_path, header, data=b"", raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets}


@pytest.mark.parametrize("info, field", [
    (entry(dtype=["F32"]), "'dtype'"),
    (entry(dtype=None), "'dtype'"),
    (entry(offsets=[0, 4, 8]), "'data_offsets'"),
    (entry(offsets=["0", "8"]), "'data_offsets'"),
    (entry(offsets=[0.0, 8.0]), "'data_offsets'"),
    (entry(offsets=[True, 8]), "'data_offsets'"),
    (entry(offsets=[8, 0]), "'data_offsets'"),
    (entry(offsets=[-8, 0]), "'data_offsets'"),
    (entry(offsets={"begin": 0}), "'data_offsets'"),
    (entry(shape=[True, True]), "'shape'"),                    # a JSON true is not a dimension
    (entry(shape=[2.0]), "'shape'"),
    (entry(shape=[-2]), "'shape'"),
    (entry(shape="2"), "'shape'"),
    (entry(shape=[1] * 65), "'shape'"),
    (entry(shape=[2 ** 32, 2 ** 32], offsets=[0, 0]), "'shape'"),     # its int64 element count wraps to 0
    (entry(shape=[2 ** 70], offsets=[0, 8]), "'shape'"),
    (entry(shape=[2 ** 62, 0, 2 ** 62], offsets=[0, 0]), "'shape'"),   # empty, but NumPy cannot make it
    (entry(shape=[2 ** 20, 2 ** 20], offsets=[0, 8]), "needs 4398046511104 bytes"),
    ([1, 2], "needs the fields dtype, shape and data_offsets"),
    ({"dtype": "F32"}, "needs the fields dtype, shape and data_offsets"),
])
def test_malformed_entries_name_the_file_and_field(tmp_path, info, field):
    path = write(tmp_path, {"w": info}, bytes(8))
    with pytest.raises(WeightsError) as e:
        read_weights(path)
    message = str(e.value)
    assert str(path) in message and "'w'" in message and field in message, message


@pytest.mark.parametrize("raw_header, fragment", [
    (b"[" * 200_000, "nested too deeply"),                        # RecursionError in the JSON parser
    (b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 8]}}', "not valid UTF-8 JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"__metadata__": [1]}', "'__metadata__'"),
    (b'{"__metadata__": {"a": 1}}', "'__metadata__'"),
])
def test_malformed_headers(tmp_path, raw_header, fragment):
    path = write(tmp_path, None, bytes(8), raw_header=raw_header)
    with pytest.raises(SafetensorsError) as e:
        load_file(path)
    assert str(path) in str(e.value) and fragment in str(e.value), str(e.value)


def test_every_data_byte_belongs_to_one_tensor(tmp_path):
    gap = {"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}
    with pytest.raises(SafetensorsError, match=r"data bytes \[8, 12\) belong to no tensor"):
        read_header(write(tmp_path, gap, bytes(20)))
    with pytest.raises(SafetensorsError, match="last 4 data bytes belong to no tensor"):
        read_header(write(tmp_path, {"a": entry()}, bytes(12)))
    empty_ones = {"a": entry(shape=[0, 3], offsets=(0, 0)), "b": entry(), "c": entry(shape=[0], offsets=(8, 8))}
    out = load_file(write(tmp_path, empty_ones, np.array([1.5, 2.5], np.float32).tobytes()))
    assert out["a"].shape == (0, 3) and out["b"].tolist() == [1.5, 2.5] and out["c"].shape == (0,)


def test_unknown_names_are_refused(tmp_path):
    path = write(tmp_path, {"a": entry()}, bytes(8))
    with pytest.raises(SafetensorsError, match="no tensor named 'b'"):
        load_file(path, names=["b"])
    assert list(load_file(path, names=["a"])) == ["a"]
