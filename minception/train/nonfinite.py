"""NaN and infinity: the error that stops a run, and the check that keeps them out of checkpoints.

A NaN never fixes itself: once a weight is NaN every later step is NaN too. So the run stops at the first sign
(a non-finite loss or gradient norm before the optimizer step, a non-finite test loss, a non-finite array about
to be saved), writes nothing, and names the last checkpoint it did write; every checkpoint it wrote passed
``non_finite_arrays``, so that one is good.
"""
import numpy as np

from autograd.backend import get_array_module


class NonFiniteLossError(FloatingPointError):
    """The loss, the gradient norm, the test loss or a saved array became NaN or infinite.

    Attributes (None where not known): ``what`` (e.g. "loss", "gradient norm", "test loss", "parameters"),
    ``value`` (the offending number, or the names of the offending arrays), ``step`` (1-based number of the step
    that failed, or the number of steps done), ``epoch`` and ``batch`` (1-based), ``checkpoint`` (path of the
    last good checkpoint).
    """

    def __init__(self, message, what=None, value=None, step=None, epoch=None, batch=None, checkpoint=None):
        super().__init__(message)
        self.what, self.value = what, value
        self.step, self.epoch, self.batch, self.checkpoint = step, epoch, batch, checkpoint


def non_finite_arrays(named_arrays):
    """Names of the floating-point arrays in ``named_arrays`` (``(name, array)`` pairs, NumPy or CuPy) that hold
    a NaN or an infinity."""
    bad = []
    for name, a in named_arrays:
        if a is not None and a.dtype.kind == "f" and not bool(get_array_module(a).isfinite(a).all()):
            bad.append(name)
    return bad


def flatten_arrays(tree, prefix=""):
    """``(path, array)`` for every NumPy array in a nested dict/list (e.g. an optimizer's ``state_dict()``)."""
    if isinstance(tree, dict):
        return [pair for k, v in tree.items() for pair in flatten_arrays(v, f"{prefix}{k}.")]
    if isinstance(tree, (list, tuple)):
        return [pair for i, v in enumerate(tree) for pair in flatten_arrays(v, f"{prefix}{i}.")]
    if isinstance(tree, np.ndarray):
        return [(prefix[:-1], tree)]
    return []
