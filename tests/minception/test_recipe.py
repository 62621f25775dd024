"""``train.Recipe``: the paper's values, this project's scaled defaults, the checks, and what it builds."""
import dataclasses
import math

import numpy as np
import pytest

from minception import data, models, nn, optim
from minception.train import Recipe


def tiny_model():
    nn.init.manual_seed(0)
    return models.inception_resnet_v2(num_classes=3, width=0.04, blocks=(1, 1, 1), small_input=True)


def test_the_paper_recipe_has_the_values_of_section_4_and_of_inception_v3():
    r = Recipe.paper()
    assert (r.optimizer_name, r.rmsprop_decay, r.rmsprop_eps, r.momentum) == ("rmsprop", 0.9, 1.0, 0.9)
    assert (r.lr, r.lr_decay, r.lr_decay_epochs) == (0.045, 0.94, 2.0)
    assert (r.clip_norm, r.label_smoothing, r.weight_decay, r.ema_decay) == (2.0, 0.1, 4e-5, 0.9999)
    assert (r.dropout, r.batch_size) == (0.2, 32)


def test_the_scaled_recipe_is_the_default_and_differs_from_the_paper_in_the_learning_rate_only():
    assert Recipe() == Recipe.scaled()
    assert Recipe.scaled().lr == 0.02
    assert Recipe.scaled().replace(lr=0.045) == Recipe.paper()
    assert Recipe.paper(batch_size=64).batch_size == 64


def test_the_bare_recipe_keeps_the_optimizer_and_drops_everything_else():
    r = Recipe.bare()
    assert (r.optimizer_name, r.rmsprop_decay, r.rmsprop_eps, r.momentum, r.lr) == ("rmsprop", 0.9, 1.0, 0.9, 0.01)
    assert (r.weight_decay, r.label_smoothing, r.clip_norm, r.ema_decay, r.dropout, r.augment) == \
        (0.0, 0.0, None, None, 0.0, False)
    assert Recipe.bare(lr=0.05, clip_norm=1.0).clip_norm == 1.0


@pytest.mark.parametrize("changes, error, message", [
    (dict(lr=0.0), ValueError, "Recipe: lr must be > 0, got 0.0"),
    (dict(lr=math.nan), ValueError, "Recipe: lr must be finite, got nan"),
    (dict(lr="0.1"), TypeError, "Recipe: lr must be a number, got '0.1'"),
    (dict(lr_decay=-0.5), ValueError, "Recipe: lr_decay must be > 0, got -0.5"),
    (dict(momentum=1.0), ValueError, "Recipe: momentum must be in [0, 1), got 1.0"),
    (dict(rmsprop_decay=1.0), ValueError, "Recipe: rmsprop_decay must be in [0, 1), got 1.0"),
    (dict(rmsprop_eps=-1.0), ValueError, "Recipe: rmsprop_eps must be >= 0, got -1.0"),
    (dict(weight_decay=-1e-4), ValueError, "Recipe: weight_decay must be >= 0, got -0.0001"),
    (dict(label_smoothing=1.0), ValueError, "Recipe: label_smoothing must be in [0, 1), got 1.0"),
    (dict(clip_norm=0.0), ValueError, "Recipe: clip_norm must be > 0 (None: no clipping), got 0.0"),
    (dict(ema_decay=1.0), ValueError, "Recipe: ema_decay must be in (0, 1) (None: no average), got 1.0"),
    (dict(dropout=1.0), ValueError, "Recipe: dropout must be in [0, 1), got 1.0"),
    (dict(batch_size=0), ValueError, "Recipe: batch_size must be >= 1, got 0"),
    (dict(batch_size=32.0), TypeError, "Recipe: batch_size must be an int, got 32.0"),
    (dict(ema_bn=1), TypeError, "Recipe: ema_bn must be True or False, got 1"),
    (dict(optimizer_name="adam"), ValueError, "Recipe: optimizer_name must be one of rmsprop, sgd, got 'adam'"),
    (dict(learning_rate=0.1), TypeError, "Recipe: unknown field(s) learning_rate; the fields are lr, "),
])
def test_bad_values_are_refused_naming_the_field(changes, error, message):
    with pytest.raises(error) as e:
        Recipe.scaled().replace(**changes)
    assert str(e.value).startswith(message)
    assert len(str(e.value).splitlines()[0]) <= 100 or "unknown field" in str(e.value)


def test_a_recipe_is_frozen_and_json_able():
    r = Recipe.scaled()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 0.1
    d = r.as_dict()
    assert d["lr"] == 0.02 and d["clip_norm"] == 2.0 and Recipe(**d) == r


def test_the_optimizer_is_tensorflows_rmsprop_with_decay_on_the_weights_only():
    model = tiny_model()
    opt = Recipe.scaled().optimizer(model)
    assert isinstance(opt, optim.RMSProp)
    assert (opt.lr, opt.decay, opt.eps, opt.momentum, opt.weight_decay) == (0.02, 0.9, 1.0, 0.9, 4e-5)
    assert opt.eps_inside_sqrt and opt.ms_init == 1.0
    for key, p in model.named_parameters():        # conv and linear weights decay; biases, BN scales do not
        assert opt.decay_of(key, p) == (4e-5 if p.data.ndim >= 2 else 0.0), key
    sgd = Recipe.scaled(optimizer_name="sgd", momentum=0.5).optimizer(model)
    assert isinstance(sgd, optim.SGD) and sgd.momentum == 0.5 and sgd.nesterov


def test_the_schedule_decays_by_0_94_every_two_epochs():
    schedule = Recipe.paper().schedule(steps_per_epoch=5)
    assert schedule(0) == schedule(9) == 0.045
    assert schedule(10) == pytest.approx(0.045 * 0.94)
    assert schedule(20) == pytest.approx(0.045 * 0.94 ** 2)


def test_the_average_covers_the_batch_norm_statistics_unless_told_not_to():
    model = tiny_model()
    buffers = {name for name, b in model.named_buffers() if b.dtype.kind == "f"}
    params = {name for name, _ in model.named_parameters()}
    ema = Recipe.scaled().ema(model)
    assert ema.decay == 0.9999 and set(ema.shadow) == params | buffers
    assert set(Recipe.scaled(ema_bn=False).ema(model).shadow) == params
    assert Recipe.bare().ema(model) is None


def test_the_training_loader_takes_the_batch_size_and_the_augmentation():
    train, _ = data.make_synthetic(20, 3, seed=0)
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    loader = Recipe.scaled(batch_size=8).train_loader(train, mean, std, seed=1)
    assert len(loader) == 2 and loader.batch_size == 8 and loader.transform is not None
    assert Recipe.scaled(augment=False).augmentation() is None
    sharded = Recipe.scaled(batch_size=4).train_loader(train, mean, std, shard=(1, 2))   # rank 1 of 2
    assert len(sharded) == 2 and sharded.batch(0, 0)[0].shape[0] == 4
