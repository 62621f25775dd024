"""Optimizers, gradient clipping, learning-rate schedules and parameter averaging.

A training step::

    opt = optim.RMSProp(model.named_parameters(), lr=0.045, decay=0.9, eps=1.0, momentum=0.9)
    sched = optim.exponential_decay(0.045, steps_per_epoch=len(loader), rate=0.94, epochs_per_decay=2)
    ema = optim.EMA(model.named_parameters(), decay=0.9999)
    for step, (x, y) in enumerate(loader):
        opt.zero_grad()
        loss = ...; loss.backward()
        optim.clip_grad_norm(model.parameters(), max_norm=2.0)
        opt.lr = sched(opt.steps)
        opt.step()
        ema.update()
"""
from .clip import clip_grad_norm, grad_norm
from .ema import EMA
from .optimizer import Optimizer, weights_only
from .rmsprop import RMSProp
from .schedules import (Constant, CosineDecay, ExponentialDecay, Schedule, StepDecay, Warmup,
                        exponential_decay)
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "RMSProp", "clip_grad_norm", "grad_norm", "EMA", "weights_only",
           "Schedule", "Constant", "ExponentialDecay", "exponential_decay", "StepDecay", "CosineDecay", "Warmup"]
