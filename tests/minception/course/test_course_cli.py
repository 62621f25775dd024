"""``python -m minception.course new`` and ``run``: a student's copy, its public tests, and training on it.

The public tests fail on a fresh copy and pass on the solutions (pytest in a child process on each copy); ``run``
trains on a solutions copy with the student's kernels (the student's im2col is called) and, on a fresh copy,
says for each family that the reference runs it.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ops
from minception.course import run as course_run
from minception.course.__main__ import main
from minception.course.exercises import EXERCISES, FILES
from minception.course.public_tests import TESTS


def course(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minception.course", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    fresh, key = tmp_path_factory.mktemp("course") / "fresh", tmp_path_factory.mktemp("course") / "key"
    assert main(["new", str(fresh)]) == 0
    assert main(["new", str(key), "--solutions"]) == 0
    return fresh, key


def test_new_writes_every_file(copies):
    fresh, _ = copies
    written = {os.path.relpath(os.path.join(d, f), fresh) for d, _, files in os.walk(fresh) for f in files}
    expected = ({os.path.join("exercises", f) for f in FILES} | {os.path.join("tests", t) for t in TESTS}
                | {"README.md", "course.json", "pytest.ini"})
    assert written == expected
    manifest = json.loads((fresh / "course.json").read_text())
    assert manifest["solutions"] is False and [e["name"] for e in manifest["exercises"]] == [e.name for e in EXERCISES]
    readme = (fresh / "README.md").read_text()
    for e in EXERCISES:
        assert f"`exercises/{e.file}`" in readme
    assert "python -m minception.course check DIR" in readme and "python -m minception.course run DIR" in readme


def test_new_refuses_a_folder_that_is_not_empty(copies, capsys):
    fresh, _ = copies
    assert main(["new", str(fresh)]) == 2
    err = capsys.readouterr().err
    assert f"{fresh} is not empty" in err and "--force" in err
    assert main(["new", str(fresh), "--force"]) == 0


def test_usage_errors_exit_2_with_one_line():
    result = course()
    assert result.returncode == 2 and "expected a command: new, check or run" in result.stderr
    assert course("--help").returncode == 0
    result = course("run", "--steps", "0", "somewhere")
    assert result.returncode == 2 and "expected a positive whole number, got 0" in result.stderr
    assert all(len(line) <= 100 for line in result.stderr.splitlines())


def test_run_needs_a_copy(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    assert "holds no exercises/ folder" in capsys.readouterr().err


def public_tests(folder):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          capture_output=True, text=True, cwd=folder, timeout=300)


def test_the_public_tests_fail_on_a_fresh_copy_and_pass_on_the_solutions(copies):
    fresh, key = copies
    failed = public_tests(fresh)
    assert failed.returncode == 1, failed.stdout[-2000:]
    assert " passed" not in failed.stdout.splitlines()[-1], failed.stdout[-2000:]
    for name in TESTS:
        if name.startswith("test_"):
            assert f"{name}::" in failed.stdout, f"no failure reported in {name}"
    passed = public_tests(key)
    assert passed.returncode == 0, passed.stdout[-3000:]


@pytest.fixture
def restore_tiers():
    yield
    if course_run.TIER in ops.kernels.registered_tiers():
        ops.kernels.unregister(course_run.TIER)


def test_run_trains_on_the_students_kernels(copies, restore_tiers):
    _, key = copies
    said = []
    results = course_run.train(str(key), steps=3, say=said.append, test_images=50)
    assert all(np.isfinite(results["losses"]))
    assert results["families"] == ["elementwise", "loss", "im2col", "conv2d", "pooling", "batch_norm"]
    assert results["counts"]["im2col"] > 0 and results["counts"]["col2im"] > 0
    assert results["counts"]["conv2d forward"] > 0 and results["counts"]["rmsprop_update"] > 0
    assert results["rmsprop"] and results["blocks"] == 1
    assert "update_running_stats" not in results["counts"]          # given in the handout, not the student's
    text = "\n".join(said)
    assert "your elementwise, loss, im2col, conv2d, pooling, batch_norm, rmsprop_update, InceptionResNetA" in text
    assert "calls of your functions: " in text
    assert all(len(line) <= 100 for line in said), text


def test_run_on_a_fresh_copy_falls_back_to_the_reference_and_says_why(copies, restore_tiers):
    fresh, _ = copies
    said = []
    results = course_run.train(str(fresh), steps=2, say=said.append, test_images=50)
    assert results["families"] == [] and not results["counts"] and np.isfinite(results["losses"]).all()
    assert ("pooling: not done yet (max_pool2d_forward raises NotImplementedError): the reference runs it"
            in said)
    assert "im2col: not done yet (im2col raises NotImplementedError): the reference runs it" in said
    assert any(line.startswith("the library's reference code (none of yours is finished yet)") for line in said)


def test_a_broken_family_is_refused_with_its_first_problem(copies, tmp_path, restore_tiers):
    _, key = copies
    broken = tmp_path / "exercises"
    broken.mkdir()
    text = (key / "exercises" / "im2col.py").read_text()
    (broken / "im2col.py").write_text(text.replace("return cols.reshape(c * kh * kw, n * oh * ow)",
                                                   "return cols.reshape(c * kh * kw, n * oh * ow).T"))
    said = []
    assert course_run.register_student_tier(str(broken), {}, said.append) == []
    line = next(line for line in said if line.startswith("im2col:"))
    assert line.startswith("im2col: breaks its contract, so the reference runs it; im2col: cols: shape")
    assert len(line) <= 100


def test_a_copy_with_im2col_done_registers_that_family_alone(copies, tmp_path, restore_tiers):
    fresh, key = copies
    partial = tmp_path / "exercises"
    partial.mkdir()
    for file in FILES:
        source = key if file == "im2col.py" else fresh
        (partial / file).write_text((source / "exercises" / file).read_text())
    said, counts = [], {}
    assert course_run.register_student_tier(str(partial), counts, said.append) == ["im2col"]
    assert [line for line in said if line.startswith("im2col:")] == \
        ["im2col: yours (exercises/im2col.py passes the contract check)"]
    assert "conv2d: not done yet (forward raises NotImplementedError): the reference runs it" in said
    lines = {line.split()[0]: line.split()[1] for line in ops.kernels.describe("student").splitlines()[1:]}
    assert lines["im2col"] == "student" and lines["conv2d"] == "reference"
