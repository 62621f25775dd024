"""``Tensor``: an array (NumPy or CuPy) plus what backpropagation needs to know about it.

A tensor made by the user is a *leaf*; a tensor returned by a Function remembers that Function as its
``creator`` (and which of its outputs it is). ``backward()`` walks from a tensor's creator back to the leaves and
leaves the gradient of every leaf that ``requires_grad`` in its ``.grad``.
"""
import weakref

import numpy as np

from . import backend
from .engine import backward
from .hooks import RemovableHandle

_ops = None


def _lazy_ops():
    """The ``ops`` package, imported on first use: operators (+, *, @, ...) are ops, and ops import autograd."""
    global _ops
    if _ops is None:
        import ops
        _ops = ops
    return _ops


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
        extra = f", requires_grad=True" if self.requires_grad else ""
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
        """A tensor on ``device`` ('cpu' or 'cuda'); differentiable (the gradient is moved back)."""
        backend.check_device(device)
        if device == self.device:
            return self
        return _lazy_ops().to_device(self, device)

    def astype(self, dtype):
        return _lazy_ops().astype(self, dtype)

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

    # ---------------------------------------------------------------- operators (defined in ops)
    def __add__(self, other): return _lazy_ops().add(self, other)
    def __radd__(self, other): return _lazy_ops().add(other, self)
    def __sub__(self, other): return _lazy_ops().sub(self, other)
    def __rsub__(self, other): return _lazy_ops().sub(other, self)
    def __mul__(self, other): return _lazy_ops().mul(self, other)
    def __rmul__(self, other): return _lazy_ops().mul(other, self)
    def __truediv__(self, other): return _lazy_ops().div(self, other)
    def __rtruediv__(self, other): return _lazy_ops().div(other, self)
    def __pow__(self, exponent): return _lazy_ops().pow(self, exponent)
    def __neg__(self): return _lazy_ops().neg(self)
    def __matmul__(self, other): return _lazy_ops().matmul(self, other)
    def __rmatmul__(self, other): return _lazy_ops().matmul(other, self)
    def __getitem__(self, index): return _lazy_ops().getitem(self, index)

    def sum(self, axis=None, keepdims=False): return _lazy_ops().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _lazy_ops().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _lazy_ops().max(self, axis, keepdims)
    def exp(self): return _lazy_ops().exp(self)
    def log(self): return _lazy_ops().log(self)
    def sqrt(self): return _lazy_ops().sqrt(self)
    def relu(self): return _lazy_ops().relu(self)
    def flatten(self, start_axis=1): return _lazy_ops().flatten(self, start_axis)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _lazy_ops().reshape(self, tuple(shape))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _lazy_ops().transpose(self, tuple(axes) if axes else None)

    @property
    def T(self):
        return self.transpose()

    __hash__ = object.__hash__   # tensors are graph objects: hash by identity (== is not overloaded)


def as_tensor(value):
    """Wrap an array or number as a constant (non-differentiable) tensor; tensors pass through."""
    return value if isinstance(value, Tensor) else Tensor(value)
