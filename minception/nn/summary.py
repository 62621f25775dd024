"""``summary``: a table of a network's layers, their output shapes and parameter counts (as Keras' ``model.summary()``
and torchinfo do).

How it works: forward pre-hooks and forward hooks are put on every module, one forward pass runs on a zero input
in evaluation mode under ``no_grad`` (no graph is kept, batch-norm statistics are not touched, dropout is off),
and each call becomes a row, in the order the calls happen. The call nesting gives the indentation. Then the hooks
are removed and every module gets back the mode it had.

Parameter counts: a row counts the parameters its module owns directly (not its children's), each parameter once
across the table (a shared layer called twice shows its parameters on the first row only), so the column adds up
to the total. With ``depth``, rows nested deeper are not shown and their counts roll up into their shown ancestor.
"""
import numpy as np

from autograd import Tensor, no_grad
from autograd.backend import to_device


class _Row:
    __slots__ = ("module", "path", "depth", "parent", "output", "params")

    def __init__(self, module, path, depth, parent):
        self.module, self.path, self.depth, self.parent = module, path, depth, parent
        self.output, self.params = None, 0


def summary(module, input_shape, dtype=np.float32, depth=None, print_fn=print):
    """Run one forward pass on zeros of ``input_shape`` and tabulate every module call.

    Args:
        module: the network.
        input_shape: the full input shape, batch included, e.g. ``(1, 3, 299, 299)``; or a list of shapes for a
            module that takes several inputs.
        dtype: the input's dtype.
        depth: show rows nested at most this deep (the root is depth 0, its children 1, ...); None shows all.
        print_fn: called with the table; None to only return it.
    Returns:
        The table as a string: one row per module call (indented dotted path and type, output shape, parameters
        owned), then total, trainable and non-trainable parameter counts and the number of buffer values.
    """
    shapes = [tuple(input_shape)] if all(isinstance(s, (int, np.integer)) for s in input_shape) \
        else [tuple(s) for s in input_shape]
    params = module.parameters()
    device = params[0].device if params else "cpu"
    inputs = [Tensor(to_device(np.zeros(s, dtype=dtype), device)) for s in shapes]

    paths = {}
    for path, m in module.named_modules():
        paths.setdefault(id(m), path)
    rows, open_rows = [], []

    def pre_hook(m, args):
        row = _Row(m, paths.get(id(m), "?"), len(open_rows), open_rows[-1] if open_rows else None)
        rows.append(row)
        open_rows.append(row)

    def post_hook(m, args, output):
        open_rows.pop().output = output

    modes = [(m, m.training) for m in module.modules()]
    handles = []
    try:
        for m, _ in modes:
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(post_hook))
        module.eval()
        with no_grad():
            output = module(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.__dict__["training"] = mode

    counted = set()
    for row in rows:
        for p in row.module._parameters.values():
            if p is not None and id(p) not in counted:
                counted.add(id(p))
                row.params += int(p.size)
    shown = rows if depth is None else [r for r in rows if r.depth <= depth]
    if depth is not None:
        for row in rows:
            if row.depth > depth:
                ancestor = row.parent
                while ancestor.depth > depth:
                    ancestor = ancestor.parent
                ancestor.params += row.params
                row.params = 0

    table = [(("  " * r.depth) + (f"{r.path} ({type(r.module).__name__})" if r.path else type(r.module).__name__),
              _shape_text(r.output), f"{r.params:,}") for r in shown]
    text = _format(table, module, params, shapes, output, rows)
    if print_fn is not None:
        print_fn(text)
    return text


def _shape_text(output):
    if isinstance(output, Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        return "[" + ", ".join(_shape_text(o) for o in output) + "]"
    return type(output).__name__


def _format(table, module, params, shapes, output, rows):
    header = ("Layer (type)", "Output shape", "Param #")
    widths = [max(len(header[i]), *(len(row[i]) for row in table)) for i in range(3)]

    def line(cells):
        return f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:>{widths[2]}}"

    rule = "=" * len(line(header))
    total = sum(int(p.size) for p in params)
    trainable = sum(int(p.size) for p in params if p.requires_grad)
    buffer_values = sum(int(b.size) for b in module.buffers() if b.dtype.kind == "f")
    param_bytes = sum(int(p.data.nbytes) for p in params)
    leaf_bytes = sum(_nbytes(r.output) for r in rows if not r.module._modules)
    lines = [rule, line(header), rule, *(line(r) for r in table), rule,
             f"Total params: {total:,}",
             f"Trainable params: {trainable:,}",
             f"Non-trainable params: {total - trainable:,}",
             f"Buffer values (running statistics, not trained): {buffer_values:,}",
             rule,
             f"Input shape: {', '.join(str(s) for s in shapes)}    Output shape: {_shape_text(output)}",
             f"Params size (MB): {param_bytes / 2**20:.2f}",
             f"Forward activations of leaf layers (MB): {leaf_bytes / 2**20:.2f}",
             rule]
    return "\n".join(lines)


def _nbytes(output):
    if isinstance(output, Tensor):
        return int(output.data.nbytes)
    if isinstance(output, (tuple, list)):
        return sum(_nbytes(o) for o in output)
    return 0
