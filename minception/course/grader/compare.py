"""How the grader compares one of the student's results with the reference's, and says where they differ.

A difference is a plain dict (it travels from the child process to the report as JSON)::

    {"output": "cols", "kind": "values", "message": "24 of 420 elements wrong, only in the padding border",
     "first": "first at cols[3, 17]: got 0.5, expected 0", "index": [3, 17], "count": 24, "size": 420}

``kind`` is one of ``"type"`` (not an array, or a tuple of the wrong length), ``"shape"``, ``"dtype"``,
``"values"`` or ``"modified"`` (an input the function changed). Values are compared to a tolerance that depends
on the dtype: float64 results must agree to about 10 digits, float32 to about 5, relative to the largest value
(a student who adds in another order is right; a missing term is not). Integers (argmax) must agree exactly.

*Where*: the caller passes named masks of the output (``regions``), e.g. ``("where pooling windows overlap",
mask)``. When every wrong element lies inside one of them, and the region is not the whole array, the message
says "only where pooling windows overlap": often the fastest way to the bug.
"""
import numpy as np

from ops.kernels.contracts.report import wrong_mask as contract_wrong_mask

#: relative tolerance per dtype of the *inputs*: ``|got - expected| <= tol * (|expected| + scale)``
TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 2e-5}


def number(v):
    """A value as the report writes it: 7 significant digits for floats."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.7g}"
    return str(v.item() if hasattr(v, "item") else v)


def describe(value):
    """Short text for a value: ``(2, 3, 7, 5) float32`` for an array, else its type or repr."""
    if isinstance(value, np.ndarray):
        return f"{tuple(value.shape)} {value.dtype}" if value.ndim else f"0-d {value.dtype}"
    if isinstance(value, (bool, int, float, str, tuple)) or value is None:
        return repr(value)
    return type(value).__name__


def index_text(name, index):
    """``cols[3, 17]`` (``loss`` for a 0-d array)."""
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def wrong_mask(got, expected, dtype, scale=None):
    """Boolean array: where ``got`` differs from ``expected`` beyond the tolerance of ``dtype``.

    ``scale`` (default: the largest ``|expected|``) is what the tolerance is relative to; NaN equals NaN and
    inf equals inf of the same sign. The comparison is the kernel contract checks' (``ops.kernels.contracts``),
    with the grader's tolerances."""
    tol = TOLERANCE.get(np.dtype(dtype), TOLERANCE[np.dtype(np.float32)])
    return contract_wrong_mask(got, expected, tol, scale)


def same_values(got, expected, dtype, scale=None):
    """True when ``got`` is an array of ``expected``'s shape whose values agree (dtype not checked)."""
    if not isinstance(got, np.ndarray) or got.shape != np.shape(expected):
        return False
    return not wrong_mask(got, expected, dtype, scale).any()


def where_text(wrong, regions):
    """``", only where pooling windows overlap"`` when every wrong element lies in one of ``regions``."""
    for phrase, mask in regions or ():
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), wrong.shape)
        if mask.all() or not mask.any():
            continue
        if not (wrong & ~mask).any():
            return f", only {phrase}"
    return ""


def compare(name, got, expected, dtype, regions=(), scale=None, shape_rule=""):
    """The difference (a dict, see the module docstring) between result ``name`` and the reference, or None.

    Args:
        name: the result's name as the contract writes it (``cols``, ``dx``, ``argmax``, ``ggamma``).
        got, expected: the student's result and the reference's (an array, or None when none is due).
        dtype: the dtype of the call's inputs (it decides the tolerance).
        regions: ``[(phrase, mask)]``, named parts of the result (see ``where_text``).
        scale: what the tolerance is relative to (default: the largest ``|expected|``).
        shape_rule: the contract's shape in words, e.g. ``"(C*kh*kw, N*OH*OW)"``.
    """
    if expected is None:
        if got is None:
            return None
        return {"output": name, "kind": "type", "message": f"got {describe(got)}, expected None (not asked for)"}
    if isinstance(got, np.generic):
        got = np.asarray(got)
    if not isinstance(got, np.ndarray):
        return {"output": name, "kind": "type",
                "message": f"got {describe(got)}, expected an array {describe(expected)}"}
    if got.shape != expected.shape:
        rule = f" = {shape_rule}" if shape_rule else ""
        return {"output": name, "kind": "shape", "message": f"shape {got.shape}, expected {expected.shape}{rule}",
                "shape": list(got.shape)}
    wrong = wrong_mask(got, expected, dtype, scale)
    count = int(np.count_nonzero(wrong))
    if count and wrong.size == 1:
        first = (0,) * wrong.ndim
        return {"output": name, "kind": "values", "index": list(first), "count": 1, "size": 1,
                "message": f"got {number(got[first])}, expected {number(expected[first])}"}
    if count:
        first = tuple(int(i) for i in np.argwhere(wrong)[0]) if wrong.ndim else ()
        return {"output": name, "kind": "values",
                "message": f"{count} of {wrong.size} elements wrong{where_text(wrong, regions)}",
                "first": f"first at {index_text(name, first)}: got {number(got[first])}, "
                         f"expected {number(expected[first])}",
                "index": list(first), "count": count, "size": int(wrong.size)}
    if got.dtype != expected.dtype:
        return {"output": name, "kind": "dtype", "message": f"dtype {got.dtype}, expected {expected.dtype}"}
    return None


def unchanged(name, before, after):
    """The difference when the function modified its input ``name`` (a copy ``before`` and the array after)."""
    if not isinstance(before, np.ndarray) or not isinstance(after, np.ndarray):
        return None
    if before.shape == after.shape and np.array_equal(before, after, equal_nan=before.dtype.kind == "f"):
        return None
    return {"output": name, "kind": "modified",
            "message": "the function changed this input; it must not modify its inputs (work on a copy)"}
