"""Learning-rate schedules against values worked out by hand."""
import math

import numpy as np
import pytest

from minception import optim


def test_paper_schedule_staircase_every_two_epochs():
    sched = optim.exponential_decay(0.045, steps_per_epoch=10, rate=0.94, epochs_per_decay=2)
    assert sched.decay_steps == 20
    assert sched(0) == 0.045
    assert sched(19) == 0.045                                   # still the first period
    assert sched(20) == pytest.approx(0.045 * 0.94)
    assert sched(39) == pytest.approx(0.045 * 0.94)
    assert sched(40) == pytest.approx(0.045 * 0.94 * 0.94)
    assert sched(1000) == pytest.approx(0.045 * 0.94 ** 50)


def test_exponential_decay_smooth():
    sched = optim.ExponentialDecay(1.0, decay_steps=4, rate=0.5, staircase=False)
    assert sched(2) == pytest.approx(math.sqrt(0.5))
    assert sched(4) == pytest.approx(0.5)


def test_step_decay_milestones():
    sched = optim.StepDecay(0.1, milestones=[3, 5], gamma=0.2)
    assert [round(sched(s), 12) for s in range(7)] == [0.1, 0.1, 0.1, 0.02, 0.02, 0.004, 0.004]
    with pytest.raises(ValueError, match="increasing"):
        optim.StepDecay(0.1, milestones=[5, 3])


def test_cosine_decay():
    sched = optim.CosineDecay(1.0, total_steps=4, min_lr=0.2)
    assert sched(0) == pytest.approx(1.0)
    assert sched(2) == pytest.approx(0.6)                      # halfway: min + (max - min) / 2
    assert sched(1) == pytest.approx(0.2 + 0.8 * (1 + math.sqrt(0.5)) / 2)
    assert sched(4) == pytest.approx(0.2)
    assert sched(100) == pytest.approx(0.2)


def test_warmup_wraps_any_schedule_and_is_continuous():
    inner = optim.StepDecay(1.0, milestones=[10], gamma=0.1)
    sched = optim.Warmup(inner, warmup_steps=4, start_lr=0.2)
    assert [sched(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert sched(9) == 1.0 and sched(10) == pytest.approx(0.1)   # the inner clock is not shifted
    paper = optim.Warmup(optim.exponential_decay(0.045, steps_per_epoch=2), warmup_steps=2)
    assert paper(0) == 0.0 and paper(1) == pytest.approx(0.0225) and paper(4) == pytest.approx(0.045 * 0.94)
    with pytest.raises(TypeError):
        optim.Warmup(lambda s: 1.0, 3)


def test_negative_step_rejected():
    with pytest.raises(ValueError, match="step"):
        optim.Constant(0.1)(-1)


def test_state_dict_round_trip_including_nested(tmp_path):
    sched = optim.Warmup(optim.StepDecay(0.3, [4, 8], gamma=0.5), warmup_steps=2, start_lr=0.01)
    sd = sched.state_dict()
    assert sd == {"type": "Warmup", "warmup_steps": 2, "start_lr": 0.01,
                  "schedule": {"type": "StepDecay", "lr": 0.3, "milestones": [4, 8], "gamma": 0.5}}
    other = optim.Warmup(optim.StepDecay(1.0, [1]), warmup_steps=0)
    other.load_state_dict(sd)
    assert [other(s) for s in range(12)] == [sched(s) for s in range(12)]
    # values coming back from an .npz are numpy scalars/arrays
    np.savez(tmp_path / "s.npz", **{k: v for k, v in sd["schedule"].items()})
    z = np.load(tmp_path / "s.npz")
    step = optim.StepDecay(1.0, [1])
    step.load_state_dict({k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files})
    assert step.milestones == [4, 8] and step(5) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="StepDecay"):
        optim.CosineDecay(1.0, 10).load_state_dict(step.state_dict())


def test_optimizer_lr_follows_schedule():
    from autograd import Tensor
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepDecay(1.0, milestones=[1], gamma=0.5)
    for step in range(2):
        opt.lr = sched(opt.steps)
        p.grad = np.ones(1)
        opt.step()
    assert p.data[0] == pytest.approx(-1.5)
