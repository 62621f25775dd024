"""``bench/step.py``: the benchmarks' step is ``loop.train_step`` with a ``Recipe``, doing the same work as the
hand-written steps timed before (so timings stay comparable), and importing no engine until it is used."""
import os
import subprocess
import sys

import numpy as np
import pytest

import ops
from autograd import Tensor
from minception import nn, optim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import device_check  # noqa: E402
import step  # noqa: E402


def _model_and_batch():
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5))
    rng = np.random.default_rng(0)
    return model, Tensor(rng.standard_normal((6, 3, 4, 4)).astype(np.float32)), rng.integers(0, 5, 6)


def test_the_bench_step_is_the_hand_written_step_of_earlier_measurements():
    """forward + cross-entropy, zero the gradients, backward, RMSProp(lr 0.01, decay 0.9, eps 1.0, momentum 0.9)"""
    model, x, y = _model_and_batch()
    opt = optim.RMSProp(model.named_parameters(), lr=0.01, decay=0.9, eps=1.0, momentum=0.9)
    for _ in range(3):
        loss = ops.softmax_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = {k: (p.data.copy(), p.grad.copy()) for k, p in model.named_parameters()}

    model, x, y = _model_and_batch()
    recipe = step.bench_recipe()
    opt = recipe.optimizer(model)
    phases = []
    for _ in range(3):
        r = step.bench_step(model, opt, x, y, recipe, on_phase=phases.append)
    assert r.loss == loss.item() and r.correct is None and r.grad_norm is None
    assert phases[:3] == ["forward", "backward", "update"]
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[k][0])
        np.testing.assert_array_equal(p.grad, before[k][1])        # the gradients live on, as before


def test_the_bench_recipes():
    from minception.train import Recipe
    assert step.bench_recipe() == Recipe.bare(lr=step.BENCH_LR)
    assert step.bench_recipe("scaled") == Recipe.scaled(lr=step.BENCH_LR)
    with pytest.raises(ValueError, match="bench_recipe: name must be 'bare' or 'scaled', got 'paper'"):
        step.bench_recipe("paper")


@pytest.mark.parametrize("config", device_check._configs(False), ids=lambda c: c["name"])
def test_the_pytorch_twin_of_each_device_check_step_uses_its_recipes_values(config):
    recipe = step.bench_recipe(config["recipe"])
    assert config["dropout"] == recipe.dropout and config["weight_decay"] == recipe.weight_decay
    assert config["smoothing"] == recipe.label_smoothing and config["clip"] == (recipe.clip_norm or 0.0)
    assert config["ema"] == (recipe.ema_decay is not None)
    assert recipe.ema_decay in (None, 0.9999)                    # the PyTorch side's lerp weight: 1 - 0.9999


def test_the_benchmark_parents_import_no_engine():
    code = ("import sys; sys.path.insert(0, 'bench'); import step, train_step, memory; "
            "loaded = [m for m in ('minception', 'autograd', 'ops', 'numpy') if m in sys.modules]; "
            "assert not loaded, loaded")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
