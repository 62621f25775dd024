"""Contract checks: does an implementation of a kernel family compute what the reference computes?

Each family's contract (the functions, their arguments, shapes and dtypes, what they may assume and must not do)
is stated in the docstring of its reference file, ``ops/kernels/reference/<family>.py``. The check calls every
function of the family on small inputs (odd, non-square shapes, stride > 1, padding > 0; float32 and float64;
max pooling without ties), calls the reference on copies of the same inputs, and compares::

    report = ops.kernels.check("im2col", my_im2col)     # a module, or any object with im2col and col2im
    print(report)                                       # what is wrong, call by call; report.ok: all agree
    ops.kernels.assert_contract("im2col", my_im2col)    # the same, raising KernelContractError if not ok

For each call it reports a missing function, an exception, a result of the wrong kind or count, shape or dtype,
values that differ (the first wrong element's index, got and expected, how many differ; floats agree to 1e-10 in
float64 and 1e-5 in float32 relative to the largest value, integers exactly) and an input the call modified.
``ops.kernels.register`` runs this check and refuses a broken implementation with the report. The checks run on
NumPy arrays (the CPU); the calls of each family are in this package's file of the same name.
"""
from importlib import import_module

import numpy as np

from .. import tiers
from . import batch_norm, conv2d, elementwise, im2col, loss, pooling, scatter
from .report import TOLERANCE, ContractReport, KernelContractError, Problem, compare, copy_value, same

_CALLS = {"im2col": im2col, "conv2d": conv2d, "pooling": pooling, "batch_norm": batch_norm,
          "elementwise": elementwise, "scatter": scatter, "loss": loss}

#: family -> the names of the functions its contract requires
FUNCTIONS = {family: module.FUNCTIONS for family, module in _CALLS.items()}

__all__ = ["check", "assert_contract", "ContractReport", "KernelContractError", "Problem", "FUNCTIONS"]


def _name(implementation):
    name = getattr(implementation, "__name__", None)
    return name if isinstance(name, str) else f"a {type(implementation).__name__} object"


def _results(call, value):
    """The returned value as a tuple of ``len(call.results)`` values, or a (kind, message) problem."""
    if len(call.results) == 1:
        return (value,), None
    if not call.results:
        return (), None
    if not isinstance(value, (tuple, list)) or len(value) != len(call.results):
        got = f"a {type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (tuple, list)) else "")
        return None, ("count", f"returned {got}, expected a tuple of {len(call.results)}: "
                               f"({', '.join(call.results)})")
    return tuple(value), None


def _run(function, call):
    """``function`` on fresh copies of the call's arguments: ``(result, the arguments after the call)``."""
    args = {k: copy_value(v) for k, v in call.args.items()}
    positional, keywords = call.split_args(args)
    return function(*positional, **keywords), args


def _check_call(implementation, reference, call, tolerance):
    """The problems of one call, as (kind, message) pairs."""
    with tiers.use("reference"):            # the reference conv2d asks the table for its im2col
        expected, expected_args = _run(getattr(reference, call.function), call)
    expected, _ = _results(call, expected)
    try:
        got, got_args = _run(getattr(implementation, call.function), call)
    except Exception as e:                  # the student's code may raise anything: report it
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return [("exception", f"raised {type(e).__name__}" + (f": {message}" if message else ""))]
    got, problem = _results(call, got)
    if problem:
        return [problem]
    problems = []
    for name, g, e in zip(call.results, got, expected):
        problems += compare(name, g, e, tolerance, call.shapes.get(name, ""))
    for name in call.in_place:
        problems += compare(name, got_args[name], expected_args[name], tolerance)
    for name, before in call.args.items():
        if name not in call.in_place and not same(before, got_args[name]):
            problems.append(("modified", f"{name}: the call modified this argument; the contract says it must not"))
    return problems


def check(family, implementation):
    """Check ``implementation`` (a module or any object with the family's functions) against ``family``'s
    contract; returns a ``ContractReport`` (``report.ok``, ``report.problems``, ``print(report)``)."""
    tiers.checked_family(family, "ops.kernels.check")
    reference = import_module(f"{tiers.__package__}.reference.{family}")
    report = ContractReport(family, _name(implementation))
    missing = [f for f in FUNCTIONS[family] if not callable(getattr(implementation, f, None))]
    for f in missing:
        report.problems.append(Problem(f, "missing", f"missing function {f} (the {family} family needs "
                                                     f"{', '.join(FUNCTIONS[family])})"))
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(0)
        for call in _CALLS[family].calls(rng, dtype):
            report.calls += 1
            if call.function in missing:
                continue
            for kind, message in _check_call(implementation, reference, call, TOLERANCE[np.dtype(dtype)]):
                report.problems.append(Problem(call.text(), kind, message))
    return report


def assert_contract(family, implementation, where="ops.kernels.assert_contract"):
    """``check(family, implementation)``, raising ``KernelContractError`` (a ValueError) with the report when the
    implementation breaks the contract; returns the report when it keeps it."""
    report = check(family, implementation)
    if not report.ok:
        raise KernelContractError(f"{where}: {report.implementation} breaks the {family} contract\n{report}", report)
    return report
