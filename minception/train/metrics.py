"""Running averages, the training statistics of an epoch or a log window, and the JSON-lines metrics log.

``metrics.jsonl`` holds one JSON object per line, one line per epoch; ``train_log.jsonl`` (same format) holds
one line every few steps. Both are appended to and flushed line by line, so a crash loses at most the line being
written, and ``truncate_after(step)`` removes the lines a resumed run is about to write again.
"""
import json
import math
import os

from .checkpoint import atomic_write


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
        self.total, self.count = float(d["total"]), int(d["count"])

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
        self.loss.load_state_dict(d["loss"])
        self.grad_norm.load_state_dict(d["grad_norm"])
        self.correct, self.images, self.seconds = int(d["correct"]), int(d["images"]), float(d["seconds"])


class MetricsLog:
    """Append-only JSON-lines file: ``log.append({"epoch": 1, ...})`` writes one line and flushes it.

    Args:
        path: the ``.jsonl`` file (its folder is created).
        fresh: start an empty file (a new run); otherwise keep existing lines (a resumed run).
    """

    def __init__(self, path, fresh=False):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if fresh:
            atomic_write(self.path, lambda f: None)
        elif os.path.exists(self.path):
            self._repair()

    def _repair(self):
        """Drop a torn last line (a crash while appending), so the next line starts on a line of its own."""
        with open(self.path, "rb") as f:
            raw = f.read()
        if raw and not raw.endswith(b"\n"):
            self._rewrite(self.read())

    def _rewrite(self, records):
        text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in records)
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))

    def append(self, record):
        """Write ``record`` (a dict of JSON-able values) as one line; NaN/inf are written as JSON ``NaN``/``Infinity``."""
        line = json.dumps(record, allow_nan=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self):
        return read_jsonl(self.path)

    def truncate_after(self, step, key="step"):
        """Keep only the records with ``record[key] <= step`` (rewritten atomically). Returns how many were dropped.

        A run resumed from a checkpoint at step ``s`` calls this with ``s`` first, so that lines written after
        that checkpoint (before a crash) are not duplicated when the run writes them again.
        """
        records = self.read()
        kept = [r for r in records if r.get(key, -1) <= step]
        if len(kept) != len(records):
            self._rewrite(kept)
        return len(records) - len(kept)


def read_jsonl(path):
    """The list of records in a ``.jsonl`` file ([] when it does not exist). A torn last line is skipped."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:   # a crash while appending the last line
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON: {line[:80]!r}") from None
    return records
