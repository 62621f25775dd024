"""The child process that grades one exercise: ``python -m minception.course.grader.child DIR NAME SEED OUT``.

It imports the student's file, runs the exercise's check (``checks.py``) and writes the result as JSON to
``OUT`` (written to a temporary name, then renamed: a half-written file is never read). Only plain data crosses
back to the parent, never a student's object. Whatever the student's code does here (loops forever, calls
``os._exit``, crashes the interpreter, exhausts the memory) ends this process only: the parent
(``runner.py``) then reports that exercise as failed and grades the next one in a fresh process.

The inputs come from ``numpy.random.default_rng([SEED, exercise id])``: the same seed gives the same inputs,
whether one exercise or all are graded. The kernels run in the reference tier, so that conv2d asks the
reference im2col (not the student's) for its columns, and the block's layers run the readable kernels.
"""
import json
import os
import sys

import numpy as np

import ops
from minception.course.exercises import exercise, load_student_module

from .calls import where_raised
from .checks import CHECKS
from .grading import Grading


def load_problem(error, path):
    """The problem dict for a student file that cannot be imported."""
    if isinstance(error, FileNotFoundError):
        message = f"no file {path} (the handout writes it; keep its name)"
    elif isinstance(error, SyntaxError):
        message = f"{os.path.basename(path)} does not compile: SyntaxError: {error.msg} (line {error.lineno})"
    else:
        message = (f"importing {os.path.basename(path)} raised {type(error).__name__}: {str(error)[:150]}"
                   f"{where_raised(error)}")
    return {"function": "", "call": "", "output": "", "kind": "import", "message": message}


def grade(directory, name, seed):
    """The JSON-ready result of exercise ``name`` for the student copy in ``directory``."""
    ex = exercise(name)
    folder = os.path.join(directory, "exercises")
    try:
        module = load_student_module(folder, ex.file)
    except BaseException as error:          # student code at import: anything, even SystemExit
        return {"exercise": ex.name, "status": "fail",
                "problems": [load_problem(error, os.path.join(folder, ex.file))]}
    g = Grading(ex.name, module, np.random.default_rng([seed, ex.id]))
    with np.errstate(all="ignore"), ops.kernels.use("reference"):
        CHECKS[ex.name](g)
    return g.result()


def main(argv):
    directory, name, seed, out = argv
    result = grade(directory, name, int(seed))
    with open(out + ".part", "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(out + ".part", out)


if __name__ == "__main__":
    main(sys.argv[1:])
