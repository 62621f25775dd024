"""Hooks: code that the engine calls around every op (function hooks) or on one tensor's gradient (tensor hooks).

A function hook is an object with any of four methods, each called for every Function while the hook is active::

    forward_pre(fn, inputs)            inputs: tuple of raw arrays
    forward_post(fn, inputs, outputs)
    backward_pre(fn, grad_outputs)
    backward_post(fn, grad_outputs, grad_inputs)

Use it as a context manager (``with PrintHook(): loss.backward()``) or call ``add()``/``remove()``.
"""

_active = []   # function hooks now active, in the order they were added


def active_function_hooks():
    return _active


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


class FunctionHook:
    """Base class for function hooks; override the methods you need."""

    def forward_pre(self, fn, inputs):
        pass

    def forward_post(self, fn, inputs, outputs):
        pass

    def backward_pre(self, fn, grad_outputs):
        pass

    def backward_post(self, fn, grad_outputs, grad_inputs):
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
