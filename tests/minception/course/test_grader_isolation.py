"""The grader runs student code in a child process with a time limit: an infinite loop, ``os._exit``, a
segfault and a ``MemoryError`` fail their own exercise and nothing else. And ``--csv`` grades a class.
"""
import csv
import shutil
import subprocess
import sys
import time

import pytest

from minception.course.exercises import EXERCISES
from minception.course.student_copy import write_copy

#: (student file, the solution's line, what replaces it): one misbehaving exercise each
HOSTILE = [
    ("relu.py", "    return gy * (y > 0)\n", "    while True:\n        pass\n"),
    ("conv2d.py", "    cout, _, kh, kw = weight.shape\n    kernels", "    import os; os._exit(3)\n    kernels"),
    ("im2col.py", "    x_padded = xp.pad(x", "    import ctypes; ctypes.string_at(0)\n    x_padded = xp.pad(x"),
    ("rmsprop.py", "    ms *= decay\n", "    ms *= decay\n    __import__('numpy').empty(10 ** 16)\n"),
]


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("isolation") / "key"
    write_copy(str(path), solutions=True)
    return path


def check(*args):
    done = subprocess.run([sys.executable, "-m", "minception.course", "check", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_a_hang_a_crash_and_a_memory_error_fail_only_their_exercise(key, tmp_path):
    student = tmp_path / "student"
    shutil.copytree(key, student)
    for file, solution, hostile in HOSTILE:
        path = student / "exercises" / file
        text = path.read_text()
        assert solution in text, f"the solution line moved: {solution!r}"
        path.write_text(text.replace(solution, hostile, 1))
    start = time.monotonic()
    code, report = check(student, "--timeout", "3", "--jobs", "2")
    assert time.monotonic() - start < 60, report
    assert code == 1
    table = report[report.rindex("\nscore\n"):]
    assert "relu                       FAIL (time limit)" in table, report
    assert "still running after 3 s" in report
    assert "conv2d                     FAIL (crashed)" in table, report
    assert "exited with status 3" in report
    assert "im2col                     FAIL (crashed)" in table, report
    assert "SIGSEGV" in report
    assert "rmsprop                    FAIL\n" in table, report
    assert "raised MemoryError" in report
    assert f"{len(EXERCISES) - 4} of {len(EXERCISES)} exercises pass" in report


def test_csv_grades_a_class(key, tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    shutil.copytree(key, alice)
    write_copy(str(bob))
    out = tmp_path / "class.csv"
    code, report = check("--csv", out, alice, bob, "--jobs", "2")
    assert code == 0, report
    assert f"alice: {len(EXERCISES)} of {len(EXERCISES)} exercises pass" in report
    assert f"bob: 0 of {len(EXERCISES)} exercises pass" in report
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", *[e.name for e in EXERCISES], "total"]
    assert rows[1] == ["alice", *["1"] * len(EXERCISES), str(len(EXERCISES))]
    assert rows[2] == ["bob", *["0"] * len(EXERCISES), "0"]
