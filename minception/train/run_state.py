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
"""
from .checkpoint import CheckpointError
from .nonfinite import flatten_arrays, non_finite_arrays

#: the layout below; a checkpoint of another layout is refused with a clear message
STATE_VERSION = 2
_SECTIONS = ("position", "clock", "best_test_acc", "model", "optimizer", "ema", "schedule", "loader",
             "epoch_stats", "window")


def training_state(trainer):
    """The trainer's whole state: position, clocks, model, optimizer, EMA, schedule, loader, statistics."""
    loader_state = trainer.train_loader.state_dict()
    loader_state.update(epoch=trainer.epoch, batch=trainer.batch)
    return {
        "trainer_state_version": STATE_VERSION,
        "name": trainer.name,
        "config": trainer.config,
        "position": {"epoch": trainer.epoch, "batch": trainer.batch, "step": trainer.step,
                     "steps_per_epoch": trainer.steps_per_epoch, "epochs": trainer.epochs},
        "clock": {"elapsed_s": trainer.elapsed(), "train_time_s": trainer.train_time},
        "best_test_acc": trainer.best_test_acc,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "ema": None if trainer.ema is None else trainer.ema.state_dict(),
        "schedule": None if trainer.schedule is None else trainer.schedule.state_dict(),
        "loader": loader_state,
        "epoch_stats": trainer.epoch_tally.state_dict(),
        "window": trainer.window_tally.state_dict(),
    }


def saved_arrays(state):
    """``(name, array)`` of every array of a training state that must be finite: model, optimizer, EMA."""
    return flatten_arrays({"model": state["model"], "optimizer": state["optimizer"], "ema": state["ema"]})


def restore_training_state(trainer, state, source="the checkpoint"):
    """Put ``state`` (``training_state`` output, e.g. from ``load_checkpoint``) into ``trainer``: all or nothing.

    Raises:
        CheckpointError (a ValueError) naming ``source``: the state does not fit this trainer (another format,
            another data subset or batch size, an EMA on one side only, other parameters or shapes) or holds
            NaN/inf values. The trainer is then unchanged.
    """
    _check(trainer, state, source)
    before = training_state(trainer)
    try:
        _apply(trainer, state)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        _apply(trainer, before)
        raise CheckpointError(f"{source}: does not fit this run: {e}") from None


def _check(trainer, d, source):
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
    if pos["steps_per_epoch"] != trainer.steps_per_epoch:
        refuse(f"the checkpoint has {pos['steps_per_epoch']} steps per epoch, this loader has "
               f"{trainer.steps_per_epoch} (different data subset or batch size?)")
    if pos["batch"] > pos["steps_per_epoch"]:
        refuse(f"invalid position {pos!r:.200}")
    if (d["ema"] is None) != (trainer.ema is None):
        refuse(f"the checkpoint was written {'without' if d['ema'] is None else 'with'} an EMA of the weights, "
               f"this trainer has {'one' if trainer.ema is not None else 'none'}")
    for key in ("model", "optimizer", "loader", "clock", "epoch_stats", "window"):
        if not isinstance(d[key], dict):
            refuse(f"{key!r} is not a dict")
    bad = non_finite_arrays(saved_arrays(d))
    if bad:
        refuse(f"holds NaN or infinite values ({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); "
               "it is not a good checkpoint")


def _apply(trainer, d):
    pos = d["position"]
    trainer.model.load_state_dict(d["model"])
    trainer.optimizer.load_state_dict(d["optimizer"])
    if trainer.ema is not None:
        trainer.ema.load_state_dict(d["ema"])
    if trainer.schedule is not None and d["schedule"] is not None:
        trainer.schedule.load_state_dict(d["schedule"])
    trainer.train_loader.load_state_dict(d["loader"])
    trainer.epoch_tally.load_state_dict(d["epoch_stats"])
    trainer.window_tally.load_state_dict(d["window"])
    trainer.elapsed_before = float(d["clock"]["elapsed_s"])
    trainer.train_time = float(d["clock"]["train_time_s"])
    trainer.best_test_acc = float(d["best_test_acc"])
    trainer.epoch, trainer.batch, trainer.step = pos["epoch"], pos["batch"], pos["step"]
