"""The files of a run folder, how a run finds (and tidies) the files an earlier run left there, and how it reads
them back without trusting them.

    last.npz          the whole training state (``Trainer.save``; what ``Trainer.resume`` reads)
    best.npz          the evaluated weights of the best epoch so far (``model.load("best.npz")``)
    metrics.jsonl     one line per epoch
    train_log.jsonl   one line every ``log_every`` steps

Every file is written with ``atomic_write``, so a killed run leaves complete files plus, at worst, a temporary
``<name>.<random>.tmp`` that the next run opening the folder deletes.

A run folder is input like any other file: it may have been edited, copied half-way, filled with another
program's output or damaged on purpose. ``read_records`` reads a JSON-lines file of it with limits (a regular file
only, lines of bounded length, every line a flat JSON object, no nesting) and checks the fields it is told about,
so that a damaged file stops a resumed run with ``RunFileError`` naming the file, the line and the field, before
the run relies on it, instead of a traceback from deep inside the report or the resume.
"""
import json
import math
import os

from ..files import remove_stale_temp_files
from ..files.regular import open_regular
from ..files.shorten import shorten

LAST = "last.npz"
BEST = "best.npz"
METRICS = "metrics.jsonl"
TRAIN_LOG = "train_log.jsonl"
RUN_FILES = (LAST, BEST, METRICS, TRAIN_LOG)

#: the longest line a JSON-lines file of a run may have (the trainer writes about 400 bytes a line)
MAX_LINE_BYTES = 1 << 16


class RunFileError(ValueError):
    """A file of a run folder that cannot be what the run wrote: the message names the file, line and field."""


def existing_run_files(folder, names=RUN_FILES):
    """The names among ``names`` that exist in ``folder`` (an empty list when the folder does not exist)."""
    return [name for name in names if os.path.lexists(os.path.join(folder, name))]


def tidy(folder, names=RUN_FILES):
    """Delete temporary files that killed writes of ``names`` left in ``folder``; returns the paths removed."""
    return remove_stale_temp_files(folder, names)


# ----------------------------------------------------------------------------------- checked reading ---
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(low):
    def check(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= low
    check.expected = f"an integer >= {low}"
    return check


def _real(low=None, high=None, nan=True):
    """A number (NaN and inf allowed where the trainer may write them, ``nan``) within ``[low, high]``."""
    def check(value):
        if not _is_number(value):
            return False
        if math.isnan(value):
            return nan
        return (low is None or value >= low) and (high is None or value <= high)
    bounds = "" if low is None and high is None else f" in [{'-inf' if low is None else low}, " \
                                                     f"{'inf' if high is None else high}]"
    check.expected = f"a number{bounds}"
    return check


def _optional(check):
    def optional(value):
        return value is None or check(value)
    optional.expected = f"{check.expected} or null"
    return optional


def _text(value):
    return isinstance(value, str) and 0 < len(value) <= 200


_text.expected = "a name (text of 1 to 200 characters)"


def _flag(value):
    return isinstance(value, bool)


_flag.expected = "true or false"

_ACCURACY = _optional(_real(0, 1))
_SECONDS = _real(0)
#: the fields of a ``metrics.jsonl`` line the trainer writes and the report reads: name -> (check, required)
METRICS_FIELDS = {
    "model": (_text, True), "epoch": (_count(1), True), "step": (_count(0), True),
    "train_loss": (_real(), False), "train_acc": (_real(0, 1), False),
    "test_loss": (_optional(_real()), False), "test_acc": (_ACCURACY, False),
    "test_loss_raw": (_optional(_real()), False), "test_acc_raw": (_ACCURACY, False),
    "lr": (_real(0), False), "elapsed_s": (_SECONDS, False), "images_per_s": (_real(0), False),
    "train_time_s": (_SECONDS, False), "epoch_train_s": (_SECONDS, False), "eval_s": (_SECONDS, False),
    "test_images": (_count(0), False), "ema": (_flag, False), "grad_norm": (_real(0), False),
}
#: the fields of a ``train_log.jsonl`` line
TRAIN_LOG_FIELDS = {
    "model": (_text, False), "step": (_count(0), True), "epoch": (_real(0), True),
    "train_loss": (_real(), False), "train_acc": (_real(0, 1), False), "lr": (_real(0), False),
    "elapsed_s": (_SECONDS, False), "train_time_s": (_SECONDS, False), "images_per_s": (_real(0), False),
}


def parse_json(text, where):
    """``json.loads(text)`` that fails only with ``RunFileError`` naming ``where``: deep nesting (a million
    ``[``) and integers of thousands of digits included, whose own errors are RecursionError and a ValueError
    too long to print."""
    try:
        return json.loads(text)
    except RecursionError:
        raise RunFileError(f"{where}: nested too deeply to be the run's file") from None
    except ValueError as e:
        raise RunFileError(f"{where}: not valid JSON ({shorten(str(e).split(':')[0], 60)})") from None


def read_text(path, what, max_bytes):
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` (a FIFO or ``/dev/zero`` named
    like a run file is refused, not waited on or read for ever)."""
    with open_regular(path, what, RunFileError) as (f, size):
        if size > max_bytes:
            raise RunFileError(f"{os.fspath(path)}: {size:,} bytes, more than a run's {what} can be "
                               f"({max_bytes:,})")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RunFileError(f"{os.fspath(path)}: more than {max_bytes:,} bytes")
    return data


def check_fields(record, fields, where):
    """Raise ``RunFileError`` unless ``record`` (a dict) has the required ``fields`` and each given field passes
    its check. Fields not in ``fields`` are allowed (newer versions may add some) but must be plain values."""
    for key, value in record.items():
        if isinstance(value, (dict, list)):
            raise RunFileError(f"{where}, field {shorten(key)}: expected a plain value, got {shorten(value)}")
    for key, (check, required) in (fields or {}).items():
        if key not in record:
            if required:
                raise RunFileError(f"{where}: field {key!r} is missing")
            continue
        if not check(record[key]):
            raise RunFileError(f"{where}, field {key!r}: expected {check.expected}, got {shorten(record[key])}")


def read_records(path, fields=None):
    """The records of the JSON-lines file ``path`` ([] when it does not exist), each checked.

    A last line without its newline that is not valid JSON is a write a crash cut short: it is skipped. Any
    other bad line (not UTF-8, not JSON, not an object, nested values, a field of ``fields`` missing or of the
    wrong type or range) raises ``RunFileError`` naming the file, the line and the field.
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        return []
    name = os.path.basename(path)
    raw = read_text(path, name, 1 << 30)
    lines = raw.split(b"\n")
    torn = lines.pop()                    # b"" when the file ends with a newline
    records = []
    for number, line in enumerate(lines + [torn], start=1):
        is_torn = number == len(lines) + 1
        if not line.strip():
            continue
        where = f"{path} line {number}"
        if len(line) > MAX_LINE_BYTES:
            raise RunFileError(f"{where}: {len(line):,} bytes, longer than any line a run writes")
        try:
            text = line.decode("utf-8")
            record = parse_json(text, where)
        except (UnicodeDecodeError, RunFileError) as e:
            if is_torn:                   # a crash while appending the last line
                break
            if isinstance(e, UnicodeDecodeError):
                raise RunFileError(f"{where}: not UTF-8 text (byte {e.start + 1})") from None
            raise
        if not isinstance(record, dict):
            raise RunFileError(f"{where}: expected a JSON object, got {shorten(record)}")
        check_fields(record, fields, where)
        records.append(record)
    return records
