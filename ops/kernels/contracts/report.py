"""How a contract check compares one call's results with the reference's, and the report it writes.

Each problem is one line (wrapped at 100 columns) that names the function, the result or argument, and what is
wrong: a missing function, an exception, a result that is not an array, a wrong shape, a wrong dtype, wrong values
(the first wrong element's index, got and expected, and how many elements differ), or a modified input.
"""
import textwrap
from dataclasses import dataclass, field

import numpy as np

WIDTH = 100
MAX_CALLS_SHOWN = 4          # the report lists the problems of this many calls, then counts the rest

#: values agree when ``|got - expected| <= TOLERANCE[dtype] * (|expected| + largest |expected|)``, where dtype is
#: the dtype of the call's inputs
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


class KernelContractError(ValueError):
    """An implementation that breaks its family's contract; the message is the contract check's report."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


@dataclass
class Problem:
    """One thing wrong: ``call`` (the call, written out), ``kind`` (``"missing"``, ``"exception"``, ``"type"``,
    ``"count"``, ``"shape"``, ``"dtype"``, ``"values"`` or ``"modified"``) and ``message``."""
    call: str
    kind: str
    message: str


@dataclass
class ContractReport:
    """What ``ops.kernels.check`` found: ``ok`` when ``problems`` is empty; ``str(report)`` is the readable report."""
    family: str
    implementation: str
    calls: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def __bool__(self):
        return self.ok

    def __str__(self):
        calls_wrong = len({p.call for p in self.problems})
        head = (f"{self.family} contract (ops/kernels/reference/{self.family}.py), {self.implementation}: "
                + (f"all {self.calls} calls agree with the reference" if self.ok
                   else f"{calls_wrong} of {self.calls} calls wrong"))
        lines = textwrap.wrap(head, WIDTH, subsequent_indent="    ")
        shown, calls_shown = None, 0
        for p in self.problems:
            if p.call != shown and calls_shown == MAX_CALLS_SHOWN:
                lines.append(f"  ... and {calls_wrong - calls_shown} more wrong calls")
                break
            if p.call != shown:
                calls_shown += 1
                lines += textwrap.wrap(p.call + ":", WIDTH, initial_indent="  ", subsequent_indent="      ")
                shown = p.call
            lines += textwrap.wrap(p.message, WIDTH, initial_indent="    ", subsequent_indent="      ")
        return "\n".join(lines)


def describe_value(value):
    """Short text for an argument: ``(2, 3, 7, 5) float32`` for an array, ``[3 arrays]`` for a list of arrays."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{tuple(value.shape)} {value.dtype}"
    if isinstance(value, list):
        return f"[{len(value)} arrays]"
    return repr(value)


def _number(v):
    return f"{v:.7g}" if isinstance(v, (float, np.floating)) else str(v)


def compare(name, got, expected, tolerance, shape_rule=""):
    """Problems (``(kind, message)`` pairs) of result ``name``: ``got`` against the reference's ``expected``.

    Floats agree to ``tolerance`` relative to the largest value (the call's input dtype decides it: float64
    statistics of float32 data are float32-accurate), integers exactly. ``shape_rule`` is the contract's shape
    in words, e.g. ``"(C*kh*kw, N*OH*OW)"``, added to a shape message."""
    if expected is None:
        return [] if got is None else [("type", f"{name}: got {type(got).__name__}, expected None")]
    if not (isinstance(got, np.ndarray) or (hasattr(got, "shape") and hasattr(got, "dtype"))):
        return [("type", f"{name}: got {type(got).__name__}, expected an array {describe_value(expected)}")]
    if tuple(got.shape) != tuple(expected.shape):
        rule = f" = {shape_rule}" if shape_rule else ""
        return [("shape", f"{name}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}{rule}")]
    if got.dtype != expected.dtype:
        return [("dtype", f"{name}: dtype {got.dtype}, expected {expected.dtype}")]
    got, expected = np.asarray(got), np.asarray(expected)
    wrong = wrong_mask(got, expected, tolerance)
    if expected.dtype.kind in "fc":
        rule = f" (tolerance {tolerance:g} relative to the largest value, {largest_finite(expected):.4g})"
    else:
        rule = " (exact)"
    count = int(np.count_nonzero(wrong))
    if not count:
        return []
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    return [("values", f"{name}: values differ in {count} of {wrong.size} elements; first at "
                       f"{name}[{', '.join(map(str, first))}]: got "
                       f"{_number(got[first])}, expected {_number(expected[first])}{rule}")]


def largest_finite(expected):
    """The largest ``|value|`` among the finite values of ``expected`` (0 when there is none)."""
    finite = np.isfinite(expected)
    return float(np.max(np.abs(expected[finite]))) if finite.any() else 0.0


def wrong_mask(got, expected, tolerance, scale=None):
    """Boolean array: where ``got`` differs from ``expected`` (same shape).

    Floats agree when ``|got - expected| <= tolerance * (|expected| + scale)``, ``scale`` being the largest finite
    ``|expected|`` unless given; NaN equals NaN and an infinity equals itself. Integers must be equal. The course's
    grader compares the same way (with its own tolerances)."""
    got, expected = np.asarray(got), np.asarray(expected)
    if expected.dtype.kind not in "fc":
        return got != expected
    if scale is None:
        scale = largest_finite(expected)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(got.astype(np.float64) - expected) <= tolerance * (np.abs(expected) + scale)
    return ~(close | (got == expected) | (np.isnan(got) & np.isnan(expected)))


def same(before, after):
    """True when an argument is unchanged: equal arrays (NaN equals NaN), or equal lists of them, or equal values."""
    if isinstance(before, list):
        return len(before) == len(after) and all(same(b, a) for b, a in zip(before, after))
    if isinstance(before, np.ndarray):
        return before.shape == after.shape and bool(np.array_equal(before, after, equal_nan=before.dtype.kind == "f"))
    return True


def copy_value(value):
    """A copy of an argument that a call may not change (arrays, lists of arrays); other values as they are."""
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.copy()
    return value
