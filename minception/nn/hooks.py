"""Module hooks: run user code before/after a module's forward, and when the gradients of its inputs are known.

``Module.__call__`` takes this slower path only while a module has hooks registered; without hooks a call is
just the name scope plus ``forward``.

How the full backward hook works. The gradient arriving at the module's input tensor ``x`` is not what we want
if ``x`` is also used elsewhere (the shortcut of a residual block): the engine sums every consumer's gradient.
So, while a backward hook is registered, the call routes tensors through two identity Functions:

    x ──> ModuleHookInputs ──> x' ──> forward(x') ──> y' ──> ModuleHookOutputs ──> y

* ``ModuleHookOutputs.backward`` receives the gradient of every output at once (the module's ``grad_output``,
  the total from all consumers of ``y``) and stores it.
* ``ModuleHookInputs.backward`` runs after every op of the module's forward has run its backward (it produced
  their inputs), and receives exactly the gradient that flowed through this module into ``x'``: the module's
  ``grad_input``. There the hooks are called with both; a hook may return a replacement ``grad_input``.

If no positional input requires a gradient (the first layer of a network, fed with plain data), the hooks are
called from ``ModuleHookOutputs.backward`` with ``grad_input`` all None, before the module's parameter gradients
are computed. Inputs that the output does not depend on receive zeros, not None. Keyword arguments are passed
to ``forward`` unchanged and are not hooked.
"""
from autograd import Function, Tensor, is_grad_enabled, name_scope
from autograd.inspect.anomaly import register_library

register_library(__name__, hide=True)     # the hooked module call is plumbing in anomaly reports: never shown


def call_with_hooks(module, args, kwargs):
    """``Module.__call__`` when the module has hooks: name scope, pre-hooks, forward, forward hooks, backward hooks."""
    with name_scope(module._scope_name):
        for hook in list(module._forward_pre_hooks):
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        capture = None
        hook_args = args
        if module._backward_hooks and is_grad_enabled():
            capture = _BackwardCapture(module, list(module._backward_hooks))
            args = capture.wrap_inputs(args)
        output = module.forward(*args, **kwargs)
        for hook in list(module._forward_hooks):
            result = hook(module, hook_args, output)
            if result is not None:
                output = result
        if capture is not None:
            output = capture.wrap_outputs(output)
        return output


class _BackwardCapture:
    """The state of one hooked call: which inputs/outputs were routed through the identities, and grad_output."""

    def __init__(self, module, hooks):
        self.module, self.hooks = module, hooks
        self.num_tensor_inputs = 0
        self.hooked_inputs = []       # indices (among the tensor inputs) that went through ModuleHookInputs
        self.grad_output = None

    def wrap_inputs(self, args):
        tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.num_tensor_inputs = len(tensor_positions)
        self.hooked_inputs = [k for k, i in enumerate(tensor_positions) if args[i].requires_grad]
        if not self.hooked_inputs:
            return args
        wrapped = ModuleHookInputs(self)(*[args[tensor_positions[k]] for k in self.hooked_inputs])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        args = list(args)
        for k, w in zip(self.hooked_inputs, wrapped):
            args[tensor_positions[k]] = w
        return tuple(args)

    def wrap_outputs(self, output):
        single = isinstance(output, Tensor)
        outputs = (output,) if single else output
        if not isinstance(outputs, (tuple, list)) or not all(isinstance(o, Tensor) for o in outputs):
            raise TypeError(f"{type(self.module).__name__}: a full backward hook needs forward() to return a Tensor "
                            f"or a tuple of Tensors, got {type(output).__name__}")
        self.num_outputs = len(outputs)
        self.hooked_outputs = [i for i, o in enumerate(outputs) if o.requires_grad]
        if not self.hooked_outputs:
            return output
        wrapped = ModuleHookOutputs(self)(*[outputs[i] for i in self.hooked_outputs])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        outputs = list(outputs)
        for i, w in zip(self.hooked_outputs, wrapped):
            outputs[i] = w
        return outputs[0] if single else type(output)(outputs)

    def outputs_backward(self, gys):
        grad_output = [None] * self.num_outputs
        for i, g in zip(self.hooked_outputs, gys):
            grad_output[i] = g
        self.grad_output = tuple(grad_output)
        if not self.hooked_inputs:                # no input gradient will ever arrive: call the hooks now
            self._call_hooks((None,) * self.num_tensor_inputs)

    def inputs_backward(self, gys):
        grad_input = [None] * self.num_tensor_inputs
        for k, g in zip(self.hooked_inputs, gys):
            grad_input[k] = g
        grad_input = self._call_hooks(tuple(grad_input))
        return tuple(grad_input[k] for k in self.hooked_inputs)

    def _call_hooks(self, grad_input):
        grad_output = self.grad_output if self.grad_output is not None else ()
        for hook in self.hooks:
            result = hook(self.module, grad_input, grad_output)
            if result is not None:
                result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
                if len(result) != len(grad_input):
                    raise ValueError(f"backward hook of {type(self.module).__name__} returned {len(result)} "
                                     f"gradients for {len(grad_input)} inputs")
                grad_input = result
        return grad_input


class ModuleHookInputs(Function):
    """Identity on the module's inputs; its backward calls the module's full backward hooks."""

    def __init__(self, capture):
        self.capture = capture

    def forward(self, *xs):
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gys):
        gxs = self.capture.inputs_backward(gys)
        return gxs if len(gxs) > 1 else gxs[0]


class ModuleHookOutputs(Function):
    """Identity on the module's outputs; its backward records the module's ``grad_output``."""

    def __init__(self, capture):
        self.capture = capture

    def forward(self, *xs):
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gys):
        self.capture.outputs_backward(gys)
        return gys if len(gys) > 1 else gys[0]
