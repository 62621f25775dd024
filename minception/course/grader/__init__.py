"""The grader: ``python -m minception.course check DIR [EXERCISE]`` and ``check --csv OUT DIR...``.

It grades a student's copy (``DIR/exercises/*.py``, written by ``python -m minception.course new DIR``) exercise
by exercise. Each exercise runs in a child process with a time limit (``runner.py``, ``child.py``), on inputs
drawn from a seed the student cannot know (fresh from ``secrets`` on every run, printed so that ``--seed``
repeats a run). Its functions are compared with the library's reference on odd shapes in float64 and float32
(``checks.py``, ``grading.py``, ``compare.py``); where it has a backward, that is also checked against finite
differences of the student's own forward (``gradcheck.py``). A wrong result is reported by name, with the
first wrong element, how many are wrong and where (``regions.py``), and the likely cause when the result
equals one of the classic mistakes (``mistakes.py``, ``block.py``). A score table ends the report
(``report.py``); ``--csv`` grades a whole class into one table (``csv_report.py``).

Exit status: 0 when every exercise graded passes (``--csv``: when the CSV is written), 1 otherwise, 2 for a
usage error (an unknown exercise, a folder that is not a student's copy).
"""
import argparse
import os
import secrets
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

from minception.course.exercises import EXERCISES, exercise

from . import csv_report, report, runner

DEFAULT_TIMEOUT = 60.0


def parser():
    p = argparse.ArgumentParser(
        prog="python -m minception.course check",
        description="Grade a student's copy of the course exercises (or, with --csv, a whole class).")
    p.add_argument("paths", nargs="+", metavar="DIR",
                   help="the student's copy and, optionally, one exercise (id or name); with --csv: the copies")
    p.add_argument("--csv", metavar="OUT", help="grade every DIR given and write one row per student to OUT")
    p.add_argument("--seed", type=int, help="the seed of the inputs (default: a fresh one, printed)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds allowed per exercise (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--jobs", type=int, default=1, help="exercises graded at the same time (default 1)")
    return p


def usage_error(message):
    print(textwrap.fill(f"python -m minception.course check: {message}", 100, subsequent_indent="    ",
                        break_on_hyphens=False), file=sys.stderr)
    return 2


def check_copy(directory):
    """None when ``directory`` looks like a student's copy, else the message saying why not."""
    if not os.path.isdir(directory):
        return f"no folder {directory}"
    if not os.path.isdir(os.path.join(directory, "exercises")):
        return (f"{directory} has no exercises/ folder: expected a copy written by "
                f"'python -m minception.course new {directory}'")
    return None


def grade_copy(directory, chosen, seed, timeout, jobs):
    """The results (dicts, in the order of ``chosen``) of the exercises ``chosen`` for one copy."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda ex: runner.grade(directory, ex, seed, timeout), chosen))


def main(argv=None):
    """The ``check`` command; returns the exit status. ``argv`` may start with the word ``check``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        argv = argv[1:]
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:          # argparse printed the usage
        return 0 if stop.code == 0 else 2
    if args.timeout <= 0:
        return usage_error(f"--timeout must be positive, got {args.timeout:g}")
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    if args.csv:
        return grade_class(args.csv, args.paths, seed, args.timeout, args.jobs)
    if len(args.paths) > 2:
        return usage_error("expected DIR and at most one EXERCISE (to grade several copies, use --csv OUT DIR...)")
    directory = args.paths[0]
    problem = check_copy(directory)
    if problem:
        return usage_error(problem)
    try:
        chosen = [exercise(args.paths[1])] if len(args.paths) == 2 else list(EXERCISES)
    except ValueError as error:
        return usage_error(str(error))
    results = grade_copy(directory, chosen, seed, args.timeout, args.jobs)
    print(report.report(directory, seed, results, [ex.id for ex in chosen]))
    return 0 if all(r["status"] == "pass" for r in results) else 1


def grade_class(out, directories, seed, timeout, jobs):
    """``check --csv OUT DIR...``: every copy graded on the same inputs, one row each, a line per student."""
    for directory in directories:
        problem = check_copy(directory)
        if problem:
            return usage_error(problem)
    names = csv_report.student_names(directories)
    rows = []
    print(f"minception course: grading {len(directories)} copies, seed {seed} (rerun with --seed {seed})")
    for name, directory in zip(names, directories):
        results = grade_copy(directory, EXERCISES, seed, timeout, jobs)
        rows.append((name, results))
        passed = sum(r["status"] == "pass" for r in results)
        print(f"  {name}: {passed} of {len(results)} exercises pass")
    csv_report.write_csv(out, [ex.name for ex in EXERCISES], rows)
    print(f"wrote {out}")
    return 0
