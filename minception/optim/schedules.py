"""Learning-rate schedules: ``schedule(step) -> lr``, pure functions of the step number with their settings in a dict.

A schedule holds no optimizer and no counter: the training loop asks for the rate of the step it is about to
take and assigns it, ``opt.lr = schedule(step)``, with ``step`` counting optimizer steps from 0. Resuming a run
therefore needs only the step number; ``state_dict()`` records the settings so a checkpoint can say which
schedule it was trained with (and ``load_state_dict`` restores them).

The paper's schedule: ``exponential_decay(0.045, steps_per_epoch, rate=0.94, epochs_per_decay=2)``.
"""
import math

from ..files.fit import described
from ..files.shorten import shorten
from .checks import flag, integer, real_number


def _rate(owner, name, value):
    """A learning rate (or a factor of one): a finite number >= 0."""
    value = real_number(owner, name, value)
    if value < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value}")
    return value


class Schedule:
    """Base class: subclasses implement ``__call__(step) -> float`` and list their settings in ``settings``."""

    settings = ()

    def __call__(self, step):
        raise NotImplementedError

    @staticmethod
    def _check_step(step):
        if step < 0:
            raise ValueError(f"schedule: step must be >= 0, got {step}")
        return step

    def state_dict(self):
        """``{"type": class name, setting: value, ...}`` (a wrapped schedule is stored as a nested dict)."""
        d = {"type": type(self).__name__}
        for name in self.settings:
            value = getattr(self, name)
            d[name] = value.state_dict() if isinstance(value, Schedule) else value
        return d

    def load_state_dict(self, d):
        """Take the settings in ``d``; they are checked as the constructor checks them, and a refused set
        changes nothing (``check_state_dict``, then ``apply_state_dict``)."""
        self.apply_state_dict(self.check_state_dict(d))

    def check_state_dict(self, d):
        """The first half of ``load_state_dict``: a new schedule built from ``d`` (a wrapped schedule from its
        own part), or TypeError/KeyError/ValueError naming the setting; this one is not changed."""
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(d, dict):
            raise TypeError(f"{owner}: expected a dict of settings, got a {described(d)}")
        if d.get("type") != type(self).__name__:
            raise ValueError(f"{owner}: the dict is for a {shorten(d.get('type'))}")
        given = {}
        for name in self.settings:
            if name not in d:
                raise KeyError(f"{owner}: the settings lack {name!r}")
            value = getattr(self, name)
            given[name] = value.check_state_dict(d[name]) if isinstance(value, Schedule) else d[name]
        return type(self)(**given)          # raises TypeError/ValueError for settings out of range

    def apply_state_dict(self, checked):
        """The second half of ``load_state_dict``: take the settings of ``checked`` (a wrapped schedule keeps
        its identity and takes its own)."""
        for name in self.settings:
            value = getattr(self, name)
            if isinstance(value, Schedule):
                value.apply_state_dict(getattr(checked, name))
            else:
                setattr(self, name, getattr(checked, name))

    def __repr__(self):
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.settings)
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``lr`` at every step."""

    settings = ("lr",)

    def __init__(self, lr):
        self.lr = _rate("Constant", "lr", lr)

    def __call__(self, step):
        self._check_step(step)
        return self.lr


class ExponentialDecay(Schedule):
    """``lr * rate ** (step / decay_steps)``, with the exponent floored when ``staircase`` (TF's exponential_decay).

    Args:
        lr: the rate at step 0.
        decay_steps: steps per decay period (e.g. ``2 * steps_per_epoch`` for "every two epochs").
        rate: factor per period (0.94 in the paper).
        staircase: floor the exponent, so the rate drops once per period; otherwise it decays smoothly.
    """

    settings = ("lr", "decay_steps", "rate", "staircase")

    def __init__(self, lr, decay_steps, rate=0.94, staircase=True):
        self.lr = _rate("ExponentialDecay", "lr", lr)
        self.decay_steps = integer("ExponentialDecay", "decay_steps", decay_steps, minimum=1)
        self.rate = real_number("ExponentialDecay", "rate", rate)
        if not self.rate > 0:
            raise ValueError(f"ExponentialDecay: rate must be > 0, got {rate}")
        self.staircase = flag("ExponentialDecay", "staircase", staircase)

    def __call__(self, step):
        self._check_step(step)
        periods = step // self.decay_steps if self.staircase else step / self.decay_steps
        return self.lr * self.rate ** periods


def exponential_decay(lr=0.045, steps_per_epoch=None, rate=0.94, epochs_per_decay=2, staircase=True):
    """The paper's schedule: ``lr`` multiplied by ``rate`` every ``epochs_per_decay`` epochs (staircase).

    ``steps_per_epoch`` is ``len(train_loader)``; ``epochs_per_decay`` may be fractional (the period is rounded
    to whole steps, at least 1).
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
        raise ValueError(f"exponential_decay: steps_per_epoch must be a positive int, got {steps_per_epoch}")
    if not real_number("exponential_decay", "epochs_per_decay", epochs_per_decay) > 0:
        raise ValueError(f"exponential_decay: epochs_per_decay must be > 0, got {epochs_per_decay}")
    decay_steps = max(1, round(epochs_per_decay * steps_per_epoch))
    return ExponentialDecay(lr, decay_steps, rate, staircase)


class StepDecay(Schedule):
    """``lr * gamma ** (number of milestones <= step)``: drops by ``gamma`` at each milestone step.

    Args:
        lr: the rate before the first milestone.
        milestones: increasing step numbers (convert epochs with ``epoch * steps_per_epoch``).
        gamma: factor at each milestone.
    """

    settings = ("lr", "milestones", "gamma")

    def __init__(self, lr, milestones, gamma=0.1):
        milestones = [integer("StepDecay", "a milestone", m) for m in milestones]
        if any(b <= a for a, b in zip(milestones, milestones[1:])) or any(m < 0 for m in milestones):
            raise ValueError(f"StepDecay: milestones must be non-negative and increasing, got {milestones}")
        self.lr, self.milestones = _rate("StepDecay", "lr", lr), milestones
        self.gamma = _rate("StepDecay", "gamma", gamma)

    def __call__(self, step):
        self._check_step(step)
        passed = sum(1 for m in self.milestones if step >= m)
        return self.lr * self.gamma ** passed



class CosineDecay(Schedule):
    """Half a cosine from ``lr`` at step 0 to ``min_lr`` at ``total_steps``, then ``min_lr`` (SGDR without restarts).

    ``min_lr + (lr - min_lr) * (1 + cos(pi * min(step, total_steps) / total_steps)) / 2``
    """

    settings = ("lr", "total_steps", "min_lr")

    def __init__(self, lr, total_steps, min_lr=0.0):
        self.lr = _rate("CosineDecay", "lr", lr)
        self.total_steps = integer("CosineDecay", "total_steps", total_steps, minimum=1)
        self.min_lr = _rate("CosineDecay", "min_lr", min_lr)

    def __call__(self, step):
        self._check_step(step)
        t = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


class Warmup(Schedule):
    """Linear warm-up in front of any schedule.

    For ``step < warmup_steps`` the rate climbs linearly from ``start_lr`` (at step 0) towards
    ``schedule(warmup_steps)`` (reached at step ``warmup_steps``); from then on it is ``schedule(step)``. The
    wrapped schedule keeps counting from step 0 (its clock is not shifted by the warm-up), so the curve is
    continuous and a decay milestone stays where it was set.
    """

    settings = ("schedule", "warmup_steps", "start_lr")

    def __init__(self, schedule, warmup_steps, start_lr=0.0):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"Warmup: expected a Schedule to wrap, got {type(schedule).__name__}")
        self.schedule = schedule
        self.warmup_steps = integer("Warmup", "warmup_steps", warmup_steps, minimum=0)
        self.start_lr = _rate("Warmup", "start_lr", start_lr)

    def __call__(self, step):
        self._check_step(step)
        if step >= self.warmup_steps:
            return self.schedule(step)
        target = self.schedule(self.warmup_steps)
        return self.start_lr + (target - self.start_lr) * step / self.warmup_steps
