"""autograd: the reverse-mode core of minception.

The core, read in this order: ``Tensor`` (tensor.py) holds an array and its gradient; ``Function``
(function.py) is one differentiable op and one node of the graph; ``backward`` (engine.py) walks the graph of
Functions in reverse topological order; grad mode and name scopes (config.py) decide what an op records.
No layers and no kernels live here (those are in ``ops`` and ``minception``); the array library is NumPy, or
CuPy for data on the GPU.

Inspection sits on top of the core and plugs in through one hook point (hooks.py; see docs/inspection.md):
the step-by-step trace (trace.py), graph drawing (graph.py), anomaly mode (anomaly.py) and the printing,
timing and memory hooks (function_hooks.py). The core modules import none of them.
"""
__minception__ = True    # marks minception's own top-level "autograd" (checked by minception/__init__.py)
from .backend import get_array_module, gpu_available
from .config import enable_grad, is_grad_enabled, name_scope, no_grad, set_grad_enabled
from .engine import backward
from .function import Function
from .gradcheck import GradcheckError, gradcheck
from .hooks import FunctionHook, RemovableHandle
from .tensor import Tensor, as_tensor
# Inspection. ``autograd.trace`` is the function (``from autograd.trace import Trace`` still reaches the module).
from . import graph
from .anomaly import AnomalyError, detect_anomaly
from .function_hooks import MemoryHook, PrintHook, TimerHook
from .graph import to_dot
from .trace import BackwardStep, GradStats, Trace, backward_steps, grad_stats, trace

__all__ = [
    "Tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "name_scope",
    "backward", "backward_steps", "BackwardStep", "gradcheck", "GradcheckError", "detect_anomaly",
    "AnomalyError", "FunctionHook", "RemovableHandle", "get_array_module", "gpu_available", "as_tensor",
    "trace", "Trace", "GradStats", "grad_stats", "PrintHook", "TimerHook", "MemoryHook", "graph", "to_dot",
]
