"""The whole state of a training run as one nested dict (what ``last.npz`` holds), and putting it back.

Where the run is, is three integers: ``epoch`` (epochs finished), ``batch`` (batches of the current epoch
finished) and ``step`` (optimizer steps finished). The batches come from ``loader.batch(epoch, batch)``, a pure
function of the loader's seed and these numbers; every other source of randomness (dropout's streams) and every
statistic a forward pass updates (batch norm's) is a buffer of the model, so in ``model.state_dict()``. With the
optimizer's and the EMA's state, and the half-finished epoch's statistics, a resumed run takes exactly the steps
the uninterrupted run would have taken and reports the same numbers: on the CPU the parameters agree bit for bit.

Restoring is all or nothing, in two phases. ``validate_training_state`` checks the whole state and changes
nothing: the format version, the position, the clocks, that every array is finite, and each part (model,
optimizer, EMA, schedule, loader, statistics) through its own ``check_state_dict``, which checks types, keys,
shapes, dtypes and counts and returns what to take (host arrays already in the dtype they replace). Only then
``apply_training_state`` hands each part its checked piece (``apply_state_dict``), which can no longer fail. A
rollback instead ("load, and on an error put the copy back") would depend on every error being one it expects:
an ``OverflowError`` from a count of Infinity, or an ``AttributeError`` from a list where a dict belongs, once
left 225 model tensors overwritten.

What is saved is read through one narrow interface: a ``RunState`` (the run's name, settings and length, its
``Progress``, and the objects that hold the rest: model, optimizer, EMA, schedule, loader, statistics), which
``Trainer.run_state()`` hands out. Nothing here reads the Trainer itself.
"""
import sys
from dataclasses import dataclass

from ..files.fit import described
from ..files.shorten import shorten
from ..nn.state import apply_state_dict, check_state_dict
from .checkpoint import CheckpointError
from .metrics import Tally
from .nonfinite import flatten_arrays, non_finite_arrays

#: the layout below; a checkpoint of another layout is refused with a clear message
STATE_VERSION = 2
_SECTIONS = ("position", "clock", "best_test_acc", "model", "optimizer", "ema", "schedule", "loader",
             "epoch_stats", "window")


@dataclass
class Progress:
    """Where a run is and what it has taken so far: the plain numbers of a training state."""
    epoch: int = 0               # epochs finished
    batch: int = 0               # batches of the current epoch finished
    step: int = 0                # optimizer steps finished
    elapsed_s: float = 0.0       # wall time of the run (all sessions)
    train_time_s: float = 0.0    # time spent in training steps (no evaluation, no checkpoints)
    best_test_acc: float = -1.0  # the best epoch's test accuracy (-1: none yet)


@dataclass
class RunState:
    """Everything a checkpoint holds, as the Trainer hands it out (``Trainer.run_state()``).

    ``progress`` is a copy of the numbers; the other parts are the run's own objects, each with ``state_dict()``
    and ``load_state_dict()``: ``restore_training_state`` loads them in place. ``ema`` and ``schedule`` may be
    None. ``loader`` is the training loader (``len(loader)`` is the number of steps per epoch).
    """
    name: str
    config: dict
    epochs: int
    progress: Progress
    model: object
    optimizer: object
    ema: object
    schedule: object
    loader: object
    epoch_tally: object
    window_tally: object


def training_state(run):
    """The whole state of ``run`` (a ``RunState``) as a nested dict: position, clocks, model, optimizer, EMA,
    schedule, loader, statistics."""
    p = run.progress
    loader_state = run.loader.state_dict()
    loader_state.update(epoch=p.epoch, batch=p.batch)
    return {
        "trainer_state_version": STATE_VERSION,
        "name": run.name,
        "config": run.config,
        "position": {"epoch": p.epoch, "batch": p.batch, "step": p.step, "steps_per_epoch": len(run.loader),
                     "epochs": run.epochs},
        "clock": {"elapsed_s": p.elapsed_s, "train_time_s": p.train_time_s},
        "best_test_acc": p.best_test_acc,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "ema": None if run.ema is None else run.ema.state_dict(),
        "schedule": None if run.schedule is None else run.schedule.state_dict(),
        "loader": loader_state,
        "epoch_stats": run.epoch_tally.state_dict(),
        "window": run.window_tally.state_dict(),
    }


def saved_arrays(state):
    """``(name, array)`` of every array of a training state that must be finite: model, optimizer, EMA."""
    return flatten_arrays({"model": state["model"], "optimizer": state["optimizer"], "ema": state["ema"]})


@dataclass
class CheckedState:
    """What ``validate_training_state`` found good: each part's checked piece (its ``check_state_dict``
    result; None for an absent EMA or schedule) and the ``Progress`` to continue from."""
    progress: Progress
    model: dict
    optimizer: object
    ema: object
    schedule: object
    loader: object
    epoch_stats: object
    window: object


def restore_training_state(run, state, source="the checkpoint"):
    """Load ``state`` (``training_state`` output, e.g. from ``load_checkpoint``) into the objects of ``run`` (a
    ``RunState``), all or nothing, and return the ``Progress`` it holds, for the trainer to take on.

    Raises:
        CheckpointError (a ValueError) naming ``source`` and the field: the state does not fit this run (another
            format, another data subset or batch size, an EMA on one side only, other parameters, shapes or
            dtypes, a part of the wrong type, a count that is not an int >= 0) or holds NaN/inf values. The
            objects are then unchanged.
    """
    checked = validate_training_state(run, state, source)
    apply_training_state(run, checked)
    return checked.progress


def validate_training_state(run, d, source="the checkpoint"):
    """Check the whole training state ``d`` against ``run`` and return a ``CheckedState``; change nothing.

    Raises ``CheckpointError`` naming ``source`` and the field (see ``restore_training_state``).
    """
    def refuse(why):
        raise CheckpointError(f"{source}: {why}")

    if not isinstance(d, dict):
        refuse(f"not a training state (a {type(d).__name__})")
    if d.get("trainer_state_version") != STATE_VERSION:
        refuse(f"written by another version of minception's Trainer (state version "
               f"{shorten(d.get('trainer_state_version'), 20)}, this one reads {STATE_VERSION}); start a new run")
    missing = [key for key in _SECTIONS if key not in d]
    if missing:
        refuse(f"the training state lacks {missing}")
    for key in ("position", "clock", "model", "optimizer", "loader", "epoch_stats", "window"):
        if not isinstance(d[key], dict):
            refuse(f"{key!r} is not a dict but a {described(d[key])}")
    pos = d["position"]
    for key in ("epoch", "batch", "step", "steps_per_epoch"):
        value = pos.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            refuse(f"position.{key} must be an int >= 0, got {shorten(value)}")
    if pos["steps_per_epoch"] != len(run.loader):
        refuse(f"the checkpoint has {shorten(pos['steps_per_epoch'])} steps per epoch, this loader has "
               f"{len(run.loader)} (different data subset or batch size?)")
    if pos["batch"] > pos["steps_per_epoch"]:
        refuse(f"position.batch {shorten(pos['batch'])} is past the end of an epoch of {pos['steps_per_epoch']} "
               "steps")
    elapsed = _seconds(refuse, "clock.elapsed_s", d["clock"].get("elapsed_s"))
    train_time = _seconds(refuse, "clock.train_time_s", d["clock"].get("train_time_s"))
    best = d["best_test_acc"]
    if isinstance(best, bool) or not isinstance(best, (int, float)) or not -1.0 <= best <= 1.0:
        refuse(f"best_test_acc must be a number in [-1, 1] (-1: none yet), got {shorten(best)}")
    if (d["ema"] is None) != (run.ema is None):
        refuse(f"the checkpoint was written {'without' if d['ema'] is None else 'with'} an EMA of the weights, "
               f"this trainer has {'one' if run.ema is not None else 'none'}")
    try:
        bad = non_finite_arrays(saved_arrays(d))
    except RecursionError:
        refuse("the model, optimizer or EMA state is nested too deeply")
    if bad:
        refuse(f"holds NaN or infinite values ({', '.join(shorten(name) for name in bad[:5])}"
               f"{', ...' if len(bad) > 5 else ''}); it is not a good checkpoint")

    def part(name, check, piece):
        """``check(piece)``, its error (each part names its own fields) prefixed with the part's name."""
        try:
            return check(piece)
        except (LookupError, ValueError, TypeError, AttributeError, ArithmeticError, RuntimeError) as e:
            why = str(e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else e)  # KeyError quotes its text
        refuse(f"does not fit this run: {why if why.startswith(name + '.') else f'{name}: {why}'}")

    return CheckedState(
        progress=Progress(epoch=pos["epoch"], batch=pos["batch"], step=pos["step"], elapsed_s=elapsed,
                          train_time_s=train_time, best_test_acc=float(best)),
        model=part("model", lambda m: check_state_dict(run.model, m)[0], d["model"]),
        optimizer=part("optimizer", run.optimizer.check_state_dict, d["optimizer"]),
        ema=None if run.ema is None else part("ema", run.ema.check_state_dict, d["ema"]),
        schedule=(None if run.schedule is None or d["schedule"] is None
                  else part("schedule", run.schedule.check_state_dict, d["schedule"])),
        loader=part("loader", run.loader.check_state_dict, d["loader"]),
        epoch_stats=part("epoch_stats", lambda t: Tally.check_state_dict(t, "epoch_stats"), d["epoch_stats"]),
        window=part("window", lambda t: Tally.check_state_dict(t, "window"), d["window"]))


def apply_training_state(run, checked):
    """Hand each object of ``run`` its piece of ``checked`` (a ``CheckedState``). Every piece was checked, so
    nothing here can fail half-way (the plain numbers, ``checked.progress``, are the caller's to take)."""
    apply_state_dict(run.model, checked.model)
    run.optimizer.apply_state_dict(checked.optimizer)
    if checked.ema is not None:
        run.ema.apply_state_dict(checked.ema)
    if checked.schedule is not None:
        run.schedule.apply_state_dict(checked.schedule)
    run.loader.apply_state_dict(checked.loader)
    run.epoch_tally.apply_state_dict(checked.epoch_stats)
    run.window_tally.apply_state_dict(checked.window)


def _seconds(refuse, field, value):
    """A clock reading: a finite number >= 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= sys.float_info.max:
        refuse(f"{field} must be a finite number of seconds >= 0, got {shorten(value)}")
    return float(value)
