"""Reading the steps' numbers later, many at once: what ``Trainer(check_every=k)`` does on the GPU.

Each step reports its loss, its count of correct predictions and its gradient norm. On the GPU these are 0-d
arrays on the device, and reading one makes the host wait until the GPU has finished everything queued so far;
reading them every step would keep the GPU idle while Python issues the next step's kernels. So the Trainer
keeps each step taken as a ``PendingStep`` and reads ``check_every`` of them at once, in one transfer
(``DeferredReads.read``), which returns a ``StepReading`` per step: Python numbers, and the step's share of the
wait. On the CPU (``check_every=1``) the numbers are Python numbers already and nothing waits.
"""
import math
import time
from dataclasses import dataclass

from autograd.backend import get_array_module, to_numpy


@dataclass
class PendingStep:
    """A step taken whose numbers may not be read yet.

    ``loss``, ``correct`` and ``grad_norm`` are Python numbers, or 0-d arrays on the model's device
    (``loop.train_step(sync=False)``). ``seconds``: the step's own time on the host.
    """
    step: int            # the step's number (1 for the first step of the run)
    epoch: int           # epochs finished when it was taken
    batch: int           # the batch's number in its epoch (1 for the first)
    batch_size: int      # images of the (global) batch
    lr: float            # its learning rate
    seconds: float
    loss: object
    correct: object
    grad_norm: object


@dataclass
class StepReading:
    """A ``PendingStep`` read: its numbers as Python numbers; ``seconds`` includes its share of the wait."""
    pending: PendingStep
    loss: float
    correct: int
    grad_norm: float
    seconds: float

    def first_non_finite(self):
        """``(what, value)`` of the first of the loss and the gradient norm that is NaN or inf, or None."""
        for what, value in (("loss", self.loss), ("gradient norm", self.grad_norm)):
            if not math.isfinite(value):
                return what, value
        return None

    def info(self):
        """The dict ``on_step_end`` callbacks receive: step, epoch, batch, batch_size, lr, loss, correct,
        grad_norm, seconds."""
        p = self.pending
        return {"step": p.step, "epoch": p.epoch, "batch": p.batch, "batch_size": p.batch_size, "lr": p.lr,
                "loss": self.loss, "correct": self.correct, "grad_norm": self.grad_norm, "seconds": self.seconds}


class DeferredReads:
    """The steps taken since the last read, read ``every`` steps (or when asked) in one transfer."""

    def __init__(self, every):
        self.every = every
        self._pending = []

    def __len__(self):
        return len(self._pending)

    def add(self, pending):
        """Keep ``pending`` (a ``PendingStep``); returns True when ``every`` steps wait to be read."""
        self._pending.append(pending)
        return len(self._pending) >= self.every

    def read(self):
        """The ``StepReading`` of every pending step, in order (one wait for the GPU), and forget them."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        t0 = time.perf_counter()
        numbers = [(p.loss, p.correct, p.grad_norm) for p in pending]
        if self.every > 1:                                 # 0-d device arrays: read them all at once
            numbers = _read_all(numbers)
        wait = (time.perf_counter() - t0) / len(pending)   # the wait is the GPU's time: shared by the steps
        return [StepReading(p, loss, correct, norm, p.seconds + wait)
                for p, (loss, correct, norm) in zip(pending, numbers)]


def _read_all(numbers):
    """``[(loss, correct, norm), ...]`` of 0-d device arrays -> the same as Python numbers, in one transfer."""
    xp = get_array_module(numbers[0][0])
    flat = to_numpy(xp.stack([xp.asarray(v, dtype=xp.float64) for triple in numbers for v in triple]))
    return [(float(flat[i]), int(flat[i + 1]), float(flat[i + 2])) for i in range(0, len(flat), 3)]
