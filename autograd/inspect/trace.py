"""Watch backpropagation one op at a time: gradient statistics and a printable trace.

``backward_steps`` runs backward one Function at a time (it drives the engine's ``iter_backward``) and yields a
``BackwardStep`` after each::

    for step in autograd.backward_steps(loss):
        print(step)                  # one line: op, module path, shapes, gradient statistics
        step.function                # the Function (name, scope, input_shapes, output_shapes, ...)
        step.grad_outputs            # the gradient that arrived at each of its outputs (raw arrays)
        step.grad_inputs             # the gradient it sent to each of its inputs (raw array or None)
        step.grad_output_stats       # GradStats of each incoming gradient (norm, mean, max |g|, zeros)

This module also holds what turns those arrays into something a person can read:

* ``grad_stats(array)``: the summary statistics of one gradient (``GradStats``);
* ``format_step(step)``: the one-line description of a step that ``print(step)`` shows;
* ``trace(loss)``: runs the whole backward pass (leaving exactly the gradients ``loss.backward()`` leaves),
  printing one line per op as it goes, and returns a ``Trace`` (a list of ``TraceRecord``) to look at later.

A trace line reads (a ConvBNReLU box named ``stem``)::

   4  BatchNorm        stem.bn                  (4,8,16,16) (8,) (8,) -> (4,8,16,16)  | grad in  norm 3.74e-02
      mean 4.90e-05 max 1.46e-03 zeros 49.7%  | grad out  [0] Conv2d 2.72e-02  [1] stem.bn.weight.grad 2.69e-01 ...

(one line in the terminal; wrapped here). ``grad in`` is the gradient arriving at the op's output (what its
backward receives); ``grad out`` lists the norm of each gradient the op produces, labelled by where it goes:
``weight.grad`` for a leaf (parameter, input), or the name of the op that produced that input (the gradient
travels on to it). Statistics are computed in float64 and moved to the host, so on the GPU they cost a
device synchronisation per step: tracing is for looking, not for training.
"""
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ..backend import get_array_module
from ..engine import iter_backward

__all__ = ["BackwardStep", "backward_steps", "GradStats", "grad_stats", "format_step", "format_record",
           "format_shape", "destination_names", "name_map", "TraceRecord", "record_step", "Trace", "trace"]


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
        """``GradStats`` (norm, mean, max |g|, fraction of zeros) of each incoming gradient."""
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


def format_step(step, index=None, names=None, verbose=False):
    """One line describing a ``BackwardStep`` (more lines with ``verbose``: full statistics per input).

    Args:
        step: a ``BackwardStep`` (or anything with ``function``, ``grad_outputs``, ``grad_inputs``).
        index: the step number printed first (the step's own ``index`` when None).
        names: parameter names for the labels of produced gradients (see ``destination_names``).
    """
    if index is None:
        index = getattr(step, "index", 0)
    return format_record(record_step(step, index, names), verbose=verbose)


def format_record(record, verbose=False, widths=(16, 24)):
    """The trace line of a ``TraceRecord``; ``widths``: of the op-name and module-path columns."""
    name_w, scope_w = widths
    shapes = " ".join(format_shape(s) for s in record.input_shapes) + " -> " + \
        " ".join(format_shape(s) for s in record.output_shapes)
    line = f"{record.index:4d}  {record.name:<{name_w}s} {record.scope or '-':<{scope_w}s} {shapes}"
    incoming = record.grad_outputs
    if len(incoming) == 1:
        line += f"  | grad in  {incoming[0]}"
    else:
        line += "  | grad in  " + "  ".join(f"[{i}] norm {_num(s.norm)}" for i, s in enumerate(incoming))
    outs = [f"[{i}] {lab} {_num(s.norm)}" for i, (lab, s) in enumerate(zip(record.destinations, record.grad_inputs))
            if s is not None]
    line += "  | grad out  " + ("  ".join(outs) if outs else "(none)")
    if verbose:
        for i, (lab, s) in enumerate(zip(record.destinations, record.grad_inputs)):
            if s is not None:
                line += f"\n{'':6s}grad of input {i} ({lab}, {format_shape(s.shape)}): {s}"
    return line


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


class Trace(list):
    """The records of one backward pass, in the order the ops ran. ``str(trace)`` is the aligned table; in a
    notebook the trace shows as an HTML table."""

    def __str__(self):
        return self.table()

    def __repr__(self):
        return f"<Trace of {len(self)} backward steps>\n" + self.table(limit=40)

    def _repr_html_(self, limit=200):
        import html
        head = ["step", "op", "module", "input shapes", "output shapes", "|grad in|", "mean", "max |g|", "zeros",
                "grad out (norm per input)"]
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

    def table(self, limit=None):
        """Aligned text table, one row per op (the first ``limit`` rows when given)."""
        rows = self if limit is None else self[:limit]
        name_w = max([len(r.name) for r in rows] + [2])
        scope_w = max([len(r.scope) for r in rows] + [6])
        shape_strs = [" ".join(map(format_shape, r.input_shapes)) + " -> "
                      + " ".join(map(format_shape, r.output_shapes)) for r in rows]
        shape_w = max([len(s) for s in shape_strs] + [6])
        head = (f"{'step':>4s}  {'op':<{name_w}s}  {'module':<{scope_w}s}  {'shapes':<{shape_w}s}  "
                f"{'|grad in|':>9s}  {'mean':>9s}  {'max|g|':>8s}  {'zeros':>6s}  grad out (norm per input)")
        lines = [head, "-" * len(head)]
        for r, shapes in zip(rows, shape_strs):
            g = r.grad_outputs[0] if len(r.grad_outputs) == 1 else None
            norm = r.grad_out_norm
            mean = _num(g.mean) if g else "-"
            mx = _num(g.max_abs) if g else _num(max(s.max_abs for s in r.grad_outputs))
            zeros = f"{100 * g.zero_fraction:5.1f}%" if g else "-"
            outs = "  ".join(f"{d} {_num(s.norm)}" for d, s in zip(r.destinations, r.grad_inputs) if s is not None)
            lines.append(f"{r.index:4d}  {r.name:<{name_w}s}  {(r.scope or '-'):<{scope_w}s}  {shapes:<{shape_w}s}  "
                         f"{_num(norm):>9s}  {mean:>9s}  {mx:>8s}  {zeros:>6s}  {outs}")
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
          verbose=False):
    """Run backward from ``outputs`` one op at a time, print one line per op, and return the ``Trace``.

    The gradients left in ``.grad`` are exactly those ``outputs.backward(grad)`` leaves (the same engine
    steps run in the same order; this function only looks at them).

    Args:
        outputs: a Tensor (usually the loss) or a list of Tensors.
        grad: seed gradient(s), as for ``backward``; None means 1 for a scalar.
        file: where to print (a text stream; default ``sys.stdout``); None prints nothing.
        names: parameter names for the labels, e.g. ``model.named_parameters()``.
        scope: print only ops whose module path starts with this (``"mixed_5b"``); all are recorded.
        limit: print at most this many lines (the pass still runs to the end).
        verbose: also print the full statistics of every produced gradient.

    Returns:
        ``Trace``: a list of ``TraceRecord``, one per op, in the order backward ran them.
    """
    if file is _STDOUT:
        file = sys.stdout
    names = name_map(names)
    tensors = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    grads = None if grad is None else (list(grad) if isinstance(grad, (list, tuple)) else [grad])
    records = Trace()
    printed = 0
    for i, step in enumerate(backward_steps(tensors, grads, retain_graph=retain_graph)):
        record = record_step(step, i, names)
        records.append(record)
        if file is None or (scope is not None and not (record.scope == scope or record.scope.startswith(scope + "."))):
            continue
        if limit is not None and printed >= limit:
            continue
        print(format_record(record, verbose=verbose), file=file)
        printed += 1
    if file is not None and limit is not None:
        shown = len(records) if scope is None else len(records.find(scope=scope))
        if shown > printed:
            print(f"... {shown - printed} more steps not printed ({len(records)} in all)", file=file)
    return records
