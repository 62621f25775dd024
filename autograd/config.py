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


class name_scope:
    """Context manager: append ``name`` to the module path that every Function created inside records
    (``fn.scope``).

        with name_scope("mixed_5b"), name_scope("branch_1"):
            y = ops.relu(x)          # y.creator.scope == ("mixed_5b", "branch_1")

    ``name=None`` adds nothing (``nn`` passes the root module's missing name). A class rather than a generator:
    ``nn.Module`` enters one per call, and this is the cheapest context manager Python has.
    """

    __slots__ = ("name", "previous")

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = state.scope
        if self.name is not None:
            state.scope = self.previous + (self.name,)
        return self

    def __exit__(self, *exc):
        state.scope = self.previous


def current_scope():
    return ".".join(state.scope)
