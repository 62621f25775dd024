"""``Module``: the base class of every layer and network, and ``Parameter``: a tensor that a module trains.

A module is a tree. Assigning attributes builds it::

    class Block(nn.Module):
        def __init__(self):
            super().__init__()                      # must come first: it creates the registries
            self.conv = nn.Conv2d(3, 8, 3)          # a Module    -> submodule "conv"
            self.scale = nn.Parameter(np.ones(8))   # a Parameter -> parameter "scale"
            self.register_buffer("count", np.zeros((), np.int64))   # state that is saved but not trained

        def forward(self, x):
            return self.conv(x) * self.scale.reshape(1, 8, 1, 1)

Every registered object also stays a plain attribute (``self.conv`` is an ordinary ``__dict__`` lookup), so the
forward pass pays nothing for the registration. The registries (``_parameters``, ``_buffers``, ``_modules``,
insertion ordered) are what ``parameters()``, ``state_dict()``, ``train()`` and ``to()`` walk.

Calling a module (``block(x)``) runs ``forward`` inside ``autograd.name_scope(<the module's attribute name in its
parent>)``, so every Function created inside records its module path in ``fn.scope``, e.g.
``("mixed_5b", "branch_1", "1", "conv")``. The root module (the one nobody owns) pushes nothing. A module keeps the
name it was first registered under; a module shared by two parents reports that first name in both places.

Saving and loading (``state_dict``, ``load_state_dict``, ``save``, ``load``) live in ``state.py``; the hooks'
machinery in ``hooks.py``; ``summary`` in ``summary.py``. This file is the tree itself.
"""
import numpy as np

from autograd import Tensor, name_scope
from autograd.inspect.anomaly import register_library
from autograd.backend import check_device, to_device
from autograd.hooks import RemovableHandle

from . import hooks as _hooks
from . import state as _state

register_library(__name__, hide=True)     # Module.__call__ is plumbing in anomaly reports: never shown


class Parameter(Tensor):
    """A trainable tensor: a leaf with ``requires_grad=True`` that a Module registers when it is assigned.

    ``nn.Parameter(array)`` keeps the array's dtype (float32 by default for Python lists and numbers).
    Pass ``requires_grad=False`` for a frozen parameter (saved and counted, not trained).
    """

    is_parameter = True      # graph drawings count parameters inside a collapsed module instead of drawing them

    def __init__(self, data, requires_grad=True, name=None):
        super().__init__(data, requires_grad=requires_grad, name=name)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and networks; see the module docstring for how the tree is built.

    Attributes:
        training: True in training mode (dropout active, batch norm uses batch statistics and updates its
            running statistics); switch with ``train()`` / ``eval()``, which reach every submodule.
    """

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}         # name -> Parameter or None (e.g. bias=False), in registration order
        d["_buffers"] = {}            # name -> array (NumPy or CuPy), not trained, saved in the state dict
        d["_modules"] = {}            # name -> Module
        d["_non_persistent"] = set()  # buffer names left out of the state dict
        d["_scope_name"] = None       # attribute name in the first parent (None for a root)
        d["_forward_pre_hooks"] = []
        d["_forward_hooks"] = []
        d["_backward_hooks"] = []

    # ------------------------------------------------------------------ the forward pass
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def has_hooks(self):
        """True when a forward-pre, forward or backward hook is registered on this module (not its children)."""
        return bool(self._forward_pre_hooks or self._forward_hooks or self._backward_hooks)

    def __call__(self, *args, **kwargs):
        if self.has_hooks():
            return _hooks.call_with_hooks(self, args, kwargs)
        with name_scope(self._scope_name):      # the root module's name is None: it adds nothing
            return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() has run: call "
                                 f"super().__init__() first in {type(self).__name__}.__init__")
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
            if value._scope_name is None and value is not self:
                value.__dict__["_scope_name"] = name
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} of "
                                f"{type(self).__name__}: use nn.Parameter(...) or None")
            params[name] = None
        elif name in buffers:
            if isinstance(value, Tensor):
                value = value.data
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule {name!r} of "
                                f"{type(self).__name__}: use a Module or None")
            modules[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, array, persistent=True):
        """Register non-trainable state (BN running statistics): saved in the state dict, moved by ``to()``.

        ``array`` is a NumPy/CuPy array (or None); ops may update it in place. A buffer with
        ``persistent=False`` is moved by ``to()`` but left out of the state dict (a cached constant, say).
        """
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: {name!r} is already a parameter or submodule of "
                           f"{type(self).__name__}")
        if isinstance(array, Tensor):
            array = array.data
        self._buffers[name] = array
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, array)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``; the same as assigning the attribute."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be an nn.Parameter or None, got "
                            f"{type(param).__name__}")
        if param is None:
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            self._parameters[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name, module):
        """Register ``module`` under ``name`` (useful when the name is not an identifier, e.g. ``"0"``)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"add_module: module name must be a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        if module is None:
            self._modules[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    # ------------------------------------------------------------------ walking the tree
    def named_children(self):
        """(name, module) of the direct submodules, in registration order."""
        return [(n, m) for n, m in self._modules.items() if m is not None]

    def children(self):
        return [m for _, m in self.named_children()]

    def named_modules(self, prefix="", remove_duplicate=True):
        """(dotted path, module) of this module and every descendant, pre-order; the first entry is ``("", self)``.

        A module reachable by two paths is listed once (under the first path) unless ``remove_duplicate=False``.
        """
        out, seen = [], set()
        stack = [(prefix, self)]
        while stack:
            path, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            out.append((path, module))
            kids = [(f"{path}.{n}" if path else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(kids))
        return out

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix="", remove_duplicate=True):
        """(dotted name, Parameter) pairs, e.g. ``("stem.conv1.conv.weight", p)``; a shared parameter once."""
        return self._named_members("_parameters", prefix, remove_duplicate)

    def parameters(self):
        """Every parameter once (shared parameters deduplicated), in registration order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix="", remove_duplicate=True):
        """(dotted name, array) of the buffers, e.g. ``("bn.running_mean", array)``."""
        return self._named_members("_buffers", prefix, remove_duplicate)

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def _named_members(self, registry, prefix, remove_duplicate):
        out, seen = [], set()
        for path, module in self.named_modules(prefix, remove_duplicate=remove_duplicate):
            for name, value in getattr(module, registry).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                out.append((f"{path}.{name}" if path else name, value))
        return out

    def get_submodule(self, path):
        """The module at dotted ``path`` (``""`` is this module)."""
        module = self
        for part in path.split(".") if path else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {path!r})")
            module = child
        return module

    def num_parameters(self, trainable_only=True):
        """Number of scalars in the parameters (each shared parameter once); all of them when not trainable_only."""
        return sum(int(p.size) for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ modes, devices, gradients
    def train(self, mode=True):
        """Set training mode on this module and every submodule; returns self."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        """Evaluation mode everywhere (dropout off, batch norm uses its running statistics); returns self."""
        return self.train(False)

    def requires_grad_(self, flag=True):
        """Freeze (False) or unfreeze every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule and then on self (children first, as PyTorch does)."""
        for m in reversed(self.modules()):
            fn(m)
        return self

    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` ('cpu' or 'cuda') and/or cast floating ones to ``dtype``.

        In place: each Parameter keeps its identity (its ``.data`` is replaced), so an optimizer built earlier
        still holds the right objects. Gradients move with their parameters. Integer buffers
        (``num_batches_tracked``) keep their dtype. Returns self.
        """
        if device is not None:
            check_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"Module.to: dtype must be a floating type, got {dtype}")

        def convert(array):
            if device is not None:
                array = to_device(array, device)
            if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
                array = array.astype(dtype)
            return array

        for p in self.parameters():
            p.data = convert(p.data)
            if p.grad is not None:
                p.grad = convert(p.grad)
        for m in self.modules():
            for name, b in list(m._buffers.items()):
                if b is not None:
                    setattr(m, name, convert(b))
        return self

    # fuse(): ``model.fuse()`` rewrites a model for speed (sibling 1x1 conv units run as one conv). It is defined in
    # fusion.py, beside the FusedHead modules it builds (they are Modules, so this file cannot import them), and
    # attached to Module there; ``minception.nn`` always imports fusion.py, so every Module has it.

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None (the next backward then writes fresh gradients)."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------------ state (see state.py)
    def state_dict(self):
        """Dotted name -> NumPy copy, for every parameter and buffer (see ``nn.state.state_dict``)."""
        return _state.state_dict(self)

    def load_state_dict(self, state, strict=True):
        """Copy values from ``state`` into this module's arrays (see ``nn.state.load_state_dict``).

        Returns ``(missing, unexpected)`` key lists; strict (the default) raises on either.
        """
        return _state.load_state_dict(self, state, strict=strict)

    def save(self, path):
        """Write the state dict to ``path`` (a NumPy ``.npz`` archive)."""
        return _state.save_state(self, path)

    def load(self, path, strict=True):
        """Load a state dict written by ``save`` (or any ``.npz`` with matching keys)."""
        return _state.load_state(self, path, strict=strict)

    def summary(self, input_shape, dtype=np.float32, depth=None, print_fn=print, kernels=False):
        """Print and return a table of layers, output shapes and parameter counts (see ``nn.summary``);
        ``kernels=True`` adds the window of each convolution and pooling (``3x3 s2 p1``). The returned ``Summary``
        is the table as a str, with ``rows`` and ``totals``; as a notebook cell's last line it shows once."""
        from .summary import summary
        return summary(self, input_shape, dtype=dtype, depth=depth, print_fn=print_fn, kernels=kernels)

    # ------------------------------------------------------------------ hooks (see hooks.py)
    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; it may return new args (a tuple, or one value)."""
        self._forward_pre_hooks.append(hook)
        return RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces the output."""
        self._forward_hooks.append(hook)
        return RemovableHandle(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook):
        """``hook(module, grad_input, grad_output)`` runs when the gradient of the module's inputs is known.

        ``grad_output``: tuple with the gradient of each tensor output; ``grad_input``: tuple with the gradient of
        each positional tensor input, as this module alone contributes it (None for inputs that need no
        gradient). A non-None result (a tuple) replaces ``grad_input``. See ``nn.hooks`` for how it is done.
        """
        self._backward_hooks.append(hook)
        return RemovableHandle(self._backward_hooks, hook)

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        """The text inside the parentheses of this module's repr line (its settings); override in layers."""
        return ""

    def __repr__(self):
        lines = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({name}): {repr(child)}" for name, child in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        body = "\n".join("  " + line.replace("\n", "\n  ") for line in lines + children)
        return f"{type(self).__name__}(\n{body}\n)"
