"""``summary``: a table of a network's layers, their output shapes and parameter counts (as Keras' ``model.summary()``
and torchinfo do).

How it works: forward pre-hooks and forward hooks are put on every module, one forward pass runs on a zero input
in evaluation mode under ``no_grad`` (no graph is kept, batch-norm statistics are not touched, dropout is off),
and each call becomes a row, in the order the calls happen. The call nesting gives the indentation. Then the hooks
are removed and every module gets back the mode it had.

Parameter counts: a row counts the parameters its module owns directly (not its children's), each parameter once
across the table (a shared layer called twice shows its parameters on the first row only), so the column adds up
to the total. With ``depth``, rows nested deeper are not shown and their counts roll up into their shown ancestor.

With ``kernels=True`` a column shows each convolution's and pooling's window: ``3x3 s2 p1`` is a 3x3 kernel,
stride 2, padding 1 (``1x7 s1 p0,3``: a pair where the two axes differ). A row whose children are hidden by
``depth`` shows the window of its one convolution or pooling (a ``ConvBNReLU`` box shows its conv's).

What it returns: a ``Summary``, the table as a ``str`` (print it, search it, compare it), with the numbers behind
it (``rows``, ``totals``). It prints the table itself, so as the last line of a notebook cell it displays nothing
more: the table appears once (with ``print_fn=None`` nothing is printed, and the cell shows the table).
"""
from collections import namedtuple

import numpy as np

from autograd import Tensor, no_grad
from autograd.backend import to_device


class _Row:
    __slots__ = ("module", "path", "depth", "parent", "output", "params")

    def __init__(self, module, path, depth, parent):
        self.module, self.path, self.depth, self.parent = module, path, depth, parent
        self.output, self.params = None, 0


SummaryRow = namedtuple("SummaryRow", "path type depth output_shape params kernel")
SummaryRow.__doc__ = """One row of the table: the module's dotted path ('' for the root), its class name, its nesting
depth, its output shape (a tuple, or a list of them), the parameters counted on this row, and its window
(``'3x3 s2 p1'``, or '' for a module without one)."""


class Summary(str):
    """The table of ``summary`` as text, with ``rows`` (``SummaryRow``, the rows shown) and ``totals`` (a dict:
    ``params``, ``trainable``, ``non_trainable``, ``buffer_values``, ``params_bytes``, ``activation_bytes``).

    ``printed`` says whether ``summary`` printed it already. Then ``repr`` (what a Python prompt echoes) is one
    line, and in IPython and Jupyter it displays nothing: a cell ending in ``net.summary(...)`` shows the table
    once. A table not printed (``print_fn=None``) displays itself.
    """

    def __new__(cls, text, rows=(), totals=None, printed=False):
        self = super().__new__(cls, text)
        self.rows, self.totals, self.printed = list(rows), dict(totals or {}), printed
        return self

    def __repr__(self):
        if not self.printed:
            return str(self)
        return (f"<Summary: {len(self.rows)} rows, {self.totals.get('params', 0):,} parameters "
                f"(printed above; print it to see it again)>")

    def _repr_pretty_(self, printer, cycle):
        """IPython's text display; unused at a cell's end, where ``_ipython_display_`` decides."""
        printer.text(repr(self))

    def _ipython_display_(self):
        """IPython and Jupyter call this to display a cell's last value: the table, unless it was printed."""
        if not self.printed:
            print(self)


def summary(module, input_shape, dtype=np.float32, depth=None, print_fn=print, kernels=False):
    """Run one forward pass on zeros of ``input_shape`` and tabulate every module call.

    Args:
        module: the network.
        input_shape: the full input shape, batch included, e.g. ``(1, 3, 299, 299)``; or a list of shapes for a
            module that takes several inputs.
        dtype: the input's dtype.
        depth: show rows nested at most this deep (the root is depth 0, its children 1, ...); None shows all.
        print_fn: called with the table; None to only return it.
        kernels: add a column with the window of each convolution and pooling (``3x3 s2 p1``).
    Returns:
        A ``Summary``: the table as a string, one row per module call (indented dotted path and type, window
        with ``kernels``, output shape, parameters owned), then total, trainable and non-trainable parameter
        counts and the number of buffer values; its ``rows`` and ``totals`` hold the same numbers.
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
              _window(r.module, hidden=depth is not None and r.depth == depth), _shape_text(r.output), f"{r.params:,}")
             for r in shown]
    totals = _totals(module, params, rows)
    text = _format(table, totals, shapes, output, kernels)
    if print_fn is not None:
        print_fn(text)
    rows_out = [SummaryRow(r.path, type(r.module).__name__, r.depth, _shape_of(r.output), r.params, cells[1])
                for r, cells in zip(shown, table)]
    return Summary(text, rows_out, totals, printed=print_fn is not None)


def _window(module, hidden=False):
    """``'3x3 s2 p1'`` for a module with a ``kernel_size`` (convolution, pooling); for a row whose children are
    ``hidden``, the window of its only such descendant; else ''."""
    if not hasattr(module, "kernel_size") and hidden:
        inside = [m for m in module.modules() if hasattr(m, "kernel_size")]
        module = inside[0] if len(inside) == 1 else module
    if not hasattr(module, "kernel_size"):
        return ""

    def pair(p):
        p = tuple(int(v) for v in (p if isinstance(p, (tuple, list)) else (p, p)))
        return str(p[0]) if p[0] == p[1] else f"{p[0]},{p[1]}"

    k = module.kernel_size
    kh, kw = k if isinstance(k, (tuple, list)) else (k, k)
    return f"{kh}x{kw} s{pair(getattr(module, 'stride', 1))} p{pair(getattr(module, 'padding', 0))}"


def _shape_of(output):
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return [_shape_of(o) for o in output]
    return None


def _shape_text(output):
    if isinstance(output, Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        return "[" + ", ".join(_shape_text(o) for o in output) + "]"
    return type(output).__name__


def _totals(module, params, rows):
    total = sum(int(p.size) for p in params)
    trainable = sum(int(p.size) for p in params if p.requires_grad)
    return {"params": total, "trainable": trainable, "non_trainable": total - trainable,
            "buffer_values": sum(int(b.size) for b in module.buffers() if b.dtype.kind == "f"),
            "params_bytes": sum(int(p.data.nbytes) for p in params),
            "activation_bytes": sum(_nbytes(r.output) for r in rows if not r.module._modules)}


def _format(table, totals, shapes, output, kernels):
    header = ("Layer (type)", "Kernel", "Output shape", "Param #")
    columns = (0, 1, 2, 3) if kernels else (0, 2, 3)
    widths = {i: max(len(header[i]), *(len(row[i]) for row in table)) for i in columns}

    def line(cells):
        return "  ".join(f"{cells[i]:>{widths[i]}}" if i == 3 else f"{cells[i]:<{widths[i]}}" for i in columns)

    rule = "=" * len(line(header))
    lines = [rule, line(header), rule, *(line(r) for r in table), rule,
             f"Total params: {totals['params']:,}",
             f"Trainable params: {totals['trainable']:,}",
             f"Non-trainable params: {totals['non_trainable']:,}",
             f"Buffer values (running statistics, not trained): {totals['buffer_values']:,}",
             rule,
             f"Input shape: {', '.join(str(s) for s in shapes)}    Output shape: {_shape_text(output)}",
             f"Params size (MB): {totals['params_bytes'] / 2**20:.2f}",
             f"Forward activations of leaf layers (MB): {totals['activation_bytes'] / 2**20:.2f}",
             rule]
    return "\n".join(lines)


def _nbytes(output):
    if isinstance(output, Tensor):
        return int(output.data.nbytes)
    if isinstance(output, (tuple, list)):
        return sum(_nbytes(o) for o in output)
    return 0
