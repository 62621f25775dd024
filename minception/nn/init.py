"""Weight initialisation.

The default for every weight in minception (``Conv2d`` and ``Linear``) is **He / variance-scaling initialisation
for ReLU networks**: normal with mean 0 and standard deviation ``sqrt(2 / fan_in)``, where ``fan_in`` is the
number of inputs of one output unit (``in_channels * kh * kw`` for a conv, ``in_features`` for a linear layer).
Biases start at zero, batch norm's gamma at one and beta at zero.

Why ``2 / fan_in``. A unit computes ``y = sum_i w_i x_i`` over ``fan_in`` inputs. With independent zero-mean
weights, ``Var[y] = fan_in * Var[w] * E[x^2]``. If ``x = relu(z)`` with ``z`` symmetric around zero, ReLU keeps
half of the second moment: ``E[x^2] = Var[z] / 2``. So ``Var[y] = fan_in * Var[w] * Var[z] / 2``, and choosing
``Var[w] = 2 / fan_in`` makes every layer pass on the variance it received: signals neither explode nor vanish
with depth, forward and (by the same argument on fan_out) roughly backward. This is He et al., "Delving Deep into
Rectifiers" (2015); with a gain of 1 instead of 2 it is LeCun's rule, right for layers without a ReLU after them.

Inception networks put batch norm after almost every conv, which re-normalises activations and makes them
forgiving; the scale still matters for the convs without BN (the residual "up" convs, whose outputs are added to
the trunk) and for the classifier, and it is what makes a network without BN trainable at all.

Random numbers come from one module-level generator; ``manual_seed(seed)`` makes model construction
reproducible. Layers that draw random numbers while they run (dropout) take their seeds from a second stream,
``layer_seed()``, that ``manual_seed`` resets too, so adding such a layer does not change any initial weight.
Every function also takes ``rng`` (a ``numpy.random.Generator``). Values are drawn in float64 on the CPU, then
cast to the tensor's dtype and copied to its device.
"""
import math

import numpy as np

from autograd import Tensor
from autograd.backend import get_array_module

_rng = np.random.default_rng()
_layer_seeds = np.random.default_rng()


def manual_seed(seed):
    """Reseed the generator used by every initialiser (and so by layer constructors), and the stream of
    ``layer_seed()``."""
    global _rng, _layer_seeds
    _rng = np.random.default_rng(seed)
    _layer_seeds = np.random.default_rng([seed, 1])


def default_rng():
    return _rng


def layer_seed():
    """A fresh seed (an int in [0, 2**63)) for a layer that draws random numbers while it runs (``nn.Dropout``).

    After ``manual_seed(s)`` the k-th call returns the same number on every run.
    """
    return int(_layer_seeds.integers(0, 2**63))


def compute_fans(shape):
    """``(fan_in, fan_out)`` of a weight.

    Shape:
        linear ``(out_features, in_features)`` -> ``(in_features, out_features)``;
        conv ``(out_channels, in_channels, kh, kw)`` -> ``(in_channels*kh*kw, out_channels*kh*kw)``.
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"compute_fans: needs a weight with at least 2 axes (out, in, ...), got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values):
    """Copy NumPy ``values`` into ``tensor`` (a Tensor or array) in place, keeping its dtype and device."""
    target = tensor.data if isinstance(tensor, Tensor) else tensor
    target[...] = get_array_module(target).asarray(values.astype(target.dtype, copy=False))
    return tensor


def variance_scaling_(tensor, scale=2.0, mode="fan_in", distribution="normal", rng=None):
    """Fill ``tensor`` with zero-mean values of variance ``scale / fan`` (in place; returns it).

    Args:
        scale: 2.0 for layers followed by ReLU (He), 1.0 for linear outputs (LeCun / Glorot with fan_avg).
        mode: "fan_in" (preserve the forward signal), "fan_out" (the backward one) or "fan_avg".
        distribution: "normal", "truncated_normal" (cut at 2 std, rescaled to keep the variance) or "uniform".
    """
    rng = rng if rng is not None else _rng
    fan_in, fan_out = compute_fans(tensor.shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}.get(mode)
    if fan is None:
        raise ValueError(f"variance_scaling_: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
    std = math.sqrt(scale / fan)
    shape = tuple(tensor.shape)
    if distribution == "normal":
        values = rng.normal(0.0, std, shape)
    elif distribution == "truncated_normal":
        # A standard normal cut at +-2 has std 0.8796; divide by it so the result still has std `std`.
        values = rng.normal(0.0, 1.0, shape)
        bad = np.abs(values) > 2.0
        while bad.any():
            values[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
            bad = np.abs(values) > 2.0
        values *= std / 0.87962566103423978
    elif distribution == "uniform":
        limit = math.sqrt(3.0) * std          # U(-a, a) has variance a^2 / 3
        values = rng.uniform(-limit, limit, shape)
    else:
        raise ValueError(f"variance_scaling_: distribution must be 'normal', 'truncated_normal' or 'uniform', "
                         f"got {distribution!r}")
    return _fill(tensor, values)


def he_normal_(tensor, rng=None):
    """He (Kaiming) normal: std ``sqrt(2 / fan_in)``, the default for conv and linear weights."""
    return variance_scaling_(tensor, 2.0, "fan_in", "normal", rng)


def lecun_normal_(tensor, rng=None):
    """LeCun normal: std ``sqrt(1 / fan_in)``, for a layer whose output is not passed through a ReLU."""
    return variance_scaling_(tensor, 1.0, "fan_in", "normal", rng)


def glorot_uniform_(tensor, rng=None):
    """Glorot (Xavier) uniform: variance ``2 / (fan_in + fan_out)``."""
    return variance_scaling_(tensor, 1.0, "fan_avg", "uniform", rng)


def constant_(tensor, value):
    return _fill(tensor, np.full(tuple(tensor.shape), value, dtype=np.float64))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)
