"""Draw the graph behind an output: Graphviz DOT text, and PNG/SVG when Graphviz's ``dot`` program is installed.

    dot = autograd.graph.to_dot(loss, names=model.named_parameters())     # DOT text (a str)
    autograd.graph.render(loss, "graph.svg", names=model.named_parameters())
    autograd.graph.render(loss, "net.png", collapse=1)        # one node per top-level module (Inception block)
    autograd.graph.draw(loss, collapse=1)                      # in a notebook: shows the picture

What is drawn. The graph is made of Functions (ops); tensors are not kept by it, so tensor nodes are drawn from
what each op recorded about its inputs and outputs (shape and dtype) and from the leaf tensors it points to:

* op nodes (boxes): the op's name and its module path;
* tensor nodes (ellipses) between ops: shape and dtype; with ``trace=`` (the ``Trace`` of a backward pass) the
  norm of the gradient that flowed through;
* leaf nodes (ellipses, filled): inputs and parameters that receive gradients: name, shape, dtype, and with
  ``stats=True`` the norm of their values and of their ``.grad``;
* constants (dashed, optional): inputs that need no gradient (labels, masks, numbers);
* the outputs you passed (double ellipse).

Collapsing by module (``collapse=depth``) draws all ops whose module path shares its first ``depth`` parts as
one node (``mixed_5b: 31 ops, 12 params``), with an edge per tensor that crosses between such groups: a whole
Inception network becomes one node per block.

Rendering needs the ``dot`` program of Graphviz (``apt install graphviz``, ``brew install graphviz``,
``conda install graphviz``). Without it ``render`` writes the ``.dot`` text next to the requested file and
raises ``GraphvizNotFound`` saying so; ``to_dot`` never needs it.
"""
import os
import shutil
import subprocess

import numpy as np

from ..backend import get_array_module
from ..engine import topological_order
from .trace import name_map

__all__ = ["to_dot", "render", "draw", "GraphDrawing", "dot_available", "GraphvizNotFound", "graph_functions"]


class GraphvizNotFound(RuntimeError):
    """The Graphviz ``dot`` program is not installed (not on PATH)."""


def dot_available():
    """True when Graphviz's ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def graph_functions(outputs):
    """The Functions behind ``outputs`` (a Tensor or a list), each before the ops that produced its inputs."""
    tensors = _as_list(outputs)
    return topological_order([t.creator for t in tensors if t.creator is not None])


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _quote(text):
    """A DOT string literal; newlines become centred line breaks."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape):
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _norm(array):
    xp = get_array_module(array)
    return float(xp.sqrt((array.astype(np.float64) ** 2).sum()))


def _leaf_label(tensor, names, stats):
    name = names.get(id(tensor)) or tensor.name or "leaf"
    label = f"{name}\n{_shape(tensor.shape)} {tensor.dtype}"
    if stats:
        label += f"\n|value| {_norm(tensor.data):.3g}"
        if tensor.grad is not None:
            label += f"  |grad| {_norm(tensor.grad):.3g}"
    return label


class _DotWriter:
    def __init__(self, name, rankdir):
        self.lines = [f"digraph {_quote(name)} {{",
                      f"  rankdir={rankdir};",
                      '  node [fontname="Helvetica", fontsize=10];',
                      '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
        self.edges = set()

    def node(self, key, label, **attrs):
        attrs = "".join(f", {k}={_quote(v)}" for k, v in attrs.items())
        self.lines.append(f"  {key} [label={_quote(label)}{attrs}];")

    def edge(self, src, dst, label=None, **attrs):
        if (src, dst, label) in self.edges:
            return
        self.edges.add((src, dst, label))
        attrs = dict(attrs)
        if label:
            attrs["label"] = label
        body = ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
        self.lines.append(f"  {src} -> {dst}" + (f" [{body}]" if body else "") + ";")

    def text(self):
        return "\n".join(self.lines + ["}"]) + "\n"


_OP_STYLE = dict(shape="box", style="rounded,filled", fillcolor="#dbe8f7")
_TENSOR_STYLE = dict(shape="ellipse", fontsize="9")
_LEAF_STYLE = dict(shape="ellipse", style="filled", fillcolor="#f6e7b4")
_CONST_STYLE = dict(shape="ellipse", style="dashed", fontsize="9", color="#888888")
_OUTPUT_STYLE = dict(shape="doubleoctagon", style="filled", fillcolor="#d9f0d3")
_GROUP_STYLE = dict(shape="box3d", style="filled", fillcolor="#e8dff5")


def to_dot(outputs, names=None, *, stats=False, trace=None, collapse=None, constants=False, rankdir="TB",
           title="graph", max_nodes=5000):
    """Graphviz DOT text of the graph behind ``outputs``.

    Args:
        outputs: a Tensor (the loss, a block's output) or a list of Tensors.
        names: names of leaves: ``model.named_parameters()`` (pairs), a dict name -> tensor, or
            ``{id(tensor): name}``; leaves not named use ``Tensor.name``.
        stats: show the norm of each leaf's values and ``.grad``, and of the outputs' values.
        trace: a ``Trace`` (from ``autograd.trace``) of a backward pass over this graph: tensor nodes then show
            the norm of the gradient that flowed through them.
        collapse: None (every op), an int ``depth`` (one node per module path prefix of that many parts; ops
            with a shorter path stay single), or a function ``scope tuple -> group name or None``.
        constants: also draw the inputs that need no gradient.
        rankdir: "TB" (top to bottom, inputs at the top: the graph is drawn in the forward direction) or "LR".
        max_nodes: refuse to write more op nodes than this (a full network: use ``collapse``).

    Returns:
        str: the DOT text.
    """
    names = name_map(names)
    tensors = _as_list(outputs)
    functions = graph_functions(tensors)
    group_of = _grouping(collapse)
    groups = {}                        # group name -> list of Functions
    fn_node = {}                       # Function -> node key (its own, or its group's)
    for fn in functions:
        g = group_of(tuple(getattr(fn, "scope", ())))
        if g is not None:
            groups.setdefault(g, []).append(fn)
    if len(functions) - sum(len(v) for v in groups.values()) + len(groups) > max_nodes:
        raise ValueError(f"to_dot: the graph has {len(functions)} ops, more than max_nodes={max_nodes}; "
                         f"pass collapse=1 (one node per top-level module) or raise max_nodes")
    grad_norms = {}
    if trace is not None:
        for record in trace:
            grad_norms[record.function_id] = [s.norm for s in record.grad_outputs]

    w = _DotWriter(title, rankdir)
    for i, (gname, fns) in enumerate(groups.items()):
        key = f"g{i}"
        params = {id(e): e for fn in fns for e in fn.next_edges
                  if e is not None and not isinstance(e, tuple) and _is_parameter_like(e, names)}
        label = f"{gname}\n{len(fns)} ops"
        if params:
            label += f", {len(params)} parameter tensors ({sum(t.size for t in params.values()):,} values)"
        w.node(key, label, **_GROUP_STYLE)
        for fn in fns:
            fn_node[fn] = key
    for i, fn in enumerate(functions):
        if fn in fn_node:
            continue
        key = f"f{i}"
        fn_node[fn] = key
        scope = ".".join(getattr(fn, "scope", ()))
        w.node(key, fn.name + (f"\n{scope}" if scope else ""), **_OP_STYLE)

    tensor_node = {}                   # (Function, output index) -> key of its tensor node
    leaf_node = {}

    def output_tensor(producer, index):
        """Node of the ``index``-th output of ``producer``, created on first use, with an edge from the op."""
        k = (producer, index)
        if k not in tensor_node:
            key = f"t{len(tensor_node)}"
            tensor_node[k] = key
            label = f"{_shape(producer.output_shapes[index])} {producer.output_dtypes[index]}"
            norms = grad_norms.get(id(producer))
            if norms is not None:
                label += f"\n|grad| {norms[index]:.3g}"
            w.node(key, label, **_TENSOR_STYLE)
            w.edge(fn_node[producer], key)
        return tensor_node[k]

    n_const = 0
    for fn in functions:
        dst = fn_node[fn]
        for i, edge in enumerate(fn.next_edges):
            if isinstance(edge, tuple):
                producer, index = edge
                if fn_node[producer] == dst and dst.startswith("g"):
                    continue                         # inside a collapsed module
                if fn_node[producer].startswith("g") or dst.startswith("g"):
                    label = _shape(producer.output_shapes[index])
                    norms = grad_norms.get(id(producer))
                    if norms is not None:
                        label += f"\n|grad| {norms[index]:.3g}"
                    w.edge(fn_node[producer], dst, label=label)
                else:
                    w.edge(output_tensor(producer, index), dst)
            elif edge is not None:                   # a leaf tensor that receives a gradient
                if dst.startswith("g") and _is_parameter_like(edge, names):
                    continue                         # parameters of a collapsed module are counted in its label
                if id(edge) not in leaf_node:
                    leaf_node[id(edge)] = f"l{len(leaf_node)}"
                    w.node(leaf_node[id(edge)], _leaf_label(edge, names, stats), **_LEAF_STYLE)
                w.edge(leaf_node[id(edge)], dst)
            elif constants and not dst.startswith("g"):
                key = f"c{n_const}"
                n_const += 1
                w.node(key, f"const\n{_shape(fn.input_shapes[i])} {fn.input_dtypes[i]}", **_CONST_STYLE)
                w.edge(key, dst, style="dashed")

    for j, t in enumerate(tensors):
        key = f"out{j}"
        label = (t.name or ("output" if len(tensors) == 1 else f"output {j}")) + f"\n{_shape(t.shape)} {t.dtype}"
        if stats and t.size:
            label += f"\n|value| {_norm(t.data):.3g}" if t.size > 1 else f"\nvalue {float(t.data.reshape(-1)[0]):.4g}"
        w.node(key, label, **_OUTPUT_STYLE)
        if t.creator is not None:
            w.edge(fn_node[t.creator], key)
    return w.text()


def _grouping(collapse):
    if collapse is None:
        return lambda scope: None
    if callable(collapse):
        return collapse
    if isinstance(collapse, int) and collapse >= 1:
        return lambda scope: ".".join(scope[:collapse]) if len(scope) >= collapse else None
    raise ValueError(f"to_dot: collapse must be None, a positive int (module depth) or a function, got {collapse!r}")


def _is_parameter_like(tensor, names):
    """Parameters are hidden inside collapsed modules and counted in the module's label; other leaves (an input
    batch that requires grad) stay visible. A parameter is a leaf in the name map, or a tensor that says it is
    one with ``is_parameter = True`` (``nn.Parameter`` does)."""
    return id(tensor) in names or getattr(tensor, "is_parameter", False)


def render(outputs, path, names=None, *, format=None, **options):
    """Write the graph of ``outputs`` (or ready DOT text) to ``path`` as PNG, SVG or PDF via Graphviz ``dot``.

    Args:
        outputs: a Tensor, a list of Tensors, or DOT text (a str).
        path: the image file; its extension picks the format unless ``format`` is given. The DOT text is
            always written too, to the same path with the extension ``.dot``.
        names, options: passed to ``to_dot`` (``stats``, ``trace``, ``collapse``, ...).

    Returns:
        The path of the image. Raises ``GraphvizNotFound`` (with the path of the ``.dot`` file written) when the
        ``dot`` program is not installed, and ``RuntimeError`` with dot's message when it fails.
    """
    text = outputs if isinstance(outputs, str) else to_dot(outputs, names, **options)
    root, ext = os.path.splitext(str(path))
    fmt = (format or ext.lstrip(".")).lower()
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"render: cannot tell the image format from {str(path)!r}: use a .png, .svg or .pdf "
                         f"path or pass format=")
    dot_path = root + ".dot"
    with open(dot_path, "w") as f:
        f.write(text)
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(f"cannot render {path}: the Graphviz program 'dot' is not installed (not found on "
                               f"PATH). The graph was written as DOT text to {dot_path}; install Graphviz "
                               f"(apt install graphviz, brew install graphviz or conda install graphviz) and run "
                               f"'dot -T{fmt} {dot_path} -o {path}', or paste the text into an online viewer.")
    result = subprocess.run([exe, f"-T{fmt}", dot_path, "-o", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"render: 'dot -T{fmt}' failed with exit code {result.returncode}: "
                           f"{result.stderr.strip()} (DOT text in {dot_path})")
    return str(path)


class GraphDrawing:
    """DOT text that a notebook shows as an SVG picture (when Graphviz is installed) and a terminal as text.

    ``source`` is the DOT text; ``save(path)`` renders it to PNG/SVG/PDF like ``render``.
    """

    def __init__(self, source):
        self.source = source

    def __str__(self):
        return self.source

    def __repr__(self):
        return self.source

    def svg(self):
        """The SVG text of the drawing; raises ``GraphvizNotFound`` without Graphviz."""
        exe = shutil.which("dot")
        if exe is None:
            raise GraphvizNotFound("the Graphviz program 'dot' is not installed (not found on PATH); install "
                                   "Graphviz (apt install graphviz, brew install graphviz or conda install graphviz) "
                                   "to see the picture, or use .source (DOT text)")
        result = subprocess.run([exe, "-Tsvg"], input=self.source, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"'dot -Tsvg' failed with exit code {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def _repr_svg_(self):
        # Notebooks call this; returning None makes them fall back to the text (the DOT source).
        return self.svg() if dot_available() else None

    def save(self, path, format=None):
        return render(self.source, path, format=format)


def draw(outputs, names=None, **options):
    """A ``GraphDrawing`` of the graph behind ``outputs``: shows as a picture in a notebook (see ``to_dot``)."""
    return GraphDrawing(to_dot(outputs, names, **options))
