"""Watch backpropagation one op at a time: gradient statistics and a printable trace.

``backward_steps`` runs backward one Function at a time (it drives the engine's ``iter_backward``) and yields a
``BackwardStep`` after each::

    for step in autograd.backward_steps(loss):
        print(step)                  # op, module path, shapes, gradient statistics (wrapped at 100 columns)
        step.function                # the Function (name, scope, input_shapes, output_shapes, ...)
        step.grad_outputs            # the gradient that arrived at each of its outputs (raw arrays)
        step.grad_inputs             # the gradient it sent to each of its inputs (raw array or None)
        step.grad_output_stats       # GradStats of each incoming gradient (norm, mean, max |g|, zeros)

This module also holds what turns those arrays into something a person can read:

* ``grad_stats(array)``: the summary statistics of one gradient (``GradStats``);
* ``format_step(step)``: the labelled description of a step that ``print(step)`` shows;
* ``format_table(records)``: the lines of the aligned table that ``trace`` prints;
* ``trace(loss)``: runs the whole backward pass (leaving exactly the gradients ``loss.backward()`` leaves),
  printing a table row per op as it goes, and returns a ``Trace`` (a list of ``TraceRecord``) to look at later.

``trace`` prints an aligned table, 100 columns wide unless told otherwise (``width=``; ``None``: no limit, all
columns on one line). Its words are the API's: ``dL/d(output)`` is the gradient arriving at the op's output(s),
``BackwardStep.grad_outputs``, what its backward receives; ``dL/d(inputs)`` the gradients its backward produces,
``BackwardStep.grad_inputs``, one per input, each labelled by where it goes: ``weight.grad`` for a leaf (a
parameter or an input; the module path in front of it is dropped when it is the op's own), or the name of the op
that produced that input (``Conv2d``: the gradient travels on to it). For a ConvBNReLU box named ``stem``
(``fuse_relu=False``), ``trace((y * y).mean())`` prints::

                                                                   dL/d(output)   dL/d(inputs)
    step  op                   module                  output shape        norm   norm, by where it goes
    ----  -------------------  ----------------------  --------------  --------   ----------------------
       0  Mean                 -                       ()              1.00e+00   Mul 1.10e-02
       1  Mul                  -                       (4,8,16,16)     1.10e-02   ReLU 7.84e-03
                                                                                  ReLU 7.84e-03
       2  ReLU                 stem                    (4,8,16,16)     1.57e-02   BatchNorm 1.57e-02
       3  BatchNorm            stem.bn                 (4,8,16,16)     1.57e-02   Conv2d 5.23e-03
                                                                                  weight.grad 3.56e-01
                                                                                  bias.grad 2.81e-01
       4  Conv2d               stem.conv               (4,8,16,16)     5.23e-03   weight.grad 2.48e-02

A long module path keeps its end (``...t_b_1.branch1.0.conv``), and the gradients sent to an op's inputs wrap
onto more lines within their column. Rows printed as the pass runs have typical column widths; ``str(trace)``
(``Trace.table``) sizes them to the rows, and with room (``width=None``: no limit) adds the fraction of zeros in
dL/d(output), its mean and max ``|g|`` and the shapes of the inputs. ``print(step)`` of one ``BackwardStep`` is one
labelled line (``| dL/d(output) norm ... | dL/d(inputs) [0] ...``), wrapped before each ``|`` when it is wider.

Statistics are computed in float64 and moved to the host, so on the GPU they cost a device synchronisation per
step: tracing is for looking, not for training.
"""
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ..backend import get_array_module
from ..engine import iter_backward

WIDTH = 100     # the default width of a trace: a projector, a notebook cell, a terminal side by side

__all__ = ["BackwardStep", "backward_steps", "GradStats", "grad_stats", "format_step", "format_record",
           "format_shape", "format_table", "destination_names", "name_map", "TraceRecord", "record_step", "Trace",
           "trace"]


# ---------------------------------------------------------------------------------------------- steps
@dataclass
class BackwardStep:
    """What one Function did during backward."""
    function: object          # the Function
    grad_outputs: tuple       # gradients arriving at its outputs (arrays)
    grad_inputs: tuple        # gradients it produced, one per input (array or None)
    index: int = 0            # position in the backward pass (0 = the op that made the output)

    @property
    def name(self):
        return self.function.name

    @property
    def scope(self):
        return ".".join(self.function.scope)

    @property
    def input_shapes(self):
        return self.function.input_shapes

    @property
    def output_shapes(self):
        return self.function.output_shapes

    @property
    def grad_output_stats(self):
        """``GradStats`` (norm, mean, max ``|g|``, fraction of zeros) of each incoming gradient."""
        return [grad_stats(g) for g in self.grad_outputs]

    @property
    def grad_input_stats(self):
        """``GradStats`` (or None) of each gradient this op produced, one per input."""
        return [grad_stats(g) for g in self.grad_inputs]

    def __str__(self):
        return format_step(self)


def backward_steps(tensors, grads=None, retain_graph=False):
    """Run backward one Function at a time, yielding a ``BackwardStep`` after each.

    ``tensors`` is a list of tensors (with ``grads`` a list of seeds) or a single tensor (with one seed or None).
    Running the iterator to the end leaves exactly the gradients ``backward()`` leaves; stopping early leaves
    the gradients of the steps that ran.
    """
    for index, (fn, grad_outputs, grad_inputs) in enumerate(iter_backward(tensors, grads, retain_graph)):
        yield BackwardStep(fn, grad_outputs, grad_inputs, index)


# ---------------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class GradStats:
    """Summary statistics of one gradient array (all plain Python numbers)."""
    shape: tuple
    dtype: str
    norm: float          # Euclidean (Frobenius) norm over all elements
    mean: float
    max_abs: float       # largest |g|
    zero_fraction: float  # fraction of elements that are exactly 0 (ReLU and max-pool make many)
    finite: bool         # False when the array holds a NaN or an Inf

    @property
    def size(self):
        return math.prod(self.shape)

    def __str__(self):
        return (f"norm {_num(self.norm)} mean {_num(self.mean)} max {_num(self.max_abs)} "
                f"zeros {100 * self.zero_fraction:.1f}%" + ("" if self.finite else " NON-FINITE"))


def grad_stats(array):
    """Summary statistics of a gradient (NumPy or CuPy array); ``None`` gives ``None``.

    Shape:
        array: any shape; the statistics run over all elements. An empty array gives zeros.
    """
    if array is None:
        return None
    xp = get_array_module(array)
    shape, dtype = tuple(array.shape), str(array.dtype)
    if array.size == 0:
        return GradStats(shape, dtype, 0.0, 0.0, 0.0, 0.0, True)
    a = array.astype(np.float64, copy=False)    # float32 sums of many squares lose digits; the copy is small
    finite = bool(xp.isfinite(a).all())
    return GradStats(shape=shape, dtype=dtype,
                     norm=float(xp.sqrt((a * a).sum())),
                     mean=float(a.mean()),
                     max_abs=float(xp.abs(a).max()),
                     zero_fraction=float((a == 0).sum()) / a.size,
                     finite=finite)


def _num(x):
    """Compact fixed-width number: 1.23e-04."""
    return f"{x:.2e}" if x == x else "nan"


def format_shape(shape):
    """(2, 64, 17, 17) -> '(2,64,17,17)'; () -> '()'."""
    return "(" + ",".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------------------------- one step
def destination_names(function, names=None):
    """For each input of ``function``, where its gradient goes, as a short label.

    ``names``: anything ``name_map`` accepts, e.g. ``model.named_parameters()``. Labels: ``'<leaf name>.grad'``
    for a leaf (its name from ``names``, else ``Tensor.name``, else ``'leaf'``), the name of the op that produced
    the input (``'Conv2d'``: the gradient travels on to that op), or ``'const'`` for inputs that need no gradient.
    """
    names = name_map(names)
    labels = []
    for edge in function.next_edges:
        if edge is None:
            labels.append("const")
        elif isinstance(edge, tuple):
            labels.append(edge[0].name)
        else:
            labels.append((names.get(id(edge)) or edge.name or "leaf") + ".grad")
    return labels


def name_map(names):
    """``{id(tensor): name}`` from None, such a dict, a dict ``{name: tensor}`` or (name, tensor) pairs."""
    if not names:
        return {}
    if isinstance(names, dict):
        first_key = next(iter(names))
        if isinstance(first_key, int):
            return names
        names = names.items()
    return {id(t): n for n, t in names}


def format_step(step, index=None, names=None, verbose=False, width=None):
    """One labelled line describing a ``BackwardStep`` (more lines with ``verbose``: full statistics per input).

    Args:
        step: a ``BackwardStep`` (or anything with ``function``, ``grad_outputs``, ``grad_inputs``).
        index: the step number printed first (the step's own ``index`` when None).
        names: parameter names for the labels of produced gradients (see ``destination_names``).
        width: cut the line to this many columns (None: ``WIDTH``; 0: no limit).
    """
    if index is None:
        index = getattr(step, "index", 0)
    return format_record(record_step(step, index, names), verbose=verbose, width=WIDTH if width is None else width)


def format_record(record, verbose=False, widths=(16, 24), width=0):
    """The labelled line of a ``TraceRecord``: ``step op module shapes | dL/d(output) ... | dL/d(inputs) ...``.

    ``widths``: of the op-name and module-path columns. ``width``: when not 0 (or None) and the line is longer,
    it is wrapped before each ``|`` onto lines indented by 6, each cut to ``width`` ("...").
    """
    name_w, scope_w = widths
    shapes = " ".join(format_shape(s) for s in record.input_shapes) + " -> " + \
        " ".join(format_shape(s) for s in record.output_shapes)
    incoming = record.grad_outputs
    if len(incoming) == 1:
        stats = str(incoming[0])
    else:
        stats = "  ".join(f"[{i}] norm {_num(s.norm)}" for i, s in enumerate(incoming))
    outs = [f"[{i}] {lab} {_num(s.norm)}"
            for i, (lab, s) in enumerate(zip(record.destinations, record.grad_inputs)) if s is not None]
    parts = [f"{record.index:4d}  {record.name:<{name_w}s} {record.scope or '-':<{scope_w}s} {shapes}",
             f"| dL/d(output) {stats}", "| dL/d(inputs) " + ("  ".join(outs) if outs else "(none)")]
    lines = ["  ".join(parts)]
    if width and len(lines[0]) > width:
        lines = [_cut_end(f"{record.index:4d}  {record.name} {record.scope or '-'} {shapes}", width)]
        lines += [_cut_end(f"{'':6s}{part}", width) for part in parts[1:]]
    if verbose:
        for i, (lab, s) in enumerate(zip(record.destinations, record.grad_inputs)):
            if s is not None:
                lines += _verbose_lines(i, lab, s, width)
    return "\n".join(lines)


def _verbose_lines(i, label, stats, width):
    """``dL/d(input i) -> label, shape: statistics``, on two lines when one does not fit."""
    head = f"{'':6s}dL/d(input {i}) -> {label}, {format_shape(stats.shape)}:"
    if not width or len(head) + 1 + len(str(stats)) <= width:
        return [f"{head} {stats}"]
    return [_cut_end(head, width), _cut_end(f"{'':8s}{stats}", width)]


def _short_label(label, scope):
    """``'stem.conv.weight.grad'`` -> ``'weight.grad'`` in the op of module ``stem.conv``: the module column says
    it already."""
    return label[len(scope) + 1:] if scope and label.startswith(scope + ".") else label


def _cut_end(text, width):
    """``text`` within ``width`` columns: its start, then '...' (0 or None: no limit)."""
    return text if not width or len(text) <= width else text[:max(width - 3, 0)] + "..."


def _cut_start(text, width):
    """``text`` within ``width`` columns: '...', then its end (a module path ends with the layer it is)."""
    return text if len(text) <= width else "..." + text[len(text) - max(width - 3, 0):]


# ---------------------------------------------------------------------------------------------- whole trace
@dataclass
class TraceRecord:
    """What one op did in backward, kept after its arrays are gone: plain numbers and strings only."""
    index: int
    name: str
    scope: str
    input_shapes: tuple
    output_shapes: tuple
    grad_outputs: list              # GradStats of the gradient arriving at each output
    grad_inputs: list               # GradStats (or None) of the gradient sent to each input
    destinations: list              # labels of where each input gradient goes (see destination_names)
    function_id: int = field(default=0, repr=False)   # id() of the Function, to match graph nodes

    @property
    def grad_out_norm(self):
        """Norm of all incoming gradients together."""
        return math.sqrt(sum(s.norm ** 2 for s in self.grad_outputs))


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class _Layout:
    """Column widths of a trace table; ``inputs`` None: the dL/d(inputs) column is not wrapped."""
    op: int
    module: int
    shapes: int
    inputs: object
    stats: str        # "full" (with the input shapes), "compact" or "narrow": see _layout

    @property
    def full(self):
        return self.stats == "full"


_STATS = {"full": (("norm", 8), ("mean", 9), ("max |g|", 8), ("zeros", 6)),
          "compact": (("norm", 8), ("zeros", 6)),
          "narrow": (("norm", 8),)}
_TYPICAL = dict(op=19, module=28, output=14, shapes=44, entry=22)   # when the rows are not known yet


def _shape_cell(record, full):
    outputs = " ".join(map(format_shape, record.output_shapes))
    return " ".join(map(format_shape, record.input_shapes)) + " -> " + outputs if full else outputs


def _input_entries(record):
    """``'weight.grad 2.69e-01'``: each gradient the op produced, labelled by where it goes."""
    return [f"{_short_label(lab, record.scope)} {_num(s.norm)}"
            for lab, s in zip(record.destinations, record.grad_inputs) if s is not None] or ["(none)"]


def _layout(width, rows=None):
    """The columns for a table ``width`` wide (None: no limit), sized to ``rows`` when they are known.

    The first of these that fits: every column ("full": the input shapes, the mean and max ``|g|`` of dL/d(output));
    the output shape and the norm and zeros of dL/d(output) ("compact"); without the zeros ("narrow"). A column
    fits when it is as wide as its widest cell, or at least 22 wide (the module path and dL/d(inputs)).
    """
    if rows:
        op = max(len(r.name) for r in rows)
        module = max(len(r.scope or "-") for r in rows)
        output = max(len(_shape_cell(r, False)) for r in rows)
        shapes = max(len(_shape_cell(r, True)) for r in rows)
        entry = max(len(e) for r in rows for e in _input_entries(r))
    else:
        op, module, output, shapes, entry = (_TYPICAL[k] for k in ("op", "module", "output", "shapes", "entry"))
    op, module = max(op, 2), max(module, 6)
    output, shapes = max(output, len("output shape")), max(shapes, len("shapes (inputs -> output)"))
    if width is None:
        return _Layout(op, module, shapes, None, "full")
    layout = None
    for stats in ("full", "compact", "narrow"):
        for op_w in (op, min(op, 15)):
            shape_w = shapes if stats == "full" else min(output, 16)
            room = width - 15 - op_w - shape_w - (sum(w + 2 for _, w in _STATS[stats]) - 2)
            module_w = min(module, room - min(entry, 22))       # the rest of the room: dL/d(inputs)
            layout = _Layout(op_w, max(module_w, 6), shape_w, max(room - max(module_w, 6), 12), stats)
            if module_w >= min(module, 22):
                return layout
    return layout


def format_table(records, width=WIDTH, header=True):
    """The lines of a trace table: the header (three lines) and each record's row (more lines when the
    gradients an op sent to its inputs wrap within their column). ``width``: no line is longer (None: no limit).
    """
    records = list(records)
    layout = _layout(width, records)
    lines = _header(layout) if header else []
    for r in records:
        lines += _row(r, layout)
    return [_cut_end(line, width) for line in lines]


def _stats_columns(layout):
    return _STATS[layout.stats]


def _header(layout):
    stats = _stats_columns(layout)
    stats_w = sum(w + 2 for _, w in stats) - 2
    shapes = "shapes (inputs -> output)" if layout.full else "output shape"
    left = f"{'':4s}  {'':{layout.op}s}  {'':{layout.module}s}  {'':{layout.shapes}s}  "
    names = f"{'step':>4s}  {'op':<{layout.op}s}  {'module':<{layout.module}s}  {shapes:<{layout.shapes}s}  " \
        + "  ".join(f"{n:>{w}s}" for n, w in stats) + "   norm, by where it goes"
    rules = "  ".join("-" * w for w in (4, layout.op, layout.module, layout.shapes)) + "  " \
        + "  ".join("-" * w for _, w in stats) + "   " + "-" * min(layout.inputs or 22, 22)
    label = "dL/d(output)"          # over the statistics; wider than "norm" alone, it reaches to the left
    above = left + f"{label:^{stats_w}s}" if stats_w >= len(label) else " " * (len(left) + stats_w - len(label)) + label
    return [above + "   dL/d(inputs)", names, rules]


def _row(record, layout):
    """One record's lines in the table: the cells, then the dL/d(inputs) column wrapped within its width."""
    outs = record.grad_outputs
    one = outs[0] if len(outs) == 1 else None
    size = sum(s.size for s in outs)
    zeros = sum(s.zero_fraction * s.size for s in outs) / size if size else 0.0
    values = {"norm": _num(record.grad_out_norm), "mean": _num(one.mean) if one else "-",
              "max |g|": _num(max(s.max_abs for s in outs)) if outs else "-", "zeros": f"{100 * zeros:.1f}%"}
    start = (f"{record.index:4d}  {_cut_end(record.name, layout.op):<{layout.op}s}  "
             f"{_cut_start(record.scope or '-', layout.module):<{layout.module}s}  "
             f"{_cut_end(_shape_cell(record, layout.full), layout.shapes):<{layout.shapes}s}  "
             + "  ".join(f"{values[n]:>{w}s}" for n, w in _stats_columns(layout)) + "   ")
    entries = _input_entries(record)
    if layout.inputs is None:
        return [start + "  ".join(entries)]
    chunks = [""]
    for entry in entries:
        entry = _cut_start(entry, layout.inputs)
        if chunks[-1] and len(chunks[-1]) + 2 + len(entry) > layout.inputs:
            chunks.append(entry)
        else:
            chunks[-1] = f"{chunks[-1]}  {entry}" if chunks[-1] else entry
    return [start + chunks[0]] + [" " * len(start) + c for c in chunks[1:]]


class Trace(list):
    """The records of one backward pass, in the order the ops ran. ``str(trace)`` is the aligned table; in a
    notebook the trace shows as an HTML table."""

    def __str__(self):
        return self.table()

    def __repr__(self):
        return f"<Trace of {len(self)} backward steps>\n" + self.table(limit=40)

    def _repr_html_(self, limit=200):
        import html
        head = ["step", "op", "module", "input shapes", "output shapes", "|dL/d(output)|", "mean", "max |g|",
                "zeros", "dL/d(inputs): norm, by where it goes"]
        rows = []
        for r in self[:limit]:
            g = r.grad_outputs[0] if len(r.grad_outputs) == 1 else None
            cells = [r.index, r.name, r.scope or "-", " ".join(map(format_shape, r.input_shapes)),
                     " ".join(map(format_shape, r.output_shapes)), _num(r.grad_out_norm),
                     _num(g.mean) if g else "-", _num(g.max_abs) if g else "-",
                     f"{100 * g.zero_fraction:.1f}%" if g else "-",
                     ", ".join(f"{d} {_num(s.norm)}" for d, s in zip(r.destinations, r.grad_inputs) if s is not None)]
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        more = f"<p>... {len(self) - limit} more steps</p>" if len(self) > limit else ""
        return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>" + more)

    def table(self, limit=None, width=WIDTH):
        """Aligned text table, one row per op (the first ``limit`` rows when given), within ``width`` columns
        (None: no limit, every column on one line); see ``format_table``."""
        rows = self if limit is None else self[:limit]
        lines = format_table(rows, width)
        if limit is not None and len(self) > limit:
            lines.append(f"... {len(self) - limit} more steps")
        return "\n".join(lines)

    def by_op(self):
        """{op name: number of steps}, in order of first appearance."""
        counts = {}
        for r in self:
            counts[r.name] = counts.get(r.name, 0) + 1
        return counts

    def find(self, name=None, scope=None):
        """Records whose op name equals ``name`` and/or whose module path starts with ``scope``."""
        return [r for r in self if (name is None or r.name == name)
                and (scope is None or r.scope == scope or r.scope.startswith(scope + "."))]

    def first_nonfinite(self):
        """The first record whose produced gradients hold a NaN or Inf, or None."""
        for r in self:
            if any(s is not None and not s.finite for s in r.grad_inputs):
                return r
        return None


def record_step(step, index, names=None):
    """Turn a ``BackwardStep`` into a ``TraceRecord`` (statistics only; no arrays kept)."""
    fn = step.function
    return TraceRecord(index=index, name=fn.name, scope=".".join(fn.scope),
                       input_shapes=tuple(fn.input_shapes), output_shapes=tuple(fn.output_shapes),
                       grad_outputs=[grad_stats(g) for g in step.grad_outputs],
                       grad_inputs=[grad_stats(g) for g in step.grad_inputs],
                       destinations=destination_names(fn, names), function_id=id(fn))


_STDOUT = object()     # "print to sys.stdout as it is when trace() runs" (pytest and notebooks swap it)


def trace(outputs, grad=None, retain_graph=False, *, file=_STDOUT, names=None, scope=None, limit=None,
          verbose=False, width=WIDTH):
    """Run backward from ``outputs`` one op at a time, print a table row per op, and return the ``Trace``.

    The gradients left in ``.grad`` are exactly those ``outputs.backward(grad)`` leaves (the same engine
    steps run in the same order; this function only looks at them).

    Args:
        outputs: a Tensor (usually the loss) or a list of Tensors.
        grad: seed gradient(s), as for ``backward``; None means 1 for a scalar.
        file: where to print (a text stream; default ``sys.stdout``); None prints nothing.
        names: parameter names for the labels, e.g. ``model.named_parameters()``.
        scope: print only ops whose module path starts with this (``"mixed_5b"``); all are recorded.
        limit: print at most this many rows (the pass still runs to the end).
        verbose: also print the full statistics of every produced gradient.
        width: no printed line is longer (None: no limit, each row on one line with every column). The rows
            are printed as the pass runs, before the whole table is known: columns have typical widths, and
            what is longer is cut ("...") or wrapped within its column. ``str(trace)`` sizes them to the rows.

    Returns:
        ``Trace``: a list of ``TraceRecord``, one per op, in the order backward ran them.
    """
    if file is _STDOUT:
        file = sys.stdout
    names = name_map(names)
    tensors = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    grads = None if grad is None else (list(grad) if isinstance(grad, (list, tuple)) else [grad])
    layout = _layout(width)
    records = Trace()
    printed = 0
    for i, step in enumerate(backward_steps(tensors, grads, retain_graph=retain_graph)):
        record = record_step(step, i, names)
        records.append(record)
        if file is None or (scope is not None and not (record.scope == scope or record.scope.startswith(scope + "."))):
            continue
        if limit is not None and printed >= limit:
            continue
        lines = _header(layout) if printed == 0 else []
        lines += _row(record, layout)
        if verbose:
            for j, (lab, s) in enumerate(zip(record.destinations, record.grad_inputs)):
                if s is not None:
                    lines += _verbose_lines(j, lab, s, width)
        print("\n".join(_cut_end(line, width) for line in lines), file=file)
        printed += 1
    if file is not None and limit is not None:
        shown = len(records) if scope is None else len(records.find(scope=scope))
        if shown > printed:
            print(f"... {shown - printed} more steps not printed ({len(records)} in all)", file=file)
    return records
