"""Reading a step's numbers later (``Trainer(check_every=k)``, the GPU's default): the same training, fewer waits.

On the GPU every read of a loss makes the host wait for the GPU, so the trainer reads the numbers of ``k`` steps
at once. The code is array-generic, so these tests run it on the CPU, where NumPy stands in for CuPy; the GPU
tests (tests/minception/test_gpu_training.py) run the Trainer on the device with its default.
"""
import numpy as np
import pytest

from autograd import Tensor
from minception.train import LAST, METRICS, TRAIN_LOG, NonFiniteLossError, Trainer, load_checkpoint, read_jsonl
from minception.train import loop as loop_module

from test_trainer import _assert_same_training_state, _strip_times, make_trainer


class Record:
    def __init__(self):
        self.infos = []

    def on_step_end(self, trainer, info):
        self.infos.append({k: v for k, v in info.items() if k != "seconds"})


def test_reading_every_few_steps_trains_exactly_as_reading_every_step(tmp_path):
    """5 does not divide the 6 steps of an epoch nor the log interval 4: the reads at epoch ends, log lines and
    checkpoints must pick up the steps in between."""
    runs = {}
    for k in (1, 5):
        rec = Record()
        t = make_trainer(tmp_path / str(k), epochs=3, check_every=k, log_every=4, checkpoint_every=9,
                         callbacks=[rec])
        assert t.check_every == k
        result = t.fit()
        assert result.status == "completed" and result.step == 18
        runs[k] = (t, rec)
    (a, rec_a), (b, rec_b) = runs[1], runs[5]
    _assert_same_training_state(a, b)
    assert rec_b.infos == rec_a.infos and [i["step"] for i in rec_b.infos] == list(range(1, 19))
    for name in (METRICS, TRAIN_LOG):
        assert _strip_times(read_jsonl(tmp_path / "5" / name)) == _strip_times(read_jsonl(tmp_path / "1" / name))


def test_a_nan_read_late_names_its_step_and_leaves_the_checkpoint_good(tmp_path, monkeypatch):
    t = make_trainer(tmp_path, epochs=3, check_every=4)
    real = loop_module.optim.clip_grad_norm
    calls = []

    def nan_at_step_8(params, max_norm, sync=True):
        calls.append(sync)
        norm = real(params, max_norm, sync=sync)
        return np.asarray(np.nan) if len(calls) == 8 else norm
    monkeypatch.setattr(loop_module.optim, "clip_grad_norm", nan_at_step_8)
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient norm \(nan\) at step 8 \(epoch 2, batch 2\); "
                                                 r"read at step 10 \(check_every=4\)") as e:
        t.fit()
    assert set(calls) == {False}                       # nothing was read inside the steps
    assert e.value.step == 8 and e.value.checkpoint == str(tmp_path / LAST)
    assert load_checkpoint(tmp_path / LAST)["position"]["step"] == 6      # the end of epoch 1, intact


def test_train_step_without_sync_reads_nothing_and_returns_device_arrays(monkeypatch):
    results = []
    for sync in (True, False):
        t = make_trainer(None, check_every=1)
        x, y = t.train_loader.batch(0, 0)
        if not sync:
            def no_reading(*args, **kwargs):
                raise AssertionError("train_step(sync=False) read a value")
            monkeypatch.setattr(Tensor, "item", no_reading)
            monkeypatch.setattr(loop_module, "to_numpy", no_reading)
        results.append(loop_module.train_step(t.model, t.optimizer, Tensor(x), y, clip_norm=2.0, sync=sync))
    read, lazy = results
    assert isinstance(read.loss, float) and isinstance(read.correct, int) and isinstance(read.grad_norm, float)
    for value in (lazy.loss, lazy.correct, lazy.grad_norm):
        assert type(value) not in (int, float) and np.shape(value) == ()        # NumPy's (CuPy's on a GPU)
    assert (float(lazy.loss), int(lazy.correct), float(lazy.grad_norm)) == (read.loss, read.correct,
                                                                             read.grad_norm)


def test_check_every_defaults_and_validation():
    assert make_trainer(None).check_every == 1                                   # the CPU: reads are free
    assert make_trainer(None, device="cuda", log_every=7).check_every == 7       # the GPU: once per log line
    assert make_trainer(None, device="cuda", log_every=0).check_every == 20
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(ValueError, match="check_every must be a positive integer"):
            make_trainer(None, check_every=bad)
    with pytest.raises(ValueError, match="check_every must be 1 in data-parallel training"):
        make_trainer(None, check_every=4, distributed=object())


def test_the_loss_checks_host_labels_on_the_host():
    """The range check runs on the labels where they are (a NumPy array or a list here), before they move."""
    from ops import softmax_cross_entropy
    logits = Tensor(np.zeros((3, 4)))
    assert float(softmax_cross_entropy(logits, [0, 3, 1]).item()) == pytest.approx(np.log(4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\), got values from 0 to 4"):
        softmax_cross_entropy(logits, np.array([0, 4, 1]))


def test_a_callback_that_stops_the_run_leaves_no_step_out_of_the_checkpoint(tmp_path):
    """Ctrl-C from a callback at step 7, which check_every 4 reads with steps 8-10 (the epoch end at step 6 read
    steps 5-6): the checkpoint saved on the way out holds all 10 steps taken, none left out of its statistics."""
    from test_trainer import RaiseAt
    states = {}
    for k in (1, 4):
        t = make_trainer(tmp_path / str(k), epochs=3, check_every=k, callbacks=[RaiseAt(7)])
        result = t.fit()
        assert result.status == "interrupted"
        states[k] = load_checkpoint(tmp_path / str(k) / LAST)
    assert states[1]["position"]["step"] == 7 and states[4]["position"]["step"] == 10
    assert states[4]["epoch_stats"]["images"] == 4 * 16          # steps 7-10: the first 4 of epoch 2
    assert states[1]["epoch_stats"]["images"] == 1 * 16
