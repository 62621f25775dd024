"""CI smoke test of the main job, ``examples/train_cifar_scaled.py``: tiny networks, a few steps, in-process.

Covers the synthetic set, a CIFAR-format folder given with --data-dir (and one that is empty or corrupt: exit 2),
the synthetic fallback at the default location, resume, Ctrl-C (exit 130), a NaN stop (exit 1), the compare mode
with its plot and table, argument errors (exit 2), and what happens to an existing run folder. The full default
run (about 10 minutes) is not run here.
"""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from example_main import run_main as _run

from minception.train import load_checkpoint, read_jsonl
from minception.train import loop as loop_module
from minception.train import trainer as trainer_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_cifar_scaled.py")
# 2 steps of 8 images per epoch, 8 test images, a network of about 19k parameters
TINY = ["--width", "0.04", "--blocks", "1,1,1", "--batch-size", "8", "--subset", "16", "--test-subset", "8",
        "--epochs", "2", "--no-progress", "--no-download", "--checkpoint-every", "0", "--log-every", "1"]
SYNTHETIC = [*TINY, "--synthetic"]


@pytest.fixture(scope="module")
def example(script_loader):
    return script_loader(SCRIPT, "train_cifar_scaled")


@pytest.fixture(scope="module")
def base_run(example, tmp_path_factory):
    """One finished 2-epoch run on the synthetic set."""
    root = tmp_path_factory.mktemp("base")
    code, text = _run(example, "--model", "inception_resnet_v2", "--out", root / "run", *SYNTHETIC)
    assert code == 0, text
    return root / "run", text


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for opt in ("--model", "--width", "--blocks", "--epochs", "--batch-size", "--lr", "--subset", "--data-dir",
                "--out", "--device", "--seed", "--resume", "compare", "inception_resnet_v2_released"):
        assert opt in out.stdout


def test_synthetic_run_trains_and_writes_results(base_run):
    out, text = base_run
    assert "data: synthetic shapes, 16 training and 8 test images" in text
    assert f"results in {out}" in text
    recs = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [1, 2] and [r["step"] for r in recs] == [2, 4]
    assert all(r["model"] == "inception_resnet_v2" and np.isfinite(r["train_loss"]) for r in recs)
    assert {"last.npz", "best.npz", "run.json", "curves.png", "train_log.jsonl"} <= set(os.listdir(out))
    assert json.loads((out / "run.json").read_text())["width"] == 0.04


def test_without_a_progress_bar_each_log_line_prints_the_loss(base_run):
    # --no-progress --log-every 1: a line per step, with the numbers train_log.jsonl gets
    out, text = base_run
    lines = [ln for ln in text.splitlines() if ln.startswith("inception_resnet_v2 epoch ") and " loss " in ln
             and "  step " in ln and "img/s" in ln and "test" not in ln]
    logged = read_jsonl(out / "train_log.jsonl")
    assert len(lines) == len(logged) == 4
    assert lines[0].startswith("inception_resnet_v2 epoch 1/2  step 1 (1/2)  loss ")
    assert lines[3].startswith("inception_resnet_v2 epoch 2/2  step 4 (2/2)  loss ")
    for line, record in zip(lines, logged):
        assert f"loss {record['train_loss']:.4f}  acc {100 * record['train_acc']:.1f}%  lr {record['lr']:.3g}" in line
        assert len(line) <= 100


def test_a_progress_bar_replaces_the_log_lines(example, tmp_path):
    code, text = _run(example, "--out", tmp_path / "run", *SYNTHETIC, "--progress", "--max-steps", "2")
    assert code == 0, text
    assert not [ln for ln in text.splitlines() if "  step 1 (1/2)  loss " in ln]
    assert len(read_jsonl(tmp_path / "run" / "train_log.jsonl")) == 2       # the log file still gets them


def test_ctrl_c_saves_exits_130_and_resume_is_exact(example, base_run, tmp_path, monkeypatch):
    real = trainer_module.Trainer.train_step

    def step_then_ctrl_c(self, x, y):
        result = real(self, x, y)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_then_ctrl_c)
    out = tmp_path / "c"
    code, text = _run(example, "--model", "inception_resnet_v2", "--out", out, *SYNTHETIC)
    assert code == 130 and "interrupted at step 1" in text and "--resume" in text
    assert load_checkpoint(out / "last.npz")["position"]["step"] == 1
    monkeypatch.setattr(trainer_module.Trainer, "train_step", real)
    code, text = _run(example, "--out", out, "--resume")
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
    real = loop_module.ops.softmax_cross_entropy

    def poisoned(logits, labels, label_smoothing=0.0):
        loss = real(logits, labels, label_smoothing)
        return loss * float("nan") if logits.requires_grad else loss

    monkeypatch.setattr(loop_module.ops, "softmax_cross_entropy", poisoned)
    code, text = _run(example, "--out", out, "--resume", "--epochs", "3")
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


def test_compare_mode_writes_plot_and_table(example, tmp_path):
    out = tmp_path / "cmp"
    code, text = _run(example, "--model", "compare", "--compare-models", "inception_v4,inception_resnet_v2",
                      "--out", out, *SYNTHETIC, "--epochs", "1")
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


# ------------------------------------------------------------------------ flags (issue 12, items 9 and 10) ---
@pytest.mark.parametrize("args, flag", [
    (["--rmsprop-eps", "-1"], "--rmsprop-eps"),
    (["--momentum", "1"], "--momentum"),
    (["--ema-decay", "2"], "--ema-decay"),
    (["--dropout", "1.5"], "--dropout"),
    (["--lr-decay", "0"], "--lr-decay"),
    (["--lr-decay-epochs", "0"], "--lr-decay-epochs"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--test-subset", "-1"], "--test-subset"),
    (["--label-smoothing", "2"], "--label-smoothing"),
    (["--clip", "-1"], "--clip"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--width", "nan"], "--width"),
    (["--residual-scale", "inf"], "--residual-scale"),
    (["--seed", "-1"], "--seed"),
    (["--max-steps", "-1"], "--max-steps"),
    (["--checkpoint-every", "-2"], "--checkpoint-every"),
    (["--check-every", "0"], "--check-every must be >= 1"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--epochs", "-1"], "--epochs must be >= 1"),
])
def test_out_of_range_flags_are_usage_errors(example, tmp_path, args, flag):
    code, text = _run(example, "--out", tmp_path / "x", *SYNTHETIC, *args)
    assert code == 2 and "error:" in text and flag in text, text
    assert "Traceback" not in text and not (tmp_path / "x").exists()       # nothing was started or written


def test_out_naming_a_file_is_a_usage_error(example, tmp_path):
    (tmp_path / "afile").write_text("mine")
    code, text = _run(example, "--out", tmp_path / "afile", *SYNTHETIC)
    assert code == 2 and "is a file" in text
    assert (tmp_path / "afile").read_text() == "mine"


def test_results_line_lists_only_files_that_exist(example, tmp_path):
    out = tmp_path / "m0"
    code, text = _run(example, "--out", out, *SYNTHETIC, "--max-steps", "0")
    assert code == 0, text
    lines = text.splitlines()
    at, = [i for i, ln in enumerate(lines) if ln.startswith("results in")]
    line = lines[at + 1]                                   # the files, on the line after the folder
    assert "last.npz" in line and "best.npz" not in line and "metrics.jsonl" in line
    for name in ("last.npz", "metrics.jsonl"):
        assert (out / name).exists()
    assert not (out / "best.npz").exists()


# ------------------------------------------------------------------- an existing run folder (item 5) ---
def test_a_new_run_into_a_run_folder_is_refused_and_keeps_its_files(example, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "last.npz").write_text("x\n")
    (out / "best.npz").write_text("x\n")
    code, text = _run(example, "--out", out, *SYNTHETIC)
    assert code == 2 and "already holds a run" in text and "--resume" in text and "--overwrite" in text, text
    code, text = _run(example, "--out", out, *SYNTHETIC, "--momentum", "1")
    assert code == 2 and "--momentum" in text and "Traceback" not in text, text
    assert (out / "last.npz").read_text() == "x\n" and (out / "best.npz").read_text() == "x\n"
    assert sorted(os.listdir(out)) == ["best.npz", "last.npz"]


def test_a_compare_run_folder_is_recognised(example, tmp_path):
    out = tmp_path / "c"
    (out / "inception_v4").mkdir(parents=True)
    (out / "inception_v4" / "last.npz").write_text("x\n")
    code, text = _run(example, "--model", "compare", "--out", out, *SYNTHETIC)
    assert code == 2 and "already holds a run" in text and "inception_v4" in text


def test_overwrite_keeps_the_old_checkpoints_until_the_new_run_replaces_them(example, base_run, tmp_path,
                                                                             monkeypatch):
    out = tmp_path / "o"
    shutil.copytree(base_run[0], out)
    (out / "last.npz.1a2b3c4d.tmp").write_bytes(b"left by a kill")
    old_last, old_best = (out / "last.npz").read_bytes(), (out / "best.npz").read_bytes()
    real = loop_module.ops.softmax_cross_entropy

    def poisoned(logits, labels, label_smoothing=0.0):
        loss = real(logits, labels, label_smoothing)
        return loss * float("nan") if logits.requires_grad else loss

    monkeypatch.setattr(loop_module.ops, "softmax_cross_entropy", poisoned)
    code, text = _run(example, "--out", out, *SYNTHETIC, "--overwrite", "--seed", "3")
    assert code == 1 and "none written yet" in text, text      # the new run failed at its first step
    assert (out / "last.npz").read_bytes() == old_last and (out / "best.npz").read_bytes() == old_best
    assert not (out / "last.npz.1a2b3c4d.tmp").exists()
    monkeypatch.setattr(loop_module.ops, "softmax_cross_entropy", real)
    # interrupted after its first step: its own last.npz replaces the old one, and the old best.npz goes with it
    real_step = trainer_module.Trainer.train_step

    def step_then_ctrl_c(self, x, y):
        result = real_step(self, x, y)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_then_ctrl_c)
    code, text = _run(example, "--out", out, *SYNTHETIC, "--overwrite", "--seed", "3")
    assert code == 130, text
    assert load_checkpoint(out / "last.npz")["position"]["step"] == 1
    assert not (out / "best.npz").exists() and not (out / "curves.png").exists()
    assert json.loads((out / "run.json").read_text())["seed"] == 3
    assert read_jsonl(out / "metrics.jsonl") == []
    monkeypatch.setattr(trainer_module.Trainer, "train_step", real_step)
    code, text = _run(example, "--out", out, "--resume")
    assert code == 0, text
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    assert (out / "best.npz").exists() and (out / "curves.png").exists()


def test_resume_and_overwrite_together_is_a_usage_error(example, base_run):
    code, text = _run(example, "--out", base_run[0], "--resume", "--overwrite")
    assert code == 2 and "--overwrite" in text


# --------------------------------------------------------------------- --resume without a good last.npz ---
@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_resume_without_a_readable_checkpoint_is_one_clear_line(example, base_run, tmp_path, damage):
    out = tmp_path / "d"
    shutil.copytree(base_run[0], out)
    last = out / "last.npz"
    if damage == "missing":
        last.unlink()
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[:5000])
    else:
        last.write_bytes(b"garbage")
    code, text = _run(example, "--out", out, "--resume", "--epochs", "3")
    assert code == 2 and "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "last.npz" in errors[0]
    assert (out / "best.npz").exists() and (damage == "missing" or last.exists())


def test_resume_of_a_checkpoint_written_with_other_settings_is_refused(example, base_run, tmp_path):
    out = tmp_path / "w"
    shutil.copytree(base_run[0], out)
    cfg = json.loads((out / "run.json").read_text())
    cfg["width"] = 0.08                                # run.json and last.npz no longer agree
    (out / "run.json").write_text(json.dumps(cfg))
    before = (out / "last.npz").read_bytes()
    code, text = _run(example, "--out", out, "--resume", "--epochs", "3")
    assert code == 2 and "last.npz" in text and "Traceback" not in text, text
    assert (out / "last.npz").read_bytes() == before


# ---------------------------------------------------------------------------- --data-dir (item 11) ---
def test_an_empty_data_dir_that_was_named_is_an_error(example, tmp_path):
    (tmp_path / "empty").mkdir()
    code, text = _run(example, "--data-dir", tmp_path / "empty", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "empty" in text and "--synthetic" in text, text
    assert "Training on the synthetic" not in text and not (tmp_path / "o").exists()


def test_a_corrupt_data_dir_that_was_named_is_an_error(example, tmp_path):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    _write_fake_cifar(folder)
    (folder / "data_batch_3").write_bytes(b"garbage")
    code, text = _run(example, "--data-dir", tmp_path / "cifar", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "data_batch_3" in text, text
    assert "Training on the synthetic" not in text and not (tmp_path / "o").exists()


def test_the_default_location_falls_back_to_the_synthetic_set(example, tmp_path, monkeypatch):
    from minception.data import cifar10
    monkeypatch.delenv("MINCEPTION_DATA", raising=False)
    monkeypatch.setattr(cifar10, "default_data_dir", lambda: str(tmp_path / "default"))
    code, text = _run(example, "--out", tmp_path / "o", *TINY, "--max-steps", "0")
    assert code == 0, text
    line, = [ln for ln in text.splitlines() if "Training on the synthetic" in ln]
    assert "not found" in line


def test_device_cuda_without_a_usable_gpu_is_one_clear_line(example, tmp_path, monkeypatch):
    """``--device cuda`` where CuPy is missing (simulated where it is installed) stops before any work, with exit 2
    and the cause, and writes no run folder."""
    import sys as _sys
    monkeypatch.setitem(_sys.modules, "cupy", None)          # `import cupy` now raises ImportError
    from autograd import backend
    monkeypatch.setattr(backend, "_gpu", None)                # forget an earlier probe's answer
    out = tmp_path / "run"
    code, text = _run(example, "--device", "cuda", "--out", out, *SYNTHETIC)
    assert code == 2, text
    assert "CuPy is not installed" in text and "gpu-cuda12" in text
    assert not out.exists()
