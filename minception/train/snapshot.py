"""Undoing the side effects of a training step that did not finish.

A forward pass in training mode changes state before the step is complete: batch norm updates its running
statistics, dropout advances its random stream. All of it lives in the model's buffers. If the step then stops
(a NaN loss, a KeyboardInterrupt from a hook), putting the buffers back makes the model exactly what it was
after the last completed step, so the run can be saved and resumed as if the failed step had never started.
"""
from autograd.backend import get_array_module


class BufferSnapshot:
    """Copies of every buffer of ``model``, taken at construction; ``restore()`` writes them back in place."""

    def __init__(self, model):
        self.saved = [(b, b.copy()) for _, b in model.named_buffers()]

    def restore(self):
        for buffer, copy in self.saved:
            get_array_module(buffer).copyto(buffer, copy)
