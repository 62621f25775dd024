"""The training example's run folder and flags under hostile or faulty conditions (issue 21, items 4, 5, 7, 8).

* A run folder is untrusted input: on ``--resume`` a damaged ``run.json``, ``metrics.jsonl`` or ``train_log.jsonl``
  is exit 2 with one line naming the file, the line and the field, never a traceback.
* ``--overwrite`` never costs the old run: flags that cannot work (a network too large for the machine included)
  are refused within a second before anything changes, and a new run killed before its first checkpoint leaves
  the old run resumable exactly as it was.
* A full disk, a read-only folder or a permission error is one line and exit 2; the last checkpoint is intact.
  Simulated in-process always (writes under the run folder refused with ENOSPC / EROFS / EACCES); for real with a
  small tmpfs and a read-only bind mount where this machine lets the test mount them (skipped, saying why, where
  it does not).
* Data-set flags: ``--data-dir ""`` is a usage error, ``--subset`` beyond the data set is refused (and clamped,
  saying so, where a copy of the data set holds fewer images), a batch larger than the training set is refused.
"""
import builtins
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from example_main import run_main as _run
from hostile import run_limited

from minception.train import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_cifar_scaled.py")
TINY = ["--width", "0.04", "--blocks", "1,1,1", "--batch-size", "8", "--subset", "16", "--test-subset", "8",
        "--epochs", "2", "--no-progress", "--no-download", "--checkpoint-every", "0", "--log-every", "1"]
SYNTHETIC = [*TINY, "--synthetic"]
RUN_FOLDER_FILES = ("run.json", "metrics.jsonl", "train_log.jsonl", "last.npz", "best.npz")


@pytest.fixture(scope="module")
def example(script_loader):
    return script_loader(SCRIPT, "train_cifar_scaled")


def _errors(text):
    return [ln for ln in text.splitlines() if "error:" in ln]


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in RUN_FOLDER_FILES if (folder / name).exists()}


@pytest.fixture(scope="module")
def good_run(example, tmp_path_factory):
    """A finished 2-epoch run (4 steps) on the synthetic set."""
    out = tmp_path_factory.mktemp("good") / "run"
    code, text = _run(example, "--out", out, *SYNTHETIC)
    assert code == 0, text
    return out


@pytest.fixture
def copy_of(good_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(good_run, out)
    return out


# ------------------------------------------------------------------ item 4: run folders are untrusted input ---
RUN_JSON_DAMAGE = {
    "deep nesting": (lambda cfg: b'{"epochs": ' + b"[" * 500_000 + b"]" * 500_000 + b"}", "nested"),
    "a million deep": (lambda cfg: b"[" * 1_000_000 + b"]" * 1_000_000, "bytes"),
    "not UTF-8": (lambda cfg: json.dumps(cfg).encode().replace(b'"model"', b'"mod\xff\xfeel"'), "UTF-8"),
    "epochs as text": (lambda cfg: json.dumps({**cfg, "epochs": "4"}).encode(), "'epochs'"),
    "unknown model": (lambda cfg: json.dumps({**cfg, "model": "vgg16"}).encode(), "'model'"),
    "not an object": (lambda cfg: b"[1, 2, 3]", "JSON object"),
    "a huge integer": (lambda cfg: json.dumps(cfg).replace('"epochs": 2', '"epochs": ' + "9" * 5000).encode(),
                       "run.json"),
    "a nested value": (lambda cfg: json.dumps({**cfg, "seed": {"a": [1]}}).encode(), "'seed'"),
    "out of range": (lambda cfg: json.dumps({**cfg, "lr": -1}).encode(), "--lr"),
    "not JSON": (lambda cfg: b'{"epochs": 2,', "not valid JSON"),
}


@pytest.mark.parametrize("damage", list(RUN_JSON_DAMAGE))
def test_a_damaged_run_json_is_one_line_naming_the_file_and_field(example, copy_of, damage):
    make, expected = RUN_JSON_DAMAGE[damage]
    cfg = json.loads((copy_of / "run.json").read_text())
    (copy_of / "run.json").write_bytes(make(cfg))
    before = _snapshot(copy_of)
    code, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert code == 2 and "Traceback" not in text, text
    errors = _errors(text)
    assert len(errors) == 1 and "run.json" in errors[0] and expected in errors[0], text
    assert len(errors[0]) < 400
    assert _snapshot(copy_of) == before


LOG_DAMAGE = {
    "not JSON": (b'{"epoch": 1,, "step": 2}\n', "line 1"),
    "not an object": (b"[1, 2]\n", "JSON object"),
    "not UTF-8": (b'{"model": "inception_resnet_v2\xff", "epoch": 1, "step": 2}\n', "UTF-8"),
    "a field of the wrong type": (b'{"model": "inception_resnet_v2", "epoch": "1", "step": 2}\n', "'epoch'"),
    "deep nesting": (b'{"epoch": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "line 1"),
    "a negative step": (b'{"model": "m", "epoch": 1, "step": -5}\n', "'step'"),
    "accuracy above 1": (b'{"model": "m", "epoch": 1, "step": 2, "train_acc": 7}\n', "'train_acc'"),
}


@pytest.mark.parametrize("name", ["metrics.jsonl", "train_log.jsonl"])
@pytest.mark.parametrize("damage", list(LOG_DAMAGE))
def test_a_damaged_log_line_is_one_line_naming_the_file_line_and_field(example, copy_of, name, damage):
    bad, expected = LOG_DAMAGE[damage]
    if name == "train_log.jsonl":
        bad = bad.replace(b'"epoch": 1,', b'"epoch": 0.5,')
    good = (copy_of / name).read_bytes()
    (copy_of / name).write_bytes(bad + good)              # the first line is the damaged one
    before = _snapshot(copy_of)
    code, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert code == 2 and "Traceback" not in text, text
    errors = _errors(text)
    assert len(errors) == 1 and name in errors[0] and "line 1" in errors[0] and expected in errors[0], text
    assert _snapshot(copy_of) == before


def test_a_torn_last_log_line_is_still_repaired(example, copy_of):
    with open(copy_of / "train_log.jsonl", "ab") as f:
        f.write(b'{"step": 5, "ep')                           # a crash in the middle of an append
    code, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert code == 0, text


# ------------------------------------------------------------- item 5: --overwrite never costs the old run ---
HOPELESS_FLAGS = [
    (["--width", "1e300"], "--width"),
    (["--blocks", "100000000,1,1"], "--blocks"),
    (["--batch-size", "1000000000000"], "--batch-size"),
    (["--batch-size", "1000000000000", "--subset", "0"], "--batch-size"),
    (["--batch-size", "40000", "--subset", "50000"], "--batch-size"),           # activations beyond memory
    (["--subset", "1000000000000"], "--subset"),
    (["--test-subset", "1000000000000"], "--test-subset"),
    (["--out", ""], "--out"),
    (["--data-dir", ""], "--data-dir"),
]


@pytest.mark.parametrize("args, flag", HOPELESS_FLAGS)
def test_hopeless_flags_are_refused_within_a_second_and_the_old_run_stays(copy_of, args, flag):
    # in a child process with a memory and a time limit: before the checks, these flags trained for minutes or
    # died of MemoryError at gigabytes, which must fail this test, not take the test run down
    before, listed = _snapshot(copy_of), sorted(os.listdir(copy_of))
    argv = ["--out", str(copy_of), *SYNTHETIC, "--overwrite", *args]
    result = run_limited(f"""
        import contextlib, io, runpy, sys, time
        example = runpy.run_path({SCRIPT!r}, run_name="hostile_example")
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            status = example["main"]({argv!r})
        print("@@", status, time.perf_counter() - t0)
        print(buf.getvalue())
    """, memory_mb=4096, seconds=30)
    assert result.outcome == "ok", result.report()
    head, _, text = result.output.partition("@@ ")[2].partition("\n")
    status, elapsed = head.split()
    assert status == "2" and "Traceback" not in text, result.output
    errors = _errors(text)
    assert len(errors) == 1 and flag in errors[0], text
    assert float(elapsed) < 1.0, f"{elapsed} s"
    assert _snapshot(copy_of) == before and sorted(os.listdir(copy_of)) == listed


def test_out_under_a_file_is_a_usage_error(example, tmp_path):
    (tmp_path / "afile").write_text("mine")
    code, text = _run(example, "--out", tmp_path / "afile" / "run", *SYNTHETIC)
    assert code == 2 and "--out" in text and "is a file" in text and "Traceback" not in text, text
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_network_too_large_names_the_memory(example, tmp_path):
    code, text = _run(example, "--out", tmp_path / "x", *SYNTHETIC, "--width", "1e300")
    error, = _errors(text)
    assert "needs" in error and "memory" in error
    assert not (tmp_path / "x").exists()


def test_overwrite_with_width_1e300_leaves_the_good_run_resumable(example, copy_of):
    code, text = _run(example, "--out", copy_of, *SYNTHETIC, "--overwrite", "--width", "1e300")
    assert code == 2, text
    code, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert code == 0 and "resuming" in text, text
    assert load_checkpoint(copy_of / "last.npz")["position"]["step"] == 6


def _killed_at_first_checkpoint(out, *args):
    """The example in a child process whose first checkpoint write kills it (SIGKILL): a run killed before its
    first checkpoint, at the last moment."""
    code = textwrap.dedent(f"""
        import os, runpy, signal, sys
        from minception.train import trainer
        def die(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        trainer.Trainer.save = die
        sys.argv = [{SCRIPT!r}] + {[str(a) for a in args]!r}
        runpy.run_path({SCRIPT!r}, run_name="__main__")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_overwrite_killed_before_its_first_checkpoint_leaves_the_old_run_as_it_was(example, copy_of):
    before = _snapshot(copy_of)
    done = _killed_at_first_checkpoint(copy_of, "--out", copy_of, *SYNTHETIC, "--overwrite", "--width", "0.05",
                                       "--seed", "7")
    assert done.returncode == -9, done.stdout + done.stderr
    assert "step 2" in done.stdout                         # it trained a whole epoch, then died
    assert _snapshot(copy_of) == before                    # run.json, the logs, last.npz, best.npz: all the old run's
    code, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert code == 0 and "resuming" in text, text
    assert [r["epoch"] for r in map(json.loads, (copy_of / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]


def test_overwrite_replaces_the_old_run_at_its_first_checkpoint(example, copy_of):
    code, text = _run(example, "--out", copy_of, *SYNTHETIC, "--overwrite", "--width", "0.05", "--epochs", "1")
    assert code == 0, text
    assert json.loads((copy_of / "run.json").read_text())["width"] == 0.05
    assert [json.loads(ln)["epoch"] for ln in (copy_of / "metrics.jsonl").read_text().splitlines()] == [1]
    code, text = _run(example, "--out", copy_of, "--resume", "--epochs", "2")
    assert code == 0, text


# -------------------------------------------------------------- item 7: operating-system failures are messages ---
def _refuse_writes(monkeypatch, folder, code):
    """Make every write under ``folder`` fail with OSError ``code`` (what a full disk, a read-only mount or a
    missing permission does), in this process."""
    folder = os.path.realpath(folder)
    real_open, real_os_open, real_replace = builtins.open, os.open, os.replace

    def inside(path):
        return isinstance(path, (str, bytes, os.PathLike)) and \
            os.path.realpath(os.fsdecode(path)).startswith(folder + os.sep)

    def fail(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    def guarded_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_replace(src, dst, *args, **kwargs):
        if inside(dst):
            fail(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(os, "replace", guarded_replace)


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left"), (errno.EROFS, "Read-only"),
                                         (errno.EACCES, "Permission denied")])
def test_a_refused_write_is_one_line_and_the_checkpoint_is_intact_simulated(example, copy_of, monkeypatch,
                                                                             code, words):
    before = _snapshot(copy_of)
    with monkeypatch.context() as patch:
        _refuse_writes(patch, copy_of, code)
        status, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert status == 2 and "Traceback" not in text, text
    error, = _errors(text)
    assert words in error and str(copy_of) in error and len(error) < 300, error
    assert _snapshot(copy_of) == before
    status, text = _run(example, "--out", copy_of, "--resume", "--epochs", "3")
    assert status == 0, text


def test_a_new_run_into_a_folder_it_may_not_write_is_one_line(example, tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir()
    with monkeypatch.context() as patch:
        _refuse_writes(patch, tmp_path / "ro", errno.EROFS)
        status, text = _run(example, "--out", tmp_path / "ro" / "run", *SYNTHETIC)
    assert status == 2 and "Traceback" not in text and "Read-only" in text, text


def _mount(*args):
    """Run ``mount`` (as root); returns None, or why it could not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting needs root and mount(8)"
    done = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True, timeout=30)
    return None if done.returncode == 0 else f"mount {' '.join(map(str, args))}: {done.stderr.strip()}"


@pytest.fixture
def mounted(tmp_path):
    points = []

    def mount(*args, point):
        why = _mount(*args)
        if why is not None:
            pytest.skip(f"cannot mount here ({why}); the in-process simulation above covers the messages")
        points.append(point)

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


def test_a_full_disk_is_one_line_and_the_checkpoint_is_intact(example, good_run, tmp_path, mounted):
    disk = tmp_path / "disk"
    disk.mkdir()
    size = 2 * sum(f.stat().st_size for f in good_run.iterdir()) + (1 << 20)     # room to resume, once freed
    mounted("-t", "tmpfs", "-o", f"size={size}", "tmpfs", disk, point=disk)
    out = disk / "run"
    shutil.copytree(good_run, out)
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)          # fill the disk to the last byte
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    before = _snapshot(out)
    status, text = _run(example, "--out", out, "--resume", "--epochs", "3")
    assert status == 2 and "Traceback" not in text, text
    error, = _errors(text)
    assert "No space left" in error and "last.npz" in error, error
    assert (out / "last.npz").read_bytes() == before["last.npz"]
    assert load_checkpoint(out / "last.npz")["position"]["step"] == 4
    filler.unlink()
    status, text = _run(example, "--out", out, "--resume", "--epochs", "3")
    assert status == 0, text


def test_a_read_only_run_folder_is_one_line(example, good_run, tmp_path, mounted):
    source, view = tmp_path / "source", tmp_path / "view"
    shutil.copytree(good_run, source)
    view.mkdir()
    mounted("--bind", source, view, point=view)
    mounted("-o", "remount,bind,ro", view, point=view)
    before = _snapshot(view)
    status, text = _run(example, "--out", view, "--resume", "--epochs", "3")
    assert status == 2 and "Traceback" not in text, text
    error, = _errors(text)
    assert "Read-only" in error and str(view) in error, error
    assert _snapshot(view) == before


# --------------------------------------------------------------------------------- item 8: data-set flags ---
def _write_fake_cifar(folder, n):
    """A CIFAR-10 'python version' folder with n random images per batch file (5 n training, n test images)."""
    import pickle

    import numpy as np
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f, protocol=2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [int(v) for v in rng.integers(0, 10, n)]}, f, protocol=2)


def test_an_empty_data_dir_is_a_usage_error(example, tmp_path):
    code, text = _run(example, "--out", tmp_path / "o", *TINY, "--data-dir", "")
    assert code == 2 and "--data-dir ''" in text and "Training on the synthetic" not in text, text
    assert not (tmp_path / "o").exists()


def test_subsets_beyond_a_small_copy_of_the_data_set_are_clamped_saying_so(example, tmp_path):
    _write_fake_cifar(tmp_path / "cifar" / "cifar-10-batches-py", n=8)          # 40 training, 8 test images
    out = tmp_path / "o"
    code, text = _run(example, "--data-dir", tmp_path / "cifar", "--out", out, *TINY, "--subset", "100",
                      "--test-subset", "50", "--epochs", "1")
    assert code == 0, text
    assert "--subset 100: CIFAR-10 has 40 training images here; using all of them" in text
    assert "--test-subset 50: CIFAR-10 has 8 test images here; using all of them" in text
    assert "data: CIFAR-10, 40 training and 8 test images" in text


def test_a_batch_larger_than_the_data_set_is_refused_before_training(example, tmp_path):
    _write_fake_cifar(tmp_path / "cifar" / "cifar-10-batches-py", n=8)
    out = tmp_path / "o"
    code, text = _run(example, "--data-dir", tmp_path / "cifar", "--out", out, *TINY, "--subset", "0",
                      "--batch-size", "64")
    assert code == 2 and "--batch-size 64" in text and "40 training images" in text, text
    assert "Traceback" not in text and not out.exists()
    code, text = _run(example, "--out", out, *SYNTHETIC, "--subset", "0", "--batch-size", "60000")
    assert code == 2 and "--batch-size 60000" in text and not out.exists(), text
