"""ops: the differentiable functions of minception and their kernels.

Each op is a ``Function`` subclass (forward and backward on raw arrays) plus a lowercase wrapper that checks
its arguments. Kernels live in ``ops.kernels``, one table of tiers: the readable reference of each family
(``ops/kernels/reference/``, its contract in the docstring), and the fast tier's Numba CPU and CuPy GPU versions.
``ops.kernels.use("reference")`` runs the readable kernels, ``"fast"`` (the default) Numba on the CPU and CuPy on
the GPU, and ``ops.kernels.register`` adds tiers of your own.
"""
__minception__ = True    # marks minception's own top-level "ops" (checked by minception/__init__.py)
from . import kernels
from .activation import relu
from .arithmetic import add, div, exp, log, mul, neg, pow, sqrt, sub
from .conv import conv2d
from .device import astype, to_device
from .dropout import dropout
from .linalg import linear, matmul
from .normalization import batch_norm
from .pooling import avg_pool2d, global_avg_pool2d, max_pool2d
from .residual import residual_add
from .loss import log_softmax, softmax, softmax_cross_entropy
from .reduction import max, mean, sum
from .shape import concat, flatten, getitem, reshape, split, transpose

from . import tensor_methods
from autograd.inspect.anomaly import register_library

tensor_methods.install()                  # Tensor's operators (+, @, .sum(), ...) are ops: put them on Tensor
register_library(__name__, hide=True)     # op wrappers are plumbing in anomaly reports: never shown
