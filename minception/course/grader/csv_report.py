"""A class in one CSV: one row per student (the name of their folder), one column per exercise (1 pass, 0 not),
and their total. Written with the ``csv`` module, so a spreadsheet opens it as it is::

    student,relu,softmax_cross_entropy,im2col,...,inception_resnet_a,total
    alice,1,1,0,...,0,7
"""
import csv
import os


def student_names(directories):
    """The folder name of each copy (``/class/alice`` -> ``alice``); the whole path where two names clash."""
    names = [os.path.basename(os.path.normpath(d)) for d in directories]
    return [n if names.count(n) == 1 else os.path.normpath(d) for n, d in zip(names, directories)]


def write_csv(path, exercise_names, rows):
    """Write ``rows`` (``[(student, [result dicts in the order of exercise_names])]``) to ``path``."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *exercise_names, "total"])
        for student, results in rows:
            marks = [int(r["status"] == "pass") for r in results]
            writer.writerow([student, *marks, sum(marks)])
