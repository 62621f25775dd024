"""The course's catalog and handout: one source for the exercises and their solutions (the library's own code).

The solution regions are balanced in every library file and lie inside the catalog's functions; the handout of
each student file compiles, imports only the installed library, and raises NotImplementedError in every
function to write; with the solutions in place each file is the library's reference, number for number.
"""
import ast
import os

import numpy as np
import pytest

import ops
from minception import models, nn
from minception.course import handout
from minception.course.exercises import EXERCISES, FAMILY_FILES, FILES, exercise, exercises_in, load_student_module
from minception.models.rules import Rules
from minception.optim.rmsprop import rmsprop_update

ROOT = handout.ROOT


def library_files():
    for top in ("autograd", "ops", "minception"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for file in files:
                if file.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, file), ROOT).replace(os.sep, "/")


def test_the_catalog_is_the_fixed_table():
    assert [e.id for e in EXERCISES] == list(range(1, 12))
    assert [e.name for e in EXERCISES] == ["relu", "softmax_cross_entropy", "im2col", "col2im", "conv2d", "max_pool",
                                           "avg_pool", "batch_norm_train", "batch_norm_eval", "rmsprop",
                                           "inception_resnet_a"]
    assert exercise(3) is exercise("im2col") is exercise("3")
    assert exercise("col2im").file == "im2col.py" and exercise("col2im").functions == ("col2im",)
    assert FAMILY_FILES == {"elementwise": "relu.py", "loss": "loss.py", "im2col": "im2col.py",
                            "conv2d": "conv2d.py", "pooling": "pooling.py", "batch_norm": "batch_norm.py"}
    assert [e.name for e in exercises_in("pooling.py")] == ["max_pool", "avg_pool"]
    for e in EXERCISES:
        assert e.title and e.goal.endswith(".") and 5 <= e.minutes <= 60
        assert os.path.isfile(os.path.join(ROOT, e.source)), e.source
        assert e.family is None or e.family in ops.kernels.FAMILIES
    with pytest.raises(ValueError, match="unknown exercise 'im2cols'; expected an id 1-11 or one of relu"):
        exercise("im2cols")


def test_the_solution_markers_are_balanced_in_every_library_file():
    holding = set()
    for path in library_files():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            if handout.regions(f.read(), path):
                holding.add(path)
    assert holding == {e.source for e in EXERCISES}


@pytest.mark.parametrize("text, message", [
    ("    # --- solution: end ---\n", "without a '# --- solution: begin ---'"),
    ("# --- solution: begin ---\n# --- solution: begin ---\n", "inside the region opened at line 1"),
    ("  # --- solution: begin ---\nx = 1\n", "never closed"),
    ("    # --- solution: begin ---\n# --- solution: end ---\n", "indented by 0, expected 4"),
])
def test_unbalanced_markers_are_refused_with_the_line(text, message):
    with pytest.raises(handout.HandoutError, match=message):
        handout.regions(text, "f.py")


def imported_tops(text):
    tree = ast.parse(text)
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"a relative import: from {'.' * node.level}{node.module or ''}"
            tops.add(node.module.split(".")[0])
    return tops


@pytest.mark.parametrize("file", FILES)
def test_each_student_file_compiles_and_imports_only_the_library(file):
    for solutions in (False, True):
        text = handout.student_file(file, solutions=solutions)
        compile(text, file, "exec")
        assert handout.regions(text) == []
        assert imported_tops(text) <= {"numpy", "autograd", "ops", "minception"}
        assert max(len(line) for line in text.splitlines()) <= 120
    text = handout.student_file(file)
    for e in exercises_in(file):
        assert f'NotImplementedError("exercise {e.id} {e.name}: ' in text
    assert "# YOUR CODE HERE" in text


def test_relative_imports_become_absolute():
    text = handout.student_file("conv2d.py")
    assert "from ops.geometry import conv_out_size\n" in text
    assert "from ops.kernels.tiers import lookup\n" in text
    block = handout.student_file("inception_resnet_a.py")
    assert "from minception.models.layers import conv, up_conv\n" in block
    assert "from minception.models.resnet_blocks import InceptionResNetBlock\n" in block


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    from minception.course.student_copy import write_copy
    fresh, key = tmp_path_factory.mktemp("fresh"), tmp_path_factory.mktemp("key")
    write_copy(fresh)
    write_copy(key, solutions=True)
    return fresh / "exercises", key / "exercises"


@pytest.mark.parametrize("family", list(FAMILY_FILES))
def test_a_fresh_copy_raises_not_implemented_in_every_function_to_write(copies, family):
    module = load_student_module(copies[0], FAMILY_FILES[family])
    calls = getattr(ops.kernels.contracts, family).calls(np.random.default_rng(0), np.float64)
    written = {f for e in exercises_in(FAMILY_FILES[family]) for f in e.functions}
    seen = set()
    for call in calls:
        if call.function in written and call.function not in seen:
            seen.add(call.function)
            positional, keywords = call.split_args(call.args)
            with pytest.raises(NotImplementedError, match=f"write {call.function} "):
                getattr(module, call.function)(*positional, **keywords)
    assert seen == written


def test_a_fresh_copy_raises_in_the_optimizer_and_the_block(copies):
    rmsprop = load_student_module(copies[0], "rmsprop.py")
    with pytest.raises(NotImplementedError, match="exercise 10 rmsprop: write rmsprop_update"):
        rmsprop.rmsprop_update(np.ones(3), np.ones(3), np.ones(3), np.zeros(3), 0.1, 0.9, 1.0, 0.9, 0.0, True)
    block = load_student_module(copies[0], "inception_resnet_a.py")
    with pytest.raises(NotImplementedError, match="exercise 11 inception_resnet_a: write InceptionResNetA.__init__"):
        block.InceptionResNetA(16, Rules(0.125), 2)


@pytest.mark.parametrize("family", list(FAMILY_FILES))
def test_the_solutions_are_the_reference(copies, family):
    report = ops.kernels.check(family, load_student_module(copies[1], FAMILY_FILES[family]))
    assert report.ok and report.calls > 0, str(report)


def test_the_solutions_of_the_optimizer_and_the_block_are_the_librarys(copies):
    rng = np.random.default_rng(3)
    mine = [rng.standard_normal(6), rng.standard_normal(6), np.ones(6), np.zeros(6)]
    library = [a.copy() for a in mine]
    load_student_module(copies[1], "rmsprop.py").rmsprop_update(*mine, 0.02, 0.9, 1.0, 0.9, 4e-5, True)
    rmsprop_update(*library, 0.02, 0.9, 1.0, 0.9, 4e-5, True)
    for a, b in zip(mine, library):
        np.testing.assert_array_equal(a, b)
    block_class = load_student_module(copies[1], "inception_resnet_a.py").InceptionResNetA
    nn.init.manual_seed(5)
    theirs = block_class(24, Rules(0.25), 2, scale=0.17)
    nn.init.manual_seed(5)
    ours = models.InceptionResNetA(24, Rules(0.25), 2, scale=0.17)
    from autograd import Tensor
    x = Tensor(rng.standard_normal((2, 24, 5, 5)).astype(np.float32))
    np.testing.assert_array_equal(theirs(x).data, ours(x).data)
