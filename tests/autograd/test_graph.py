"""Graphviz DOT export of the graph (autograd.graph): structure, labels, collapsing, rendering."""
import re

import numpy as np
import pytest

import ops
from autograd import Tensor, name_scope
from autograd.inspect.graph import GraphvizNotFound, dot_available, graph_functions, render, to_dot
from autograd.inspect.trace import trace

NODE = re.compile(r'^\s+(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r'^\s+(\w+) -> (\w+)(?: \[(.*)\])?;$')


def parse(dot):
    """{node: label} and [(src, dst, attrs)] of our DOT text; fails on any line it does not understand."""
    lines = dot.strip().splitlines()
    assert lines[0].startswith("digraph") and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.strip().startswith(("rankdir", "node [", "edge [")):
            continue
        m = NODE.match(line)
        if m:
            assert m.group(1) not in nodes, f"node {m.group(1)} defined twice"
            nodes[m.group(1)] = (m.group(2), m.group(3))
            continue
        m = EDGE.match(line)
        assert m, f"unexpected DOT line: {line!r}"
        edges.append((m.group(1), m.group(2), m.group(3) or ""))
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes, f"edge {src} -> {dst} to an undefined node"
    return nodes, edges


def block_graph():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 5)), requires_grad=True, name="x")
    w = Tensor(rng.standard_normal((5, 4)), requires_grad=True, name="w")
    v = Tensor(rng.standard_normal((4, 3)), requires_grad=True, name="v")
    with name_scope("block_1"):
        with name_scope("fc"):
            h = ops.relu(x @ w)
        h = h + h * 0.5
    with name_scope("block_2"):
        y = ops.relu(h @ v)
    loss = ops.softmax_cross_entropy(y, np.array([0, 2]))
    return (x, w, v), loss


def test_every_op_and_leaf_is_drawn_with_shapes():
    (x, w, v), loss = block_graph()
    nodes, edges = parse(to_dot(loss))
    ops_drawn = [label for key, (label, _) in nodes.items() if key.startswith("f")]
    assert sorted(label.split("\\n")[0] for label in ops_drawn) == sorted(f.name for f in graph_functions(loss))
    assert "MatMul\\nblock_1.fc" in ops_drawn
    leaves = {label.split("\\n")[0]: label for key, (label, _) in nodes.items() if key.startswith("l")}
    assert set(leaves) == {"x", "w", "v"}
    assert leaves["w"] == "w\\n(5, 4) float64"
    # the tensor between MatMul and ReLU: (2, 4) float64, with one edge in and one out
    tensors = [key for key, (label, _) in nodes.items() if key.startswith("t") and label.startswith("(2, 4)")]
    assert tensors
    out = [k for k in nodes if k.startswith("out")]
    assert out == ["out0"] and nodes["out0"][0] == "output\\n() float64"
    assert sum(1 for s, d, _ in edges if d == "out0") == 1


def test_edges_follow_the_forward_direction():
    (x, w, v), loss = block_graph()
    nodes, edges = parse(to_dot(loss))
    by_label = {label.split("\\n")[0] + ("@" + label.split("\\n")[1] if "\\n" in label and k.startswith("f") else ""): k
                for k, (label, _) in nodes.items()}
    matmul, relu = by_label["MatMul@block_1.fc"], by_label["ReLU@block_1.fc"]
    # leaf w feeds MatMul; MatMul -> its output tensor -> ReLU
    assert (by_label["w"], matmul, "") in edges
    middle = [d for s, d, _ in edges if s == matmul]
    assert len(middle) == 1 and (middle[0], relu, "") in edges
    # h is used twice (h + h*0.5): one tensor node with two consumers, Add and Mul
    h_nodes = [d for s, d, _ in edges if s == relu]
    assert len(h_nodes) == 1
    assert sorted(d for s, d, _ in edges if s == h_nodes[0]) == sorted([by_label["Add@block_1"], by_label["Mul@block_1"]])


def test_constants_are_optional():
    (x, w, v), loss = block_graph()
    nodes, _ = parse(to_dot(loss))
    assert not [k for k in nodes if k.startswith("c")]
    nodes, edges = parse(to_dot(loss, constants=True))
    consts = [k for k in nodes if k.startswith("c")]
    assert len(consts) == 1 and nodes[consts[0]][0] == "const\\n() float64"     # the 0.5
    assert any(s == consts[0] and "dashed" in a for s, _, a in edges)


def test_stats_and_trace_annotations():
    (x, w, v), loss = block_graph()
    records = trace(loss, file=None)
    nodes, _ = parse(to_dot(loss, stats=True, trace=records))
    w_label = [label for k, (label, _) in nodes.items() if label.startswith("w\\n")][0]
    assert f"|grad| {np.linalg.norm(w.grad):.3g}" in w_label
    assert f"|value| {np.linalg.norm(w.data):.3g}" in w_label
    relu_record = records.find(name="ReLU", scope="block_2")[0]
    assert any(f"|grad| {relu_record.grad_outputs[0].norm:.3g}" in label for k, (label, _) in nodes.items()
               if k.startswith("t"))
    assert "value " in nodes["out0"][0]


def test_names_map_from_named_parameters():
    (x, w, v), loss = block_graph()
    w.name = None
    nodes, _ = parse(to_dot(loss, names=[("block_1.fc.weight", w)]))
    assert any(label.startswith("block_1.fc.weight\\n(5, 4)") for label, _ in nodes.values())
    nodes, _ = parse(to_dot(loss, names={"W": w}))
    assert any(label.startswith("W\\n") for label, _ in nodes.values())


def test_collapse_by_module():
    (x, w, v), loss = block_graph()
    nodes, edges = parse(to_dot(loss, collapse=1, names=[("w", w), ("v", v)]))
    groups = {nodes[k][0].split("\\n")[0]: k for k in nodes if k.startswith("g")}
    assert set(groups) == {"block_1", "block_2"}
    assert nodes[groups["block_1"]][0] == "block_1\\n4 ops, 1 parameter tensors (20 values)"
    assert nodes[groups["block_2"]][0] == "block_2\\n2 ops, 1 parameter tensors (12 values)"
    single = [nodes[k][0] for k in nodes if k.startswith("f")]
    assert single == ["SoftmaxCrossEntropy"]                 # outside any module: stays an op node
    # one edge per crossing tensor, labelled by its shape; parameters hidden, the input x still shown
    assert (groups["block_1"], groups["block_2"], 'label="(2, 4)"') in edges
    leaves = [nodes[k][0].split("\\n")[0] for k in nodes if k.startswith("l")]
    assert leaves == ["x"]
    assert not [k for k in nodes if k.startswith("t")]


def test_collapse_deeper_and_by_function():
    (x, w, v), loss = block_graph()
    nodes, _ = parse(to_dot(loss, collapse=2))
    assert [nodes[k][0].split("\\n")[0] for k in nodes if k.startswith("g")] == ["block_1.fc"]
    nodes, _ = parse(to_dot(loss, collapse=lambda scope: "everything" if scope else None))
    assert [nodes[k][0].split("\\n")[0] for k in nodes if k.startswith("g")] == ["everything"]
    with pytest.raises(ValueError, match="collapse must be"):
        to_dot(loss, collapse=0)


def test_max_nodes_asks_for_collapse():
    (x, w, v), loss = block_graph()
    with pytest.raises(ValueError, match="collapse=1"):
        to_dot(loss, max_nodes=3)
    to_dot(loss, collapse=1, max_nodes=3)


def test_labels_are_escaped():
    x = Tensor(np.ones(2), requires_grad=True, name='say "hi"\\')
    nodes, _ = parse(to_dot((x * 2.0).sum()))
    assert any(label.startswith('say \\"hi\\"\\\\') for label, _ in nodes.values())


def test_graph_can_be_drawn_after_backward():
    (x, w, v), loss = block_graph()
    before = to_dot(loss)
    loss.backward()                       # frees saved arrays, keeps structure
    assert to_dot(loss) == before


def test_several_outputs():
    a = Tensor(np.ones((2, 3)), requires_grad=True, name="a")
    first, second = ops.split(a, [1, 2], axis=1)
    nodes, edges = parse(to_dot([first * 2.0, second.sum()]))
    assert {k for k in nodes if k.startswith("out")} == {"out0", "out1"}
    assert nodes["out1"][0] == "output 1\\n() float64"


def test_render_without_graphviz_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (x, w, v), loss = block_graph()
    target = tmp_path / "graph.png"
    with pytest.raises(GraphvizNotFound, match="'dot' is not installed") as info:
        render(loss, target)
    assert str(tmp_path / "graph.dot") in str(info.value)
    assert (tmp_path / "graph.dot").read_text() == to_dot(loss)
    assert not target.exists()
    assert not dot_available()


def test_render_rejects_unknown_formats(tmp_path):
    (x, w, v), loss = block_graph()
    with pytest.raises(ValueError, match="png, .svg or .pdf"):
        render(loss, tmp_path / "graph.jpeg")


@pytest.mark.skipif(not dot_available(), reason="Graphviz 'dot' is not installed (optional; rendering only)")
def test_render_png_and_svg(tmp_path):
    (x, w, v), loss = block_graph()
    png = render(loss, tmp_path / "g.png", stats=True)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    svg = render(to_dot(loss, collapse=1), tmp_path / "g.svg")
    text = open(svg).read()
    assert "<svg" in text and "block_1" in text


def test_draw_for_notebooks(monkeypatch, tmp_path):
    from autograd.inspect.graph import GraphDrawing, draw
    (x, w, v), loss = block_graph()
    drawing = draw(loss, collapse=1)
    assert isinstance(drawing, GraphDrawing)
    assert drawing.source == to_dot(loss, collapse=1) == repr(drawing)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert drawing._repr_svg_() is None                    # the notebook falls back to the text
    with pytest.raises(GraphvizNotFound, match="not installed"):
        drawing.svg()


@pytest.mark.skipif(not dot_available(), reason="Graphviz 'dot' is not installed (optional; rendering only)")
def test_draw_gives_svg_with_graphviz(tmp_path):
    from autograd.inspect.graph import draw
    (x, w, v), loss = block_graph()
    drawing = draw(loss)
    assert "<svg" in drawing._repr_svg_()
    assert open(drawing.save(tmp_path / "d.png"), "rb").read(4) == b"\x89PNG"


def test_collapse_counts_tensors_that_say_they_are_parameters():
    # No names map: a leaf is a parameter when it says so (``is_parameter``, as nn.Parameter does); a class that
    # is merely called "Parameter" is not one.
    class Weight(Tensor):
        is_parameter = True

    class Parameter(Tensor):
        pass

    (x, w, v), loss = block_graph()
    w.__class__, v.__class__ = Weight, Parameter
    nodes, _ = parse(to_dot(loss, collapse=1))
    labels = {nodes[k][0].split("\\n")[0]: nodes[k][0] for k in nodes}
    assert labels["block_1"] == "block_1\\n4 ops, 1 parameter tensors (20 values)"
    assert labels["block_2"] == "block_2\\n2 ops"
    assert sorted(nodes[k][0].split("\\n")[0] for k in nodes if k.startswith("l")) == ["v", "x"]


def test_nn_parameters_are_parameters_in_the_drawing():
    from minception import nn
    layer = nn.Linear(5, 3)
    with name_scope("fc"):
        y = layer(Tensor(np.ones((2, 5), dtype=np.float32), requires_grad=True, name="x"))
    nodes, _ = parse(to_dot(y.sum(), collapse=1))
    labels = [nodes[k][0] for k in nodes]
    assert "fc\\n1 ops, 2 parameter tensors (18 values)" in labels
