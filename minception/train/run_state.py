"""The whole state of a training run as one nested dict (what ``last.npz`` holds), and putting it back.

Where the run is, is three integers: ``epoch`` (epochs finished), ``batch`` (batches of the current epoch
finished) and ``step`` (optimizer steps finished). The batches come from ``loader.batch(epoch, batch)``, a pure
function of the loader's seed and these numbers; every other source of randomness (dropout's streams) and every
statistic a forward pass updates (batch norm's) is a buffer of the model, so in ``model.state_dict()``. With the
optimizer's and the EMA's state, and the half-finished epoch's statistics, a resumed run takes exactly the steps
the uninterrupted run would have taken and reports the same numbers: on the CPU the parameters agree bit for bit.

Restoring is all or nothing. ``restore_training_state`` first checks what it can (the format version, the
position, the EMA, finite values); then each part (model, optimizer, EMA, schedule, loader) loads its own piece
and may still refuse it. If one does, the parts already loaded are put back from a copy taken before, so a
refused checkpoint leaves the trainer exactly as it was.

What is saved is read through one narrow interface: a ``RunState`` (the run's name, settings and length, its
``Progress``, and the objects that hold the rest: model, optimizer, EMA, schedule, loader, statistics), which
``Trainer.run_state()`` hands out. Nothing here reads the Trainer itself.
"""
from dataclasses import dataclass

from .checkpoint import CheckpointError
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


def restore_training_state(run, state, source="the checkpoint"):
    """Load ``state`` (``training_state`` output, e.g. from ``load_checkpoint``) into the objects of ``run`` (a
    ``RunState``), all or nothing, and return the ``Progress`` it holds, for the trainer to take on.

    Raises:
        CheckpointError (a ValueError) naming ``source``: the state does not fit this run (another format,
            another data subset or batch size, an EMA on one side only, other parameters or shapes) or holds
            NaN/inf values. The objects are then unchanged.
    """
    _check(run, state, source)
    before = training_state(run)
    try:
        _apply(run, state)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        _apply(run, before)
        raise CheckpointError(f"{source}: does not fit this run: {e}") from None
    pos, clock = state["position"], state["clock"]
    return Progress(epoch=pos["epoch"], batch=pos["batch"], step=pos["step"], elapsed_s=float(clock["elapsed_s"]),
                    train_time_s=float(clock["train_time_s"]), best_test_acc=float(state["best_test_acc"]))


def _check(run, d, source):
    def refuse(why):
        raise CheckpointError(f"{source}: {why}")

    if not isinstance(d, dict):
        refuse("not a training state")
    if d.get("trainer_state_version") != STATE_VERSION:
        refuse(f"written by another version of minception's Trainer (state version "
               f"{d.get('trainer_state_version')!r:.20}, this one reads {STATE_VERSION}); start a new run")
    missing = [key for key in _SECTIONS if key not in d]
    if missing:
        refuse(f"the training state lacks {missing}")
    pos = d["position"]
    if not isinstance(pos, dict) or not all(isinstance(pos.get(k), int) and pos[k] >= 0
                                            for k in ("epoch", "batch", "step", "steps_per_epoch")):
        refuse(f"invalid position {pos!r:.200}")
    if pos["steps_per_epoch"] != len(run.loader):
        refuse(f"the checkpoint has {pos['steps_per_epoch']} steps per epoch, this loader has "
               f"{len(run.loader)} (different data subset or batch size?)")
    if pos["batch"] > pos["steps_per_epoch"]:
        refuse(f"invalid position {pos!r:.200}")
    if (d["ema"] is None) != (run.ema is None):
        refuse(f"the checkpoint was written {'without' if d['ema'] is None else 'with'} an EMA of the weights, "
               f"this trainer has {'one' if run.ema is not None else 'none'}")
    for key in ("model", "optimizer", "loader", "clock", "epoch_stats", "window"):
        if not isinstance(d[key], dict):
            refuse(f"{key!r} is not a dict")
    bad = non_finite_arrays(saved_arrays(d))
    if bad:
        refuse(f"holds NaN or infinite values ({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); "
               "it is not a good checkpoint")


def _apply(run, d):
    """Each object of ``run`` loads its own piece of ``d`` (the plain numbers are returned by the caller)."""
    run.model.load_state_dict(d["model"])
    run.optimizer.load_state_dict(d["optimizer"])
    if run.ema is not None:
        run.ema.load_state_dict(d["ema"])
    if run.schedule is not None and d["schedule"] is not None:
        run.schedule.load_state_dict(d["schedule"])
    run.loader.load_state_dict(d["loader"])
    run.epoch_tally.load_state_dict(d["epoch_stats"])
    run.window_tally.load_state_dict(d["window"])
