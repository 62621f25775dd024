"""``python -m minception.course new DIR``: write a student's copy of the course into DIR.

    DIR/README.md           what to do, in which order, how to test, grade and train
    DIR/course.json         the manifest: library version, whether solutions are in, the exercises
    DIR/exercises/*.py      the exercise files (``handout.py``), one per kernel family, optimizer or block
    DIR/tests/              the public tests (``public_tests.py``): ``pytest DIR``
    DIR/pytest.ini          so that ``pytest`` inside DIR finds the tests

A DIR that holds anything is refused (``CopyExists``) unless ``force``: a student's work is never overwritten by
accident.
"""
import json
import os

import minception

from .exercises import EXERCISES, FILES
from .handout import student_file
from .public_tests import TESTS

MANIFEST = "course.json"


class CopyExists(ValueError):
    """The target folder is not empty and ``force`` was not given."""


def readme(solutions):
    """The student's README.md."""
    rows = "\n".join(f"| {e.id} | `{e.name}` | `exercises/{e.file}` | {', '.join(f'`{f}`' for f in e.functions)} "
                     f"| {e.minutes} min | {e.goal} |" for e in EXERCISES)
    total = sum(e.minutes for e in EXERCISES)
    state = ("This copy has the solutions filled in (`--solutions`): it is the instructor's key."
             if solutions else "Every function to write raises `NotImplementedError` until you write it.")
    return f"""# minception course: your exercises

You write the kernels of a convolutional network yourself, then train an Inception-ResNet-v2 on them.
{state}

Each exercise is a function of the minception library with its body taken out. Its docstring states the task,
the shapes, the formula to derive, and a hint or two; the contract at the top of each file says what every
function of the file must accept and return. Write the code where `NotImplementedError` is raised (marked
`# YOUR CODE HERE`); change nothing else. Your files import only the library (numpy, autograd, ops, minception).

## The exercises, in order (about {total // 60} h {total % 60} min)

| # | name | file | write | time | goal |
|---|---|---|---|---|---|
{rows}

## Test, grade, train

```bash
pytest DIR                                       # the public tests: small fixed cases, and gradient checks
pytest DIR/tests/test_im2col.py                  # one exercise
python -m minception.course check DIR            # the grader: random shapes, and what your mistake likely is
python -m minception.course check DIR im2col     # one exercise (a name or a number)
python -m minception.course run DIR              # train an Inception-ResNet-v2 on your kernels
python -m minception.course run DIR --steps 20   # a short run, to see that it works
```

(`DIR` is this folder; inside it, `pytest` and `python -m minception.course check .` do the same.)

`run` registers each finished file as your own kernel tier, `student`, with `ops.kernels.register`, after the
library's contract check; a file that is not finished or breaks its contract is left out, the run says why in
one line, and the library's reference code runs that part instead. So you can train as soon as you have one
family: your im2col alone already runs every convolution of the network. Your `rmsprop_update` makes the
optimizer's update and your `InceptionResNetA` the network's IR-A block once they agree with the library's.

Useful while you work: `ops.kernels.check("im2col", module)` checks a module against a family's contract and
prints what is wrong, call by call; `autograd.gradcheck` compares a backward with central differences.
"""


def write_copy(directory, solutions=False, force=False):
    """Write the course into ``directory`` (created if missing). Returns the list of paths written.

    Raises CopyExists when ``directory`` holds anything and ``force`` is false."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CopyExists(f"{directory} is a file; expected a folder for the course (new or empty)")
    if os.path.isdir(directory) and os.listdir(directory) and not force:
        raise CopyExists(f"{directory} is not empty; give a new or empty folder, or --force to write over it")
    files = {os.path.join("exercises", f): student_file(f, solutions) for f in FILES}
    files.update({os.path.join("tests", name): text for name, text in TESTS.items()})
    files["README.md"] = readme(solutions)
    files["pytest.ini"] = "[pytest]\ntestpaths = tests\n"
    manifest = {"course": "minception", "library_version": minception.__version__, "solutions": bool(solutions),
                "exercises": [{"id": e.id, "name": e.name, "file": e.file, "functions": list(e.functions),
                               "family": e.family, "minutes": e.minutes} for e in EXERCISES]}
    files[MANIFEST] = json.dumps(manifest, indent=2) + "\n"
    written = []
    for name, text in files.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written
