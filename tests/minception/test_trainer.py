"""The training loop: metrics, exact resume, NaN stops, Ctrl-C, EMA evaluation.

A small MLP with dropout on 8x8 images keeps these fast; the same loop runs the Inception networks
(tests/examples/test_train_example.py).
"""
import json
import os
import signal

import numpy as np
import pytest

from minception import data, nn, optim
from minception.train import (LAST, METRICS, CheckpointError, MetricsLog, NonFiniteLossError, Trainer,
                              load_checkpoint, read_jsonl, save_checkpoint)
from minception.train import loop as loop_module

REQUIRED = {"model", "epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "elapsed_s",
            "images_per_s"}


def _toy_sets(n_train=96, n_test=40, seed=0):
    """8 classes of 8x8 images: a fixed random 2x2-block colour template per class (smooth, so the 1-pixel
    shifts of the augmentation keep it recognisable), blended with as much random noise."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (8, 3, 2, 2)).repeat(4, axis=2).repeat(4, axis=3)

    def make(n):
        labels = rng.permutation(np.arange(n) % 8)
        images = 0.5 * templates[labels] + 0.5 * rng.integers(0, 256, (n, 3, 8, 8))
        return data.ImageSet(images.astype(np.uint8), labels.astype(np.int64), tuple("abcdefgh"))

    return make(n_train), make(n_test)


def make_trainer(run_dir, epochs=3, lr=0.02, ema=True, max_steps=None, seed=0, batch_size=16, callbacks=(),
                 clip=2.0, decay=0.5, **kw):
    train, test = _toy_sets()
    nn.init.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 8))
    opt = optim.RMSProp(model.named_parameters(), lr=lr, weight_decay=1e-4, weight_decay_filter=optim.weights_only)
    loader = data.DataLoader(train, batch_size, shuffle=True, drop_last=True,
                             transform=data.standard_augmentation(padding=1), seed=seed)
    test_loader = data.DataLoader(test, 16, shuffle=False)
    sched = optim.exponential_decay(lr, len(loader), rate=decay, epochs_per_decay=1)
    avg = optim.EMA(model.named_parameters(), decay=0.9) if ema else None
    return Trainer(model, opt, loader, test_loader, epochs=epochs, schedule=sched, ema=avg, label_smoothing=0.1,
                   clip_norm=clip, run_dir=None if run_dir is None else str(run_dir), name="mlp",
                   max_steps=max_steps, progress=False, print_fn=None, callbacks=callbacks, **kw)


def _params(trainer):
    return {k: p.data.copy() for k, p in trainer.model.named_parameters()}


def _assert_same_training_state(a, b):
    for (k, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=k)
        np.testing.assert_array_equal(a.optimizer.state[k]["ms"], b.optimizer.state[k]["ms"], err_msg=k)
        np.testing.assert_array_equal(a.optimizer.state[k]["mom"], b.optimizer.state[k]["mom"], err_msg=k)
        if a.ema is not None:
            np.testing.assert_array_equal(a.ema.shadow[k], b.ema.shadow[k], err_msg=k)
    assert (a.step, a.epoch, a.batch) == (b.step, b.epoch, b.batch)
    assert a.optimizer.lr == b.optimizer.lr


def _strip_times(records):
    drop = {"elapsed_s", "images_per_s", "train_time_s", "epoch_train_s", "eval_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_fit_writes_metrics_checkpoints_and_learns(tmp_path):
    t = make_trainer(tmp_path, epochs=4)
    result = t.fit()
    assert result.status == "completed" and result.epoch == 4 and result.step == 4 * 6
    recs = read_jsonl(tmp_path / METRICS)
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4]
    assert [r["step"] for r in recs] == [6, 12, 18, 24]
    for r in recs:
        assert REQUIRED <= set(r) and r["model"] == "mlp" and r["ema"] is True
        assert 0 <= r["test_acc"] <= 1 and r["images_per_s"] > 0
    assert recs[-1]["lr"] == pytest.approx(0.02 * 0.5 ** 3)          # decayed once per epoch
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]
    assert recs[-1]["elapsed_s"] >= recs[0]["elapsed_s"]
    assert {"last.npz", "best.npz", "metrics.jsonl", "train_log.jsonl"} <= set(os.listdir(tmp_path))
    steps = read_jsonl(tmp_path / "train_log.jsonl")
    assert steps and all(s["step"] % 20 == 0 for s in steps)
    state = load_checkpoint(tmp_path / LAST)
    assert state["position"] == {"epoch": 4, "batch": 0, "step": 24, "steps_per_epoch": 6, "epochs": 4}
    assert result.history == recs


def test_toy_problem_is_learned_well_above_chance(tmp_path):
    t = make_trainer(None, epochs=8, lr=0.03, decay=0.9)
    t.fit()
    assert t.history[-1]["test_acc"] > 0.5           # chance is 1/8


@pytest.mark.parametrize("stop_at", [4, 6, 9])     # mid-epoch, exactly at an epoch's end, in the second epoch
def test_resume_is_bitwise_exact(tmp_path, stop_at):
    straight = make_trainer(tmp_path / "a", epochs=3)
    straight.fit()

    first = make_trainer(tmp_path / "b", epochs=3, max_steps=stop_at)
    r = first.fit()
    assert r.status == "stopped" and r.step == stop_at
    second = make_trainer(tmp_path / "b", epochs=3, seed=123)       # different init: everything must come from the file
    second.resume()
    assert second.step == stop_at
    assert second.fit().status == "completed"
    _assert_same_training_state(straight, second)
    assert _strip_times(read_jsonl(tmp_path / "a" / METRICS)) == _strip_times(read_jsonl(tmp_path / "b" / METRICS))
    a_log = [s["step"] for s in read_jsonl(tmp_path / "a" / "train_log.jsonl")]
    assert a_log == [s["step"] for s in read_jsonl(tmp_path / "b" / "train_log.jsonl")]


def test_resume_of_a_finished_run_does_nothing_and_epochs_can_be_extended(tmp_path):
    make_trainer(tmp_path, epochs=2).fit()
    again = make_trainer(tmp_path, epochs=2)
    again.resume()
    before = _params(again)
    assert again.fit().status == "completed"
    for k, v in before.items():
        np.testing.assert_array_equal(v, dict(again.model.named_parameters())[k].data)
    longer = make_trainer(tmp_path, epochs=3)
    longer.resume()
    longer.fit()
    assert [r["epoch"] for r in read_jsonl(tmp_path / METRICS)] == [1, 2, 3]


def test_resume_drops_log_lines_written_after_the_checkpoint(tmp_path):
    make_trainer(tmp_path, epochs=2).fit()
    # pretend the run crashed after writing epoch 2's line but before saving its checkpoint: use epoch 1's state
    mid = make_trainer(tmp_path / "mid", epochs=2, max_steps=6)
    mid.fit()
    os.replace(tmp_path / "mid" / LAST, tmp_path / LAST)
    t = make_trainer(tmp_path, epochs=2)
    t.resume()
    assert [r["epoch"] for r in read_jsonl(tmp_path / METRICS)] == [1]
    assert all(s["step"] <= 6 for s in read_jsonl(tmp_path / "train_log.jsonl"))
    t.fit()
    assert [r["epoch"] for r in read_jsonl(tmp_path / METRICS)] == [1, 2]


def test_resume_with_other_data_or_batch_size_is_refused(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    with pytest.raises(ValueError, match="steps per epoch"):
        make_trainer(tmp_path, batch_size=8).resume()


def test_non_finite_loss_stops_before_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    t = make_trainer(tmp_path, epochs=3)
    real = loop_module.ops.softmax_cross_entropy
    calls = {"n": 0}

    def poisoned(logits, labels, label_smoothing=0.0):
        loss = real(logits, labels, label_smoothing)
        if logits.requires_grad:            # training steps only
            calls["n"] += 1
            if calls["n"] == 9:              # the 9th step: epoch 2, batch 3
                return loss * float("nan")
        return loss

    monkeypatch.setattr(loop_module.ops, "softmax_cross_entropy", poisoned)
    snapshot = {}

    class Remember:
        def on_step_end(self, trainer, info):
            if info["step"] == 8:
                snapshot.update(_params(trainer))

    t.callbacks.append(Remember())
    with pytest.raises(NonFiniteLossError) as info:
        t.fit()
    err = info.value
    assert err.step == 9 and err.epoch == 2 and err.batch == 3
    assert "step 9" in str(err) and "epoch 2" in str(err) and "last.npz" in str(err)
    assert err.checkpoint == str(tmp_path / LAST)
    for k, v in snapshot.items():           # no update was applied
        np.testing.assert_array_equal(v, dict(t.model.named_parameters())[k].data)
    state = load_checkpoint(tmp_path / LAST)      # the epoch-1 checkpoint, untouched
    assert state["position"]["step"] == 6
    assert [r["epoch"] for r in read_jsonl(tmp_path / METRICS)] == [1]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_huge_learning_rate_ends_in_a_clear_non_finite_error(tmp_path):
    t = make_trainer(tmp_path, epochs=50, lr=1e30, clip=None, ema=False)
    with pytest.raises(NonFiniteLossError, match=r"non-finite (loss|gradient norm) .* at step \d+"):
        t.fit()


def test_non_finite_gradient_norm_is_caught_too(tmp_path, monkeypatch):
    t = make_trainer(tmp_path, epochs=1)
    monkeypatch.setattr(loop_module.optim, "clip_grad_norm", lambda params, max_norm, sync=True: float("inf"))
    before = _params(t)
    with pytest.raises(NonFiniteLossError, match="gradient norm .*step 1 "):
        t.fit()
    for k, v in before.items():
        np.testing.assert_array_equal(v, dict(t.model.named_parameters())[k].data)
    assert not os.path.exists(tmp_path / LAST)


class RaiseAt:
    def __init__(self, step, exc=KeyboardInterrupt):
        self.step, self.exc = step, exc

    def on_step_end(self, trainer, info):
        if info["step"] == self.step:
            raise self.exc()


def test_keyboard_interrupt_saves_the_last_completed_step_and_resume_is_exact(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.fit()
    t = make_trainer(tmp_path / "b", epochs=2, callbacks=[RaiseAt(5)])
    result = t.fit()
    assert result.status == "interrupted" and result.step == 5
    assert "step 5" in result.message and "last.npz" in result.message
    assert load_checkpoint(tmp_path / "b" / LAST)["position"]["step"] == 5
    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.resume()
    resumed.fit()
    _assert_same_training_state(straight, resumed)


def test_sigint_stops_after_the_current_step(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.fit()

    def press_ctrl_c(trainer, info):
        if info["step"] == 7:
            os.kill(os.getpid(), signal.SIGINT)

    t = make_trainer(tmp_path / "b", epochs=2, callbacks=[press_ctrl_c])
    result = t.fit()
    assert result.status == "interrupted" and result.step == 7
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # handler put back
    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.resume()
    resumed.fit()
    _assert_same_training_state(straight, resumed)


def test_interrupt_in_the_middle_of_a_forward_pass_restores_the_dropout_stream(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.fit()
    t = make_trainer(tmp_path / "b", epochs=2)
    count = {"n": 0}

    def hook(module, inputs, output):
        if module.training:
            count["n"] += 1
            if count["n"] == 4:              # inside step 4's forward, after dropout drew its mask
                raise KeyboardInterrupt

    t.model.register_forward_hook(hook)
    result = t.fit()
    assert result.status == "interrupted" and result.step == 3
    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.resume()
    resumed.fit()
    _assert_same_training_state(straight, resumed)


def test_interrupt_during_evaluation_resumes_with_the_evaluation(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.fit()
    t = make_trainer(tmp_path / "b", epochs=2)
    real_batch = t.test_loader.batch

    def interrupted_batch(epoch, index):
        t.test_loader.batch = real_batch
        raise KeyboardInterrupt

    t.test_loader.batch = interrupted_batch
    result = t.fit()
    assert result.status == "interrupted" and result.step == 6 and result.epoch == 0
    assert not t.ema.swapped_in
    assert read_jsonl(tmp_path / "b" / METRICS) == []
    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.resume()
    assert (resumed.epoch, resumed.batch) == (0, 6)
    resumed.fit()
    _assert_same_training_state(straight, resumed)
    assert _strip_times(read_jsonl(tmp_path / "a" / METRICS)) == _strip_times(read_jsonl(tmp_path / "b" / METRICS))


def test_evaluation_uses_the_ema_weights_and_restores_the_raw_ones(tmp_path):
    t = make_trainer(None, epochs=2)
    t.fit()
    raw = _params(t)
    with_ema = t.evaluate()
    without = t.evaluate(use_ema=False)
    assert with_ema != without
    with t.ema.average_parameters():
        assert t.evaluate(use_ema=False) == with_ema
    for k, v in raw.items():
        np.testing.assert_array_equal(v, dict(t.model.named_parameters())[k].data)
    assert t.model.training


def test_best_weights_file_loads_into_the_model(tmp_path):
    t = make_trainer(tmp_path, epochs=2)
    t.fit()
    best = max(r["test_acc"] for r in read_jsonl(tmp_path / METRICS))
    t.model.load(str(tmp_path / "best.npz"))
    assert t.evaluate(use_ema=False)[1] == pytest.approx(best)


def test_plain_function_callback_and_checkpoint_every(tmp_path):
    seen = []
    t = make_trainer(tmp_path, epochs=1, callbacks=[lambda tr, info: seen.append(info["step"])],
                     checkpoint_every=2)
    saves = []
    real = t.save
    t.save = lambda path=None: (saves.append(t.step), real(path))[1]
    t.fit()
    assert seen == [1, 2, 3, 4, 5, 6]
    assert saves == [2, 4, 6]           # every 2 steps, the end-of-epoch save included once


def test_bad_arguments():
    with pytest.raises(ValueError, match="device"):
        make_trainer(None, device="tpu")
    with pytest.raises(ValueError, match="epochs"):
        make_trainer(None, epochs=-1)


def test_checkpoint_config_is_stored(tmp_path):
    t = make_trainer(tmp_path, epochs=1, config={"lr": 0.02, "blocks": "1,1,1"})
    t.fit()
    assert load_checkpoint(tmp_path / LAST)["config"] == {"lr": 0.02, "blocks": "1,1,1"}
    json.dumps(read_jsonl(tmp_path / METRICS))


def test_comparison_table_plot_and_faster_model(tmp_path):
    from minception.train import compare

    def recs(name, accs, seconds_per_epoch):
        return [{"model": name, "epoch": i + 1, "step": 10 * (i + 1), "train_loss": 2.0 - 0.1 * i, "train_acc": a,
                 "test_loss": 1.0, "test_acc": a, "lr": 0.01, "elapsed_s": 0.0, "images_per_s": 100.0 + i,
                 "train_time_s": seconds_per_epoch * (i + 1)} for i, a in enumerate(accs)]

    hist = {"plain": {"epochs": recs("plain", [0.2, 0.4, 0.6], 10.0), "steps": []},
            "residual": {"epochs": recs("residual", [0.5, 0.6, 0.7], 8.0), "steps": []}}
    table = compare.comparison_table(hist, {"plain": 1000, "residual": 2000})
    lines = table.splitlines()
    assert "to 54.0%" in lines[0]                     # 90% of the lowest final accuracy (60%)
    assert lines[2].split()[:2] == ["plain", "1,000"] and lines[2].endswith("30 / 30")
    assert lines[3].split()[:2] == ["residual", "2,000"] and lines[3].endswith("20 / 16")
    assert compare.faster_model(hist) == ("residual", 16.0)
    png = compare.plot_comparison(hist, str(tmp_path / "c.png"), title="t", chance=0.1)
    assert os.path.getsize(png) > 10_000
    # the runs on disk read back the same way
    for name, h in hist.items():
        log = MetricsLog(tmp_path / name / METRICS, fresh=True)
        for r in h["epochs"]:
            log.append(r)
    assert compare.load_histories(str(tmp_path), ["plain", "residual", "absent"]).keys() == {"plain", "residual"}


# ------------------------------------------------------------- a checkpoint called good is finite (issue 12.6) ---
def _poison_after_step(trainer, step, where="parameter"):
    """Make the optimizer write NaN into the first layer's weight (or its RMSProp state) at ``step``."""
    real = trainer.optimizer.step

    def step_then_poison():
        real()
        if trainer.optimizer.steps == step:
            key, p = trainer.optimizer.params[0]
            target = p.data if where == "parameter" else trainer.optimizer.state[key]["ms"]
            target[...] = np.nan

    trainer.optimizer.step = step_then_poison


def test_non_finite_weights_after_an_epoch_stop_the_run_and_write_nothing(tmp_path):
    t = make_trainer(tmp_path, epochs=3)
    _poison_after_step(t, 6)                                 # the last step of epoch 1
    with pytest.raises(NonFiniteLossError, match="test loss") as info:
        t.fit()
    assert info.value.checkpoint is None and "none written yet" in str(info.value)
    assert not (tmp_path / LAST).exists() and not (tmp_path / "best.npz").exists()
    assert read_jsonl(tmp_path / METRICS) == []


@pytest.mark.parametrize("where, stop", [("parameter", "non-finite loss .* at step 10 "),
                                         ("optimizer state", "non-finite weights or optimizer state .*"
                                                             "optimizer.1.weight.ms.* after step 10")])
def test_a_checkpoint_is_never_written_with_non_finite_values(tmp_path, where, stop):
    t = make_trainer(tmp_path, epochs=3, checkpoint_every=2)
    _poison_after_step(t, 9, where)                          # epoch 2, batch 3: the next save is at step 10
    with pytest.raises(NonFiniteLossError, match=stop) as info:
        t.fit()
    err = info.value
    assert err.checkpoint == str(tmp_path / LAST)
    good = load_checkpoint(tmp_path / LAST)
    assert good["position"]["step"] == 8
    assert all(np.isfinite(a).all() for a in good["model"].values() if a.dtype.kind == "f")
    assert f"step {good['position']['step']}, left untouched" in str(err)


def test_save_refuses_a_non_finite_average(tmp_path):
    t = make_trainer(tmp_path, epochs=1, max_steps=2)
    t.fit()
    before = (tmp_path / LAST).read_bytes()
    next(iter(t.ema.shadow.values()))[...] = np.inf
    with pytest.raises(NonFiniteLossError, match="ema"):
        t.save()
    assert (tmp_path / LAST).read_bytes() == before


def test_a_non_finite_checkpoint_is_not_resumed(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    state = load_checkpoint(tmp_path / LAST)
    next(iter(state["model"].values()))[...] = np.nan
    save_checkpoint(tmp_path / "bad.npz", state)
    t = make_trainer(tmp_path / "other", epochs=2, seed=4)
    before = _params(t)
    with pytest.raises(CheckpointError, match="bad.npz.*NaN"):
        t.resume(tmp_path / "bad.npz")
    for k, v in before.items():
        np.testing.assert_array_equal(v, dict(t.model.named_parameters())[k].data)


# ------------------------------------------------------------------------------ other gaps (issue 12.8) ---
def test_resume_validates_everything_before_applying_anything(tmp_path):
    make_trainer(tmp_path, epochs=1, ema=True).fit()            # a checkpoint with an EMA
    t = make_trainer(tmp_path, epochs=2, ema=False, seed=7, lr=0.5)
    before, lr = _params(t), t.optimizer.lr
    with pytest.raises(ValueError, match="EMA"):
        t.resume()
    for k, v in before.items():
        np.testing.assert_array_equal(v, dict(t.model.named_parameters())[k].data)
    assert t.optimizer.lr == lr and t.optimizer.steps == 0 and (t.step, t.epoch) == (0, 0)


def test_a_part_that_refuses_its_state_rolls_the_others_back(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    state = load_checkpoint(tmp_path / LAST)
    state["loader"]["batch_size"] = 7                           # only the data loader can tell
    save_checkpoint(tmp_path / "odd.npz", state)
    t = make_trainer(tmp_path / "other", epochs=2, seed=7, lr=0.5)
    before, shadow = _params(t), {k: v.copy() for k, v in t.ema.shadow.items()}
    with pytest.raises(CheckpointError, match="odd.npz.*batch_size"):
        t.resume(tmp_path / "odd.npz")
    for k, v in before.items():
        np.testing.assert_array_equal(v, dict(t.model.named_parameters())[k].data)
        np.testing.assert_array_equal(shadow[k], t.ema.shadow[k])
    assert t.optimizer.lr == 0.5 and t.optimizer.state == {} and t.step == 0


def test_resume_of_a_missing_or_foreign_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        make_trainer(tmp_path, epochs=1).resume()
    save_checkpoint(tmp_path / LAST, {"something": "else"})
    with pytest.raises(CheckpointError, match="another version"):
        make_trainer(tmp_path, epochs=1).resume()


def test_temporary_files_left_by_a_killed_write_are_removed(tmp_path):
    stale = ["last.npz.1f2e3d4c.tmp", "best.npz.abcd0123.tmp", "metrics.jsonl.00ff00ff.tmp"]
    kept = ["notes.tmp", "other.npz.1f2e3d4c.tmp", "last.npz"]
    for name in stale + kept[:2]:
        (tmp_path / name).write_bytes(b"half")
    make_trainer(tmp_path, epochs=1).fit()
    names = set(os.listdir(tmp_path))
    assert not names & set(stale) and set(kept) <= names


def test_a_fresh_run_retires_an_earlier_best_at_its_first_checkpoint(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    old_best = (tmp_path / "best.npz").read_bytes()
    t = make_trainer(tmp_path, epochs=1, callbacks=[RaiseAt(2)], seed=5)
    assert t.fit().status == "interrupted"                      # saved last.npz at step 2, before any evaluation
    assert load_checkpoint(tmp_path / LAST)["position"]["step"] == 2
    assert not (tmp_path / "best.npz").exists()
    t = make_trainer(tmp_path, epochs=1, seed=5)
    t.resume()
    t.fit()
    assert (tmp_path / "best.npz").read_bytes() != old_best


def test_the_dropout_stream_travels_in_the_model_state(tmp_path):
    """The checkpoint needs no section of its own for random layers: their streams are model buffers."""
    t = make_trainer(tmp_path, epochs=1, max_steps=4)
    t.fit()
    state = load_checkpoint(tmp_path / LAST)
    assert "rng" not in state
    seed, drawn = state["model"]["3.rng_state"]
    assert drawn == 4                                            # one mask per training step
    fresh = make_trainer(None, epochs=1, seed=99)
    fresh.model.load_state_dict(state["model"])
    np.testing.assert_array_equal(fresh.model[3].rng_state, [seed, 4])


def test_a_second_ctrl_c_in_the_middle_of_an_update_waits_for_the_step_to_finish(tmp_path):
    """Two SIGINTs between optimizer.step() and ema.update(): the step still completes (weights, averages and
    counters agree), then the run stops and saves, and the resumed run equals the uninterrupted one."""
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.fit()
    t = make_trainer(tmp_path / "b", epochs=2)
    real = t.optimizer.step

    def step_and_press_twice():
        real()
        if t.optimizer.steps == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    t.optimizer.step = step_and_press_twice
    result = t.fit()
    assert result.status == "interrupted" and result.step == 3
    assert t.ema.num_updates == 3 and load_checkpoint(tmp_path / "b" / LAST)["position"]["step"] == 3
    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.resume()
    resumed.fit()
    _assert_same_training_state(straight, resumed)


def test_without_the_ctrl_c_handler_an_interrupted_step_is_not_saved(tmp_path):
    t = make_trainer(tmp_path, epochs=2, handle_sigint=False)
    count = {"n": 0}

    def hook(module, inputs, output):
        count["n"] += 1
        if count["n"] == 4:
            raise KeyboardInterrupt              # could as well have landed inside optimizer.step()

    t.model.register_forward_hook(hook)
    result = t.fit()
    assert result.status == "interrupted" and "nothing was saved" in result.message
    assert not (tmp_path / LAST).exists()
