"""The grader can fail: a fresh copy fails every exercise, the solutions pass every one, and for each exercise a
planted classic mistake is caught with the right hint (``grader_planted.py``). Every report line fits in 100
columns; a seed repeats a run; usage errors exit with status 2.
"""
import re
import shutil
import subprocess
import sys

import pytest

from grader_planted import PLANTED
from minception.course import grader
from minception.course.exercises import EXERCISES
from minception.course.student_copy import write_copy


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """``(fresh, key)``: a student's fresh copy and the solutions, as ``new`` writes them."""
    root = tmp_path_factory.mktemp("grader")
    fresh, key = root / "fresh", root / "key"
    write_copy(str(fresh))
    write_copy(str(key), solutions=True)
    return fresh, key


def check(*args):
    """``python -m minception.course check ARGS``: (exit status, report)."""
    done = subprocess.run([sys.executable, "-m", "minception.course", "check", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def assert_fits(report):
    too_wide = [line for line in report.splitlines() if len(line) > 100]
    assert not too_wide, too_wide


def flat(report):
    """The report with every run of whitespace made one space (lines wrap at 100 columns)."""
    return " ".join(report.split())


def status_of(report, name):
    """The status of exercise ``name`` in the score table."""
    table = report[report.rindex("\nscore\n"):]
    return re.search(rf"^\s+\d+\s+{name}\s+(.+)$", table, re.M).group(1).strip()


def test_fresh_copy_fails_every_exercise(copies):
    code, report = check(copies[0], "--jobs", "2")
    assert code == 1, report
    assert f"0 of {len(EXERCISES)} exercises pass" in report
    assert all(status_of(report, e.name) == "not started" for e in EXERCISES), report
    assert "not started yet" in report
    assert_fits(report)


def test_solutions_pass_every_exercise(copies):
    code, report = check(copies[1], "--jobs", "2")
    assert code == 0, report
    assert report.rstrip().endswith(f"{len(EXERCISES)} of {len(EXERCISES)} exercises pass")
    assert_fits(report)


def test_every_exercise_has_a_planted_mistake():
    assert {p[0] for p in PLANTED} == {e.name for e in EXERCISES}


@pytest.mark.parametrize("planted", PLANTED, ids=[f"{p[0]}-{p[4][:24]}" for p in PLANTED])
def test_planted_mistake_is_caught_with_its_hint(copies, tmp_path, planted):
    name, file, solution, mistake, hint = planted
    student = tmp_path / "student"
    shutil.copytree(copies[1], student)
    path = student / "exercises" / file
    text = path.read_text()
    assert solution in text, f"the solution line moved: {solution!r}"
    path.write_text(text.replace(solution, mistake))
    code, report = check(student, name)
    assert code == 1, report
    assert status_of(report, name) == "FAIL", report
    causes = flat(report).split("likely cause: ")[1:]
    assert any(hint in cause for cause in causes), report
    assert "0 of 1 exercise passes" in report
    assert_fits(report)


def test_a_failure_names_the_output_and_the_first_wrong_element(copies, tmp_path):
    student = tmp_path / "student"
    shutil.copytree(copies[1], student)
    path = student / "exercises" / "im2col.py"
    path.write_text(path.read_text().replace("dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += cols[:, i, j]",
                                             "dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] = cols[:, i, j]"))
    code, report = check(student, "col2im", "--seed", "11")
    assert re.search(r"col2im: \d of 4 cases wrong; the first:", report), report
    assert re.search(r"dx: \d+ of \d+ elements wrong", report), report
    assert re.search(r"first at dx\[\d+, \d+, \d+, \d+\]: got \S+, expected \S+", report), report
    assert "only where windows overlap" in report      # stride-2 cases: only shared pixels are wrong


def test_a_seed_repeats_the_run_and_a_fresh_one_is_printed(copies):
    first, second = check(copies[1], "relu", "--seed", "12345"), check(copies[1], "relu", "--seed", "12345")
    assert first == second and "seed 12345 (rerun with --seed 12345)" in flat(first[1])
    _, report = check(copies[1], "1")
    assert re.search(r"seed \d+ \(rerun with --seed \d+\)", flat(report))


def test_usage_errors_exit_2(copies, tmp_path, capsys):
    assert grader.main([str(copies[1]), "no_such_exercise"]) == 2
    assert "unknown exercise 'no_such_exercise'" in flat(capsys.readouterr().err)
    assert grader.main([str(tmp_path / "missing")]) == 2
    assert grader.main([str(tmp_path)]) == 2
    assert "has no exercises/ folder" in flat(capsys.readouterr().err)
    assert grader.main([str(copies[1]), "relu", "--timeout", "0"]) == 2
    assert grader.main([str(copies[1]), "relu", "extra"]) == 2
    assert grader.main(["--bogus"]) == 2


def test_main_accepts_the_check_word(copies, capsys):
    assert grader.main(["check", str(copies[1]), "rmsprop"]) == 0
    assert "1 of 1 exercise passes" in capsys.readouterr().out
