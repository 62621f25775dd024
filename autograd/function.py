"""``Function``: one differentiable operation and, once called, one node of the graph.

A subclass writes ``forward`` on raw arrays and ``backward`` on raw arrays::

    class Square(Function):
        def forward(self, x):
            self.x = x              # what backward needs is kept on self ...
            return x * x
        def backward(self, gy):
            return 2 * self.x * gy  # ... and freed once backward has used it

Calling an instance (``Square()(t)``) runs forward and, when gradients are being recorded, links the new
node into the graph. The graph is made of Functions only: each Function knows, for each of its inputs, where that
input's gradient must go (``next_edges``): to the Function that produced it, or to a leaf tensor. Tensors are plain
values; the graph does not keep their arrays alive, only what each Function saved on ``self`` does.
"""
import numpy as np

from . import config, hooks
from .backend import device_of, is_gpu_array, sum_to
from .tensor import Tensor, as_tensor


class Function:
    """Base class of every op (see the module docstring). A call that is recorded leaves on the instance:

    * ``next_edges``: per input, where its gradient goes: None, a leaf Tensor, or (producer Function, index);
    * ``needs_input_grad``: per input, whether it wants a gradient (``backward`` may skip the others);
    * ``input_shapes``, ``input_dtypes``, ``output_shapes``, ``output_dtypes``: to check what ``backward``
      returns, and to give unused outputs a zero gradient;
    * ``scope``: the module path it was created in (``config.name_scope``).
    """

    #: elementwise ops whose inputs may be broadcast set this; the engine then sums their input gradients
    #: back to the input shapes (``backend.sum_to``). For every other op a wrongly shaped gradient is an error.
    broadcasts = False

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *xs):
        raise NotImplementedError(f"{self.name}.forward is not implemented")

    def backward(self, *gys):
        raise NotImplementedError(f"{self.name}.backward is not implemented")

    # ---------------------------------------------------------------- calling: forward, then link
    def __call__(self, *inputs):
        if getattr(self, "_called", False):
            raise RuntimeError(f"{self.name}: a Function instance can be called only once; create a new one")
        self._called = True
        tensors = [x if isinstance(x, Tensor) else as_tensor(x) for x in inputs]
        _check_same_device(self.name, tensors)
        xs = tuple(t.data for t in tensors)
        record = config.state.grad_enabled and any(t.requires_grad for t in tensors)
        self.needs_input_grad = tuple(record and t.requires_grad for t in tensors)
        self.scope = config.state.scope

        active = hooks.active_function_hooks()
        for h in active:
            h.forward_pre(self, xs)
        before = set(self.__dict__)
        ys = self.forward(*xs)
        saved = set(self.__dict__) - before       # what forward kept on self for backward
        single = not isinstance(ys, tuple)
        ys = (ys,) if single else ys
        for h in active:
            h.forward_post(self, xs, ys)

        outputs = tuple(Tensor(y, requires_grad=record) for y in ys)
        if record:
            self._link(tensors, ys, outputs, saved)
        else:
            for n in saved:                       # nothing will call backward: free what forward kept
                delattr(self, n)
        return outputs[0] if single else outputs

    def _link(self, tensors, ys, outputs, saved):
        """Make this call a node of the graph: edges to where the input gradients go, shapes to check them."""
        self._saved_names = saved
        self.next_edges = tuple(_edge_to(t) for t in tensors)
        self.input_shapes = tuple(t.shape for t in tensors)
        self.input_dtypes = tuple(t.dtype for t in tensors)
        self.output_shapes = tuple(y.shape for y in ys)
        self.output_dtypes = tuple(y.dtype for y in ys)
        self.released = False
        for i, out in enumerate(outputs):
            out.creator, out.output_index = self, i

    # ---------------------------------------------------------------- used by the engine
    def run_backward(self, grad_outputs):
        """Call ``backward`` and return one checked gradient (or None) per input."""
        gxs = self.backward(*grad_outputs)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(self.next_edges):
            raise RuntimeError(f"{self.name}.backward returned {len(gxs)} gradients for "
                               f"{len(self.next_edges)} inputs")
        checked = []
        for i, gx in enumerate(gxs):
            if gx is None or self.next_edges[i] is None:
                checked.append(None)
                continue
            shape = self.input_shapes[i]
            if gx.shape != shape and self.broadcasts:
                gx = sum_to(gx, shape)
            if gx.shape != shape:
                raise RuntimeError(f"{self.name}.backward returned a gradient of shape {gx.shape} for input {i} "
                                   f"of shape {shape}")
            if gx.dtype != self.input_dtypes[i]:
                raise RuntimeError(f"{self.name}.backward returned a {gx.dtype} gradient for input {i} of dtype "
                                   f"{self.input_dtypes[i]}")
            checked.append(gx)
        return tuple(checked)

    def saved_arrays(self):
        """The arrays forward kept on ``self`` for backward: attributes holding an array or a tuple of arrays."""
        found = []
        for name in getattr(self, "_saved_names", ()):
            value = self.__dict__.get(name)
            for v in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(v, np.ndarray) or is_gpu_array(v):
                    found.append(v)
        return found

    def release(self):
        """Free what forward saved for backward (the engine calls this after backward unless retain_graph)."""
        for n in getattr(self, "_saved_names", ()):
            self.__dict__.pop(n, None)
        self.released = True

    def __repr__(self):
        scope = ".".join(getattr(self, "scope", ()))
        return f"<{self.name}{' in ' + scope if scope else ''}>"


def _edge_to(tensor):
    """Where the gradient of this input goes: None, the leaf tensor itself, or (producer Function, output index)."""
    if not tensor.requires_grad:
        return None
    if tensor.creator is None:
        return tensor
    return (tensor.creator, tensor.output_index)


def _check_same_device(op, tensors):
    devices = {device_of(t.data) for t in tensors}
    if len(devices) > 1:
        where = ", ".join(f"input {i}: {device_of(t.data)} {t.shape}" for i, t in enumerate(tensors))
        raise RuntimeError(f"{op}: inputs are on different devices ({where}); move them with .to(device) first")
