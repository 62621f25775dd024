"""Grad mode and the name scope: the two switches that decide what a Function records when it is called.

* Grad mode: whether ops record the graph at all. Off under ``no_grad()`` (evaluation, optimizer updates),
  so that no Function keeps its inputs alive for a backward pass that never comes.
* The name scope: the module path of the code now running, e.g. ``("mixed_5b", "branch_1")``. Every Function
  created inside records it as ``fn.scope``, so that a trace, a graph drawing or an error can say which block of
  the network an op belongs to. ``nn.Module`` enters its own name on every call.

Both live in one thread-local object: a context manager flips a value and restores it exactly, and two threads
never see each other's mode.
"""
import contextlib
import threading


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True       # record the graph in forward?
        self.scope = ()                # module path of the code now running


state = _State()


# ---------------------------------------------------------------------------------------------- grad mode
def is_grad_enabled():
    return state.grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    """Context manager: record the graph (``mode=True``) or not, restoring the previous mode on exit."""
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


# ---------------------------------------------------------------------------------------------- name scope
class name_scope:
    """Context manager: append ``name`` to the module path that every Function created inside records.

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
    """The module path now active, dotted: ``"mixed_5b.branch_1"`` ('' at top level)."""
    return ".".join(state.scope)
