"""The training loop: steps, evaluation, metrics, checkpoints, exact resume, and clean stops.

One optimizer step::

    logits = model(x)                                           # training mode: BN uses batch statistics
    loss = softmax_cross_entropy(logits, y, label_smoothing)    # stop here if the loss is NaN or inf
    loss.backward()
    norm = clip_grad_norm(params, clip_norm)                    # stop here if the gradient norm is NaN or inf
    opt.lr = schedule(step); opt.step(); ema.update()

After every epoch the model is evaluated on the test loader (with the EMA averages swapped in when an EMA is
given), one line is appended to ``metrics.jsonl`` and the whole training state is written to ``last.npz``
(atomically; see ``checkpoint.py``). ``best.npz`` holds the evaluated weights of the best epoch so far.

Where the run is, is three integers: ``epoch`` (epochs finished), ``batch`` (batches of the current epoch
finished) and ``step`` (optimizer steps finished). The batches come from ``loader.batch(epoch, batch)``, a pure
function of the loader's seed and these numbers, and every other source of randomness (dropout masks) has its
generator's state in the checkpoint, so a resumed run takes exactly the steps the uninterrupted run would have
taken: on the CPU the parameters agree bit for bit.

Stops:
- Ctrl-C (SIGINT) sets a flag; the loop finishes the step in flight, saves ``last.npz`` at that step and returns
  ``status="interrupted"``. A second Ctrl-C raises KeyboardInterrupt at once; a KeyboardInterrupt raised by a
  callback is handled the same way. The state saved is always that of the last completed step.
- A non-finite loss (or gradient norm) raises ``NonFiniteLossError`` naming the step, before the optimizer step,
  and writes nothing: the last good checkpoint stays as it was.
- ``max_steps`` stops after that many optimizer steps in total, saving ``last.npz`` (``status="stopped"``).
"""
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

import ops
from autograd import Tensor, no_grad
from autograd.backend import get_array_module, to_device, to_numpy
from minception import optim

from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .metrics import MetricsLog, RunningMean
from .progress import ProgressBar

LAST = "last.npz"
BEST = "best.npz"
METRICS = "metrics.jsonl"
TRAIN_LOG = "train_log.jsonl"


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient norm became NaN or infinite; raised before the optimizer step.

    Attributes: ``step`` (1-based number of the step that failed), ``epoch`` (1-based), ``batch`` (1-based),
    ``value`` (the offending number), ``checkpoint`` (path of the last good checkpoint, or None).
    """

    def __init__(self, message, step, epoch, batch, value, checkpoint):
        super().__init__(message)
        self.step, self.epoch, self.batch, self.value, self.checkpoint = step, epoch, batch, value, checkpoint


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
        run_dir: folder for ``metrics.jsonl``, ``train_log.jsonl``, ``last.npz``, ``best.npz``; None writes nothing.
        name: the model's name in the metrics records.
        device: "cpu" or "cuda"; batches are moved there.
        checkpoint_every: also save ``last.npz`` every this many steps (0: only at epoch ends and stops).
        log_every: append a line to ``train_log.jsonl`` every this many steps (0: never).
        max_steps: stop after this many steps in total (None: no limit).
        progress: show tqdm bars (True/False; None: only on a terminal).
        callbacks: objects with optional methods ``on_step_end(trainer, info)`` and ``on_epoch_end(trainer,
            record)``; a plain function is taken as ``on_step_end``. They run after the step's state is final.
        config: a JSON-able dict stored in every checkpoint (the command-line settings, for resuming).
        seed: seeds the generators of dropout layers that have none (so that their masks can be resumed).
        print_fn: where the one-line epoch summaries go (``None`` to stay quiet).
        handle_sigint: catch Ctrl-C to stop cleanly (only possible in the main thread).
        eval_raw: with an EMA, also evaluate the raw weights each epoch (``test_acc_raw``, ``test_loss_raw``).
        distributed: a ``distributed.DataParallel`` when this is one rank of a data-parallel job, else None.
            The trainer then averages the gradients after backward, reports the global batch's loss and
            accuracy, stops (Ctrl-C) only when the ranks agree, and reads ``resume()``'s checkpoint on rank 0
            only. Give ``run_dir``, ``test_loader``, ``progress`` and ``print_fn`` on rank 0 only (None/False
            elsewhere) and a ``train_loader`` sharded with ``shard=distributed.shard``.
    """

    def __init__(self, model, optimizer, train_loader, test_loader=None, *, epochs=1, schedule=None, ema=None,
                 label_smoothing=0.0, clip_norm=None, run_dir=None, name="model", device="cpu",
                 checkpoint_every=0, log_every=20, max_steps=None, progress=None, callbacks=(), config=None,
                 seed=0, print_fn=print, handle_sigint=True, eval_raw=True, distributed=None):
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
        self.callbacks = list(callbacks)
        self.distributed = distributed

        # where the run is
        self.epoch = 0          # epochs finished
        self.batch = 0          # batches of the current epoch finished
        self.step = 0           # optimizer steps finished
        self.best_test_acc = -1.0
        # clocks (seconds; earlier sessions of a resumed run included)
        self.elapsed_before = 0.0     # wall time of earlier sessions
        self.train_time = 0.0         # time spent in training steps (no evaluation, no checkpoints)
        self._session_start = None
        # per-epoch and per-log-window accumulators
        self.epoch_loss, self.epoch_correct, self.epoch_images = RunningMean(), 0, 0
        self.epoch_grad_norm, self.epoch_train_time = RunningMean(), 0.0
        self.window_loss, self.window_correct, self.window_images, self.window_time = RunningMean(), 0, 0, 0.0

        self.last_checkpoint = None
        self.last_checkpoint_step = None
        self._stop_requested = False
        self._phase = "idle"
        self._pending_snapshot = None
        self.history = []       # epoch records of this session (metrics.jsonl has all of them)

        self._rng_modules = self._seed_dropout(seed)
        self.metrics = self.train_log = None
        if run_dir is not None:
            os.makedirs(run_dir, exist_ok=True)

    # ----------------------------------------------------------------------------------------- set-up ---
    def _seed_dropout(self, seed):
        """Give every dropout layer without a generator its own seeded one; return ``[(path, module)]`` of all
        modules that draw from a generator, whose states go into checkpoints."""
        from minception import nn

        out = []
        for i, (path, m) in enumerate(self.model.named_modules()):
            if isinstance(m, nn.Dropout) and m.rng is None:
                m.rng = np.random.default_rng([seed, 104729, i])
            if isinstance(getattr(m, "rng", None), np.random.Generator):
                out.append((path or "<root>", m))
        return out

    def _open_logs(self, fresh):
        if self.run_dir is None:
            return
        self.metrics = MetricsLog(os.path.join(self.run_dir, METRICS), fresh=fresh)
        self.train_log = MetricsLog(os.path.join(self.run_dir, TRAIN_LOG), fresh=fresh)

    @property
    def steps_per_epoch(self):
        return len(self.train_loader)

    def elapsed(self):
        """Wall-clock seconds of the run so far (all sessions)."""
        now = 0.0 if self._session_start is None else time.perf_counter() - self._session_start
        return self.elapsed_before + now

    # ----------------------------------------------------------------------------------------- state ----
    def state_dict(self):
        """The whole training state as a nested dict (what ``last.npz`` holds)."""
        loader_state = self.train_loader.state_dict()
        loader_state.update(epoch=self.epoch, batch=self.batch)
        return {
            "name": self.name,
            "config": self.config,
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.step,
                         "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs},
            "clock": {"elapsed_s": self.elapsed(), "train_time_s": self.train_time},
            "best_test_acc": self.best_test_acc,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "loader": loader_state,
            "rng": {path: m.rng.bit_generator.state for path, m in self._rng_modules},
            "epoch_stats": {"loss": self.epoch_loss.state_dict(), "correct": self.epoch_correct,
                            "images": self.epoch_images, "grad_norm": self.epoch_grad_norm.state_dict(),
                            "train_time": self.epoch_train_time},
            "window": {"loss": self.window_loss.state_dict(), "correct": self.window_correct,
                       "images": self.window_images, "time": self.window_time},
        }

    def load_state_dict(self, d):
        """Restore ``state_dict()`` output (e.g. from ``load_checkpoint``)."""
        pos = d["position"]
        if int(pos["steps_per_epoch"]) != self.steps_per_epoch:
            raise ValueError(f"Trainer.load_state_dict: the checkpoint has {pos['steps_per_epoch']} steps per epoch, "
                             f"this loader has {self.steps_per_epoch} (different data subset or batch size?)")
        self.model.load_state_dict(d["model"])
        self.optimizer.load_state_dict(d["optimizer"])
        if (d["ema"] is None) != (self.ema is None):
            raise ValueError("Trainer.load_state_dict: the checkpoint was written "
                             f"{'without' if d['ema'] is None else 'with'} an EMA, this trainer has "
                             f"{'one' if self.ema is not None else 'none'}")
        if self.ema is not None:
            self.ema.load_state_dict(d["ema"])
        if self.schedule is not None and d["schedule"] is not None:
            self.schedule.load_state_dict(d["schedule"])
        self.train_loader.load_state_dict(d["loader"])
        rng = d["rng"]
        missing = [path for path, _ in self._rng_modules if path not in rng]
        if missing:
            raise ValueError(f"Trainer.load_state_dict: no generator state for {missing} in the checkpoint")
        for path, m in self._rng_modules:
            m.rng.bit_generator.state = rng[path]
        self.epoch, self.batch, self.step = int(pos["epoch"]), int(pos["batch"]), int(pos["step"])
        self.elapsed_before = float(d["clock"]["elapsed_s"])
        self.train_time = float(d["clock"]["train_time_s"])
        self.best_test_acc = float(d["best_test_acc"])
        es = d["epoch_stats"]
        self.epoch_loss.load_state_dict(es["loss"])
        self.epoch_grad_norm.load_state_dict(es["grad_norm"])
        self.epoch_correct, self.epoch_images = int(es["correct"]), int(es["images"])
        self.epoch_train_time = float(es["train_time"])
        w = d["window"]
        self.window_loss.load_state_dict(w["loss"])
        self.window_correct, self.window_images, self.window_time = int(w["correct"]), int(w["images"]), float(w["time"])

    def save(self, path=None):
        """Write the training state to ``path`` (default ``run_dir/last.npz``) atomically. Returns the path."""
        if path is None:
            if self.run_dir is None:
                return None
            path = os.path.join(self.run_dir, LAST)
        save_checkpoint(path, self.state_dict())
        self.last_checkpoint, self.last_checkpoint_step = path, self.step
        return path

    def resume(self, path=None):
        """Load ``path`` (default ``run_dir/last.npz``) and drop log lines written after it. Returns the path."""
        if path is None and self.run_dir is not None:
            path = os.path.join(self.run_dir, LAST)
        if self.distributed is None:
            state = load_checkpoint(path)
        else:          # rank 0 reads the file (the others may not see it), every rank gets the state
            state = self.distributed.load_on_main(lambda: load_checkpoint(path))
        self.load_state_dict(state)
        self.last_checkpoint, self.last_checkpoint_step = path, self.step
        self._open_logs(fresh=False)
        if self.metrics is not None:
            self.metrics.truncate_after(self.epoch, key="epoch")
            self.train_log.truncate_after(self.step, key="step")
        return path

    # ------------------------------------------------------------------------------------------- steps ---
    def _to_device(self, x, y):
        if self.device == "cuda":
            return Tensor(to_device(x, "cuda")), to_device(y, "cuda")
        return Tensor(x), y

    def _snapshot(self):
        """Copies of what a forward pass changes before the step is complete: BN statistics, generator states."""
        return ([(b, b.copy()) for _, b in self.model.named_buffers()],
                [m.rng.bit_generator.state for _, m in self._rng_modules])

    def _restore(self, snap):
        buffers, rngs = snap
        for b, saved in buffers:
            get_array_module(b).copyto(b, saved)
        for (_, m), st in zip(self._rng_modules, rngs):
            m.rng.bit_generator.state = st

    def _non_finite(self, what, value, snap):
        self._restore(snap)
        self._phase = "idle"
        n = self.steps_per_epoch
        where = self.last_checkpoint or "none written yet"
        if self.last_checkpoint is not None:
            where += f" (step {self.last_checkpoint_step}, left untouched)"
        msg = (f"{self.name}: non-finite {what} ({value}) at step {self.step + 1} (epoch {self.epoch + 1}, batch "
               f"{self.batch + 1}/{n}); stopped before the optimizer step. Last good checkpoint: {where}. "
               "Try a lower --lr or gradient clipping.")
        raise NonFiniteLossError(msg, self.step + 1, self.epoch + 1, self.batch + 1, value, self.last_checkpoint)

    def train_step(self, x, y):
        """One optimizer step on the batch ``x`` (N, C, H, W) float32, ``y`` (N,) int.

        Returns ``(loss, correct, grad_norm)``: the batch's mean training loss, the number of correct top-1
        predictions, and the gradient norm before clipping. Raises ``NonFiniteLossError`` (state unchanged).
        """
        snap = self._pending_snapshot = self._snapshot()   # fit() restores it if Ctrl-C lands mid-step
        xt, yt = self._to_device(x, y)
        self._phase = "forward"
        self.model.train()
        logits = self.model(xt)
        loss = ops.softmax_cross_entropy(logits, yt, label_smoothing=self.label_smoothing)
        loss_value = loss.item()
        correct = int(to_numpy((logits.data.argmax(axis=1) == yt).sum()))
        if self.distributed is not None:        # the global batch's numbers, the same on every rank
            loss_value, correct = self.distributed.batch_totals(loss_value, correct, len(y))
        if not math.isfinite(loss_value):
            self._non_finite("loss", loss_value, snap)
        self._phase = "backward"
        self.optimizer.zero_grad()
        loss.backward()
        if self.distributed is not None:
            self.distributed.average_gradients()
        if self.clip_norm is not None:
            norm = optim.clip_grad_norm(self.optimizer.params, self.clip_norm)
        else:
            norm = optim.grad_norm(self.optimizer.params)
        if not math.isfinite(norm):
            self._non_finite("gradient norm", norm, snap)
        self._phase = "update"
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(self.step)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        self.optimizer.zero_grad()
        self.step += 1
        self.batch += 1
        self._phase = "idle"
        return loss_value, correct, norm

    @no_grad()
    def evaluate(self, loader=None, use_ema=True, _check_stop=False):
        """Mean cross-entropy and top-1 accuracy over ``loader`` (default: the test loader), in eval mode.

        With an EMA and ``use_ema``, the averaged parameters are swapped in for the evaluation and the raw ones
        put back afterwards. Returns ``(loss, accuracy)``.
        """
        loader = self.test_loader if loader is None else loader
        if loader is None:
            raise ValueError("Trainer.evaluate: no loader given and no test loader set")
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        swap = self.ema is not None and use_ema
        if swap:
            self.ema.swap_in()
        try:
            for index in range(len(loader)):
                if _check_stop and self._stop_requested:
                    raise _StopRequested()
                x, y = loader.batch(0, index)
                xt, yt = self._to_device(x, y)
                logits = self.model(xt)
                loss_sum += ops.softmax_cross_entropy(logits, yt).item() * len(y)
                correct += int(to_numpy((logits.data.argmax(axis=1) == yt).sum()))
                count += len(y)
        finally:
            if swap:
                self.ema.swap_out()
            self.model.train(was_training)
        return loss_sum / count, correct / count

    # -------------------------------------------------------------------------------------------- fit ----
    def _on_sigint(self, signum, frame):
        self._stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C interrupts at once
        if self.print_fn is not None:
            self.print_fn("\nCtrl-C: stopping after the current step and saving a checkpoint "
                          "(press Ctrl-C again to abort without saving)")

    def request_stop(self):
        """Ask the loop to stop after the current step and save (what Ctrl-C does)."""
        self._stop_requested = True

    def _callbacks(self, event, payload):
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is None and event == "on_step_end" and callable(cb):
                fn = cb
            if fn is not None:
                fn(self, payload)

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
        Raises ``NonFiniteLossError`` when the loss or gradient norm becomes NaN/inf (nothing is saved then).
        """
        if self.metrics is None and self.run_dir is not None:
            self._open_logs(fresh=self.step == 0 and self.epoch == 0 and self.batch == 0)
        self._stop_requested = False
        self._session_start = time.perf_counter()
        old_handler = None
        if self.handle_sigint and threading.current_thread() is threading.main_thread():
            old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        status, message = "completed", ""
        try:
            while self.epoch < self.epochs:
                status = self._run_epoch()
                if status != "completed":
                    break
        except (KeyboardInterrupt, _StopRequested):
            status = "interrupted"
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        if status == "interrupted":
            if self._phase == "update":
                message = (f"{self.name}: interrupted in the middle of a parameter update; the parameters are "
                           f"inconsistent, so nothing was saved. Last checkpoint: {self.last_checkpoint} "
                           f"(step {self.last_checkpoint_step})")
            else:
                if self._phase in ("forward", "backward"):
                    self._restore(self._pending_snapshot)
                self._phase = "idle"
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
                t0 = time.perf_counter()
                x, y = self.train_loader.batch(self.epoch, self.batch)
                loss, correct, norm = self.train_step(x, y)
                dt = time.perf_counter() - t0
                images = len(y) * (1 if self.distributed is None else self.distributed.world_size)
                self._account(images, loss, correct, norm, dt)
                bar.update(1, loss=self.epoch_loss.mean, acc=self.epoch_correct / self.epoch_images,
                           images_per_s=self.epoch_images / max(self.epoch_train_time, 1e-9), lr=self.optimizer.lr)
                if self.log_every and self.step % self.log_every == 0:
                    self._write_window()
                if self.checkpoint_every and self.step % self.checkpoint_every == 0 and self.batch < n:
                    self.save()
                self._callbacks("on_step_end", {"step": self.step, "epoch": self.epoch, "batch": self.batch,
                                                "loss": loss, "correct": correct, "batch_size": images,
                                                "grad_norm": norm, "lr": self.optimizer.lr, "seconds": dt})
            if self._should_stop():
                return "interrupted"
            record = self._end_epoch(bar)
        finally:
            bar.close()
        self._callbacks("on_epoch_end", record)
        return "completed"

    def _should_stop(self):
        """Stop requested (Ctrl-C)? With several ranks, the answer is agreed on: True when any rank was asked, so
        that all stop after the same step."""
        if self.distributed is None:
            return self._stop_requested
        return self.distributed.any(self._stop_requested)

    def _account(self, batch_size, loss, correct, norm, dt):
        self.train_time += dt
        self.epoch_loss.update(loss, batch_size)
        self.epoch_correct += correct
        self.epoch_images += batch_size
        self.epoch_grad_norm.update(norm)
        self.epoch_train_time += dt
        self.window_loss.update(loss, batch_size)
        self.window_correct += correct
        self.window_images += batch_size
        self.window_time += dt

    def _write_window(self):
        if self.window_images == 0:
            return
        if self.train_log is not None:
            self.train_log.append({
                "model": self.name, "step": self.step, "epoch": self.epoch + self.batch / self.steps_per_epoch,
                "train_loss": self.window_loss.mean, "train_acc": self.window_correct / self.window_images,
                "lr": self.optimizer.lr, "elapsed_s": self.elapsed(), "train_time_s": self.train_time,
                "images_per_s": self.window_images / max(self.window_time, 1e-9)})
        self.window_loss.reset()
        self.window_correct = self.window_images = 0
        self.window_time = 0.0

    def _end_epoch(self, bar):
        t0 = time.perf_counter()
        raw_loss = raw_acc = None
        if self.test_loader is not None:
            # with several ranks only rank 0 evaluates: a stop must wait for the next step, where all ranks agree
            check = self.distributed is None
            test_loss, test_acc = self.evaluate(_check_stop=check)
            if self.ema is not None and self.eval_raw:
                raw_loss, raw_acc = self.evaluate(use_ema=False, _check_stop=check)
            test_images = len(self.test_loader.labels)
        else:
            test_loss = test_acc = None
            test_images = 0
        eval_time = time.perf_counter() - t0
        record = {
            "model": self.name, "epoch": self.epoch + 1, "step": self.step,
            "train_loss": self.epoch_loss.mean, "train_acc": self.epoch_correct / max(self.epoch_images, 1),
            "test_loss": test_loss, "test_acc": test_acc, "lr": self.optimizer.lr,
            "elapsed_s": self.elapsed(), "images_per_s": self.epoch_images / max(self.epoch_train_time, 1e-9),
            "train_time_s": self.train_time, "epoch_train_s": self.epoch_train_time, "eval_s": eval_time,
            "test_images": test_images, "ema": self.ema is not None, "grad_norm": self.epoch_grad_norm.mean,
        }
        if raw_acc is not None:
            record.update(test_loss_raw=raw_loss, test_acc_raw=raw_acc)
        self.history.append(record)
        if self.metrics is not None:
            self.metrics.append(record)
        improved = test_acc is not None and test_acc > self.best_test_acc
        if improved:
            self.best_test_acc = test_acc
        self.epoch += 1
        self.batch = 0
        self.epoch_loss.reset()
        self.epoch_grad_norm.reset()
        self.epoch_correct = self.epoch_images = 0
        self.epoch_train_time = 0.0
        if self.run_dir is not None:
            if improved:
                self._save_best()
            self.save()
        test_txt = "" if test_acc is None else f"  test loss {test_loss:.4f} acc {100 * test_acc:5.1f}%"
        if raw_acc is not None:
            test_txt += f" (raw weights {100 * raw_acc:.1f}%)"
        self._say(f"{self.name} epoch {record['epoch']}/{self.epochs}  step {self.step}  train loss "
                  f"{record['train_loss']:.4f} acc {100 * record['train_acc']:5.1f}%{test_txt}  "
                  f"lr {record['lr']:.4g}  {record['images_per_s']:.1f} img/s  {record['elapsed_s']:.0f} s", bar)
        return record

    def _save_best(self):
        """Write the evaluated weights (EMA averages when an EMA is used) to ``best.npz``."""
        path = os.path.join(self.run_dir, BEST)
        if self.ema is not None:
            with self.ema.average_parameters():
                save_weights(path, self.model.state_dict())
        else:
            save_weights(path, self.model.state_dict())
        return path
