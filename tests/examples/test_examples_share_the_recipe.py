"""Both examples train with one recipe, ``train.Recipe.scaled()``: the training example's recipe flags default to
its fields, and the depth sweep's trainer gets the same optimizer, schedule, average, loss and clipping as the
training example's at the same learning rate and batch."""
import argparse
import json
import os

import numpy as np
import pytest

from minception import data
from minception.train import Recipe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def example(script_loader):
    return script_loader(os.path.join(ROOT, "examples", "train_cifar_scaled.py"), "train_cifar_scaled")


@pytest.fixture(scope="module")
def sweep(script_loader):
    return script_loader(os.path.join(ROOT, "examples", "residual_vs_plain.py"), "residual_vs_plain")


def step_configuration(trainer):
    """What a trainer's steps are made of: optimizer, schedule, average, loss, clipping, batch, augmentation."""
    opt = trainer.optimizer
    return {"optimizer": (type(opt).__name__, opt.lr, opt.decay, opt.eps, opt.momentum, opt.weight_decay,
                          opt.weight_decay_filter, opt.eps_inside_sqrt),
            "schedule": trainer.schedule.state_dict(), "ema": (trainer.ema.decay, sorted(trainer.ema.shadow)),
            "label_smoothing": trainer.label_smoothing, "clip_norm": trainer.clip_norm,
            "batch_size": trainer.train_loader.batch_size, "augment": trainer.train_loader.transform is not None}


def test_the_recipe_flags_default_to_the_scaled_recipe(example):
    assert example.RECIPE == Recipe.scaled()
    cfg = example.resolve_config({})
    assert example.recipe_of(cfg) == Recipe.scaled()
    assert example.recipe_of(dict(cfg, clip=0.0, ema_decay=0.0, lr=0.01)) == Recipe.scaled(
        clip_norm=None, ema_decay=None, lr=0.01)
    assert (cfg["lr"], cfg["batch_size"], cfg["clip"], cfg["optimizer"]) == (0.02, 32, 2.0, "rmsprop")


def test_both_examples_build_the_same_step_from_the_recipe(example, sweep, monkeypatch):
    train, test = data.make_synthetic(32, 8, seed=0)
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    cfg = dict(example.resolve_config({}), model="inception_resnet_v2", width=0.04, batch_size=8, epochs=1,
               progress=False)
    ours = example.build_trainer("inception_resnet_v2", None, cfg, train, test, mean, std, say=lambda *a: None)

    captured = {}

    class CapturingTrainer:                     # the sweep's Trainer: record it, train nothing
        def __init__(self, *args, **kwargs):
            captured["trainer"] = example.Trainer(*args, **kwargs)

        def fit(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "Trainer", CapturingTrainer)
    args = argparse.Namespace(width=0.04, lr=cfg["lr"], batch_size=8, device="cpu")
    loaded = argparse.Namespace(train=train, test=test, mean=mean, std=std)
    with pytest.raises(KeyboardInterrupt):
        sweep.train_one("inception_resnet_v2", (1, 1, 1), 0, loaded, args, steps=2, eval_every=1)
    theirs = captured["trainer"]
    assert step_configuration(theirs) == step_configuration(ours)
    assert step_configuration(ours)["optimizer"][:6] == ("RMSProp", 0.02, 0.9, 1.0, 0.9, 4e-5)
    assert step_configuration(ours)["ema"][0] == 0.9999 and ours.clip_norm == 2.0 and ours.label_smoothing == 0.1


def test_the_sweep_saves_the_recipe_under_the_names_of_its_earlier_runs(sweep):
    """A saved run is reused only when its recipe key is the same: the key of the recipe is unchanged."""
    with open(os.path.join(ROOT, "docs", "residual_vs_plain", "results.json")) as f:
        saved = json.load(f)["recipe"]
    assert sweep.recipe_key(sweep.RECIPE) == saved
    assert sweep.RECIPE == Recipe.scaled()
