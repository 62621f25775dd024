"""Anomaly mode: stop at the first NaN or Inf, and say which op made it and where in your code it was created.

    with autograd.detect_anomaly():
        loss = model(x)           # each op records the Python stack that created it
        loss.backward()           # the first non-finite gradient raises AnomalyError naming the op

It costs a stack capture per op and a finiteness check per array, so it is for debugging only.
"""
import contextlib
import traceback

from . import config
from .backend import get_array_module


class AnomalyError(RuntimeError):
    """Raised in anomaly mode at the first non-finite value."""


@contextlib.contextmanager
def detect_anomaly(enabled=True):
    previous = config.state.anomaly
    config.state.anomaly = bool(enabled)
    try:
        yield
    finally:
        config.state.anomaly = previous


def _describe(fn):
    scope = ".".join(getattr(fn, "scope", ()) or ())
    where = f" in module {scope}" if scope else ""
    origin = ""
    stack = getattr(fn, "stack", None)
    if stack:
        user = [f for f in stack if "/autograd/" not in f.filename and "/ops/" not in f.filename]
        frames = (user or stack)[-3:]
        origin = "\nthe op was created at:\n" + "".join(traceback.format_list(frames))
    return f"{fn.name}{where}", origin


def _first_bad(arrays):
    for i, a in enumerate(arrays):
        if a is None or a.dtype.kind not in "fc":
            continue
        xp = get_array_module(a)
        if not bool(xp.isfinite(a).all()):
            kind = "NaN" if bool(xp.isnan(a).any()) else "Inf"
            return i, kind, a.shape
    return None


def check_forward(fn, outputs):
    bad = _first_bad(outputs)
    if bad:
        i, kind, shape = bad
        name, origin = _describe(fn)
        raise AnomalyError(f"forward of {name} produced {kind} in output {i} (shape {shape}){origin}")


def check_backward(fn, grad_inputs):
    bad = _first_bad(grad_inputs)
    if bad:
        i, kind, shape = bad
        name, origin = _describe(fn)
        raise AnomalyError(f"backward of {name} produced {kind} in the gradient of input {i} "
                           f"(shape {shape}){origin}")


def reraise_with_origin(fn, error):
    name, origin = _describe(fn)
    raise AnomalyError(f"backward of {name} raised {type(error).__name__}: {error}{origin}") from error
