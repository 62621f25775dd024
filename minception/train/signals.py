"""Ctrl-C during training: a request to stop at the next safe point, never a half-applied update.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be. In the middle of
``optimizer.step()`` that would leave some parameters updated and others not: weights that belong to no step,
that no checkpoint should hold. So while a run is in progress:

- the first Ctrl-C only calls ``on_first_press`` (the trainer then finishes the step in flight, saves a
  checkpoint and returns);
- a second Ctrl-C raises KeyboardInterrupt at once, except inside a ``deferred()`` block (one training step
  with its bookkeeping), where it is raised when the block ends, with the step complete.

Python delivers signals to the main thread only, so in another thread (or with ``enabled=False``) nothing is
installed and ``deferring`` stays False: a KeyboardInterrupt may then arrive anywhere.
"""
import contextlib
import signal
import threading


class CtrlC:
    """``with CtrlC(on_first_press=f) as ctrl_c: ...`` installs the handler and puts the previous one back after.

    Args:
        enabled: False to leave SIGINT alone.
        on_first_press: called (with no argument) at the first Ctrl-C.
    """

    def __init__(self, enabled=True, on_first_press=None):
        self.enabled, self.on_first_press = enabled, on_first_press
        self.installed = False
        self._previous = None
        self._presses = 0
        self._in_block = False
        self._pending = False

    def __enter__(self):
        self._presses, self._pending = 0, False
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, self._previous)
            self.installed = False
        return False

    def _handle(self, signum, frame):
        self._presses += 1
        if self._presses == 1:
            if self.on_first_press is not None:
                self.on_first_press()
        elif self._in_block:
            self._pending = True          # raised by deferred() once the step is complete
        else:
            raise KeyboardInterrupt

    @property
    def deferring(self):
        """True inside ``deferred()`` while the handler is installed: no KeyboardInterrupt comes from Ctrl-C."""
        return self.installed and self._in_block

    @contextlib.contextmanager
    def deferred(self):
        """Hold a second Ctrl-C until the end of the block (then raise KeyboardInterrupt)."""
        self._in_block = True
        try:
            yield
        finally:
            self._in_block = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt
