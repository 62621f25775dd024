"""autograd: the reverse-mode core of minception.

``Tensor`` holds an array and its gradient; ``Function`` is one differentiable op; ``backward`` walks the graph
of Functions in reverse topological order. No layers and no kernels live here (those are in ``ops`` and
``minception``); the array library is NumPy, or CuPy for data on the GPU.
"""
__minception__ = True    # marks minception's own top-level "autograd" (checked by minception/__init__.py)
from .anomaly import AnomalyError, detect_anomaly
from .backend import get_array_module, gpu_available
from .config import enable_grad, is_grad_enabled, name_scope, no_grad, set_grad_enabled
from .engine import BackwardStep, backward, backward_steps
from .function import Function
from .gradcheck import GradcheckError, gradcheck
from .hooks import FunctionHook, RemovableHandle
from .tensor import Tensor, as_tensor
# Inspection: the step-by-step trace, function hooks, graph drawing. ``autograd.trace`` is the function
# (``from autograd.trace import Trace`` still reaches the module).
from . import graph
from .function_hooks import MemoryHook, PrintHook, TimerHook
from .graph import to_dot
from .trace import GradStats, Trace, grad_stats, trace

__all__ = [
    "Tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "name_scope",
    "backward", "backward_steps", "BackwardStep", "gradcheck", "GradcheckError", "detect_anomaly",
    "AnomalyError", "FunctionHook", "RemovableHandle", "get_array_module", "gpu_available", "as_tensor",
    "trace", "Trace", "GradStats", "grad_stats", "PrintHook", "TimerHook", "MemoryHook", "graph", "to_dot",
]
