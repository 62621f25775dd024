"""``Tensor``: an array (NumPy or CuPy) plus what backpropagation needs to know about it.

A tensor made by the user is a *leaf*; a tensor returned by a Function remembers that Function as its
``creator`` (and which of its outputs it is). ``backward()`` walks from a tensor's creator back to the leaves and
leaves the gradient of every leaf that ``requires_grad`` in its ``.grad``.

The operators (``a + b``, ``a @ b``, ``t.sum()``, ``t.reshape(...)``, ...) are differentiable functions, and those
live in ``ops``, above the core. So the core does not define them: ``import ops`` installs them on ``Tensor``
(``ops/tensor_methods.py``), as DeZero's ``setup_variable`` does. Until then each one raises a ``TypeError``
that says to import ``ops``; ``OP_METHODS`` lists them.
"""
import weakref

import numpy as np

from . import backend
from .engine import backward
from .hooks import RemovableHandle


def _as_array(value, dtype=None):
    if isinstance(value, np.ndarray) or backend.is_gpu_array(value):
        return value if dtype is None else value.astype(dtype, copy=False)
    array = np.asarray(value, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(value, np.generic):
        array = array.astype(np.float32)     # Python floats and lists default to float32 (docs/design.md)
    return array


class Tensor:
    """A value in the computation.

    Args:
        data: array-like. NumPy and CuPy arrays are kept as they are (same dtype, no copy); Python numbers
            and lists become float32 (integers stay integers).
        requires_grad: leaves that need a gradient (parameters, inputs under study). Only floating-point
            tensors can require gradients.
        name: optional label used by graph drawings and traces.
    """

    __array_priority__ = 1000   # make `ndarray * Tensor` call Tensor.__rmul__

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        self._data = _as_array(data, dtype)
        self.grad = None
        self.creator = None          # the Function that produced this tensor (None for leaves)
        self.output_index = 0        # which output of creator this is
        self.name = name
        self._hooks = []             # tensor hooks of a leaf (non-leaf hooks live on the creator)
        self._retains_grad = False
        self.requires_grad = requires_grad

    # ---------------------------------------------------------------- properties
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        value = _as_array(value)
        if self.requires_grad and value.dtype.kind not in "fc":
            raise TypeError(f"cannot assign an {value.dtype} array to a tensor that requires grad")
        self._data = value

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self._data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self._data.dtype} "
                            f"(shape {self._data.shape}); convert with .astype('float32') first")
        if not flag and self.creator is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach()")
        self._requires_grad = bool(flag)

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    device = property(lambda self: backend.device_of(self._data))
    is_leaf = property(lambda self: self.creator is None)
    retains_grad = property(lambda self: self._retains_grad)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self._data), precision=4, threshold=20, prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        extra += f", creator={self.creator.name}" if self.creator is not None else ""
        extra += ", device='cuda'" if self.device == "cuda" else ""
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    # ---------------------------------------------------------------- conversion
    def numpy(self):
        """The values as a NumPy array (a copy from the GPU; the array itself on the CPU)."""
        return backend.to_numpy(self._data)

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self._data.reshape(()).item()

    def detach(self):
        """A new leaf sharing the same array, cut from the graph."""
        return Tensor(self._data, requires_grad=False, name=self.name)

    def to(self, device):
        """A tensor on ``device`` ('cpu' or 'cuda'): ``self`` when already there; otherwise a differentiable copy
        (the gradient is moved back), which is an op: ``import ops`` replaces this method with one that makes it."""
        backend.check_device(device, require=True)      # no GPU: say so first
        if device == self.device:
            return self
        raise _ops_not_imported(f"Tensor.to({device!r})")

    # ---------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph=False):
        """Compute the gradient of this tensor with respect to every leaf that requires it.

        Args:
            grad: the gradient of some scalar with respect to this tensor (same shape). May be omitted only
                for tensors with a single element, where it defaults to 1.
            retain_graph: keep what the ops saved so that backward can run through the graph again.
        """
        backward([self], [grad], retain_graph=retain_graph)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep theirs)."""
        if self.creator is None or self._retains_grad:
            return
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True
        # A weak reference: the graph must not keep the tensor (and its array) alive.
        self.creator.__dict__.setdefault("retained_outputs", {})[self.output_index] = weakref.ref(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None result replaces the gradient.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self.creator is None:
            container = self._hooks
        else:
            container = self.creator.__dict__.setdefault("output_hooks", {}).setdefault(self.output_index, [])
        container.append(hook)
        return RemovableHandle(container, hook)

    __hash__ = object.__hash__   # tensors are graph objects: hash by identity (== is not overloaded)


# ---------------------------------------------------------------------------------------------- operators
#: what ``import ops`` installs on ``Tensor``: method name -> how an error names its use ({} is the other operand)
OP_METHODS = {
    "__add__": "Tensor + {}", "__radd__": "{} + Tensor", "__sub__": "Tensor - {}", "__rsub__": "{} - Tensor",
    "__mul__": "Tensor * {}", "__rmul__": "{} * Tensor", "__truediv__": "Tensor / {}", "__rtruediv__": "{} / Tensor",
    "__pow__": "Tensor ** {}", "__neg__": "-Tensor", "__matmul__": "Tensor @ {}", "__rmatmul__": "{} @ Tensor",
    "__getitem__": "Tensor[index]", "sum": "Tensor.sum()", "mean": "Tensor.mean()", "max": "Tensor.max()",
    "exp": "Tensor.exp()", "log": "Tensor.log()", "sqrt": "Tensor.sqrt()", "relu": "Tensor.relu()",
    "flatten": "Tensor.flatten()", "reshape": "Tensor.reshape()", "transpose": "Tensor.transpose()",
    "T": "Tensor.T", "to": "Tensor.to(device)", "astype": "Tensor.astype()",
}


def _ops_not_imported(use):
    return TypeError(f"{use}: operators are installed by the ops package; import ops (or minception) first")


def _placeholder(use):
    """A stand-in for an op-backed method until ``import ops`` installs the real one: it raises, naming the use."""
    def method(self, *args, **kwargs):
        other = type(args[0]).__name__ if args else ""
        raise _ops_not_imported(use.format(other))
    return method


for _name, _use in OP_METHODS.items():
    if _name == "T":
        Tensor.T = property(_placeholder(_use))
    elif _name != "to":                       # the core's own ``to`` handles the same device without ops
        setattr(Tensor, _name, _placeholder(_use))
del _name, _use


def as_tensor(value):
    """Wrap an array or number as a constant (non-differentiable) tensor; tensors pass through."""
    return value if isinstance(value, Tensor) else Tensor(value)
