"""The backward pass: reverse-mode differentiation over the graph of Functions.

1. Order the Functions reachable from the outputs so that every Function comes before the Functions that
   produced its inputs (reverse topological order). The sort is iterative: a chain of 5,000 ops is fine.
2. Walk that order once. Each Function receives the sum of the gradients of its outputs, calls its
   ``backward``, and passes one gradient per input along its edges: to the producing Function (summed with
   what other consumers sent) or into the ``.grad`` of a leaf tensor.
3. After a Function has run, what it saved for backward is freed, unless ``retain_graph=True``.

A leaf's first gradient becomes its ``.grad`` as it is, without a copy, unless something else may see the same
memory (``_new_grad`` says when): whoever holds a ``.grad`` may write into it in place.

``iter_backward`` is step 2 as a generator that pauses after every Function, so that inspection tools
(``autograd.backward_steps``, ``autograd.trace``) can look at each op's gradients; ``backward`` runs it to the
end. Function hooks (``hooks.py``) are called around each op's backward: that is how anomaly mode and the timing
and memory hooks see the pass. Tensor hooks and ``retain_grad`` are part of the computation itself, so the
engine runs them here.
"""
from . import hooks
from .backend import get_array_module, may_share_memory, memory_owner


def backward(tensors, grads=None, retain_graph=False):
    """Backpropagate from ``tensors`` (list), seeding each with ``grads`` (list; None means 1 for scalars)."""
    for _ in iter_backward(tensors, grads, retain_graph):
        pass


def iter_backward(tensors, grads=None, retain_graph=False):
    """Run backward one Function at a time; after each, yield ``(fn, grad_outputs, grad_inputs)``.

    ``tensors`` is a list of tensors (with ``grads`` a list of seeds) or a single tensor (with one seed or None).
    ``grad_outputs`` are the gradients that arrived at ``fn``'s outputs, ``grad_inputs`` the ones it produced,
    one per input (an array, or None where the input needs none). Running to the end leaves exactly the
    gradients ``backward()`` leaves.
    """
    if not isinstance(tensors, (list, tuple)):        # a single output: iter_backward(loss)
        tensors, grads = [tensors], (None if grads is None else [grads])
    if grads is None:
        grads = [None] * len(tensors)
    pending = {}              # Function -> list with the summed gradient of each output (None until one arrives)
    handed = {}               # id(memory owner) -> arrays others may hold: the caller's seeds, each .grad set
    roots = []
    seeds = []
    for t, g in zip(tensors, grads):
        if not t.requires_grad:
            raise RuntimeError(f"backward() on a tensor of shape {t.shape} that does not require grad: no input "
                               f"of the computation had requires_grad=True (or it ran under no_grad())")
        seeds.append(_seed_gradient(t, g))
        if g is not None:
            handed.setdefault(id(memory_owner(seeds[-1])), []).append(seeds[-1])
    for t, g in zip(tensors, seeds):
        if t.creator is None:
            _accumulate_leaf(t, g, handed)
            continue
        _add_pending(pending, t.creator, t.output_index, g)
        roots.append(t.creator)

    for fn in topological_order(roots):
        slots = pending.pop(fn, None)
        if slots is None:     # reachable, but no gradient flows into it (its outputs were not used on the way)
            continue
        if fn.released:
            raise RuntimeError(f"backward through {fn!r} a second time, but its saved arrays were already freed: "
                               f"pass retain_graph=True to the first backward()")
        grad_outputs = _run_output_hooks(fn, _fill_missing(fn, slots), handed)

        active = hooks.active_function_hooks()
        for h in active:
            h.backward_pre(fn, grad_outputs)
        try:
            grad_inputs = fn.run_backward(grad_outputs)
        except Exception as error:
            for h in active:
                h.backward_error(fn, error)
            raise
        for h in active:
            h.backward_post(fn, grad_outputs, grad_inputs)

        for edge, gx in zip(fn.next_edges, grad_inputs):
            if gx is None:
                continue
            if isinstance(edge, tuple):
                _add_pending(pending, edge[0], edge[1], gx)
            else:
                _accumulate_leaf(edge, gx, handed, fn)
        yield fn, grad_outputs, grad_inputs
        if not retain_graph:
            fn.release()


def topological_order(roots):
    """Functions reachable from ``roots``, each before every Function that produced one of its inputs."""
    finished, seen = [], set()
    stack = [(fn, False) for fn in roots]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            finished.append(fn)
            continue
        if fn in seen:
            continue
        seen.add(fn)
        stack.append((fn, True))
        for edge in fn.next_edges:
            if isinstance(edge, tuple) and edge[0] not in seen:
                stack.append((edge[0], False))
    finished.reverse()          # post-order lists producers first; backward needs consumers first
    return finished


def _seed_gradient(tensor, grad):
    """The gradient backward starts from: ``grad`` as an array of the tensor's shape and dtype (1 for a scalar)."""
    xp = get_array_module(tensor.data)
    if grad is None:
        if tensor.size != 1:
            raise RuntimeError(f"backward() on a non-scalar tensor of shape {tensor.shape} needs a gradient: "
                               f"call t.backward(grad) with an array of that shape, or reduce t to a scalar first")
        return xp.ones(tensor.shape, dtype=tensor.dtype)
    if hasattr(grad, "creator") and hasattr(grad, "requires_grad"):   # a Tensor (a CuPy array has .data too)
        grad = grad.data
    grad = xp.asarray(grad, dtype=tensor.dtype)
    if grad.shape != tensor.shape:
        raise ValueError(f"backward(): gradient of shape {grad.shape} given for a tensor of shape {tensor.shape}")
    return grad


def _add_pending(pending, fn, index, grad):
    """Add ``grad`` to the gradient collected so far for output ``index`` of ``fn``.

    An output used by k consumers (a block input feeds 3-4 branches) receives k gradients; their sum is its
    gradient. A new array is made for each sum: the arrays a backward returns may be shared (``Add`` returns
    ``gy`` twice), so they are never added into in place.
    """
    slots = pending.get(fn)
    if slots is None:
        slots = pending[fn] = [None] * len(fn.output_shapes)
    slots[index] = grad if slots[index] is None else slots[index] + grad


def _fill_missing(fn, slots):
    """Outputs nobody used get a zero gradient, so every backward sees one array per output."""
    if all(s is not None for s in slots):
        return tuple(slots)
    xp = get_array_module(*[s for s in slots if s is not None])
    return tuple(xp.zeros(shape, dtype) if s is None else s
                 for s, shape, dtype in zip(slots, fn.output_shapes, fn.output_dtypes))


def _run_output_hooks(fn, grad_outputs, handed):
    """Tensor hooks and ``retain_grad`` of ``fn``'s outputs (non-leaf tensors keep theirs on their creator)."""
    hooks_by_output = fn.__dict__.get("output_hooks")
    retained = fn.__dict__.get("retained_outputs")
    if not hooks_by_output and not retained:
        return grad_outputs
    grad_outputs = list(grad_outputs)
    for i, hook_list in (hooks_by_output or {}).items():
        for hook in hook_list:
            replaced = hook(grad_outputs[i])
            if replaced is not None:
                grad_outputs[i] = replaced
    for i, tensor_ref in (retained or {}).items():
        tensor, g = tensor_ref(), grad_outputs[i]
        if tensor is not None:
            tensor.grad = _new_grad(g, handed, (tensor.data,)) if tensor.grad is None else tensor.grad + g
    return tuple(grad_outputs)


def _accumulate_leaf(tensor, grad, handed, fn=None):
    """Run the leaf's tensor hooks, then add ``grad`` (from ``fn``, None for a seed) into its ``.grad``."""
    for hook in tensor._hooks:
        replaced = hook(grad)
        if replaced is not None:
            grad = replaced
    if tensor.grad is not None:
        tensor.grad = tensor.grad + grad          # a new array: what was handed out before is not changed
        return
    tensor.grad = _new_grad(grad, handed, [tensor.data] + (fn.saved_arrays() if fn is not None else []))


# ---------------------------------------------------------------------------------------------- no needless copy
def _new_grad(grad, handed, also):
    """The array to store as a tensor's first ``.grad``: ``grad`` itself, or a copy where it must not be shared.

    Ops return fresh arrays, so keeping ``grad`` saves a copy per parameter and step. But the holder of a
    ``.grad`` may write into it in place (data-parallel averaging does: ``p.grad[...] = average``), so it must
    be the only holder of that memory. ``grad`` is copied when it is:

    * not a plain array: not C-contiguous or read-only (``Sum`` returns a broadcast view);
    * overlapping an array already handed out in this pass (``handed``): ``a + b`` gives Add's ``gy`` to both
      leaves, a view of it (reshape, transpose, slices), a hook returning what it got, the caller's seed;
    * overlapping one of ``also``: the tensor's own data, and the arrays the producing Function saved.

    Only arrays with the same memory owner (``backend.memory_owner``) can overlap, so most checks are one
    identity test; the address ranges are compared only for views of one buffer.
    """
    owner = memory_owner(grad)
    suspects = handed.get(id(owner), []) + [a for a in also if memory_owner(a) is owner]
    writeable = getattr(grad.flags, "writeable", True)      # CuPy arrays have no read-only flag
    if not grad.flags.c_contiguous or not writeable or any(may_share_memory(grad, a) for a in suspects):
        return grad.copy()
    handed.setdefault(id(owner), []).append(grad)
    return grad
