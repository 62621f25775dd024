"""minception.inspect: look inside a network while it learns.

``gradient_flow`` measures the gradient that reaches each layer and each block of a model on one batch, as
tables and a PNG plot (``plot_gradient_flow``). The op-level tools live in ``autograd``: the step-by-step
backward trace (``autograd.trace``), function hooks (``autograd.PrintHook``, ``TimerHook``, ``MemoryHook``),
anomaly mode (``autograd.detect_anomaly``) and graph drawing (``autograd.graph``).
"""
from .gradient_flow import BlockFlow, GradientFlow, LayerFlow, gradient_flow, plot_gradient_flow

__all__ = ["gradient_flow", "plot_gradient_flow", "GradientFlow", "LayerFlow", "BlockFlow"]
