"""The files of a run folder, and how a run finds (and tidies) the files an earlier run left there.

    last.npz          the whole training state (``Trainer.save``; what ``Trainer.resume`` reads)
    best.npz          the evaluated weights of the best epoch so far (``model.load("best.npz")``)
    metrics.jsonl     one line per epoch
    train_log.jsonl   one line every ``log_every`` steps

Every file is written with ``atomic_write``, so a killed run leaves complete files plus, at worst, a temporary
``<name>.<random>.tmp`` that the next run opening the folder deletes.
"""
import os

from ..files import remove_stale_temp_files

LAST = "last.npz"
BEST = "best.npz"
METRICS = "metrics.jsonl"
TRAIN_LOG = "train_log.jsonl"
RUN_FILES = (LAST, BEST, METRICS, TRAIN_LOG)


def existing_run_files(folder, names=RUN_FILES):
    """The names among ``names`` that exist in ``folder`` (an empty list when the folder does not exist)."""
    return [name for name in names if os.path.exists(os.path.join(folder, name))]


def tidy(folder, names=RUN_FILES):
    """Delete temporary files that killed writes of ``names`` left in ``folder``; returns the paths removed."""
    return remove_stale_temp_files(folder, names)
