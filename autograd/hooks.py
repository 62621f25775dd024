"""The hook point: the one place where inspection tools plug into the core.

The core computes; it does not print, time, check for NaN or draw. Everything that watches a computation is a
*function hook*: an object that the core calls around every Function while the hook is active. There are five
calls, each optional::

    forward_pre(fn, inputs)                        Function.__call__, before fn.forward; inputs: raw arrays
    forward_post(fn, inputs, outputs)              right after fn.forward, before the outputs are linked
    backward_pre(fn, grad_outputs)                 the engine, before fn.backward
    backward_post(fn, grad_outputs, grad_inputs)   right after fn.backward (grad_inputs: array or None each)
    backward_error(fn, error)                      fn.backward raised ``error``; the engine re-raises it after
                                                   every hook has seen it (a hook may raise its own instead)

``fn`` carries what the core knows about the op: ``fn.name``, ``fn.scope`` (module path, see
``config.name_scope``), ``fn.needs_input_grad``, and once linked ``fn.input_shapes`` / ``fn.output_shapes``.
A hook may set attributes on ``fn`` in ``forward_pre`` (they stay until the Function is garbage); it must not
change the arrays it is shown.

Active hooks are called in the order they were added. Activate a hook as a context manager
(``with PrintHook(): ...``) or with ``add()`` / ``remove()``. The list is global, not per thread.

Who uses it (each tool imports the core; the core imports none of them):

* ``inspect/print_hook.py``, ``timer_hook.py``, ``memory_hook.py``: ``PrintHook``, ``TimerHook``, ``MemoryHook``;
* ``inspect/anomaly.py``: ``detect_anomaly()`` adds a hook that checks every output and gradient for NaN/Inf;
* ``minception.inspect.gradient_flow``: records each block's output gradient.

``autograd.trace`` and ``autograd.graph`` need no hook: the trace drives the engine one step at a time
(``engine.iter_backward``), and the graph drawing walks the Functions behind a tensor after the fact.

This file also holds ``RemovableHandle``, what every ``register_*`` call returns.
"""

_active = []   # function hooks now active, in the order they were added


def active_function_hooks():
    """The list of active function hooks (the core iterates it around every op)."""
    return _active


class FunctionHook:
    """Base class of function hooks: override the calls you need (see the module docstring)."""

    def forward_pre(self, fn, inputs):
        pass

    def forward_post(self, fn, inputs, outputs):
        pass

    def backward_pre(self, fn, grad_outputs):
        pass

    def backward_post(self, fn, grad_outputs, grad_inputs):
        pass

    def backward_error(self, fn, error):
        pass

    def add(self):
        if self not in _active:
            _active.append(self)
        return self

    def remove(self):
        if self in _active:
            _active.remove(self)

    def __enter__(self):
        return self.add()

    def __exit__(self, *exc):
        self.remove()


class RemovableHandle:
    """Returned by every ``register_*`` call; ``handle.remove()`` takes the hook out again."""

    def __init__(self, container, item):
        self._container, self._item = container, item

    def remove(self):
        if self._item in self._container:
            self._container.remove(self._item)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
