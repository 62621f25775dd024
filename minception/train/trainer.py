"""``Trainer``: runs ``loop.train_step`` over the epochs of a run and manages everything around it.

The training itself is ``loop.py`` (forward, loss, backward, clip, step, EMA). This file is the run: which batch
comes next, evaluation after each epoch (with the EMA's averages swapped in), the metrics log, checkpoints, and
how a run stops. The pieces it uses each have a file of their own: ``run_state.py`` (the state in a checkpoint,
and resuming it), ``signals.py`` (Ctrl-C), ``snapshot.py`` (undoing an unfinished step), ``metrics.py``
(statistics and logs), ``callbacks.py``, ``progress.py``, ``run_folder.py`` (the files of a run),
``deferred_reads.py`` (reading the steps' numbers many at once on the GPU). With ``distributed=`` it is one rank
of a data-parallel job (``minception.distributed``): the few points where the ranks must act together are calls
of ``self.ranks`` (``rank_agreement.py``), which a process alone answers by itself.

After every epoch the model is evaluated on the test loader, one line is appended to ``metrics.jsonl`` and the
whole training state is written to ``last.npz``; ``best.npz`` holds the evaluated weights of the best epoch.

Stops:
- Ctrl-C finishes the step in flight, saves ``last.npz`` at that step and returns ``status="interrupted"``; a
  second Ctrl-C raises KeyboardInterrupt at once, but never in the middle of a step (see ``signals.py``). A
  KeyboardInterrupt raised by a callback or a hook is handled like the first Ctrl-C.
- A NaN or infinite loss or gradient norm raises ``NonFiniteLossError`` before the optimizer step; a non-finite
  test loss raises it before anything of that epoch is written; and no checkpoint is ever written with a
  non-finite weight, optimizer state or average. The error names the last checkpoint written, which is good.
  (With ``check_every`` > 1, the GPU's default, a step's numbers are read and checked up to ``check_every`` - 1
  steps later: the error then says which step went wrong, and the weights in memory have taken the steps since.)
- ``max_steps`` stops after that many optimizer steps in total, saving ``last.npz`` (``status="stopped"``).
"""
import math
import os
import time
import warnings
from dataclasses import dataclass, field

from autograd import Tensor
from autograd.backend import to_device

from . import loop
from .callbacks import Callbacks
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .deferred_reads import DeferredReads, PendingStep
from .metrics import MetricsLog, Tally
from .nonfinite import NonFiniteLossError, non_finite_arrays
from .progress import ProgressBar
from .rank_agreement import rank_agreement
from .run_folder import (BEST, LAST, METRICS, METRICS_FIELDS, TRAIN_LOG, TRAIN_LOG_FIELDS, existing_run_files,
                         tidy)
from .run_state import Progress, RunState, restore_training_state, training_state
from .signals import CtrlC
from .snapshot import BufferSnapshot


class _StopRequested(Exception):
    """Internal: Ctrl-C was pressed while evaluating."""


@dataclass
class FitResult:
    """What ``Trainer.fit`` returns.

    status: "completed" (all epochs done), "interrupted" (Ctrl-C; state saved), "stopped" (``max_steps`` reached).
    epoch, step: epochs and steps finished. checkpoint: the last checkpoint written (or None).
    history: the epoch records of the run (all of ``metrics.jsonl``, earlier sessions included).
    """

    status: str
    epoch: int
    step: int
    checkpoint: str = None
    history: list = field(default_factory=list)
    message: str = ""


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_loader``, evaluating on ``test_loader`` after each epoch.

    The optimizer, schedule, EMA, label smoothing and clipping usually come from a ``Recipe`` (``recipe.py``).
    ``run_state()`` hands out what a checkpoint holds (a ``run_state.RunState``); ``state_dict()`` and
    ``load_state_dict()`` turn it into the nested dict of ``last.npz`` and back.

    Args:
        model: an ``nn.Module`` returning logits (N, K); already on ``device`` (move it *before* building the
            optimizer and EMA, so that they hold arrays on the same device).
        optimizer: an ``optim.Optimizer`` over ``model.named_parameters()``.
        train_loader: a ``data.DataLoader`` (``len()`` and ``batch(epoch, index)`` are used; it is not iterated).
        test_loader: a DataLoader without shuffling or augmentation, or None to skip evaluation.
        epochs: total number of epochs of the run (a resumed run continues towards it).
        schedule: ``step -> lr`` (an ``optim.Schedule``), or None to keep ``optimizer.lr``.
        ema: an ``optim.EMA`` of the parameters (and, optionally, of the BN running statistics), updated after
            each step and swapped in to evaluate; or None.
        label_smoothing: for the training loss (the test loss is plain cross-entropy).
        clip_norm: clip the global gradient norm to this (None: no clipping; the norm is still checked).
        run_dir: folder for ``metrics.jsonl``, ``train_log.jsonl``, ``last.npz``, ``best.npz``; None writes
            nothing. A new run (no ``resume()``) over an earlier run there leaves every file of the earlier run
            as it was until its own first checkpoint: then its ``last.npz``, its logs (kept in memory until
            then) and its ``best.npz`` replace the earlier run's (whose ``best.npz`` is removed).
        name: the model's name in the metrics records.
        device: "cpu" or "cuda"; batches are moved there.
        checkpoint_every: also save ``last.npz`` every this many steps (0: only at epoch ends and stops).
        log_every: append a line to ``train_log.jsonl`` every this many steps (0: never); without a progress
            bar on screen, also print it (step, loss and accuracy over those steps, learning rate, images/s).
        max_steps: stop after this many steps in total (None: no limit).
        progress: show tqdm bars (True/False; None: only on a terminal).
        callbacks: objects with optional methods ``on_step_end(trainer, info)`` and ``on_epoch_end(trainer,
            record)``; a plain function is taken as ``on_step_end``. They run after the step's state is final.
        config: a JSON-able dict stored in every checkpoint (the command-line settings, for resuming).
        print_fn: where the one-line epoch summaries (and, without a progress bar, the log lines) go (``None`` to
            stay quiet).
        check_every: read the steps' losses, accuracies and gradient norms every this many steps, and check them
            for NaN/inf then. Each read makes the host wait until the GPU has finished all queued work, so on
            the GPU the default (None) is ``log_every`` (20 when that is 0): one wait per log line. On the CPU
            the default is 1 (a read costs nothing there), and with ``distributed`` it must be 1 (the ranks agree
            on every step's numbers). With more than 1, ``on_step_end`` callbacks run when their step is read,
            and the progress bar's numbers lag by up to ``check_every`` steps.
        handle_sigint: catch Ctrl-C to stop cleanly (only possible in the main thread).
        eval_raw: with an EMA, also evaluate the raw weights each epoch (``test_acc_raw``, ``test_loss_raw``).
        distributed: a ``distributed.DataParallel`` when this is one rank of a data-parallel job, else None.
            The trainer then averages the gradients after backward (``loop.train_step``'s
            ``average_gradients``), reports the global batch's loss and accuracy, stops (Ctrl-C) only when the
            ranks agree, and reads ``resume()``'s checkpoint and evaluates on rank 0 only, handing the results to
            every rank. Give ``run_dir``, ``test_loader``, ``progress`` and ``print_fn`` on rank 0 only
            (None/False elsewhere) and a ``train_loader`` sharded with ``shard=distributed.shard``.
        seed: no longer used: dropout layers carry their own seeded streams (``nn.Dropout``; seeded by
            ``nn.init.manual_seed``). Accepted so that older calls keep working.
    """

    def __init__(self, model, optimizer, train_loader, test_loader=None, *, epochs=1, schedule=None, ema=None,
                 label_smoothing=0.0, clip_norm=None, run_dir=None, name="model", device="cpu",
                 checkpoint_every=0, log_every=20, max_steps=None, progress=None, callbacks=(), config=None,
                 print_fn=print, handle_sigint=True, eval_raw=True, distributed=None, seed=None,
                 check_every=None):
        if epochs < 0:
            raise ValueError(f"Trainer: epochs must be >= 0, got {epochs}")
        if len(train_loader) == 0:
            raise ValueError("Trainer: the training loader yields no batch")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"Trainer: device must be 'cpu' or 'cuda', got {device!r}")
        self.model, self.optimizer, self.schedule, self.ema = model, optimizer, schedule, ema
        self.train_loader, self.test_loader = train_loader, test_loader
        self.epochs, self.label_smoothing, self.clip_norm = int(epochs), float(label_smoothing), clip_norm
        self.run_dir, self.name, self.device = run_dir, name, device
        self.checkpoint_every, self.log_every, self.max_steps = int(checkpoint_every), int(log_every), max_steps
        self.progress, self.config, self.print_fn = progress, dict(config or {}), print_fn
        self.handle_sigint, self.eval_raw = handle_sigint, bool(eval_raw)
        self.callbacks = Callbacks(callbacks)
        self.distributed = distributed
        self.ranks = rank_agreement(distributed)     # where the ranks act together (alone: by itself)
        if check_every is None:
            check_every = (self.log_every or 20) if device == "cuda" and distributed is None else 1
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"Trainer: check_every must be a positive integer, got {check_every!r}")
        if distributed is not None and check_every != 1:
            raise ValueError(f"Trainer: check_every must be 1 in data-parallel training (the ranks agree on every "
                             f"step's loss and accuracy), got {check_every}")
        self.check_every = check_every
        self._unread = DeferredReads(check_every)     # steps taken whose numbers are not read yet: _read_steps
        if seed is not None:
            warnings.warn("Trainer(seed=...) is no longer used: each nn.Dropout carries its own stream, seeded by "
                          "nn.init.manual_seed", DeprecationWarning, stacklevel=2)

        # where the run is (see run_state.py)
        self.epoch = 0          # epochs finished
        self.batch = 0          # batches of the current epoch finished
        self.step = 0           # optimizer steps finished
        self.best_test_acc = -1.0
        # clocks (seconds; earlier sessions of a resumed run included)
        self.elapsed_before = 0.0     # wall time of earlier sessions
        self.train_time = 0.0         # time spent in training steps (no evaluation, no checkpoints)
        self._session_start = None
        # statistics of the current epoch and of the current train_log window
        self.epoch_tally, self.window_tally = Tally(), Tally()

        self.last_checkpoint = None
        self.last_checkpoint_step = None
        self._best_is_ours = False     # run_dir/best.npz was written by this run (or the run it resumed)
        self.history = []       # epoch records of this session (metrics.jsonl has all of them)
        self.metrics = self.train_log = None
        self._stop_requested = False
        self._ctrl_c = CtrlC(enabled=False)
        self._weights_unsafe = False   # a KeyboardInterrupt may have hit an update: nothing may be saved
        if run_dir is not None:
            os.makedirs(run_dir, exist_ok=True)

    @property
    def steps_per_epoch(self):
        return len(self.train_loader)

    def elapsed(self):
        """Wall-clock seconds of the run so far (all sessions)."""
        now = 0.0 if self._session_start is None else time.perf_counter() - self._session_start
        return self.elapsed_before + now

    # ---------------------------------------------------------------------------------- state and files ---
    def run_state(self):
        """What a checkpoint holds, as a ``run_state.RunState``: the run's name, settings and length, its
        ``Progress`` (position, clocks, best accuracy) and the objects whose state is saved. Steps not read yet
        (``check_every`` > 1) are not in its statistics: ``state_dict()`` reads them first."""
        progress = Progress(self.epoch, self.batch, self.step, self.elapsed(), self.train_time, self.best_test_acc)
        return RunState(self.name, self.config, self.epochs, progress, self.model, self.optimizer, self.ema,
                        self.schedule, self.train_loader, self.epoch_tally, self.window_tally)

    def _take_progress(self, progress):
        """Continue from ``progress`` (a ``Progress``, e.g. a checkpoint's)."""
        self.epoch, self.batch, self.step = progress.epoch, progress.batch, progress.step
        self.elapsed_before, self.train_time = progress.elapsed_s, progress.train_time_s
        self.best_test_acc = progress.best_test_acc

    def state_dict(self):
        """The whole training state as a nested dict (what ``last.npz`` holds; see ``run_state.py``)."""
        self._read_steps()                     # every step taken, also those not read yet (check_every > 1)
        return training_state(self.run_state())

    def load_state_dict(self, state, source="the checkpoint"):
        """Restore ``state_dict()`` output, all or nothing (raises ``CheckpointError``, a ValueError)."""
        self._take_progress(restore_training_state(self.run_state(), state, source))

    def save(self, path=None):
        """Write the training state to ``path`` (default ``run_dir/last.npz``) atomically. Returns the path.

        Raises ``NonFiniteLossError`` (and writes nothing) when a weight, an optimizer state or an average holds
        NaN or inf: a checkpoint is only ever written when it is good.
        """
        self._read_steps()                     # the statistics in the checkpoint must include every step taken
        into_run_dir = path is None
        if into_run_dir:
            if self.run_dir is None:
                # alone: nothing to write. A rank without a run folder: rank 0 refuses a non-finite state, so
                # this rank stops here too, together
                self.ranks.refuse_together(lambda: self._refuse_non_finite(f"{LAST} was not written"))
                return None
            path = os.path.join(self.run_dir, LAST)
        self._refuse_non_finite(f"{os.path.basename(path)} was not written")
        save_checkpoint(path, self.state_dict())
        self.last_checkpoint, self.last_checkpoint_step = path, self.step
        if into_run_dir:
            # the first checkpoint of a new run over an old one: its logs replace the old run's only now (last.npz
            # first, then the logs, then the callbacks' files such as the example's run.json: a kill in the few
            # milliseconds between them leaves the new checkpoint beside the old settings, never mixed logs)
            for log in (self.metrics, self.train_log):
                if log is not None:
                    log.commit()
            self.callbacks.call("on_checkpoint", self, path)
        if into_run_dir and not self._best_is_ours:
            best = os.path.join(self.run_dir, BEST)
            if os.path.exists(best):
                os.remove(best)        # an earlier run's: this run's first checkpoint now stands in the folder
            self._best_is_ours = True
        return path

    def resume(self, path=None):
        """Load ``path`` (default ``run_dir/last.npz``) and drop log lines written after it. Returns the path.

        Raises ``CheckpointError`` (a ValueError) naming the file when it is missing, unreadable or does not fit
        this trainer; the trainer is then unchanged. With ``distributed``, rank 0 reads the file (the other ranks
        need not see it: they have no ``run_dir``) and every rank gets its contents, or the same error.
        """
        if path is None and self.run_dir is not None:
            path = os.path.join(self.run_dir, LAST)
        state = self.ranks.on_main(lambda: load_checkpoint(path))
        self.load_state_dict(state, source=path or "rank 0's checkpoint")
        self.last_checkpoint, self.last_checkpoint_step = path, self.step
        self._best_is_ours = True
        self._open_logs(fresh=False)
        if self.metrics is not None:
            self.metrics.truncate_after(self.epoch, key="epoch")
            self.train_log.truncate_after(self.step, key="step")
        return path

    def _open_logs(self, fresh):
        if self.run_dir is None:
            return
        tidy(self.run_dir)
        # a new run in a folder that holds an earlier run keeps its lines in memory until its first checkpoint:
        # until then the earlier run stays resumable exactly as it was (MetricsLog's keep_until_commit)
        keep = fresh and bool(existing_run_files(self.run_dir))
        self.metrics = MetricsLog(os.path.join(self.run_dir, METRICS), fresh=fresh, fields=METRICS_FIELDS,
                                  keep_until_commit=keep)
        self.train_log = MetricsLog(os.path.join(self.run_dir, TRAIN_LOG), fresh=fresh, fields=TRAIN_LOG_FIELDS,
                                    keep_until_commit=keep)

    def _save_best(self):
        """Write the evaluated weights (EMA averages when an EMA is used) to ``best.npz``."""
        path = os.path.join(self.run_dir, BEST)
        self._best_is_ours = True
        if self.ema is not None:
            with self.ema.average_parameters():
                return save_weights(path, self.model.state_dict())
        return save_weights(path, self.model.state_dict())

    def _state_arrays(self):
        """``(name, array)`` of every array a checkpoint holds that must be finite, as they are now (no copies):
        the model's parameters and buffers, the optimizer's state and the EMA's averages."""
        arrays = [(f"model.{k}", p.data) for k, p in self.model.named_parameters()]
        arrays += [(f"model.{k}", b) for k, b in self.model.named_buffers()]
        arrays += [(f"optimizer.{k}.{n}", a) for k, st in self.optimizer.state.items() for n, a in st.items()]
        if self.ema is not None:
            arrays += [(f"ema.{k}", a) for k, a in self.ema.shadow.items()]
        return arrays

    def _refuse_non_finite(self, consequence):
        """Raise NonFiniteLossError when the state holds NaN/inf (``consequence``: what was not written)."""
        bad = non_finite_arrays(self._state_arrays())
        if bad:
            listed = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise self._non_finite("weights or optimizer state", listed, f"after step {self.step}; {consequence}",
                                   self.step)

    def _non_finite(self, what, value, where, step):
        """The NonFiniteLossError for ``what`` = ``value`` at ``where``, naming the last good checkpoint."""
        last = self.last_checkpoint or "none written yet"
        if self.last_checkpoint is not None:
            last += f" (step {self.last_checkpoint_step}, left untouched)"
        message = (f"{self.name}: non-finite {what} ({value}) {where}. Last good checkpoint: {last}. "
                   "Try a lower --lr or gradient clipping.")
        return NonFiniteLossError(message, what, value, step, self.epoch + 1, self.batch + 1, self.last_checkpoint)

    # ------------------------------------------------------------------------------------ one step ------
    def _to_device(self, x, y):
        """The images to the device; the labels stay on the host, where the loss checks their range for free."""
        if self.device == "cuda":
            return Tensor(to_device(x, "cuda")), y
        return Tensor(x), y

    def _loop_step(self, x, y, **options):
        """``loop.train_step`` on this batch with the run's recipe, at the schedule's learning rate for this step;
        ``options``: ``average_gradients``, ``sync``. The position is not moved on."""
        xt, yt = self._to_device(x, y)
        lr = None if self.schedule is None else self.schedule(self.step)
        return loop.train_step(self.model, self.optimizer, xt, yt, lr=lr, label_smoothing=self.label_smoothing,
                               clip_norm=self.clip_norm, ema=self.ema, **options)

    def train_step(self, x, y):
        """One optimizer step on the batch ``x`` (N, C, H, W) float32, ``y`` (N,) int: ``loop.train_step`` at the
        schedule's learning rate, then the run's position moves on by one batch.

        Returns ``(loss, correct, grad_norm)``. Raises ``NonFiniteLossError`` with the model as it was.
        """
        snapshot = BufferSnapshot(self.model)      # BN statistics and dropout streams, as after the last step
        try:
            r = self._loop_step(x, y, average_gradients=self.ranks.average_gradients)
        except NonFiniteLossError as e:
            snapshot.restore()
            raise self._non_finite(e.what, e.value, f"at step {self.step + 1} (epoch {self.epoch + 1}, batch "
                                   f"{self.batch + 1}/{self.steps_per_epoch}); stopped before the optimizer step",
                                   self.step + 1) from None
        except KeyboardInterrupt:
            snapshot.restore()
            if not self._ctrl_c.deferring:     # then it may have come from a Ctrl-C in the middle of the update
                self._weights_unsafe = True
            raise
        # the global batch's loss and accuracy, the same on every rank (alone: this batch's)
        loss, correct = self.ranks.batch_totals(r.loss, r.correct, len(y))
        self.step += 1
        self.batch += 1
        return loss, correct, r.grad_norm

    def _issue_step(self, x, y):
        """``train_step`` without reading anything back (``check_every`` > 1): ``loop.train_step(sync=False)``.
        Returns ``(loss, correct, grad_norm)`` as 0-d arrays on the device, read later by ``_read_steps``. No
        buffer snapshot is taken: a NaN found steps later cannot be undone by one anyway."""
        try:
            r = self._loop_step(x, y, sync=False)
        except KeyboardInterrupt:
            self._weights_unsafe = True        # the step may have changed the BN statistics: nothing is saved
            raise
        self.step += 1
        self.batch += 1
        return r.loss, r.correct, r.grad_norm

    def _read_steps(self):
        """Read the numbers of the steps taken since the last read (one wait for the GPU), check them for NaN/inf
        in order, add them to the statistics and call ``on_step_end`` for each."""
        readings = self._unread.read()
        for r in readings:
            bad = r.first_non_finite()
            if bad is not None:
                p = r.pending
                raise self._non_finite(
                    *bad, f"at step {p.step} (epoch {p.epoch + 1}, batch {p.batch}); read at step {self.step} "
                    f"(check_every={self.check_every}), so the weights in memory have taken the steps since", p.step)
            self._account(r.pending.batch_size, r.loss, r.correct, r.grad_norm, r.seconds)
        # every step is in the statistics before any callback runs: one that stops the run (KeyboardInterrupt)
        # must not leave the steps after its own out of the checkpoint that is then saved
        for r in readings:
            self.callbacks.call("on_step_end", self, r.info())

    # ---------------------------------------------------------------------------------- evaluation ------
    def evaluate(self, loader=None, use_ema=True):
        """Mean cross-entropy and top-1 accuracy over ``loader`` (default: the test loader), in eval mode.

        With an EMA and ``use_ema``, the averaged parameters are swapped in for the evaluation and the raw ones
        put back afterwards, bit for bit. Returns ``(loss, accuracy)``.
        """
        return self._evaluate(loader, use_ema, check_stop=False)

    def _evaluate(self, loader, use_ema, check_stop):
        loader = self.test_loader if loader is None else loader
        if loader is None:
            raise ValueError("Trainer.evaluate: no loader given and no test loader set")

        def batches():
            for index in range(len(loader)):
                if check_stop and self._stop_requested:
                    raise _StopRequested()
                yield self._to_device(*loader.batch(0, index))

        if self.ema is not None and use_ema:
            with self.ema.average_parameters():
                return loop.evaluate(self.model, batches())
        return loop.evaluate(self.model, batches())

    # ---------------------------------------------------------------------------------------- fit -------
    def request_stop(self):
        """Ask the loop to stop after the current step and save (what Ctrl-C does)."""
        self._stop_requested = True

    def _on_ctrl_c(self):
        self.request_stop()
        self._say("\nCtrl-C: stopping after the current step and saving a checkpoint "
                  "(press Ctrl-C again to abort)")

    def _say(self, text, bar=None):
        if self.print_fn is None:
            return
        if bar is not None and self.print_fn is print:
            bar.write(text)
        else:
            self.print_fn(text)

    def fit(self):
        """Train until ``epochs`` are done (or a stop). Returns a ``FitResult``.

        Call ``resume()`` first to continue a run; otherwise the run folder's logs start afresh.
        Raises ``NonFiniteLossError`` when the loss, the gradient norm or the test loss becomes NaN/inf, or the
        state to save holds NaN/inf (nothing is saved then).
        """
        if self.metrics is None and self.run_dir is not None:
            self._open_logs(fresh=self.step == 0 and self.epoch == 0 and self.batch == 0)
        self._stop_requested = self._weights_unsafe = False
        self._session_start = time.perf_counter()
        status = "completed"
        self._ctrl_c = CtrlC(self.handle_sigint, on_first_press=self._on_ctrl_c)
        try:
            with self._ctrl_c:
                while self.epoch < self.epochs and status == "completed":
                    status = self._run_epoch()
        except (KeyboardInterrupt, _StopRequested):
            status = "interrupted"
        finally:
            self._ctrl_c = CtrlC(enabled=False)
        if status == "interrupted" and self._weights_unsafe:
            message = (f"{self.name}: interrupted, possibly in the middle of a parameter update; nothing was "
                       f"saved. Last checkpoint: {self.last_checkpoint} (step {self.last_checkpoint_step})")
        elif status == "interrupted":
            path = self.save()
            message = (f"{self.name}: interrupted at step {self.step} (epoch {self.epoch + 1}, batch "
                       f"{self.batch}/{self.steps_per_epoch}); "
                       + (f"checkpoint saved to {path}" if path else "no run folder, nothing saved"))
        elif status == "stopped":
            path = self.save()
            message = f"{self.name}: stopped after {self.step} steps (max_steps); checkpoint: {path}"
        else:
            message = f"{self.name}: {self.epoch} epochs done, {self.step} steps"
        history = self.metrics.read() if self.metrics is not None else list(self.history)
        return FitResult(status, self.epoch, self.step, self.last_checkpoint, history, message)

    def _run_epoch(self):
        n = self.steps_per_epoch
        bar = ProgressBar(n, desc=f"{self.name} {self.epoch + 1}/{self.epochs}", initial=self.batch,
                          enabled=self.progress)
        try:
            while self.batch < n:
                if self._should_stop():
                    return "interrupted"
                if self.max_steps is not None and self.step >= self.max_steps:
                    return "stopped"
                with self._ctrl_c.deferred():          # a second Ctrl-C waits until the step is accounted for
                    t0 = time.perf_counter()
                    x, y = self.train_loader.batch(self.epoch, self.batch)
                    loss, correct, norm = (self._issue_step(x, y) if self.check_every > 1 else
                                           self.train_step(x, y))
                    taken = PendingStep(step=self.step, epoch=self.epoch, batch=self.batch,
                                        batch_size=len(y) * self.ranks.world_size, lr=self.optimizer.lr,
                                        seconds=time.perf_counter() - t0, loss=loss, correct=correct,
                                        grad_norm=norm)
                    if self._unread.add(taken):         # check_every steps wait: read them (one GPU wait)
                        self._read_steps()
                bar.update(1, loss=self.epoch_tally.loss.mean, acc=self.epoch_tally.accuracy,
                           images_per_s=self.epoch_tally.images_per_s, lr=self.optimizer.lr)
                if self.log_every and self.step % self.log_every == 0:
                    self._write_window(bar)
                if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.batch < n:
                    self.save()
            if self._should_stop():
                return "interrupted"
            record = self._end_epoch(bar)
        finally:
            bar.close()
        self.callbacks.call("on_epoch_end", self, record)
        return "completed"

    def _should_stop(self):
        """Stop requested (Ctrl-C)? With several ranks the answer is agreed on, at the same point on every rank:
        True when any rank was asked, so that all stop after the same step."""
        return self.ranks.any(self._stop_requested)

    def _account(self, batch_size, loss, correct, norm, seconds):
        self.train_time += seconds
        self.epoch_tally.add(batch_size, loss, correct, norm, seconds)
        self.window_tally.add(batch_size, loss, correct, norm, seconds)

    def _write_window(self, bar=None):
        """The log line of the steps since the last one: appended to ``train_log.jsonl``, and printed when no
        progress bar shows the numbers (``--no-progress``, or not a terminal)."""
        self._read_steps()
        w = self.window_tally
        if w.images == 0:
            return
        record = {"model": self.name, "step": self.step, "epoch": self.epoch + self.batch / self.steps_per_epoch,
                  "train_loss": w.loss.mean, "train_acc": w.accuracy, "lr": self.optimizer.lr,
                  "elapsed_s": self.elapsed(), "train_time_s": self.train_time, "images_per_s": w.images_per_s}
        if self.train_log is not None:
            self.train_log.append(record)
        if bar is None or not bar.shown:
            self._say(self._log_line(record))
        w.reset()

    def _log_line(self, record):
        """``inception_resnet_v2 epoch 1/30  step 20 (20/781)  loss 2.2781  acc 15.6%  lr 0.045  412 img/s``: the
        loss, accuracy and images/s over the steps since the last line (the numbers of ``train_log.jsonl``);
        100 columns at most (without the model's name when it does not fit)."""
        numbers = (f"step {self.step} ({self.batch}/{self.steps_per_epoch})  loss {record['train_loss']:.4f}  "
                   f"acc {100 * record['train_acc']:.1f}%  lr {record['lr']:.3g}  "
                   f"{record['images_per_s']:.0f} img/s")
        line = f"{self.name} epoch {self.epoch + 1}/{self.epochs}  {numbers}"
        return line if len(line) <= 100 else f"epoch {self.epoch + 1}/{self.epochs}  {numbers}"

    def _test_results(self):
        """``(test loss, test accuracy, raw loss, raw accuracy, test images)`` of the model now; the losses and
        accuracies are None without a test loader (the raw ones also without an EMA or ``eval_raw``)."""
        if self.test_loader is None:
            return None, None, None, None, 0
        test_loss, test_acc = self._evaluate(None, use_ema=True, check_stop=True)
        raw_loss = raw_acc = None
        if self.ema is not None and self.eval_raw:
            raw_loss, raw_acc = self._evaluate(None, use_ema=False, check_stop=True)
        return test_loss, test_acc, raw_loss, raw_acc, len(self.test_loader.labels)

    def _end_epoch(self, bar):
        self._read_steps()
        t0 = time.perf_counter()
        # with several ranks, rank 0 alone has the test set: it evaluates, every rank gets the numbers (or its stop)
        test_loss, test_acc, raw_loss, raw_acc, test_images = self.ranks.on_main(self._test_results)
        for what, value in (("test loss", test_loss), ("test loss of the raw weights", raw_loss)):
            if value is not None and not math.isfinite(value):
                raise self._non_finite(what, value, f"after epoch {self.epoch + 1} (step {self.step}); "
                                       "nothing of this epoch was saved", self.step)
        self._refuse_non_finite("nothing of this epoch was saved")
        eval_time = time.perf_counter() - t0
        e = self.epoch_tally
        record = {
            "model": self.name, "epoch": self.epoch + 1, "step": self.step,
            "train_loss": e.loss.mean, "train_acc": e.accuracy, "test_loss": test_loss, "test_acc": test_acc,
            "lr": self.optimizer.lr, "elapsed_s": self.elapsed(), "images_per_s": e.images_per_s,
            "train_time_s": self.train_time, "epoch_train_s": e.seconds, "eval_s": eval_time,
            "test_images": test_images,
            "ema": self.ema is not None, "grad_norm": e.grad_norm.mean,
        }
        if raw_acc is not None:
            record.update(test_loss_raw=raw_loss, test_acc_raw=raw_acc)
        improved = test_acc is not None and test_acc > self.best_test_acc
        # before this run's first checkpoint the folder's best.npz is an earlier run's: it is replaced after it
        best_now = self.run_dir is not None and improved and not (self.metrics is not None and self.metrics.pending)
        if best_now:
            self._save_best()
        self.history.append(record)
        if self.metrics is not None:
            self.metrics.append(record)
        if improved:
            self.best_test_acc = test_acc
        self.epoch += 1
        self.batch = 0
        self.epoch_tally.reset()
        if self.run_dir is not None:
            self.save()
            if improved and not best_now:
                self._save_best()
        test_txt = "" if test_acc is None else f"  test loss {test_loss:.4f} acc {100 * test_acc:5.1f}%"
        if raw_acc is not None:
            test_txt += f" (raw weights {100 * raw_acc:.1f}%)"
        head = f"{self.name} epoch {record['epoch']}/{self.epochs}"
        train_txt = (f"  step {self.step}  train loss {record['train_loss']:.4f} acc {100 * record['train_acc']:5.1f}%"
                     f"  lr {record['lr']:.4g}  {record['images_per_s']:.1f} img/s  {record['elapsed_s']:.0f} s")
        line = head + train_txt.replace("  lr ", test_txt + "  lr ", 1)
        if len(line) <= 100:
            self._say(line, bar)
        else:                       # two lines rather than one too wide for a terminal or a projector
            self._say(head + test_txt, bar)
            self._say(" " * 4 + train_txt.lstrip(), bar)
        return record

