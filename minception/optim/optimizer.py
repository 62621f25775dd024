"""The optimizer base class: parameter bookkeeping, per-parameter state, weight decay, checkpoints.

An optimizer holds a list of parameters (autograd ``Tensor`` objects with ``.data`` and ``.grad``) and, after
``loss.backward()``, ``step()`` changes every ``p.data`` in place using ``p.grad``. Subclasses (SGD, RMSProp) only
say what state one parameter needs (``init_state``) and how one parameter moves (``update``); everything else
lives here.

Parameters are identified by a *key*: their name when the optimizer is given ``(name, param)`` pairs (as from
``model.named_parameters()``), their position in the list otherwise. ``opt.state[key]`` is a dict of arrays
(same shape, dtype and device as the parameter) whose meaning each subclass documents.

The state follows its parameter: when the model is moved (``model.to("cuda")``, ``model.to(dtype=...)``) after
the optimizer has taken steps, the next ``step()`` moves each parameter's state to the parameter's new device and
dtype before using it.

On the GPU, in the fast kernel tier, subclasses with a multi-tensor kernel (``fused=True``) update all parameters of
a dtype in one launch (``update_many``, see ``ops/kernels/cuda/multi_tensor.py``) instead of one or more launches
per parameter. In any other tier (``ops.kernels.use("reference")``) every parameter takes the readable ``update``.
"""
import copy

import numpy as np

from autograd.backend import device_of, get_array_module, is_gpu_array, to_device, to_numpy
from ops import kernels

from ..files.fit import fitted_array
from ..files.shorten import shorten
from .checks import flag, of_type, real_number


def named_parameters(params, need_grad=True):
    """Turn what the user passed into a list of ``(key, param)`` pairs.

    ``params`` may be an iterable of Tensors (keys are 0, 1, 2, ...), an iterable of ``(name, Tensor)`` pairs
    or a dict ``{name: Tensor}`` (keys are the names). A generator is consumed once. With ``need_grad`` each
    item must have a ``.grad`` attribute (a Tensor); otherwise raw arrays are accepted too (the EMA averages
    buffers such as BatchNorm running statistics).
    """
    if isinstance(params, dict):
        items = list(params.items())
    else:
        items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    named = isinstance(items[0], tuple)
    pairs = []
    for i, item in enumerate(items):
        if isinstance(item, tuple) != named:
            raise TypeError("parameters must be all Tensors or all (name, Tensor) pairs, not a mix "
                            f"(item {i} is {type(item).__name__})")
        if named:
            if len(item) != 2 or not isinstance(item[0], str):
                raise TypeError(f"expected (name: str, param) pairs, item {i} is {item!r:.80}")
            key, p = item
        else:
            key, p = i, item
        if need_grad and not (hasattr(p, "data") and hasattr(p, "grad")):
            raise TypeError(f"parameter {key!r} is a {type(p).__name__}; expected an autograd Tensor "
                            "(an object with .data and .grad)")
        pairs.append((key, p))
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate parameter names {dup}")
    ids = [id(p) for _, p in pairs]
    if len(set(ids)) != len(ids):
        raise ValueError("the same parameter appears twice in the list; it would be updated twice per step")
    return pairs


def array_of(p):
    """The ndarray behind a parameter: ``p.data`` for a Tensor, ``p`` itself for a raw NumPy/CuPy array."""
    if isinstance(p, np.ndarray) or is_gpu_array(p):
        return p
    return p.data


def follow(array, like):
    """``array`` on the device and in the dtype of ``like`` (itself when it already is), C-contiguous."""
    if type(array) is type(like) and array.dtype == like.dtype:
        return array
    moved = to_device(array, device_of(like)).astype(like.dtype, copy=False)
    return get_array_module(moved).ascontiguousarray(moved)


def weights_only(key, param):
    """A ``weight_decay_filter`` that decays conv and linear weights (2 or more dims) only.

    Biases and BatchNorm's gamma/beta (1-D) are left alone, as TF-slim's Inception arg scopes do.
    """
    return array_of(param).ndim >= 2


class Optimizer:
    """Base class. Subclasses define ``init_state(data)`` and ``update(data, grad, state, weight_decay)``.

    Args:
        params: Tensors, or ``(name, Tensor)`` pairs, or a dict name -> Tensor.
        lr: learning rate; ``opt.lr`` may be reassigned at any time (schedules do this each step).
        weight_decay: L2 coefficient ``wd``. The gradient used is ``g + wd * p`` (coupled L2 decay, the gradient
            of ``wd/2 * ||p||^2``, which is what TF's ``l2_regularizer(wd)`` adds to the loss).
        weight_decay_filter: ``f(key, param) -> bool`` choosing which parameters decay; None means all.
            ``optim.weights_only`` skips 1-D parameters (biases, BatchNorm gamma/beta).

    Attributes:
        params: list of ``(key, param)``.
        state: dict key -> dict of arrays, filled at a parameter's first update.
        steps: number of ``step()`` calls so far.
    """

    #: names of the constructor's hyper-parameters that ``state_dict`` records (subclasses extend it)
    hyper_names = ("weight_decay",)
    #: subclasses that implement ``update_many`` with a multi-tensor kernel set ``self.fused``
    fused = False

    def __init__(self, params, lr, weight_decay=0.0, weight_decay_filter=None):
        self.params = named_parameters(params)
        self.lr = lr
        self.weight_decay = real_number(type(self).__name__, "weight_decay", weight_decay)
        if weight_decay_filter is not None and not callable(weight_decay_filter):
            raise TypeError(f"{type(self).__name__}: weight_decay_filter must be a function (key, param) -> bool, "
                            f"got {type(weight_decay_filter).__name__}")
        self.weight_decay_filter = weight_decay_filter
        self.state = {}
        self.steps = 0

    # -- learning rate -------------------------------------------------------------------------------------
    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = self._checked_lr(value)

    def _checked_lr(self, value):
        value = real_number(type(self).__name__, "learning rate", value)
        if not value >= 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be a number >= 0, got {value}")
        return value

    # -- what subclasses provide ---------------------------------------------------------------------------
    def check_hyperparameters(self):
        """Raise ValueError for hyper-parameters out of range (called by the constructor and after loading)."""
        real_number(type(self).__name__, "weight_decay", self.weight_decay)
        if not self.weight_decay >= 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {self.weight_decay}")

    def init_state(self, data):
        """Fresh state for a parameter whose array is ``data``: a dict of arrays like ``data``."""
        return {}

    def update(self, data, grad, state, weight_decay):
        """Change ``data`` in place, given its gradient, its state (changed in place too) and its decay."""
        raise NotImplementedError

    def update_many(self, batch):
        """Update several GPU parameters at once: ``batch`` is a list of ``(data, grad, state, weight_decay)``.
        This default calls ``update`` for each; subclasses launch one multi-tensor kernel instead."""
        for data, grad, state, weight_decay in batch:
            self.update(data, grad, state, weight_decay)

    # -- the step ------------------------------------------------------------------------------------------
    def decay_of(self, key, param):
        """The weight-decay coefficient that applies to this parameter."""
        if self.weight_decay and (self.weight_decay_filter is None or self.weight_decay_filter(key, param)):
            return self.weight_decay
        return 0.0

    def state_of(self, key, data):
        """The state of parameter ``key`` (whose array is now ``data``), created at its first update and moved
        to ``data``'s device and dtype if the parameter was moved since."""
        state = self.state.get(key)
        if state is None:
            state = self.state[key] = self.init_state(data)
        elif state and any(type(a) is not type(data) or a.dtype != data.dtype for a in state.values()):
            state = self.state[key] = {name: follow(a, data) for name, a in state.items()}
        return state

    def step(self):
        """Update every parameter that has a gradient (``p.grad`` not None); others are skipped."""
        batch = []     # GPU parameters for the multi-tensor kernel
        fused = self.fused and kernels.current() == "fast"     # the multi-tensor kernels are the fast tier's
        for key, p in self.params:
            grad = p.grad
            if grad is None:
                continue
            data = p.data
            if grad.shape != data.shape:
                raise ValueError(f"{type(self).__name__}.step: parameter {key!r} has shape {data.shape} "
                                 f"but its gradient has shape {grad.shape}")
            if is_gpu_array(grad) != is_gpu_array(data):
                raise ValueError(f"{type(self).__name__}.step: parameter {key!r} is on {device_of(data)} but its "
                                 f"gradient is on {device_of(grad)}")
            state = self.state_of(key, data)
            if fused and is_gpu_array(data) and data.flags.c_contiguous:
                batch.append((data, grad, state, self.decay_of(key, p)))
            else:
                self.update(data, grad, state, self.decay_of(key, p))
        if batch:
            self.update_many(batch)
        self.steps += 1

    def zero_grad(self):
        """Forget the gradients (set ``p.grad = None``), so the next backward starts from nothing."""
        for _, p in self.params:
            p.grad = None

    # -- checkpoints ---------------------------------------------------------------------------------------
    def hyperparameters(self):
        return {name: getattr(self, name) for name in self.hyper_names}

    def state_dict(self):
        """A plain dict: ``{"type", "lr", "steps", "hyper": {name: scalar}, "state": {key: {name: ndarray}}}``.

        Arrays are NumPy copies (taken off the GPU if needed), scalars are Python numbers, so a checkpoint
        writer can flatten it into an ``.npz``.
        """
        return {
            "type": type(self).__name__,
            "lr": self.lr,
            "steps": self.steps,
            "hyper": self.hyperparameters(),
            "state": {key: {name: to_numpy(a).copy() for name, a in st.items()} for key, st in self.state.items()},
        }

    def load_state_dict(self, d):
        """Restore what ``state_dict`` returned. The checkpoint's hyper-parameters and lr replace the current ones.

        State keys may be the original keys or their ``str()`` (a round trip through ``.npz`` turns index 3
        into "3"). Arrays are copied onto each parameter's device and dtype; shapes must match. All or nothing:
        ``check_state_dict`` checks the whole dict first, then ``apply_state_dict`` takes it.
        """
        self.apply_state_dict(self.check_state_dict(d))

    def check_state_dict(self, d):
        """The first half of ``load_state_dict``: check ``d`` and return what to take, changing nothing.

        Raises TypeError, KeyError or ValueError naming the field: a part that is missing or of the wrong type
        (a list where a dict of arrays belongs), state for an unknown parameter, an array of another shape or
        kind of dtype, a learning rate, step count or hyper-parameter out of range.
        """
        name = type(self).__name__
        owner = f"{name}.load_state_dict"
        of_type(owner, "the optimizer state", d, dict)
        if d.get("type", name) != name:
            raise ValueError(f"{owner}: the checkpoint is for a {shorten(d['type'])} optimizer")
        for field in ("lr", "steps", "state"):
            if field not in d:
                raise KeyError(f"{owner}: the optimizer state lacks {field!r}")
        of_type(owner, "'state'", d["state"], dict)
        hyper = of_type(owner, "'hyper'", d.get("hyper", {}), dict)
        by_str = {str(k): (k, p) for k, p in self.params}
        new_state = {}
        for skey, st in d["state"].items():
            if str(skey) not in by_str:
                raise KeyError(f"{owner}: the checkpoint has state for parameter {shorten(skey)}, "
                               f"which this optimizer does not hold")
            key, p = by_str[str(skey)]
            of_type(owner, f"the state of parameter {key!r}", st, dict)
            expected = self.init_state(p.data)
            if set(st) != set(expected):
                raise KeyError(f"{owner}: parameter {key!r} has state {shorten(sorted(map(str, st)))}, "
                               f"expected {sorted(expected)}")
            xp = get_array_module(p.data)
            for sname, a in st.items():
                a = fitted_array(f"{owner}: state {sname!r} of parameter {key!r}", a, p.data.shape, p.data.dtype)
                expected[sname][...] = xp.asarray(a)      # fresh arrays: nothing of the optimizer's changes
            new_state[key] = expected
        lr = self._checked_lr(d["lr"])
        steps = d["steps"]
        if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"{owner}: steps must be an int >= 0, got {shorten(steps, 40)}")
        new_hyper = {}
        for hname, value in hyper.items():
            if hname not in self.hyper_names:
                raise KeyError(f"{owner}: unknown hyper-parameter {shorten(hname)}")
            current = getattr(self, hname)
            if isinstance(current, bool):
                new_hyper[hname] = flag(name, hname, value)
            elif isinstance(current, float):
                new_hyper[hname] = real_number(name, hname, value)
            else:
                new_hyper[hname] = value
        probe = copy.copy(self)              # the hyper-parameters are checked together, on a copy
        for hname, value in new_hyper.items():
            setattr(probe, hname, value)
        probe.check_hyperparameters()
        return {"lr": lr, "steps": int(steps), "hyper": new_hyper, "state": new_state}

    def apply_state_dict(self, checked):
        """The second half of ``load_state_dict``: take what ``check_state_dict`` returned (cannot fail)."""
        for hname, value in checked["hyper"].items():
            setattr(self, hname, value)
        self._lr = checked["lr"]
        self.steps = checked["steps"]
        self.state = checked["state"]

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr!r}, {hyper})"
