"""Every classic mistake of the grader's catalog (``grader/mistakes.py``) is caught with its own hint.

For each mistake, the student's module is the library's reference with that one mistake injected: the function
it names returns the mistake's own result (``Mistake.compute``) in place of the right one. The exercise's check
must then fail, and the hint of one of its problems must be the mistake's. This proves that each mistake is
reachable on the grader's inputs (they expose it), and that its hint is not shadowed by another's. It runs in this
process: the checks are plain functions; the child process is tested in ``test_grader_isolation.py``.
"""
import importlib
import inspect
import types

import numpy as np
import pytest

import ops
from minception.course.exercises import exercise
from minception.course.grader.checks import CHECKS
from minception.course.grader.grading import Grading
from minception.course.grader.mistakes import MISTAKES
from minception.models.resnet_blocks import InceptionResNetA

#: function -> the names of its results, for the functions that return a tuple or change arrays in place
OUTPUTS = {
    "softmax_cross_entropy_forward": ("loss", "log_probs"),
    "backward": ("dx", "dweight"),
    "max_pool2d_forward": ("y", "argmax"),
    "forward_train": ("y", "mean", "var", "invstd"),
    "backward_train": ("gx", "ggamma", "gbeta"),
    "forward_eval": ("y", "invstd"),
    "backward_eval": ("gx", "ggamma", "gbeta"),
}
IN_PLACE = {"rmsprop_update": ("p", "ms", "mom")}


def with_mistake(reference, mistake):
    """A module like ``reference`` whose ``mistake.function`` gives the mistake's result for ``mistake.output``."""
    right = getattr(reference, mistake.function)
    signature = inspect.signature(right)

    def mistaken(*args):
        bound = signature.bind(*args)
        bound.apply_defaults()
        named = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in bound.arguments.items()}
        wrong = mistake.compute(named)
        result = right(*args)
        if mistake.function in IN_PLACE:
            args[list(signature.parameters).index(mistake.output)][...] = wrong
            return result
        names = OUTPUTS.get(mistake.function)
        if names is None:
            return wrong
        return tuple(wrong if n == mistake.output else r for n, r in zip(names, result))

    module = types.SimpleNamespace(**{n: getattr(reference, n) for n in dir(reference) if not n.startswith("__")})
    setattr(module, mistake.function, mistaken)
    return module


CASES = [(name, number, m) for name, mistakes in MISTAKES.items() for number, m in enumerate(mistakes)]


@pytest.mark.parametrize("name, number, mistake", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_mistake_is_caught_with_its_hint(name, number, mistake):
    reference = importlib.import_module(exercise(name).module)
    g = Grading(name, with_mistake(reference, mistake), np.random.default_rng([2024, number]))
    with np.errstate(all="ignore"), ops.kernels.use("reference"):
        CHECKS[name](g)
    assert g.status == "fail", f"{mistake.function}/{mistake.output}: not caught"
    hints = [p.get("hint") for p in g.problems]
    assert mistake.hint in hints, f"{mistake.function}/{mistake.output}: hints {hints}"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_reference_passes_its_own_check(name):
    ex = exercise(name)
    module = importlib.import_module(ex.module)
    if name == "inception_resnet_a":
        module = types.SimpleNamespace(InceptionResNetA=module.InceptionResNetA)
    g = Grading(name, module, np.random.default_rng(7))
    with np.errstate(all="ignore"), ops.kernels.use("reference"):
        CHECKS[name](g)
    assert g.status == "pass", g.problems


class NoScale(InceptionResNetA):
    """The block with the residual scale forgotten."""

    def forward(self, x):
        return ops.residual_add(x, self.conv2d(self.branches(x)), 1.0, self.relu)


class Renamed(InceptionResNetA):
    """The block with its up conv under another name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.up = self.conv2d
        del self._modules["conv2d"]

    def forward(self, x):
        return ops.residual_add(x, self.up(self.branches(x)), self.scale, self.relu)


@pytest.mark.parametrize("block, hint", [(NoScale, "forgot the residual scale"), (Renamed, "unexpected keys")])
def test_block_mistakes(block, hint):
    g = Grading("inception_resnet_a", types.SimpleNamespace(InceptionResNetA=block), np.random.default_rng(3))
    with np.errstate(all="ignore"), ops.kernels.use("reference"):
        CHECKS["inception_resnet_a"](g)
    assert g.status == "fail"
    assert any(hint in (p.get("hint") or "") + p["message"] for p in g.problems), g.problems


def test_a_wrong_dtype_is_named_with_what_the_contract_asks():
    student = types.SimpleNamespace(relu=lambda x: np.maximum(x, 0).astype(np.float64),
                                    relu_backward=lambda gy, y: gy * (y > 0))
    g = Grading("relu", student, np.random.default_rng(5))
    CHECKS["relu"](g)
    assert g.status == "fail"
    (problem,) = g.problems
    assert problem["function"] == "relu" and problem["output"] == "y" and problem["kind"] == "dtype"
    assert problem["message"] == "dtype float64, expected float32"
    assert "dtype=x.dtype" in problem["hint"]
