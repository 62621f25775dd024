"""autograd: the reverse-mode core of minception, and ``gradcheck``.

The core, read in this order (about 1,100 lines with gradcheck.py):

1. ``tensor.py``: ``Tensor`` holds an array, its gradient and the Function that made it;
2. ``function.py``: ``Function`` is one differentiable op and, once called, one node of the graph;
3. ``engine.py``: ``backward`` walks the graph of Functions in reverse topological order;
4. ``config.py``: grad mode and name scopes decide what an op records;
5. ``hooks.py``: the one hook point through which inspection watches the core;
6. ``backend.py``: which array library holds the data (NumPy, or CuPy on the GPU);
7. ``gradcheck.py``: analytic gradients against finite differences.

The core imports nothing above it: no layers, no kernels. Even ``Tensor``'s operators (``+``, ``@``, ``.sum()``,
...) are ops, so the ``ops`` package installs them on ``Tensor`` when it is imported (``ops/tensor_methods.py``);
before that they raise an error saying so.

Inspection lives in ``autograd/inspect/`` and is re-exported here: the step-by-step trace, graph drawing, anomaly
mode and the printing, timing and memory hooks (see docs/inspection.md). It imports the core; the core imports
none of it.
"""
__minception__ = True    # marks minception's own top-level "autograd" (checked by minception/__init__.py)
from .backend import get_array_module, gpu_available
from .config import enable_grad, is_grad_enabled, name_scope, no_grad, set_grad_enabled
from .engine import backward
from .function import Function
from .gradcheck import GradcheckError, gradcheck
from .hooks import FunctionHook, RemovableHandle
from .tensor import Tensor, as_tensor
# Inspection (autograd/inspect/). ``autograd.trace`` is the function, ``autograd.graph`` the module.
from .inspect import graph
from .inspect.anomaly import AnomalyError, detect_anomaly
from .inspect.graph import to_dot
from .inspect.memory_hook import MemoryHook
from .inspect.print_hook import PrintHook
from .inspect.timer_hook import TimerHook
from .inspect.trace import BackwardStep, GradStats, Trace, backward_steps, grad_stats, trace

__all__ = [
    "Tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "name_scope",
    "backward", "backward_steps", "BackwardStep", "gradcheck", "GradcheckError", "detect_anomaly",
    "AnomalyError", "FunctionHook", "RemovableHandle", "get_array_module", "gpu_available", "as_tensor",
    "trace", "Trace", "GradStats", "grad_stats", "PrintHook", "TimerHook", "MemoryHook", "graph", "to_dot",
]
