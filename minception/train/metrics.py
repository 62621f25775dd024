"""Running averages, the training statistics of an epoch or a log window, and the JSON-lines metrics log.

``metrics.jsonl`` holds one JSON object per line, one line per epoch; ``train_log.jsonl`` (same format) holds
one line every few steps. Both are appended to and flushed line by line, so a crash loses at most the line being
written, and ``truncate_after(step)`` removes the lines a resumed run is about to write again.
"""
import json
import math
import os

import numpy as np

from ..files.fit import described
from ..files.shorten import shorten
from .checkpoint import atomic_write
from .run_folder import read_records


def _number(field, value):
    """A finite int or float from a saved state, as a float (bool and text are refused)."""
    number = None
    if not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating)):
        try:
            number = float(value)
        except OverflowError:             # an int beyond float's range
            pass
    if number is None or not math.isfinite(number):
        raise ValueError(f"{field}: expected a finite number, got {shorten(value)}")
    return number


def _count(field, value):
    """An int >= 0 from a saved state (``Infinity``, ``2.5``, ``"3"`` and ``True`` are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{field}: expected an int >= 0, got {shorten(value)}")
    return int(value)


class RunningMean:
    """Weighted mean of values seen so far: ``update(value, n)`` adds ``value`` with weight ``n``.

    A batch's mean loss is added with ``n = batch size``, so the mean over an epoch weighs every image once
    whatever the batch sizes were. ``state_dict``/``load_state_dict`` carry a half-finished epoch across a resume.
    """

    def __init__(self):
        self.total = 0.0
        self.count = 0

    def update(self, value, n=1):
        self.total += float(value) * n
        self.count += n

    @property
    def mean(self):
        """The mean, or NaN before the first update."""
        return self.total / self.count if self.count else math.nan

    def reset(self):
        self.total, self.count = 0.0, 0

    def state_dict(self):
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, d):
        self.apply_state_dict(self.check_state_dict(d))

    @staticmethod
    def check_state_dict(d, field="the running mean"):
        """``(total, count)`` from ``state_dict()`` output: a finite total and an int count >= 0, or a
        ValueError/TypeError naming ``field``. Nothing changes (``apply_state_dict`` takes the pair)."""
        if not isinstance(d, dict) or set(d) != {"total", "count"}:
            raise ValueError(f"{field}: expected {{'total': number, 'count': int}}, got {described(d)}")
        return _number(f"{field}.total", d["total"]), _count(f"{field}.count", d["count"])

    def apply_state_dict(self, checked):
        self.total, self.count = checked

    def __repr__(self):
        return f"RunningMean(mean={self.mean:.6g}, count={self.count})"


class Tally:
    """What the training steps of one period (an epoch, or the window between two log lines) add up to.

    ``add(batch_size, loss, correct, grad_norm, seconds)`` after each step; then ``loss`` (mean over images),
    ``accuracy``, ``grad_norm`` (mean over steps) and ``images_per_s``. ``state_dict`` carries a half-finished
    period across a resume, so the resumed run reports the numbers the uninterrupted run would have.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss, self.grad_norm = RunningMean(), RunningMean()
        self.correct = self.images = 0
        self.seconds = 0.0

    def add(self, batch_size, loss, correct, grad_norm, seconds):
        self.loss.update(loss, batch_size)
        self.grad_norm.update(grad_norm)
        self.correct += int(correct)
        self.images += int(batch_size)
        self.seconds += seconds

    @property
    def accuracy(self):
        return self.correct / self.images if self.images else math.nan

    @property
    def images_per_s(self):
        return self.images / max(self.seconds, 1e-9)

    def state_dict(self):
        return {"loss": self.loss.state_dict(), "grad_norm": self.grad_norm.state_dict(), "correct": self.correct,
                "images": self.images, "seconds": self.seconds}

    def load_state_dict(self, d):
        self.apply_state_dict(self.check_state_dict(d))

    @staticmethod
    def check_state_dict(d, field="the statistics"):
        """What ``apply_state_dict`` takes, from ``state_dict()`` output, or a ValueError/TypeError naming the
        field (``epoch_stats.loss.count``): every count an int >= 0, every sum finite. Nothing changes."""
        keys = {"loss", "grad_norm", "correct", "images", "seconds"}
        if not isinstance(d, dict) or set(d) != keys:
            raise ValueError(f"{field}: expected a dict with keys {sorted(keys)}, got {described(d)}")
        return (RunningMean.check_state_dict(d["loss"], f"{field}.loss"),
                RunningMean.check_state_dict(d["grad_norm"], f"{field}.grad_norm"),
                _count(f"{field}.correct", d["correct"]), _count(f"{field}.images", d["images"]),
                _number(f"{field}.seconds", d["seconds"]))

    def apply_state_dict(self, checked):
        loss, grad_norm, self.correct, self.images, self.seconds = checked
        self.loss.apply_state_dict(loss)
        self.grad_norm.apply_state_dict(grad_norm)


class MetricsLog:
    """Append-only JSON-lines file: ``log.append({"epoch": 1, ...})`` writes one line and flushes it.

    Args:
        path: the ``.jsonl`` file (its folder is created).
        fresh: start an empty file (a new run); otherwise keep existing lines (a resumed run).
        fields: ``{name: (check, required)}`` (``run_folder.METRICS_FIELDS``): every line read back is checked
            against them, so a damaged file is a ``RunFileError`` naming the line and field.
        keep_until_commit: with ``fresh``, leave the file as it is and keep the new lines in memory until
            ``commit()`` writes them all: a new run started over an old one (``--overwrite``) replaces the old
            run's log only when it writes its first checkpoint, so a run killed before that costs nothing.
    """

    def __init__(self, path, fresh=False, fields=None, keep_until_commit=False):
        self.path = os.fspath(path)
        self.fields = fields
        self._pending = None            # the lines not written yet (keep_until_commit), else None
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if fresh and keep_until_commit:
            self._pending = []
        elif fresh:
            atomic_write(self.path, lambda f: None)
        elif os.path.lexists(self.path):
            self._repair()

    def _repair(self):
        """Drop a torn last line (a crash while appending), so the next line starts on a line of its own."""
        records = self.read()           # checks the file first (a FIFO or a damaged line is refused)
        if not self._ends_with_newline():
            self._rewrite(records)

    def _ends_with_newline(self):
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _rewrite(self, records):
        text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in records)
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))

    @property
    def pending(self):
        """True while the lines are kept in memory (``keep_until_commit``, before ``commit()``)."""
        return self._pending is not None

    def commit(self):
        """Write the lines kept in memory (``keep_until_commit``) as the whole file, atomically; from then on
        ``append`` writes to the file. Does nothing when nothing is pending."""
        if self._pending is not None:
            self._rewrite(self._pending)
            self._pending = None

    def append(self, record):
        """Write ``record`` (a dict of JSON-able values) as one line; NaN/inf are written as JSON ``NaN``/``Infinity``."""
        line = json.dumps(record, allow_nan=True)
        if self._pending is not None:
            self._pending.append(json.loads(line))
            return
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:            # a full disk: say which file (the error of a write names none)
            raise type(e)(e.errno, e.strerror, e.filename or self.path) from None

    def read(self):
        if self._pending is not None:
            return list(self._pending)
        return read_jsonl(self.path, self.fields)

    def truncate_after(self, step, key="step"):
        """Keep only the records with ``record[key] <= step`` (rewritten atomically). Returns how many were dropped.

        A run resumed from a checkpoint at step ``s`` calls this with ``s`` first, so that lines written after
        that checkpoint (before a crash) are not duplicated when the run writes them again.
        """
        records = self.read()
        kept = [r for r in records if not _is_number(r.get(key)) or r[key] <= step]
        if len(kept) != len(records):
            if self._pending is not None:
                self._pending = kept
            else:
                self._rewrite(kept)
        return len(records) - len(kept)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_jsonl(path, fields=None):
    """The list of records in a ``.jsonl`` file ([] when it does not exist). A torn last line is skipped.

    Every line must be a flat JSON object; ``fields`` (``run_folder.METRICS_FIELDS``, ``TRAIN_LOG_FIELDS``)
    checks named fields too. A damaged file raises ``run_folder.RunFileError`` (a ValueError) naming the file,
    the line and the field; the file is read with limits (a regular file, lines of bounded length).
    """
    return read_records(path, fields)
