"""CI smoke test of the main job, ``examples/train_cifar_scaled.py``: tiny networks, a few steps, in-process.

Covers the synthetic fallback, a CIFAR-format folder given with --data-dir, resume, Ctrl-C (exit 130), a NaN stop
(exit 1), the compare mode with its plot and table, and argument errors (exit 2). The full default run (about
10 minutes) is not run here.
"""
import contextlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from minception.train import load_checkpoint, read_jsonl
from minception.train import trainer as trainer_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_cifar_scaled.py")
# 2 steps of 8 images per epoch, 8 test images, a network of about 19k parameters
TINY = ["--width", "0.04", "--blocks", "1,1,1", "--batch-size", "8", "--subset", "16", "--test-subset", "8",
        "--epochs", "2", "--no-progress", "--no-download", "--checkpoint-every", "0", "--log-every", "1"]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_cifar_scaled", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(example, *args):
    """``main(args)`` in-process; returns (exit code, everything printed)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = example.main([str(a) for a in args])
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def base_run(example, tmp_path_factory):
    """One finished 2-epoch run on the synthetic set (CIFAR-10 absent from --data-dir, downloads off)."""
    root = tmp_path_factory.mktemp("base")
    code, text = _run(example, "--model", "inception_resnet_v2", "--data-dir", root / "no_cifar", "--out",
                      root / "run", *TINY)
    assert code == 0, text
    return root / "run", text


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for opt in ("--model", "--width", "--blocks", "--epochs", "--batch-size", "--lr", "--subset", "--data-dir",
                "--out", "--device", "--seed", "--resume", "compare", "inception_resnet_v2_released"):
        assert opt in out.stdout


def test_synthetic_fallback_trains_and_writes_results(base_run):
    out, text = base_run
    fallback = [line for line in text.splitlines() if "Training on the synthetic" in line]
    assert len(fallback) == 1 and "not found" in fallback[0]
    assert f"results in {out}" in text
    recs = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [1, 2] and [r["step"] for r in recs] == [2, 4]
    assert all(r["model"] == "inception_resnet_v2" and np.isfinite(r["train_loss"]) for r in recs)
    assert {"last.npz", "best.npz", "run.json", "curves.png", "train_log.jsonl"} <= set(os.listdir(out))
    assert json.loads((out / "run.json").read_text())["width"] == 0.04


def test_ctrl_c_saves_exits_130_and_resume_is_exact(example, base_run, tmp_path, monkeypatch):
    real = trainer_module.Trainer.train_step

    def step_then_ctrl_c(self, x, y):
        result = real(self, x, y)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_then_ctrl_c)
    out = tmp_path / "c"
    code, text = _run(example, "--model", "inception_resnet_v2", "--data-dir", tmp_path / "no_cifar", "--out", out,
                      *TINY)
    assert code == 130 and "interrupted at step 1" in text and "--resume" in text
    assert load_checkpoint(out / "last.npz")["position"]["step"] == 1
    monkeypatch.setattr(trainer_module.Trainer, "train_step", real)
    code, text = _run(example, "--out", out, "--resume", "--data-dir", tmp_path / "no_cifar")
    assert code == 0 and "resuming" in text, text
    straight = load_checkpoint(base_run[0] / "last.npz")
    resumed = load_checkpoint(out / "last.npz")
    assert resumed["position"]["step"] == 4
    for key, value in straight["model"].items():
        np.testing.assert_array_equal(value, resumed["model"][key], err_msg=key)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rs]
    assert strip(read_jsonl(base_run[0] / "metrics.jsonl")) == strip(read_jsonl(out / "metrics.jsonl"))


def test_resume_refuses_changed_settings(example, base_run, tmp_path):
    code, text = _run(example, "--out", base_run[0], "--resume", "--width", "0.5")
    assert code == 2 and "--width 0.5" in text
    code, text = _run(example, "--out", tmp_path / "empty", "--resume")
    assert code == 2 and "no run to continue" in text


def test_nan_loss_exits_1_naming_the_step_and_keeps_the_checkpoint(example, base_run, tmp_path, monkeypatch):
    out = tmp_path / "n"
    shutil.copytree(base_run[0], out)
    before = (out / "last.npz").read_bytes()
    real = trainer_module.ops.softmax_cross_entropy

    def poisoned(logits, labels, label_smoothing=0.0):
        loss = real(logits, labels, label_smoothing)
        return loss * float("nan") if logits.requires_grad else loss

    monkeypatch.setattr(trainer_module.ops, "softmax_cross_entropy", poisoned)
    code, text = _run(example, "--out", out, "--resume", "--epochs", "3", "--data-dir", tmp_path / "no_cifar")
    assert code == 1 and "non-finite loss" in text and "step 5 " in text, text
    assert (out / "last.npz").read_bytes() == before


def _write_fake_cifar(folder, n=24, seed=0):
    """A CIFAR-10 'python version' folder with n random images per batch file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f, protocol=2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": images, b"labels": [int(v) for v in labels]}, f, protocol=2)


def test_cifar_format_folder_given_by_data_dir(example, tmp_path):
    _write_fake_cifar(tmp_path / "cifar" / "cifar-10-batches-py")
    out = tmp_path / "cf"
    code, text = _run(example, "--data-dir", tmp_path / "cifar", "--out", out, *TINY, "--epochs", "1")
    assert code == 0, text
    assert "data: CIFAR-10, 16 training and 8 test images" in text
    assert "synthetic" not in text
    assert len(read_jsonl(out / "metrics.jsonl")) == 1


def test_corrupt_cifar_folder_falls_back_with_one_line(example, tmp_path):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    _write_fake_cifar(folder)
    (folder / "data_batch_3").write_bytes(b"garbage")
    code, text = _run(example, "--data-dir", tmp_path / "cifar", "--out", tmp_path / "o", *TINY, "--max-steps", "0")
    assert code == 0
    line, = [ln for ln in text.splitlines() if "Training on the synthetic" in ln]
    assert "could not be read" in line and "data_batch_3" in line


def test_compare_mode_writes_plot_and_table(example, tmp_path):
    out = tmp_path / "cmp"
    code, text = _run(example, "--model", "compare", "--compare-models", "inception_v4,inception_resnet_v2",
                      "--data-dir", tmp_path / "no_cifar", "--out", out, *TINY, "--epochs", "1")
    assert code == 0, text
    assert (out / "compare.png").stat().st_size > 10_000
    table = (out / "compare.txt").read_text()
    assert "inception_v4" in table and "inception_resnet_v2" in table and "test acc" in table
    assert "inception_v4" in text and "img/s" in text
    for name in ("inception_v4", "inception_resnet_v2"):
        assert len(read_jsonl(out / name / "metrics.jsonl")) == 1


@pytest.mark.parametrize("args, msg", [
    (["--blocks", "1,2"], "--blocks"),
    (["--width", "0"], "--width"),
    (["--model", "compare", "--compare-models", "inception_v4,vgg"], "vgg"),
    (["--subset", "4", "--batch-size", "8"], "smaller than one batch"),
])
def test_bad_arguments_exit_2(example, tmp_path, args, msg):
    code, text = _run(example, "--out", tmp_path / "x", *args)
    assert code == 2 and msg in text
