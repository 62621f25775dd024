"""``loop.train_step``'s options for the benchmarks (``metrics``, ``free_gradients``, ``on_phase``), and the
Trainer's parts: deferred reads, rank agreement and the run state it hands to ``run_state.py``."""
import math

import numpy as np
import pytest

from autograd import Tensor
from minception import nn
from minception.train import Recipe, loop
from minception.train.deferred_reads import DeferredReads, PendingStep
from minception.train.rank_agreement import DataParallelRanks, SingleProcess, rank_agreement
from minception.train.run_state import Progress, RunState, restore_training_state, training_state

from test_trainer import make_trainer


def _model_and_batch(seed=0):
    nn.init.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    rng = np.random.default_rng(seed)
    return model, Tensor(rng.standard_normal((6, 3, 2, 2)).astype(np.float32)), rng.integers(0, 4, 6)


def _weights(model):
    return {k: p.data.copy() for k, p in model.named_parameters()}


# ---------------------------------------------------------------------------------- train_step options ---
def test_a_bare_step_changes_the_weights_exactly_as_the_full_step():
    recipe = Recipe.scaled()
    results, weights = [], []
    for metrics, free in ((True, True), (False, False)):
        model, x, y = _model_and_batch()
        opt = recipe.optimizer(model)
        for _ in range(3):
            r = loop.train_step(model, opt, x, y, label_smoothing=recipe.label_smoothing, clip_norm=recipe.clip_norm,
                                metrics=metrics, free_gradients=free)
        results.append(r)
        weights.append(_weights(model))
        grads = [p.grad for _, p in model.named_parameters()]
        assert all(g is None for g in grads) if free else all(g is not None for g in grads)
    full, bare = results
    assert full.loss == bare.loss and isinstance(full.correct, int)
    assert bare.correct is None and bare.grad_norm == full.grad_norm        # clipping needs the norm: kept
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k])


def test_without_metrics_and_clipping_no_gradient_norm_is_computed(monkeypatch):
    model, x, y = _model_and_batch()
    monkeypatch.setattr(loop.optim, "grad_norm", lambda *a, **k: pytest.fail("grad_norm was computed"))
    r = loop.train_step(model, Recipe.bare().optimizer(model), x, y, metrics=False)
    assert r.grad_norm is None and r.correct is None and math.isfinite(r.loss)


def test_on_phase_is_called_as_each_phase_ends():
    model, x, y = _model_and_batch()
    seen = []
    opt = Recipe.bare().optimizer(model)
    loop.train_step(model, opt, x, y, on_phase=seen.append)
    assert seen == ["forward", "backward", "update"]
    seen.clear()
    loop.train_step(model, opt, x, y, on_phase=seen.append, average_gradients=lambda: seen.append("averaging"))
    assert seen == ["forward", "backward", "averaging", "average", "update"]


# ---------------------------------------------------------------------------------------- deferred reads ---
def _pending(step, loss, norm=1.0, seconds=0.5):
    return PendingStep(step=step, epoch=0, batch=step, batch_size=8, lr=0.1, seconds=seconds, loss=loss,
                       correct=3, grad_norm=norm)


def test_deferred_reads_say_when_to_read_and_read_in_order():
    reads = DeferredReads(every=2)
    assert reads.read() == [] and len(reads) == 0
    assert not reads.add(_pending(1, 0.5))
    assert reads.add(_pending(2, np.float64(0.25)))           # the second of every=2: time to read
    readings = reads.read()
    assert len(reads) == 0 and [r.pending.step for r in readings] == [1, 2]
    assert [r.loss for r in readings] == [0.5, 0.25] and all(type(r.loss) is float for r in readings)
    assert all(r.seconds >= 0.5 for r in readings)             # its own time, plus its share of the wait
    info = readings[0].info()
    assert info == {"step": 1, "epoch": 0, "batch": 1, "batch_size": 8, "lr": 0.1, "loss": 0.5, "correct": 3,
                    "grad_norm": 1.0, "seconds": readings[0].seconds}


def test_a_reading_names_its_first_non_finite_number():
    reads = DeferredReads(every=1)
    reads.add(_pending(1, 0.5, norm=math.inf))
    reads.add(_pending(2, math.nan, norm=math.inf))
    first, second = reads.read()
    assert first.first_non_finite() == ("gradient norm", math.inf)
    assert second.first_non_finite()[0] == "loss"


# ---------------------------------------------------------------------------------------- rank agreement ---
def test_a_single_process_agrees_with_itself():
    alone = rank_agreement(None)
    assert isinstance(alone, SingleProcess) and alone.world_size == 1 and alone.average_gradients is None
    assert alone.batch_totals(0.5, 3, 8) == (0.5, 3)
    assert alone.any(True) is True and alone.any(False) is False
    assert alone.on_main(lambda: 42) == 42
    alone.refuse_together(lambda: pytest.fail("a process alone without a run folder refuses nothing"))


def test_data_parallel_ranks_ask_the_data_parallel_object():
    class FakeDataParallel:
        world_size = 4

        def average_gradients(self):
            return "averaged"

        def batch_totals(self, loss, correct, count):
            return loss / 2, correct * 4

        def any(self, flag):
            return True

        def on_main(self, fn):
            return ("from rank 0", fn())

    ranks = rank_agreement(FakeDataParallel())
    assert isinstance(ranks, DataParallelRanks) and ranks.world_size == 4
    assert ranks.average_gradients() == "averaged"
    assert ranks.batch_totals(1.0, 2, 8) == (0.5, 8) and ranks.any(False) is True
    assert ranks.on_main(lambda: 1) == ("from rank 0", 1)
    with pytest.raises(ZeroDivisionError):
        ranks.refuse_together(lambda: 1 / 0)


# ------------------------------------------------------------------------------------------- run state ---
def test_the_run_state_is_what_the_checkpoint_holds_and_restores_through_progress():
    t = make_trainer(None, epochs=1, max_steps=3)
    t.fit()
    run = t.run_state()
    assert isinstance(run, RunState) and run.model is t.model and run.loader is t.train_loader
    assert (run.progress.step, run.progress.batch, run.progress.epoch) == (3, 3, 0)
    state = t.state_dict()
    assert training_state(run).keys() == state.keys() and training_state(run)["position"] == state["position"]
    fresh = make_trainer(None, epochs=1)
    progress = restore_training_state(fresh.run_state(), state)
    assert isinstance(progress, Progress) and (progress.step, progress.batch, progress.epoch) == (3, 3, 0)
    assert fresh.step == 0                       # the objects are loaded; the numbers are the caller's to take
    fresh.load_state_dict(state)
    assert (fresh.step, fresh.batch, fresh.train_time) == (3, 3, t.train_time)
