"""One exercise's grading in the child process: call a student's function, compare, collect the problems.

A ``Grading`` runs *cases*: one call of one of the student's functions on inputs drawn from the grader's random
generator, compared output by output with the reference's call on copies of the same inputs. Each problem found
is a plain dict (JSON for the parent)::

    {"function": "col2im", "call": "col2im(cols=(18, 40) float64, x_shape=(2, 2, 5, 7), ...)",
     "output": "dx", "kind": "values", "message": "7 of 140 elements wrong, only where windows overlap",
     "first": "first at dx[0, 1, 2, 3]: got 0.25, expected 0.5", "hint": "`=` where `+=` is needed: ..."}

Only the first failing case of each function is kept (one wrong call teaches as much as ten), with the number of
cases that failed. A function whose body still raises NotImplementedError is "not started".

``gradient_check`` then compares the student's backward with finite differences of the student's own forward
(``gradcheck.py``), and says which of the two to fix when exactly one of them agrees with the reference.
"""
import copy

import numpy as np

from .calls import NotStarted, call, call_text
from .compare import compare, unchanged
from .gradcheck import check_gradient
from .mistakes import OVERFLOW, diagnose

#: per exercise, what to say when the student's result has inf or NaN where the reference's is finite
NONFINITE_HINTS = {
    "softmax_cross_entropy": OVERFLOW,
}
NONFINITE_HINT = "inf or NaN where the reference is finite: a division by zero or an overflow?"


def dtype_hint(name, expected):
    """What to do about a result of the right values in the wrong dtype."""
    if name == "argmax":
        return "argmax_dtype(kernel_size) gives its dtype: uint8 up to 256 window offsets, else int32"
    return (f"the contract asks for {expected.dtype}: create arrays with dtype=x.dtype (or the dtype the "
            f"docstring names), or convert with .astype({expected.dtype})")


def copies(args):
    """Deep copies of the arguments: the reference, the mistakes and the check for modified inputs each get
    their own."""
    return [copy.deepcopy(a) for a in args]


class Grading:
    """The cases run and the problems found for one exercise (``exercise``: its name, e.g. ``"im2col"``).

    ``module``: the student's module; ``rng``: the grader's generator (seeded by the parent)."""

    def __init__(self, exercise, module, rng):
        self.exercise, self.module, self.rng = exercise, module, rng
        self.problems = []
        self.cases = {}                 # function -> [cases run, cases failed]
        self.started, self.not_started = set(), set()

    # ------------------------------------------------------------------ bookkeeping
    def function(self, name):
        """The student's function ``name``, or None (a problem is recorded) when the file lacks it."""
        fn = getattr(self.module, name, None)
        if not callable(fn):
            if name not in self.cases:
                self.cases[name] = [0, 0]
                self.started.add(name)
                self.problems.append({"function": name, "call": "", "output": "", "kind": "missing",
                                      "message": f"{name} is missing from the file (the handout defines it; "
                                                 f"keep its name and signature)"})
            return None
        return fn

    def record(self, function, text, problems):
        """Count one case of ``function``; keep its problems if it is the function's first failing case."""
        run_failed = self.cases.setdefault(function, [0, 0])
        run_failed[0] += 1
        if problems:
            run_failed[1] += 1
            if run_failed[1] == 1:
                self.problems += [dict(p, function=function, call=text) for p in problems]

    @property
    def status(self):
        """``"pass"``, ``"fail"`` or ``"not started"`` (every function still raises NotImplementedError)."""
        if self.not_started and not self.started:
            return "not started"
        return "fail" if self.problems or self.not_started else "pass"

    def result(self):
        """The JSON-ready summary the child sends back to the parent."""
        return {"exercise": self.exercise, "status": self.status, "problems": self.problems,
                "not_started": sorted(self.not_started),
                "cases": {f: {"run": r, "failed": w} for f, (r, w) in self.cases.items()}}

    # ------------------------------------------------------------------ one case
    def run(self, function, names, args, reference, outputs, dtype, regions=None, shape_rules=None, scale=None,
            inplace=()):
        """Call the student's ``function(*args)`` and compare with ``reference(*args)``.

        Args:
            names: the arguments' names (as the contract writes them); args: their values.
            reference: the library's function.
            outputs: the result's name, or a tuple of names when the function returns a tuple.
            dtype: the inputs' dtype (the tolerance).
            regions: ``{output: [(phrase, mask)]}`` for the report of where values differ.
            shape_rules: ``{output: "(C*kh*kw, N*OH*OW)"}``.
            scale: ``{output: value}``, what the tolerance is relative to (default: the largest value).
            inplace: names of the arguments the function changes in place; they are then its results (in the
                order of ``outputs``) and its return value is ignored.

        Returns the student's results (a tuple when ``outputs`` is), or None when the call failed.
        """
        fn = self.function(function)
        if fn is None:
            return None
        text = call_text(function, names, args)
        given = copies(args)
        mine = copies(args)
        try:
            got, problem = call(fn, mine)
        except NotStarted:
            self.not_started.add(function)
            return None
        self.started.add(function)
        if problem:
            self.record(function, text, [problem])
            return None
        expected_args = copies(args)
        expected = reference(*expected_args)
        single = isinstance(outputs, str)
        outputs = (outputs,) if single else tuple(outputs)
        if inplace:
            got = tuple(mine[names.index(n)] for n in inplace)
            expected = tuple(expected_args[names.index(n)] for n in inplace)
        elif single:
            got, expected = (got,), (expected,)
        elif not isinstance(got, (tuple, list)) or len(got) != len(outputs):
            what = f"a {type(got).__name__} of {len(got)}" if isinstance(got, (tuple, list)) else type(got).__name__
            self.record(function, text, [{"output": "", "kind": "type",
                                          "message": f"returned {what}, expected the tuple ({', '.join(outputs)})"}])
            return None
        problems = []
        named = dict(zip(names, given))
        for name, g, e in zip(outputs, got, expected):
            difference = compare(name, g, e, dtype, (regions or {}).get(name, ()), (scale or {}).get(name),
                                 (shape_rules or {}).get(name, ""))
            if difference:
                difference["hint"] = (dtype_hint(name, e) if difference["kind"] == "dtype"
                                      else self.hint(function, name, g, e, named, dtype, inplace))
                problems.append(difference)
        for name, before, after in zip(names, given, mine):
            if name not in inplace:
                difference = unchanged(name, before, after)
                if difference:
                    problems.append(difference)
        self.record(function, text, problems)
        return got[0] if single else tuple(got)

    def hint(self, function, output, got, expected, named, dtype, inplace):
        """The likely cause of a wrong ``output``: a classic mistake it equals, or what its values suggest."""
        if not isinstance(got, np.ndarray):
            return None
        mistake = diagnose(self.exercise, function, output, got, named, dtype)
        if mistake:
            return mistake
        if inplace and output in named and got.shape == named[output].shape \
                and np.array_equal(got, named[output]) and not np.array_equal(got, expected):
            return (f"{output} was not changed: update it in place ({output} -= ..., {output} *= ...); "
                    f"{output} = {output} - ... makes a new array and leaves the caller's as it was")
        if got.shape == expected.shape and got.dtype.kind == "f" and expected.dtype.kind == "f":
            if (~np.isfinite(got) & np.isfinite(expected)).any():
                return NONFINITE_HINTS.get(self.exercise, NONFINITE_HINT)
        return None

    # ------------------------------------------------------------------ gradient check
    def gradient_check(self, functions, text, gradients):
        """The student's backward against finite differences of the student's own forward (float64).

        ``functions``: ``(forward, backward)`` names; the check runs only when both ran without an exception in
        the cases. ``gradients()`` (from ``checks.py``) calls them and returns ``[(name, analytic, loss, x,
        regions)]``: the gradient the backward gave for input ``x``, and ``loss(x) = sum(gy * forward(x))``."""
        if not all(f in self.started and f not in self.not_started and self.cases.get(f, [0, 0])[0]
                   and not any(p["function"] == f and p["kind"] in ("exception", "missing", "type")
                               for p in self.problems) for f in functions):
            return
        problems = []
        try:
            with np.errstate(all="ignore"):
                for name, analytic, loss, x, regions in gradients():
                    difference = check_gradient(name, analytic, loss, x, regions)
                    if difference:
                        difference["message"] += " (against finite differences of your forward)"
                        problems.append(difference)
        except Exception as error:          # student code: whatever it raises on these inputs
            problems = [{"output": "", "kind": "exception", "message": f"raised {type(error).__name__}: "
                                                                      f"{str(error)[:150]}"}]
        if problems and problems[-1]["kind"] == "values":
            problems[-1]["hint"] = self.gradient_hint(functions)
        text = "gradient check, float64: " + text
        self.problems += [dict(p, function=functions[-1], call=text, gradcheck=True) for p in problems]

    def gradient_hint(self, functions):
        """Which side to fix when the backward disagrees with finite differences of the student's forward."""
        fine = [f for f in functions if not self.cases.get(f, [0, 1])[1]]
        if fine == list(functions[:-1]):
            return (f"your {functions[-1]} is not the derivative of your {', '.join(functions[:-1])}, which "
                    f"agrees with the reference: fix {functions[-1]}")
        if fine == [functions[-1]]:
            return (f"your {functions[-1]} agrees with the reference's, so your {', '.join(functions[:-1])} "
                    f"is the one to fix")
        return None
