"""The per-epoch progress bar: batches done, and the running loss, accuracy and images per second.

A thin layer over tqdm so the trainer says *what* to show and this file says *how*. The bar goes to stderr;
where stderr is not a terminal (a log file, CI), tqdm's ``disable=None`` turns it off; the trainer then prints
a line per ``log_every`` steps instead (step, loss, accuracy, learning rate, images/s), and its epoch summaries.
"""
import sys

from tqdm.auto import tqdm


class ProgressBar:
    """One bar per epoch.

    Args:
        total: batches in the epoch.
        desc: the label on the left, e.g. ``"epoch 3/10"``.
        initial: batches already done (a resumed epoch starts part-way).
        enabled: True to always show, False never, None: only on a terminal.

    ``update(loss=..., acc=..., images_per_s=...)`` advances by one batch and refreshes the numbers shown.
    """

    def __init__(self, total, desc="", initial=0, enabled=None, file=None):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False, dynamic_ncols=True,
                        disable=(None if enabled is None else not enabled), file=file or sys.stderr)

    def update(self, n=1, loss=None, acc=None, images_per_s=None, lr=None):
        info = {}
        if loss is not None:
            info["loss"] = f"{loss:.4f}"
        if acc is not None:
            info["acc"] = f"{100 * acc:.1f}%"
        if images_per_s is not None:
            info["img/s"] = f"{images_per_s:.1f}"
        if lr is not None:
            info["lr"] = f"{lr:.3g}"
        if info:
            self.bar.set_postfix(info, refresh=False)
        self.bar.update(n)

    @property
    def shown(self):
        """True when the bar is drawn (tqdm turned it off for ``enabled=False``, or off a terminal)."""
        return not self.bar.disable

    def set_description(self, desc):
        self.bar.set_description(desc)

    def write(self, text):
        """Print a line without breaking the bar."""
        self.bar.write(text)

    def close(self):
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
