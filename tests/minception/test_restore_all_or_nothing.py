"""Restoring a training state is all or nothing (issue 21, item 6).

A checkpoint is checked in full before any model, optimizer, EMA, schedule, loader or trainer state changes.
Each case below damages one field of a good checkpoint (a count of Infinity, Infinity in an array, a list where
arrays belong, a wrong shape, a missing key, a wrong dtype, ...) and checks two things: the error names the field,
and every part of the trainer is bit for bit what it was. Before the two-phase restore, a count of Infinity or an
EMA given as a list raised half-way, with the model's tensors already overwritten.
"""
import copy

import numpy as np
import pytest

from minception import data, nn, optim
from minception.train import LAST, CheckpointError, Trainer, load_checkpoint, save_checkpoint


def _sets(seed=0):
    rng = np.random.default_rng(seed)

    def make(n):
        images = rng.integers(0, 256, (n, 3, 8, 8)).astype(np.uint8)
        return data.ImageSet(images, (np.arange(n) % 4).astype(np.int64), tuple("abcd"))

    return make(64), make(16)


def make_trainer(run_dir, seed=0, max_steps=None):
    """A small conv net with batch norm (so an int64 buffer too), RMSProp, an EMA of the parameters and of the
    running statistics."""
    train, test = _sets()
    nn.init.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2),
                          nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(4, 4))
    opt = optim.RMSProp(model.named_parameters(), lr=0.01, weight_decay=1e-4)
    loader = data.DataLoader(train, 16, shuffle=True, drop_last=True, seed=seed)
    sched = optim.exponential_decay(0.01, len(loader), rate=0.5, epochs_per_decay=1)
    statistics = [(k, b) for k, b in model.named_buffers() if b.dtype.kind == "f"]    # BN's running mean, var
    avg = optim.EMA(list(model.named_parameters()) + statistics, decay=0.9, module=model)
    return Trainer(model, opt, loader, data.DataLoader(test, 16), epochs=2, schedule=sched, ema=avg,
                   run_dir=None if run_dir is None else str(run_dir), name="tiny", max_steps=max_steps,
                   progress=False, print_fn=None)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """A checkpoint written by a real run, half-way through its first epoch."""
    folder = tmp_path_factory.mktemp("good")
    make_trainer(folder, max_steps=3).fit()
    return folder / LAST


def _everything(t):
    """Every piece of state a restore may touch, as bytes and plain values (compared bit for bit)."""
    def frozen(tree):
        if isinstance(tree, dict):
            return {k: frozen(v) for k, v in tree.items()}
        if isinstance(tree, np.ndarray):
            return (tree.dtype.str, tree.shape, tree.tobytes())
        return copy.deepcopy(tree)

    return frozen({
        "model": {k: np.array(v) for k, v in t.model.state_dict().items()},
        "optimizer": t.optimizer.state_dict(),
        "ema": t.ema.state_dict(),
        "schedule": t.schedule.state_dict(),
        "loader": t.train_loader.state_dict(),
        "epoch_stats": t.epoch_tally.state_dict(),
        "window": t.window_tally.state_dict(),
        "counters": (t.epoch, t.batch, t.step, t.elapsed_before, t.train_time, t.best_test_acc),
    })


def _first(d):
    return next(iter(d))


def _set(path, value):
    """A damage: set ``path`` (keys separated by '/'; '*' is the first key there) to ``value(old)``."""
    def damage(state):
        *parents, last = path.split("/")
        node = state
        for key in parents:
            node = node[_first(node) if key == "*" else key]
        key = _first(node) if last == "*" else last
        node[key] = value(node[key])
    return damage


def _delete(path):
    def damage(state):
        *parents, last = path.split("/")
        node = state
        for key in parents:
            node = node[key]
        del node[_first(node) if last == "*" else last]
    return damage


def _with(index, value):
    def change(a):
        a = a.copy()
        a.flat[index] = value
        return a
    return change


DAMAGES = {
    # non-finite or impossible counts
    "epoch_stats count Infinity": (_set("epoch_stats/loss/count", lambda _: float("inf")), "epoch_stats.loss.count"),
    "window images NaN": (_set("window/images", lambda _: float("nan")), "window.images"),
    "a count of 2.5": (_set("epoch_stats/correct", lambda _: 2.5), "epoch_stats.correct"),
    "a count as text": (_set("epoch_stats/grad_norm/count", lambda _: "3"), "epoch_stats.grad_norm.count"),
    "a huge total": (_set("window/loss/total", lambda _: 10 ** 400), "window.loss.total"),
    "a negative seed": (_set("loader/seed", lambda _: -1), "seed"),
    "position of 1.5 steps": (_set("position/step", lambda _: 1.5), "position.step"),
    "clock Infinity": (_set("clock/elapsed_s", lambda _: float("inf")), "clock.elapsed_s"),
    "best accuracy NaN": (_set("best_test_acc", lambda _: float("nan")), "best_test_acc"),
    "EMA num_updates Infinity": (_set("ema/num_updates", lambda _: float("inf")), "num_updates"),
    "optimizer steps -1": (_set("optimizer/steps", lambda _: -1), "steps"),
    # Infinity and NaN in arrays
    "Infinity in a weight": (_set("model/0.weight", _with(3, np.inf)), "model.0.weight"),
    "NaN in the optimizer state": (_set("optimizer/state/*/ms", _with(0, np.nan)), "optimizer.state"),
    "Infinity in an EMA shadow": (_set("ema/shadow/*", _with(0, -np.inf)), "ema.shadow"),
    # a list where arrays belong
    "the EMA shadows as a list": (_set("ema/shadow", lambda d: list(d.values())), "shadow"),
    "an EMA shadow as a list": (_set("ema/shadow/*", lambda a: a.tolist()), "shadow of '0.weight'"),
    "the optimizer state as a list": (_set("optimizer/state", lambda d: list(d.values())), "'state'"),
    "an optimizer moment as a list": (_set("optimizer/state/*/ms", lambda a: a.tolist()), "'ms'"),
    "the EMA as a list": (_set("ema", lambda d: [d]), "EMA state"),
    "a weight as a list": (_set("model/0.weight", lambda a: a.tolist()), "0.weight"),
    # shapes, keys and dtypes
    "a wrong shape in the optimizer state": (_set("optimizer/state/*/mom", lambda a: a.reshape(-1)), "'mom'"),
    "a wrong shape in the model": (_set("model/6.weight", lambda a: a[:2]), "6.weight"),
    "a missing EMA key": (_delete("ema/shadow/1.running_mean"), "1.running_mean"),
    "an unknown optimizer key": (_set("optimizer/state", lambda d: {**d, "nope": d[_first(d)]}), "nope"),
    "a missing model key": (_delete("model/1.bias"), "1.bias"),
    "num_batches_tracked as a float": (_set("model/1.num_batches_tracked", lambda a: a.astype(np.float64)),
                                       "1.num_batches_tracked"),
    "a weight as integers": (_set("model/0.weight", lambda a: a.astype(np.int32)), "0.weight"),
    "an optimizer moment as integers": (_set("optimizer/state/*/ms", lambda a: a.astype(np.int64)), "'ms'"),
    "an EMA shadow as bools": (_set("ema/shadow/*", lambda a: a > 0), "shadow of '0.weight'"),
    "a float64 weight too large for float32": (_set("model/6.bias", lambda a: np.full(a.shape, 1e300)), "6.bias"),
    "a schedule rate as text": (_set("schedule/rate", lambda _: "0.5"), "rate"),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_damaged_checkpoint_changes_nothing_and_names_the_field(case, good_checkpoint, tmp_path):
    damage, field = DAMAGES[case]
    state = load_checkpoint(good_checkpoint)
    damage(state)
    save_checkpoint(tmp_path / "damaged.npz", state)
    state = load_checkpoint(tmp_path / "damaged.npz")          # what a resume reads from the disk

    t = make_trainer(None, seed=5, max_steps=2)                  # a trainer with state of its own to lose
    t.fit()
    before = _everything(t)
    with pytest.raises(CheckpointError) as info:
        t.load_state_dict(state, source="damaged.npz")
    message = str(info.value)
    assert "damaged.npz" in message and field in message, message
    assert len(message.splitlines()[0]) <= 400
    assert _everything(t) == before


def test_the_good_checkpoint_still_restores_bit_for_bit(good_checkpoint):
    state = load_checkpoint(good_checkpoint)
    t = make_trainer(None, seed=5, max_steps=2)
    t.fit()
    t.load_state_dict(state)
    again = make_trainer(None, seed=9)
    again.load_state_dict(state)
    assert _everything(t) == _everything(again)
    assert (t.epoch, t.batch, t.step) == (0, 3, 3)
    for key, value in state["model"].items():
        assert np.array_equal(t.model.state_dict()[key], value), key


def test_the_two_phases_can_be_called_apart(good_checkpoint):
    from minception.train.run_state import apply_training_state, validate_training_state
    state = load_checkpoint(good_checkpoint)
    t = make_trainer(None, seed=5)
    before = _everything(t)
    checked = validate_training_state(t.run_state(), state)
    assert _everything(t) == before                               # validating changes nothing
    apply_training_state(t.run_state(), checked)
    assert checked.progress.step == 3 and t.optimizer.steps == 3
