"""Checkpoint files: exact round trip of nested state, atomic writes, clear errors, metrics logs."""
import json
import os

import numpy as np
import pytest

from minception import nn, optim
from minception.train import checkpoint as ckpt
from minception.train import (CheckpointError, MetricsLog, RunningMean, load_checkpoint, read_jsonl,
                              save_checkpoint, save_weights)


def _state():
    rng = np.random.default_rng(0)
    return {
        "model": {"stem.conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                  "stem.bn.num_batches_tracked": np.array(7, dtype=np.int64)},
        "optimizer": {"type": "RMSProp", "lr": 0.1 / 3, "steps": 12, "hyper": {"eps_inside_sqrt": True},
                      "state": {}},
        "ema": None,
        "position": {"epoch": 2, "batch": 5, "step": 17},
        "rng": {"head.dropout": np.random.default_rng(3).bit_generator.state},
        "list": [1, 2.5, "x", np.float64(0.25), [np.arange(3)]],
        "nan": float("nan"),
        7: "int key",
    }


def test_round_trip_is_exact(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "a.npz", state)
    back = load_checkpoint(path)
    np.testing.assert_array_equal(back["model"]["stem.conv1.weight"], state["model"]["stem.conv1.weight"])
    assert back["model"]["stem.conv1.weight"].dtype == np.float32
    assert back["model"]["stem.bn.num_batches_tracked"].dtype == np.int64
    assert back["optimizer"]["lr"] == 0.1 / 3                    # floats survive bit for bit
    assert back["optimizer"]["state"] == {} and back["ema"] is None
    assert back["position"] == {"epoch": 2, "batch": 5, "step": 17}
    assert back["rng"]["head.dropout"] == state["rng"]["head.dropout"]   # 128-bit ints survive JSON
    assert back["list"][:4] == [1, 2.5, "x", 0.25]
    np.testing.assert_array_equal(back["list"][4][0], np.arange(3))
    assert np.isnan(back["nan"]) and back["7"] == "int key"


def test_generator_state_round_trip_continues_the_stream(tmp_path):
    g = np.random.default_rng(11)
    g.random(5)
    save_checkpoint(tmp_path / "g.npz", {"g": g.bit_generator.state})
    expected = g.random(4)
    h = np.random.default_rng()
    h.bit_generator.state = load_checkpoint(tmp_path / "g.npz")["g"]
    np.testing.assert_array_equal(h.random(4), expected)


def test_model_optimizer_and_ema_state_round_trip(tmp_path):
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    opt = optim.RMSProp(model.named_parameters(), lr=0.01)
    ema = optim.EMA(model.named_parameters(), decay=0.9)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    ema.update()
    save_checkpoint(tmp_path / "c.npz", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                         "ema": ema.state_dict()})
    back = load_checkpoint(tmp_path / "c.npz")
    nn.init.manual_seed(1)
    model2 = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    opt2 = optim.RMSProp(model2.named_parameters(), lr=0.5)
    ema2 = optim.EMA(model2.named_parameters(), decay=0.5)
    model2.load_state_dict(back["model"])
    opt2.load_state_dict(back["optimizer"])
    ema2.load_state_dict(back["ema"])
    for (k, a), (_, b) in zip(model.named_parameters(), model2.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(opt.state[k]["ms"], opt2.state[k]["ms"])
        np.testing.assert_array_equal(ema.shadow[k], ema2.shadow[k])
    assert opt2.lr == 0.01 and opt2.steps == 1 and ema2.num_updates == 1 and ema2.decay == 0.9


def test_failed_write_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    save_checkpoint(path, {"x": np.arange(4), "step": 1})
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")     # a partial archive, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": np.arange(8), "step": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.npz"]
    assert load_checkpoint(path)["step"] == 1


def test_save_replaces_atomically_with_os_replace(tmp_path, monkeypatch):
    calls = []
    real = os.replace
    monkeypatch.setattr(ckpt.os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    save_checkpoint(tmp_path / "x.npz", {"a": 1})
    (src, dst), = calls
    assert os.path.dirname(src) == str(tmp_path) and dst == str(tmp_path / "x.npz")


@pytest.mark.parametrize("content, match", [
    (b"", "cannot read"),
    (b"not a zip file at all", "cannot read"),
])
def test_corrupt_file_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "bad.npz" in str(info.value)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "t.npz"
    save_checkpoint(path, {"w": np.random.default_rng(0).standard_normal(5000)})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="t.npz"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")
    save_weights(tmp_path / "w.npz", {"a.weight": np.ones(3)})
    with pytest.raises(CheckpointError, match="not a minception checkpoint"):
        load_checkpoint(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as f:                      # a plain weights file Module.load reads
        np.testing.assert_array_equal(f["a.weight"], np.ones(3))


@pytest.mark.parametrize("state, err", [
    ({"a/b": 1}, ValueError),
    ({"a": object()}, TypeError),
    ({(1, 2): 3}, TypeError),
    ({"a": np.array([object()])}, TypeError),
])
def test_unstorable_state_is_rejected(tmp_path, state, err):
    with pytest.raises(err):
        save_checkpoint(tmp_path / "x.npz", state)
    assert not os.path.exists(tmp_path / "x.npz")


def test_running_mean_weights_by_count_and_round_trips():
    m = RunningMean()
    assert np.isnan(m.mean)
    m.update(1.0, 3)
    m.update(3.0, 1)
    assert m.mean == pytest.approx(1.5)
    m2 = RunningMean()
    m2.load_state_dict(json.loads(json.dumps(m.state_dict())))
    assert m2.mean == m.mean and m2.count == 4


def test_metrics_log_appends_truncates_and_skips_a_torn_last_line(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl", fresh=True)
    for e in range(1, 4):
        log.append({"epoch": e, "step": 10 * e, "acc": float("nan") if e == 2 else 0.5})
    recs = log.read()
    assert [r["epoch"] for r in recs] == [1, 2, 3] and np.isnan(recs[1]["acc"])
    assert log.truncate_after(1, key="epoch") == 2
    assert [r["epoch"] for r in read_jsonl(tmp_path / "m.jsonl")] == [1]
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"epoch": 2, "st')                           # a crash in the middle of a line
    assert [r["epoch"] for r in read_jsonl(tmp_path / "m.jsonl")] == [1]
    reopened = MetricsLog(tmp_path / "m.jsonl")               # a resumed run repairs the file, then appends
    reopened.append({"epoch": 2, "step": 20})
    assert [r["epoch"] for r in reopened.read()] == [1, 2]
    assert MetricsLog(tmp_path / "m.jsonl", fresh=True).read() == []
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def _doctored(tmp_path, tree_text, extra=None):
    """A checkpoint file whose __tree__.json is ``tree_text`` (plus optional extra arrays)."""
    path = tmp_path / "doctored.npz"
    np.savez(path, **{"__tree__.json": np.array(tree_text)}, **(extra or {}))
    return path


@pytest.mark.parametrize("tree_text, match", [
    ("[1, 2, 3]", "not a minception checkpoint"),                      # the JSON list
    ('"a string"', "not a minception checkpoint"),
    ("{not json", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON|nested"),
    ('{"format": "minception-checkpoint", "format_version": 1, "state": {"w": {"__array__": ["x"]}}}',
     "refers to an array"),
    ('{"format": "minception-checkpoint", "format_version": 1, "state": {"w": {"__array__": "absent"}}}',
     "refers to an array"),
    ('{"format": "minception-checkpoint", "format_version": 7, "state": {}}', "version 7"),
])
def test_a_malformed_tree_is_a_checkpoint_error(tmp_path, tree_text, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(_doctored(tmp_path, tree_text))
    assert "doctored.npz" in str(info.value) and isinstance(info.value, ValueError)


def test_object_and_text_arrays_are_refused(tmp_path):
    tree = '{"format": "minception-checkpoint", "format_version": 1, "state": {"w": {"__array__": "w"}}}'
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(_doctored(tmp_path, tree, {"w": np.array([None], dtype=object)}))
    with pytest.raises(CheckpointError, match="text"):
        load_checkpoint(_doctored(tmp_path, tree, {"w": np.array(["text"])}))
    back = load_checkpoint(_doctored(tmp_path, tree, {"w": np.arange(3)}))
    np.testing.assert_array_equal(back["w"], np.arange(3))
