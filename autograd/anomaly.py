"""Anomaly mode: stop at the first NaN or Inf, and say which op made it and where in your code it was created.

    with autograd.detect_anomaly():
        loss = model(x)           # each op records the Python stack that created it
        loss.backward()           # the first non-finite value raises AnomalyError naming the op

The error names the op (``Log``), its module path (``mixed_5b.branch_1.conv``), the phase (forward or backward),
which output or input gradient went bad and its shape, and shows the lines of your code that created the op:
the innermost line outside the library (your script) and the library lines below it (the model's ``forward``).
Errors raised inside an op's backward are re-raised the same way, with the original exception chained.

Run the forward pass inside ``detect_anomaly()`` too: the creation stack is recorded in forward; a backward-only
anomaly check still names the op and its module but cannot say where it was created.

It costs a stack capture per op and a finiteness check per array, so it is for debugging only.
"""
import contextlib
import os
import traceback

from . import config
from .backend import get_array_module


class AnomalyError(RuntimeError):
    """Raised in anomaly mode at the first non-finite value (or an error inside backward).

    Attributes (also in the message): ``op`` (the op's name), ``scope`` (module path, '' at top level),
    ``phase`` ('forward' or 'backward'), ``function`` (the Function), ``stack`` (the creation stack as a
    ``traceback.StackSummary``, or None when forward ran outside anomaly mode).
    """

    def __init__(self, message, function=None, phase=None, stack=None, scope=""):
        super().__init__(message)
        self.function, self.phase, self.stack, self.scope = function, phase, stack, scope
        self.op = getattr(function, "name", None)


@contextlib.contextmanager
def detect_anomaly(enabled=True):
    """Context manager: check every forward output and backward gradient for NaN/Inf while it is active."""
    previous = config.state.anomaly
    config.state.anomaly = bool(enabled)
    try:
        yield
    finally:
        config.state.anomaly = previous


def is_anomaly_enabled():
    return config.state.anomaly


# Frames inside these folders are the library's own plumbing; "your code" is everything else. The model and
# layer code of minception is shown too (it tells which line of a block made the op), but never the engine,
# the ops or the module-call machinery.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
_PLUMBING = tuple(os.path.join(_ROOT, d) + os.sep for d in ("autograd", "ops")) + \
    tuple(os.path.join(_ROOT, "minception", "nn", f) for f in ("module.py", "hooks.py"))
_LIBRARY = tuple(os.path.join(_ROOT, d) + os.sep for d in ("autograd", "ops", "minception"))


def _is_plumbing(frame):
    return os.path.abspath(frame.filename).startswith(_PLUMBING)


def _is_library(frame):
    return os.path.abspath(frame.filename).startswith(_LIBRARY)


def user_frames(stack, max_library_frames=4, user_depth=2):
    """The frames of ``stack`` worth showing: the ``user_depth`` innermost frames of the user's code (outside
    autograd, ops and minception; two, so that a helper function of the user's shows its caller too) followed by
    the library frames below them (model code), without the engine's own frames."""
    frames = list(stack)
    user = [i for i, f in enumerate(frames) if not _is_library(f)]
    start = user[-1] if user else 0
    outer = [frames[i] for i in user[-user_depth:-1]]
    shown = outer + [frames[start]] + [f for f in frames[start + 1:] if not _is_plumbing(f)][-max_library_frames:]
    if not shown or (len(shown) == 1 and _is_plumbing(shown[0])):
        shown = frames[-3:]
    return shown


def _describe(fn, scope=None, stack=None):
    """('Log in module block.fc', origin text) for a Function, with the user lines that created it."""
    if scope is None:
        scope = ".".join(getattr(fn, "scope", ()) or ())
    where = f" in module {scope}" if scope else " (top level, outside any module)"
    if stack is None:
        stack = getattr(fn, "stack", None)
    if stack:
        origin = ("\nThe op was created at (innermost last):\n"
                  + "".join(traceback.format_list(user_frames(stack))).rstrip("\n"))
    else:
        origin = ("\n(Where the op was created is unknown: run the forward pass inside detect_anomaly() too to "
                  "record it.)")
    return f"{fn.name}{where}", origin


def _first_bad(arrays):
    """(index, 'NaN' | 'Inf', shape, number of bad elements) of the first non-finite float array, or None."""
    for i, a in enumerate(arrays):
        if a is None or a.dtype.kind not in "fc":
            continue
        xp = get_array_module(a)
        finite = xp.isfinite(a)
        if not bool(finite.all()):
            kind = "NaN" if bool(xp.isnan(a).any()) else "Inf"
            return i, kind, a.shape, int(a.size - int(finite.sum()))
    return None


def check_forward(fn, outputs):
    """Called by ``Function.__call__`` right after forward, before the op is linked into the graph."""
    bad = _first_bad(outputs)
    if bad:
        i, kind, shape, count = bad
        # The op is not linked yet: its module path is the current scope and the stack is the one running now.
        scope = config.current_scope()
        stack = getattr(fn, "stack", None) or traceback.extract_stack()[:-1]
        name, origin = _describe(fn, scope, stack)
        raise AnomalyError(f"forward of {name} produced {kind} in output {i} (shape {shape}, {count} non-finite "
                           f"of {_size(shape)} values){origin}", fn, "forward", stack, scope)


def check_backward(fn, grad_inputs):
    """Called by the engine after each op's backward."""
    bad = _first_bad(grad_inputs)
    if bad:
        i, kind, shape, count = bad
        name, origin = _describe(fn)
        raise AnomalyError(f"backward of {name} produced {kind} in the gradient of input {i} (shape {shape}, "
                           f"{count} non-finite of {_size(shape)} values){origin}", fn, "backward",
                           getattr(fn, "stack", None), ".".join(getattr(fn, "scope", ()) or ()))


def reraise_with_origin(fn, error):
    """Re-raise an exception from an op's backward as an AnomalyError that names the op and where it was made."""
    name, origin = _describe(fn)
    raise AnomalyError(f"backward of {name} raised {type(error).__name__}: {error}{origin}", fn, "backward",
                       getattr(fn, "stack", None), ".".join(getattr(fn, "scope", ()) or ())) from error


def _size(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n
