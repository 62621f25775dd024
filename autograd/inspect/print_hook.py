"""``PrintHook``: print one line per op as the computation runs, forward with shapes, backward with norms.

    with PrintHook():                   # one line per op, forward and backward
        loss = model(x); loss.backward()

A function hook (``autograd/hooks.py``): the core calls it after every op's forward and backward while it is
active, with the raw arrays going in and out.
"""
import sys

from ..hooks import FunctionHook
from .trace import format_shape, grad_stats

__all__ = ["PrintHook"]


def _shapes(arrays):
    return " ".join(format_shape(a.shape) if a is not None else "None" for a in arrays)


class PrintHook(FunctionHook):
    """Print one line per op: forward with shapes, backward with gradient norms.

    Args:
        file: a text stream (default ``sys.stdout``).
        forward, backward: which phases to print.
        stats: in backward, print norm / max ``|g|`` of the incoming gradient and the norm of each produced one.
    """

    def __init__(self, file=None, forward=True, backward=True, stats=True):
        self.file, self.forward, self.backward, self.stats = file, forward, backward, stats
        self.count = 0

    def _print(self, text):
        print(text, file=self.file or sys.stdout)
        self.count += 1

    def forward_post(self, fn, inputs, outputs):
        if self.forward:
            scope = ".".join(fn.scope) or "-"
            self._print(f"forward   {fn.name:<14s} {scope:<28s} {_shapes(inputs)} -> {_shapes(outputs)}")

    def backward_post(self, fn, grad_outputs, grad_inputs):
        if not self.backward:
            return
        scope = ".".join(fn.scope) or "-"
        line = f"backward  {fn.name:<14s} {scope:<28s} {_shapes(grad_inputs)} <- {_shapes(grad_outputs)}"
        if self.stats:
            gys = [grad_stats(g) for g in grad_outputs]
            gxs = [grad_stats(g) for g in grad_inputs]
            line += ("  |gy| " + " ".join(f"{s.norm:.2e}" for s in gys)
                     + "  max|gy| " + " ".join(f"{s.max_abs:.2e}" for s in gys)
                     + "  |gx| " + " ".join("-" if s is None else f"{s.norm:.2e}" for s in gxs))
        self._print(line)
