"""Anomaly mode: stop at the first NaN or Inf, and say which op made it and where in your code it was created.

    with autograd.detect_anomaly():
        loss = model(x)           # each op records the Python stack that created it
        loss.backward()           # the first non-finite value raises AnomalyError naming the op

The error names the op (``Log``), its module path (``mixed_5b.branch_1.conv``), the phase (forward or backward),
which output or input gradient went bad and its shape, and shows the lines of your code that created the op:
the innermost lines outside the library (your script) and the library lines below them (the model's ``forward``).
Errors raised inside an op's backward are re-raised the same way, with the original exception chained.

Run the forward pass inside ``detect_anomaly()`` too: the creation stack is recorded in forward; a backward-only
anomaly check still names the op and its module but cannot say where it was created.

How it plugs in: ``detect_anomaly()`` activates a function hook (see ``hooks.py``) that records the stack in
``forward_pre``, checks outputs in ``forward_post`` and gradients in ``backward_post``, and turns an error in an
op's backward into an ``AnomalyError`` in ``backward_error``. Like every function hook it is global (all threads).

Which frames are "your code": a package declares its files as library code with ``register_library``. Library
frames that are plumbing (the engine, the op wrappers, the module-call machinery) are never shown
(``hide=True``); other library frames (layer and model code) are shown below your line, because they tell which
line of a block made the op. Everything not declared is your code. It costs a stack capture per op and a
finiteness check per array, so it is for debugging only.
"""
import contextlib
import os
import sys
import traceback

from ..backend import get_array_module
from ..hooks import FunctionHook, active_function_hooks


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


# ---------------------------------------------------------------------------------------------- library code
_library = []     # path prefixes of declared library code (folders end with os.sep)
_hidden = []      # the subset never shown: plumbing between your code and the op


def register_library(module_name, hide=False):
    """Declare the files of a module or package as library code (not "your code") in anomaly reports.

    Args:
        module_name: an imported module's name; a package declares its whole folder. Call it as
            ``register_library(__name__)`` from the package's ``__init__.py`` (or from one file).
        hide: never show these frames (plumbing such as op wrappers); by default they are shown below the
            user's line, as model code is.
    """
    module = sys.modules.get(module_name)
    if getattr(module, "__file__", None) is None:
        raise ValueError(f"register_library: {module_name!r} is not an imported module with a source file")
    path = os.path.abspath(module.__file__)
    if os.path.basename(path) == "__init__.py":
        path = os.path.dirname(path) + os.sep
    for registry in ((_library, _hidden) if hide else (_library,)):
        if path not in registry:
            registry.append(path)


register_library("autograd", hide=True)     # the autograd core (and this folder inside it) is plumbing


def _is_library(frame):
    return os.path.abspath(frame.filename).startswith(tuple(_library))


def _is_hidden(frame):
    return os.path.abspath(frame.filename).startswith(tuple(_hidden))


def user_frames(stack, max_library_frames=4, user_depth=2):
    """The frames of ``stack`` worth showing: the ``user_depth`` innermost frames of the user's code (two, so that
    a helper function of the user's shows its caller too) followed by the library frames below them that are not
    hidden (model code)."""
    frames = list(stack)
    user = [i for i, f in enumerate(frames) if not _is_library(f)]
    start = user[-1] if user else 0
    outer = [frames[i] for i in user[-user_depth:-1]]
    shown = outer + [frames[start]] + [f for f in frames[start + 1:] if not _is_hidden(f)][-max_library_frames:]
    if not shown or (len(shown) == 1 and _is_hidden(shown[0])):
        shown = frames[-3:]
    return shown


# ---------------------------------------------------------------------------------------------- the mode
class _AnomalyHook(FunctionHook):
    def forward_pre(self, fn, inputs):
        fn.stack = traceback.extract_stack()[:-2]      # without this frame and Function.__call__

    def forward_post(self, fn, inputs, outputs):
        bad = _first_bad(outputs)
        if bad:
            i, kind, shape, count = bad
            name, origin = _describe(fn)
            raise AnomalyError(f"forward of {name} produced {kind} in output {i} (shape {shape}, {count} "
                               f"non-finite of {_size(shape)} values){origin}", fn, "forward", fn.stack,
                               ".".join(fn.scope))

    def backward_post(self, fn, grad_outputs, grad_inputs):
        bad = _first_bad(grad_inputs)
        if bad:
            i, kind, shape, count = bad
            name, origin = _describe(fn)
            raise AnomalyError(f"backward of {name} produced {kind} in the gradient of input {i} (shape {shape}, "
                               f"{count} non-finite of {_size(shape)} values){origin}", fn, "backward",
                               getattr(fn, "stack", None), ".".join(fn.scope))

    def backward_error(self, fn, error):
        if isinstance(error, AnomalyError):
            return
        name, origin = _describe(fn)
        raise AnomalyError(f"backward of {name} raised {type(error).__name__}: {error}{origin}", fn, "backward",
                           getattr(fn, "stack", None), ".".join(fn.scope)) from error


_hook = _AnomalyHook()


@contextlib.contextmanager
def detect_anomaly(enabled=True):
    """Context manager: check every forward output and backward gradient for NaN/Inf while it is active.

    ``detect_anomaly(False)`` turns the mode off inside an outer ``detect_anomaly()``; the previous mode comes
    back on exit.
    """
    was_enabled = is_anomaly_enabled()
    _switch(enabled)
    try:
        yield
    finally:
        _switch(was_enabled)


def _switch(on):
    if on:
        _hook.add()
    else:
        _hook.remove()


def is_anomaly_enabled():
    return _hook in active_function_hooks()


# ---------------------------------------------------------------------------------------------- the report
def _describe(fn):
    """('Log in module block.fc', origin text) for a Function, with the user lines that created it."""
    scope = ".".join(fn.scope)
    where = f" in module {scope}" if scope else " (top level, outside any module)"
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


def _size(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n
