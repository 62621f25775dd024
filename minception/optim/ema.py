"""Exponential moving average of the parameters, evaluated in place of the raw weights (the paper's evaluation).

Usage::

    ema = optim.EMA(model.named_parameters(), decay=0.9999)
    for x, y in loader:
        ...; opt.step(); ema.update()
    with ema.average_parameters():      # the model now holds the averages
        evaluate(model)
    # back to the raw weights, bit for bit

Moving the model (``model.to("cuda")``, ``model.to(dtype=...)``) after the EMA was built: each shadow follows its
parameter's device and dtype at the next use. Buffers (BatchNorm running statistics) are plain arrays that
``Module.to`` *replaces*, so an EMA given them as arrays would go on averaging the old ones: pass ``module=model``
and the EMA looks each buffer up in the model by its name at every use; without it, an EMA whose buffers are on
another device than its parameters raises an error instead of silently averaging stale copies.
"""
import contextlib

import numpy as np

from autograd.backend import device_of, get_array_module, is_gpu_array, to_numpy
from ops import kernels
from ops.kernels import multi_tensor

from .checks import flag, of_type, real_number
from ..files.fit import fitted_array
from ..files.shorten import shorten
from .optimizer import array_of, follow, named_parameters


class EMA:
    """Shadow copies ``avg`` of the parameters, moved towards them at each ``update()``::

        d   = min(decay, (1 + n) / (10 + n))   if use_num_updates   (n = updates done before this one)
        d   = decay                            otherwise
        avg <- avg - (1 - d) * (avg - p)        i.e.  d * avg + (1 - d) * p

    This is TF's ``tf.train.ExponentialMovingAverage(decay, num_updates)``: the shadows start at the
    parameters' values when the EMA is created, and ``num_updates`` makes the effective decay small at first
    (0.1, 0.18, 0.25, ...) so that early averages are not stuck near the initial weights. TF-slim's training
    script passes the global step as ``num_updates``; ``update(step=...)`` does the same, otherwise the EMA
    counts its own updates.

    Args:
        params: Tensors, ``(name, Tensor)`` pairs or a dict; raw NumPy/CuPy arrays are accepted too (for
            buffers such as BatchNorm running statistics). Keys follow the optimizer's rule (name or index).
        decay: the decay (0.9999 in TF-slim's Inception training).
        use_num_updates: apply the ``(1 + n) / (10 + n)`` cap.
        fused: on the GPU in the fast kernel tier, update all shadows of a dtype in one multi-tensor launch.
        module: the ``nn.Module`` the buffers (raw arrays in ``params``) belong to; each is then looked up in it
            by its key (a dotted buffer name, as ``module.named_buffers()`` gives) at every use, so the EMA keeps
            following it when ``module.to(...)`` replaces it.

    Attributes:
        shadow: dict key -> array of averages (shape, dtype and device of the parameter).
        num_updates: number of ``update()`` calls so far.

    Shape:
        each shadow has its parameter's shape.
    """

    def __init__(self, params, decay=0.9999, use_num_updates=True, fused=True, module=None):
        decay = real_number("EMA", "decay", decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1], got {decay}")
        self.params = named_parameters(params, need_grad=False)
        self.decay = decay
        self.use_num_updates = flag("EMA", "use_num_updates", use_num_updates)
        self.fused = flag("EMA", "fused", fused)
        self.num_updates = 0
        self.shadow = {key: array_of(p).copy() for key, p in self.params}
        self._buffers = {} if module is None else self._find_buffers(module)   # key -> (submodule, name)
        self._backup = None    # the raw weights while the averages are swapped in

    def _find_buffers(self, module):
        """For each raw array of ``params``: the (submodule, buffer name) of ``module`` that holds it."""
        found = {}
        for key, p in self.params:
            if not (isinstance(p, np.ndarray) or is_gpu_array(p)):
                continue
            path, _, name = str(key).rpartition(".")
            try:
                owner = module.get_submodule(path)
            except AttributeError:
                owner = None
            if owner is None or owner._buffers.get(name) is not p:
                raise ValueError(f"EMA: {key!r} is not a buffer of the given module (pass the pairs of "
                                 "module.named_buffers(), unrenamed)")
            found[key] = (owner, name)
        return found

    def _current(self):
        """``(key, array, shadow)`` for every averaged value: the array as it is now (buffers looked up in the
        module), the shadow moved to that array's device and dtype if the model was moved."""
        out = []
        for key, p in self.params:
            if key in self._buffers:
                owner, name = self._buffers[key]
                value = owner._buffers[name]
            else:
                value = array_of(p)
            avg = self.shadow[key]
            if type(avg) is not type(value) or avg.dtype != value.dtype:
                avg = self.shadow[key] = follow(avg, value)
            out.append((key, value, avg))
        self._check_devices(out)
        return out

    def _check_devices(self, current):
        """Raw arrays not tracked through a module must sit on the parameters' device (else they are stale)."""
        tensors = {device_of(value) for (key, p), (_, value, _) in zip(self.params, current)
                   if key not in self._buffers and not (isinstance(p, np.ndarray) or is_gpu_array(p))}
        if len(tensors) != 1:
            return
        for (key, p), (_, value, _) in zip(self.params, current):
            if key not in self._buffers and (isinstance(p, np.ndarray) or is_gpu_array(p)):
                if device_of(value) not in tensors:
                    raise RuntimeError(
                        f"EMA: buffer {key!r} is on {device_of(value)} but the parameters are on "
                        f"{tensors.pop()}: the model was moved after the EMA was built, and Module.to replaces "
                        "buffers, so this EMA holds stale copies. Build the EMA after model.to(...), or pass "
                        "module=model so that it follows the buffers.")

    def current_decay(self, step=None):
        """The decay the next ``update(step)`` will use."""
        n = self.num_updates if step is None else step
        if self.use_num_updates:
            return min(self.decay, (1.0 + n) / (10.0 + n))
        return self.decay

    def update(self, step=None):
        """Move every shadow towards its parameter. ``step``: use it as ``n`` (e.g. the optimizer's step count)."""
        if self._backup is not None:
            raise RuntimeError("EMA.update: the averages are swapped in; call swap_out() first")
        d = self.current_decay(step)
        on_gpu = []
        fused = self.fused and kernels.current() == "fast"     # the multi-tensor kernels are the fast tier's
        for key, value, avg in self._current():
            if (fused and is_gpu_array(avg) and avg.dtype in (np.float32, np.float64)
                    and avg.flags.c_contiguous and value.flags.c_contiguous):
                on_gpu.append((avg, value))
            else:
                avg -= (1.0 - d) * (avg - value)
        by_dtype = {}
        for row in on_gpu:
            by_dtype.setdefault(row[0].dtype, []).append(row)
        for dtype, rows in by_dtype.items():
            multi_tensor.EMA(rows, [0] * len(rows), (dtype.type(1.0 - d),))
        self.num_updates += 1

    # -- evaluating with the averages ----------------------------------------------------------------------
    def swap_in(self):
        """Copy the averages into the parameters (in place), keeping the raw weights aside for ``swap_out``."""
        if self._backup is not None:
            raise RuntimeError("EMA.swap_in: the averages are already swapped in")
        backup = {}
        for key, data, avg in self._current():
            backup[key] = data.copy()
            get_array_module(data).copyto(data, avg)
        self._backup = backup

    def swap_out(self):
        """Put the raw weights back exactly as they were before ``swap_in``."""
        if self._backup is None:
            raise RuntimeError("EMA.swap_out: nothing to swap out (swap_in was not called)")
        for key, data, _ in self._current():
            get_array_module(data).copyto(data, follow(self._backup[key], data))
        self._backup = None

    @property
    def swapped_in(self):
        return self._backup is not None

    @contextlib.contextmanager
    def average_parameters(self):
        """``with ema.average_parameters(): evaluate(model)`` — averages inside, raw weights restored after."""
        self.swap_in()
        try:
            yield self
        finally:
            self.swap_out()

    def copy_to(self):
        """Write the averages into the parameters for good (e.g. before exporting the final model)."""
        if self._backup is not None:
            raise RuntimeError("EMA.copy_to: the averages are swapped in; call swap_out() first")
        for _, data, avg in self._current():
            get_array_module(data).copyto(data, avg)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self):
        """``{"decay", "use_num_updates", "num_updates", "shadow": {key: numpy array}}``."""
        return {
            "decay": self.decay,
            "use_num_updates": self.use_num_updates,
            "num_updates": self.num_updates,
            "shadow": {key: to_numpy(a).copy() for key, a in self.shadow.items()},
        }

    def load_state_dict(self, d):
        """Restore ``state_dict()`` output; keys may be given as ``str()`` (after an ``.npz`` round trip).
        All or nothing: ``check_state_dict`` checks the whole dict, then ``apply_state_dict`` copies it in."""
        self.apply_state_dict(self.check_state_dict(d))

    def check_state_dict(self, d):
        """The first half of ``load_state_dict``: check ``d`` and return what to take, changing nothing.

        Raises RuntimeError while the averages are swapped in; TypeError, KeyError or ValueError naming the field
        for a part that is missing or of the wrong type (a list where the dict of shadows belongs), a missing or
        unknown shadow, a shadow of another shape or kind of dtype, a decay or count out of range.
        """
        owner = "EMA.load_state_dict"
        if self._backup is not None:
            raise RuntimeError(f"{owner}: the averages are swapped in; call swap_out() first")
        of_type(owner, "the EMA state", d, dict)
        for field in ("decay", "use_num_updates", "num_updates", "shadow"):
            if field not in d:
                raise KeyError(f"{owner}: the EMA state lacks {field!r}")
        given = {str(k): v for k, v in of_type(owner, "'shadow'", d["shadow"], dict).items()}
        missing = [k for k, _ in self.params if str(k) not in given]
        extra = sorted(set(given) - {str(k) for k, _ in self.params})
        if missing or extra:
            raise KeyError(f"{owner}: parameters missing from the checkpoint {shorten(missing, 200)}, "
                           f"unknown in the checkpoint {shorten(extra, 200)}")
        decay = real_number(owner, "decay", d["decay"])
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"{owner}: decay must be in [0, 1], got {decay}")
        use_num_updates = flag(owner, "use_num_updates", d["use_num_updates"])
        num_updates = d["num_updates"]
        if isinstance(num_updates, (bool, np.bool_)) or not isinstance(num_updates, (int, np.integer)) \
                or num_updates < 0:
            raise ValueError(f"{owner}: num_updates must be an int >= 0, got {shorten(num_updates, 40)}")
        arrays = {}
        for key, _ in self.params:                 # every shadow is checked before any is copied
            avg = self.shadow[key]
            arrays[key] = fitted_array(f"{owner}: shadow of {key!r}", given[str(key)], avg.shape, avg.dtype)
        return {"decay": decay, "use_num_updates": use_num_updates, "num_updates": int(num_updates),
                "shadow": arrays}

    def apply_state_dict(self, checked):
        """The second half of ``load_state_dict``: copy in what ``check_state_dict`` returned (cannot fail: each
        array has its shadow's shape and dtype)."""
        for key, a in checked["shadow"].items():
            avg = self.shadow[key]
            avg[...] = get_array_module(avg).asarray(a)
        self.decay, self.use_num_updates = checked["decay"], checked["use_num_updates"]
        self.num_updates = checked["num_updates"]

    def __repr__(self):
        return (f"EMA({len(self.params)} parameters, decay={self.decay}, use_num_updates={self.use_num_updates}, "
                f"num_updates={self.num_updates})")
