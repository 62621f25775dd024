"""Callbacks: user code that runs after each training step and after each epoch.

A callback is any object with ``on_step_end(trainer, info)`` and/or ``on_epoch_end(trainer, record)``; a plain
function is taken as ``on_step_end``. They run once the step's (or the epoch's) state is final, so they may
read the trainer, save files, or call ``trainer.request_stop()``.

``on_checkpoint(trainer, path)`` runs after each checkpoint written into the run folder: a program keeps a file
of its own in step with the run there (the training example writes its ``run.json`` at the first one, so that an
``--overwrite`` replaces the old run's settings only once the new run has a checkpoint to go with them).
"""


class Callbacks:
    """The list of a trainer's callbacks; ``call(event, trainer, payload)`` runs every one that handles it."""

    EVENTS = ("on_step_end", "on_epoch_end", "on_checkpoint")

    def __init__(self, callbacks=()):
        self.items = list(callbacks)
        for cb in self.items:
            if not callable(cb) and not any(hasattr(cb, e) for e in self.EVENTS):
                raise TypeError(f"callback {cb!r:.60} is neither a function nor has {' or '.join(self.EVENTS)}")

    def append(self, callback):
        self.items.append(callback)

    def call(self, event, trainer, payload):
        for cb in self.items:
            fn = getattr(cb, event, None)
            if fn is None and event == "on_step_end" and callable(cb):
                fn = cb
            if fn is not None:
                fn(trainer, payload)
