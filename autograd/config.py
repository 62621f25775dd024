"""Global switches of the engine: gradient recording, anomaly detection, and the module name scope.

They live in one small object so that context managers can flip them and restore them exactly.
"""
import contextlib
import threading


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True       # record the graph in forward?
        self.anomaly = False           # check for NaN/Inf and remember where each op was created?
        self.scope = ()                # module path of the code now running, e.g. ("mixed_5b", "branch_1")


state = _State()


def is_grad_enabled():
    return state.grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    previous = state.grad_enabled
    state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        state.grad_enabled = previous


def no_grad():
    """Context manager: ops run but record no graph (evaluation, optimizer updates)."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


@contextlib.contextmanager
def name_scope(name):
    """Push ``name`` onto the module path that every Function created inside records (``fn.scope``)."""
    previous = state.scope
    state.scope = previous + (name,)
    try:
        yield
    finally:
        state.scope = previous


def current_scope():
    return ".".join(state.scope)
