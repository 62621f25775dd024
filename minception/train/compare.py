"""Train several networks under the same budget and compare them: the small-scale version of the paper's
Figures 21-26 (top-1 accuracy and training loss of Inception-v4 against the Inception-ResNets).

``run_comparison`` trains the models one after another (each in its own run folder, each resumable);
``load_histories`` reads their logs back; ``plot_comparison`` draws test accuracy and training loss against
optimizer steps and against training time (2 x 2 panels, a PNG); ``comparison_table`` prints one line per model.

"Same budget" means the same data, batch size, epochs (so the same number of steps) and recipe. The step
axis compares what each architecture learns per update; the time axis adds how fast each one computes on this
machine, which is what the paper's "trains faster" is about (its plots are against wall time in steps of a
fixed cluster).
"""
import math
import os

from .metrics import read_jsonl
from .run_folder import LAST, METRICS, TRAIN_LOG


def run_comparison(names, make_trainer, out_dir, resume=False, print_fn=print):
    """Train each model in ``names`` in turn, in ``out_dir/<name>/``. Returns ``{name: FitResult}``.

    Args:
        make_trainer: ``f(name, run_dir) -> Trainer`` building the model, optimizer, loaders and trainer.
        resume: continue the runs from their ``last.npz`` where one exists (finished runs return at once).
    A run that is interrupted (Ctrl-C) stops the comparison: the results so far are returned.
    """
    results = {}
    for i, name in enumerate(names):
        run_dir = os.path.join(out_dir, name)
        trainer = make_trainer(name, run_dir)
        if resume and os.path.exists(os.path.join(run_dir, LAST)):
            trainer.resume()
            if print_fn is not None:
                print_fn(f"[{i + 1}/{len(names)}] {name}: resuming at epoch {trainer.epoch + 1}, step {trainer.step}")
        elif print_fn is not None:
            print_fn(f"[{i + 1}/{len(names)}] {name}: {trainer.model.num_parameters():,} parameters, "
                     f"{trainer.epochs} epochs of {trainer.steps_per_epoch} steps")
        results[name] = trainer.fit()
        if results[name].status != "completed":
            break
    return results


def load_histories(out_dir, names):
    """``{name: {"epochs": metrics.jsonl records, "steps": train_log.jsonl records}}`` for the runs found."""
    out = {}
    for name in names:
        run_dir = os.path.join(out_dir, name)
        epochs = read_jsonl(os.path.join(run_dir, METRICS))
        if epochs or os.path.exists(os.path.join(run_dir, TRAIN_LOG)):
            out[name] = {"epochs": epochs, "steps": read_jsonl(os.path.join(run_dir, TRAIN_LOG))}
    return out


def _loss_curve(history):
    """(steps, times, losses) of the training loss: the fine train_log when there is one, else per epoch."""
    rows = history["steps"] or history["epochs"]
    rows = [r for r in rows if r.get("train_loss") is not None]
    return ([r["step"] for r in rows], [r["train_time_s"] for r in rows], [r["train_loss"] for r in rows])


def plot_comparison(histories, path, title="", chance=None, dpi=90):
    """Write a 2 x 2 PNG: test accuracy (top) and training loss (bottom) against steps (left) and training
    time (right), one line per model. ``chance``: draw the chance accuracy (e.g. 0.1) as a dashed line.
    Returns ``path``.

    ``histories`` is ``load_histories``'s output. Uses matplotlib's non-interactive Agg backend.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex="col")
    for name, h in histories.items():
        ep = [r for r in h["epochs"] if r.get("test_acc") is not None]
        steps = [r["step"] for r in ep]
        times = [r["train_time_s"] for r in ep]
        acc = [100 * r["test_acc"] for r in ep]
        line, = axes[0, 0].plot(steps, acc, marker="o", ms=3, label=name)
        axes[0, 1].plot(times, acc, marker="o", ms=3, color=line.get_color(), label=name)
        ls, lt, ll = _loss_curve(h)
        axes[1, 0].plot(ls, ll, color=line.get_color(), label=name)
        axes[1, 1].plot(lt, ll, color=line.get_color(), label=name)
    if chance is not None:
        for ax in axes[0]:
            ax.axhline(100 * chance, color="gray", ls="--", lw=1, label="chance")
    axes[0, 0].set_ylabel("test accuracy (%)")
    axes[1, 0].set_ylabel("training loss")
    axes[1, 0].set_xlabel("optimizer steps")
    axes[1, 1].set_xlabel("training time (s, evaluation excluded)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _first_reaching(records, threshold):
    """(step, train_time_s) of the first epoch whose test accuracy is >= threshold, or (None, None)."""
    for r in records:
        if r.get("test_acc") is not None and r["test_acc"] >= threshold:
            return r["step"], r["train_time_s"]
    return None, None


def comparison_table(histories, params=None):
    """A plain-text table within 100 columns, one row per model: parameters, steps, final and best test accuracy,
    final training loss, images/s, training time, and the steps and seconds each took to reach a common accuracy
    target (90% of the lowest final accuracy among the models, so every model reaches it); a legend follows.

    ``params``: optional ``{name: parameter count}``.
    """
    rows = {n: h["epochs"] for n, h in histories.items() if h["epochs"]}
    if not rows:
        return "(no finished epoch to compare)"
    finals = [r[-1]["test_acc"] for r in rows.values() if r[-1].get("test_acc") is not None]
    target = 0.9 * min(finals) if finals else None
    head = ["model", "params", "epochs", "steps", "test acc", "best acc", "loss", "img/s", "train s"]
    if target is not None:
        head.append(f"to {100 * target:.1f}%")
    lines = []
    for name, recs in rows.items():
        last = recs[-1]
        accs = [r["test_acc"] for r in recs if r.get("test_acc") is not None]
        ips = [r["images_per_s"] for r in recs]
        row = [name, f"{params[name]:,}" if params and name in params else "-", str(last["epoch"]),
               str(last["step"]),
               "-" if last.get("test_acc") is None else f"{100 * last['test_acc']:.1f}%",
               "-" if not accs else f"{100 * max(accs):.1f}%",
               f"{last['train_loss']:.3f}", f"{sorted(ips)[len(ips) // 2]:.1f}", f"{last['train_time_s']:.0f}"]
        if target is not None:
            s, t = _first_reaching(recs, target)
            row.append("no" if s is None else f"{s} / {t:.0f}")
        lines.append(row)
    widths = [max(len(head[i]), *(len(r[i]) for r in lines)) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines]
    out.append("loss: the last training loss; train s: seconds of training")
    if target is not None:
        out.append(f"to {100 * target:.1f}%: steps / seconds of training until the test accuracy first reached "
                   f"{100 * target:.1f}% (no: never)")
    return "\n".join(out)


def faster_model(histories, threshold=None):
    """Which model reached ``threshold`` test accuracy in the least training time (``None`` if none did).

    ``threshold`` defaults to the table's target (90% of the lowest final accuracy). Returns ``(name, seconds)``.
    """
    rows = {n: h["epochs"] for n, h in histories.items() if h["epochs"]}
    if threshold is None:
        finals = [r[-1]["test_acc"] for r in rows.values() if r[-1].get("test_acc") is not None]
        if not finals:
            return None
        threshold = 0.9 * min(finals)
    best = None
    for name, recs in rows.items():
        _, t = _first_reaching(recs, threshold)
        if t is not None and (best is None or t < best[1]):
            best = (name, t)
    return best if best is None or math.isfinite(best[1]) else None
