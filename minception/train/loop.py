"""One training step and one evaluation pass: the whole of training, in the order it happens.

Everything else in ``minception.train`` (checkpoints, resume, Ctrl-C, logs, progress bars) is bookkeeping
around these two functions; ``Trainer.train_step`` calls ``train_step`` for every batch of a run, and the
benchmarks time it (``bench/step.py``). Its settings (loss, clipping, optimizer, average) come from a
``Recipe`` (``recipe.py``).
"""
import math
from dataclasses import dataclass

import numpy as np

import ops
from autograd import no_grad
from autograd.backend import device_of, to_device, to_numpy
from minception import optim

from .nonfinite import NonFiniteLossError


@dataclass
class StepResult:
    """What one step reports: Python numbers, or 0-d arrays on the model's device with ``sync=False``."""
    loss: float        # the batch's mean training loss
    correct: int       # top-1 predictions that were right (None with ``metrics=False``)
    grad_norm: float   # the global gradient norm before clipping (None with ``metrics=False`` and no clipping)


def train_step(model, optimizer, x, y, *, lr=None, label_smoothing=0.0, clip_norm=None, ema=None,
               average_gradients=None, sync=True, metrics=True, free_gradients=True, on_phase=None):
    """One optimizer step on the batch ``x`` (N, C, H, W) Tensor, ``y`` (N,) int labels. Returns a StepResult.

    ``average_gradients``: in data-parallel training (``minception.distributed``), the function that replaces
    every ``.grad`` by its mean over all processes; None in a single process.

    ``sync=True``: the loss, the count and the norm are read at once (Python numbers in the StepResult), and a
    NaN or inf loss or gradient norm raises ``NonFiniteLossError`` before the weights change.
    ``sync=False`` (for the GPU): nothing is read and nothing checked; the StepResult holds 0-d arrays on the
    model's device, and the caller reads them later, many steps at once (``Trainer``: once per logging interval),
    and checks them then. Each read makes the host wait until the GPU has finished everything queued so far, so
    reading three numbers every step keeps the GPU idle while Python issues the next step's kernels.

    For the benchmarks, which time the step itself: ``metrics=False`` computes only what the update needs (no
    gradient norm unless clipping needs it, no count of correct predictions; only the loss is checked),
    ``free_gradients=False`` keeps each ``.grad`` until the next step's ``zero_grad`` (through its forward pass,
    as a hand-written loop does), and ``on_phase(name)`` is called as each phase ends: "forward" (the loss),
    "backward", "average" (with ``average_gradients``) and "update" (clipping, step and average of the weights).
    """
    phase = on_phase or _no_phase                      # (benchmarks: note the end of each phase)
    model.train()                                      # dropout on; batch norm uses batch statistics
    logits = model(x)                                  # 1. forward: (N, K) class scores
    loss = ops.softmax_cross_entropy(logits, y, label_smoothing=label_smoothing)   # 2. loss
    phase("forward")
    optimizer.zero_grad()
    loss.backward()                                    # 3. backward: every parameter's .grad
    phase("backward")
    if average_gradients is not None:                  #    (data parallel: the mean .grad over all processes)
        average_gradients()
        phase("average")
    norm = None
    if clip_norm is not None:                          # 4. clip the global gradient norm
        norm = optim.clip_grad_norm(optimizer.params, clip_norm, sync=sync)
    elif metrics:
        norm = optim.grad_norm(optimizer.params, sync=sync)
    if sync:
        # Checked after the average, so that data-parallel processes stop together: a NaN or inf loss comes from
        # NaN or inf scores, whose gradients make every process's averaged gradient norm non-finite too.
        _check_finite("loss", loss.item())
        if norm is not None:
            _check_finite("gradient norm", norm)
    if lr is not None:
        optimizer.lr = lr                              # this step's learning rate (a schedule's)
    optimizer.step()                                   # 5. step: p <- p - update(p.grad)
    if ema is not None:
        ema.update()                                   # 6. move the averaged weights towards the new ones
    phase("update")
    if free_gradients:
        optimizer.zero_grad()                          # the gradients are spent: free them
    correct = None
    if metrics:
        correct = (logits.data.argmax(axis=1) == to_device(y, device_of(logits.data))).sum()
    if not sync:
        return StepResult(loss.data, correct, norm)
    return StepResult(loss.item(), None if correct is None else int(to_numpy(correct)), norm)


def _no_phase(name):
    """The default ``on_phase``: nothing."""


def _check_finite(what, value):
    if not math.isfinite(value):
        raise NonFiniteLossError(f"non-finite {what} ({value})", what=what, value=value)


@no_grad()
def evaluate(model, batches):
    """Mean cross-entropy and top-1 accuracy of ``model`` in eval mode over ``batches``, an iterable of
    ``(x, y)`` (a Tensor (N, C, H, W) and (N,) labels). Returns ``(loss, accuracy)``; the mode is put back."""
    was_training = model.training
    model.eval()                                       # dropout off; batch norm uses its running statistics
    loss_sum, correct, count = 0.0, 0, 0
    try:
        for x, y in batches:
            logits = model(x)
            # summed where the logits are (in float64) and read once at the end: no wait for the GPU per batch
            loss_sum = loss_sum + ops.softmax_cross_entropy(logits, y).data.astype(np.float64) * len(y)
            correct = correct + (logits.data.argmax(axis=1) == to_device(y, device_of(logits.data))).sum()
            count += len(y)
    finally:
        model.train(was_training)
    return float(to_numpy(loss_sum)) / count, int(to_numpy(correct)) / count
