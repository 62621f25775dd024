"""Exponential moving average of the parameters, evaluated in place of the raw weights (the paper's evaluation).

Usage::

    ema = optim.EMA(model.named_parameters(), decay=0.9999)
    for x, y in loader:
        ...; opt.step(); ema.update()
    with ema.average_parameters():      # the model now holds the averages
        evaluate(model)
    # back to the raw weights, bit for bit
"""
import contextlib
import functools

import numpy as np

from autograd.backend import get_array_module, to_numpy

from .checks import flag, real_number
from .optimizer import array_of, named_parameters


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
        fused: on the GPU, do each shadow's update in one CuPy elementwise kernel (same formula).

    Attributes:
        shadow: dict key -> array of averages (shape, dtype and device of the parameter).
        num_updates: number of ``update()`` calls so far.

    Shape:
        each shadow has its parameter's shape.
    """

    def __init__(self, params, decay=0.9999, use_num_updates=True, fused=True):
        decay = real_number("EMA", "decay", decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1], got {decay}")
        self.params = named_parameters(params, need_grad=False)
        self.decay = decay
        self.use_num_updates = flag("EMA", "use_num_updates", use_num_updates)
        self.fused = flag("EMA", "fused", fused)
        self.num_updates = 0
        self.shadow = {key: array_of(p).copy() for key, p in self.params}
        self._backup = None    # the raw weights while the averages are swapped in

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
        for key, p in self.params:
            avg, value = self.shadow[key], array_of(p)
            if self.fused and get_array_module(avg).__name__ == "cupy":
                _ema_cupy_kernel()(value, avg.dtype.type(1.0 - d), avg)
            else:
                avg -= (1.0 - d) * (avg - value)
        self.num_updates += 1

    # -- evaluating with the averages ----------------------------------------------------------------------
    def swap_in(self):
        """Copy the averages into the parameters (in place), keeping the raw weights aside for ``swap_out``."""
        if self._backup is not None:
            raise RuntimeError("EMA.swap_in: the averages are already swapped in")
        backup = {}
        for key, p in self.params:
            data = array_of(p)
            backup[key] = data.copy()
            get_array_module(data).copyto(data, self.shadow[key])
        self._backup = backup

    def swap_out(self):
        """Put the raw weights back exactly as they were before ``swap_in``."""
        if self._backup is None:
            raise RuntimeError("EMA.swap_out: nothing to swap out (swap_in was not called)")
        for key, p in self.params:
            data = array_of(p)
            get_array_module(data).copyto(data, self._backup[key])
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
        for key, p in self.params:
            data = array_of(p)
            get_array_module(data).copyto(data, self.shadow[key])

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
        """Restore ``state_dict()`` output; keys may be given as ``str()`` (after an ``.npz`` round trip)."""
        if self._backup is not None:
            raise RuntimeError("EMA.load_state_dict: the averages are swapped in; call swap_out() first")
        given = {str(k): v for k, v in d["shadow"].items()}
        missing = [k for k, _ in self.params if str(k) not in given]
        extra = sorted(set(given) - {str(k) for k, _ in self.params})
        if missing or extra:
            raise KeyError(f"EMA.load_state_dict: parameters missing from the checkpoint {missing}, "
                           f"unknown in the checkpoint {extra}")
        decay = real_number("EMA.load_state_dict", "decay", d["decay"])
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA.load_state_dict: decay must be in [0, 1], got {decay}")
        use_num_updates = flag("EMA.load_state_dict", "use_num_updates", d["use_num_updates"])
        num_updates = d["num_updates"]
        if isinstance(num_updates, bool) or not isinstance(num_updates, (int, np.integer)) or num_updates < 0:
            raise ValueError(f"EMA.load_state_dict: num_updates must be an int >= 0, got {num_updates!r:.40}")
        arrays = {}
        for key, p in self.params:                 # every shadow is checked before any is copied
            a = np.asarray(to_numpy(given[str(key)]))
            if a.shape != self.shadow[key].shape:
                raise ValueError(f"EMA.load_state_dict: shadow of {key!r} has shape {a.shape}, "
                                 f"the parameter has shape {self.shadow[key].shape}")
            arrays[key] = a
        for key, a in arrays.items():
            avg = self.shadow[key]
            avg[...] = get_array_module(avg).asarray(a)
        self.decay, self.use_num_updates, self.num_updates = decay, use_num_updates, int(num_updates)

    def __repr__(self):
        return (f"EMA({len(self.params)} parameters, decay={self.decay}, use_num_updates={self.use_num_updates}, "
                f"num_updates={self.num_updates})")


@functools.lru_cache(maxsize=None)
def _ema_cupy_kernel():
    """``avg -= (1 - d) * (avg - p)`` in one CuPy ElementwiseKernel (built once, at first GPU use)."""
    import cupy

    return cupy.ElementwiseKernel("T p, T one_minus_d", "T avg", "avg -= one_minus_d * (avg - p)",
                                  "minception_ema_update")
