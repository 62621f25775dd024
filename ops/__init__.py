"""ops: the differentiable functions of minception and their kernels.

Each op is a ``Function`` subclass (forward and backward on raw arrays) plus a lowercase wrapper that checks
its arguments. Kernels live in ``ops.kernels``: a readable NumPy reference, a Numba CPU version and a CuPy GPU
version of each hot loop, in two tiers behind one switch: ``ops.kernels.use("reference")`` runs the readable
kernels, ``"fast"`` (the default) Numba on the CPU and CuPy on the GPU.
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

from autograd.anomaly import register_library

register_library(__name__, hide=True)     # op wrappers are plumbing in anomaly reports: never shown
