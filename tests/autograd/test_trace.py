"""The step-by-step backward (engine.backward_steps) and the printable trace (autograd.trace)."""
import io

import numpy as np
import pytest

import ops
from autograd import Function, Tensor, backward_steps, name_scope
from autograd.inspect.trace import GradStats, Trace, format_shape, format_step, grad_stats, trace


def build(dtype=np.float64, seed=0):
    """A small graph with every kind of edge: reuse (fan-out), broadcasting, concat/split (several inputs and
    outputs), an unused output, a constant input, a leaf used twice and a retained intermediate."""
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((5, 7)).astype(dtype), requires_grad=True, name="x")
    w1 = Tensor(rng.standard_normal((7, 6)).astype(dtype), requires_grad=True, name="w1")
    b1 = Tensor(rng.standard_normal((6,)).astype(dtype), requires_grad=True, name="b1")
    w2 = Tensor(rng.standard_normal((6, 4)).astype(dtype), requires_grad=True, name="w2")
    with name_scope("block"):
        with name_scope("fc1"):
            h = ops.relu(x @ w1 + b1)
        h.retain_grad()
        left, right, _unused = ops.split(h, [2, 3, 1], axis=1)
        with name_scope("branch_1"):
            mixed = ops.concat([left * 2.0, ops.exp(right * 0.1)], axis=1)
        z = mixed + h[:, :5] * mixed          # h used three times
    logits = ops.relu(z @ w2[:5]) + x[:, :4] * 0.5
    loss = ops.softmax_cross_entropy(logits, np.array([0, 1, 2, 3, 1]))
    return (x, w1, b1, w2), h, loss


def grads_of(tensors):
    return [t.grad.copy() for t in tensors]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stepper_gradients_equal_backward_bitwise(dtype):
    leaves, h, loss = build(dtype)
    loss.backward()
    expected = grads_of(leaves) + [h.grad.copy()]

    leaves2, h2, loss2 = build(dtype)
    steps = list(backward_steps(loss2))
    assert len(steps) > 10
    got = grads_of(leaves2) + [h2.grad.copy()]
    for e, g in zip(expected, got):
        assert e.dtype == g.dtype == dtype
        assert np.array_equal(e, g)             # bitwise: same ops, same order, same sums

    leaves3, h3, loss3 = build(dtype)
    records = trace(loss3, file=None)
    assert len(records) == len(steps)
    for e, g in zip(expected, grads_of(leaves3) + [h3.grad.copy()]):
        assert np.array_equal(e, g)


def test_steps_describe_each_op():
    leaves, h, loss = build()
    steps = list(backward_steps(loss))
    assert [s.index for s in steps] == list(range(len(steps)))
    first = steps[0]
    assert first.name == "SoftmaxCrossEntropy" and first.scope == ""
    assert first.input_shapes == ((5, 4),) and first.output_shapes == ((),)
    assert first.grad_outputs[0].shape == () and float(first.grad_outputs[0]) == 1.0

    names = [s.name for s in steps]
    scopes = {s.scope for s in steps}
    assert {"block.fc1", "block.branch_1", "block"} <= scopes
    matmul = [s for s in steps if s.name == "MatMul" and s.scope == "block.fc1"][0]
    assert matmul.input_shapes == ((5, 7), (7, 6)) and matmul.output_shapes == ((5, 6),)
    assert [g.shape for g in matmul.grad_inputs] == [(5, 7), (7, 6)]
    # Every op runs after all of its consumers: the gradient it receives is complete.
    order = {id(s.function): i for i, s in enumerate(steps)}
    for s in steps:
        for edge in s.function.next_edges:
            if isinstance(edge, tuple):
                assert order[id(edge[0])] > order[id(s.function)]
    # split has three outputs; the unused one gets a zero gradient
    split = steps[names.index("Split")]
    assert len(split.grad_outputs) == 3 and not split.grad_outputs[2].any()


def test_step_gradients_are_the_ones_the_engine_passes_on():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, name="x")
    y = ops.relu(x) * 3.0
    loss = (y * y).sum()
    steps = list(backward_steps(loss))
    assert [s.name for s in steps] == ["Sum", "Mul", "Mul", "ReLU"]
    relu = steps[-1]
    # d/dy sum(y^2) = 2y = 2*3*relu(x); times 3 into relu; relu zeroes the negative input
    np.testing.assert_array_equal(relu.grad_outputs[0], 18 * np.maximum(x.data, 0))
    np.testing.assert_array_equal(relu.grad_inputs[0], np.array([18.0, 0.0, 54.0]))
    np.testing.assert_array_equal(x.grad, relu.grad_inputs[0])
    stats = relu.grad_input_stats[0]
    assert stats.zero_fraction == pytest.approx(1 / 3)
    assert stats.norm == pytest.approx(np.sqrt(18.0 ** 2 + 54.0 ** 2))
    assert stats.max_abs == 54.0 and stats.mean == pytest.approx(24.0)


def test_stopping_early_leaves_partial_gradients():
    x = Tensor(np.ones(3), requires_grad=True)
    loss = (ops.exp(x) * 2.0).sum()
    it = backward_steps(loss)
    next(it)                                  # Sum
    assert x.grad is None                     # nothing reached the leaf yet
    for _ in it:
        pass
    np.testing.assert_allclose(x.grad, 2 * np.exp(1.0))


def test_backward_steps_accepts_a_tensor_or_a_list_and_a_seed():
    a = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    seed = np.full((2, 3), 0.5)
    list(backward_steps(a * 2.0, seed))
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 1.0))
    b = Tensor(np.arange(3.0), requires_grad=True)
    list(backward_steps([(b * 3.0).sum()]))
    np.testing.assert_array_equal(b.grad, [3.0, 3.0, 3.0])


def test_retain_graph_allows_stepping_twice():
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    loss = (ops.exp(x) * x).sum()
    first = [s.name for s in backward_steps(loss, retain_graph=True)]
    g = x.grad.copy()
    second = [s.name for s in backward_steps(loss)]
    assert first == second
    np.testing.assert_allclose(x.grad, 2 * g, rtol=1e-15)


def test_grad_stats():
    s = grad_stats(np.array([[3.0, 0.0], [-4.0, 0.0]], dtype=np.float32))
    assert s == GradStats(shape=(2, 2), dtype="float32", norm=5.0, mean=-0.25, max_abs=4.0, zero_fraction=0.5,
                          finite=True)
    assert grad_stats(None) is None
    assert not grad_stats(np.array([1.0, np.nan])).finite
    assert not grad_stats(np.array([1.0, np.inf])).finite
    assert grad_stats(np.zeros((0, 3))).norm == 0.0
    # float32 statistics are computed in float64: no overflow of the sum of squares
    big = np.full(10, 3e30, dtype=np.float32)
    assert np.isfinite(grad_stats(big).norm)
    assert "zeros 50.0%" in str(s)


def test_format_shape():
    assert format_shape((2, 64, 17, 17)) == "(2,64,17,17)"
    assert format_shape(()) == "()" and format_shape((3,)) == "(3,)"


def test_step_prints_one_labelled_line_or_wraps_it_within_the_width():
    leaves, h, loss = build()
    steps = list(backward_steps(loss))
    matmul = [s for s in steps if s.name == "MatMul" and s.scope == "block.fc1"][0]
    line = format_step(matmul, width=0)                 # no limit: one line
    assert "\n" not in line
    assert line.split()[0] == str(matmul.index)
    for part in ["MatMul", "block.fc1", "(5,7) (7,6) -> (5,6)", "| dL/d(output) norm", "zeros",
                 "| dL/d(inputs) [0] x.grad", "[1] w1.grad"]:
        assert part in line, part
    assert format_step(matmul, index=99, width=0).split()[0] == "99"
    wrapped = str(matmul).splitlines()                  # print(step): within 100 columns, wrapped at the bars
    assert len(wrapped) == 3 and max(map(len, wrapped)) <= 100
    assert wrapped[0].split() == ["14", "MatMul", "block.fc1", "(5,7)", "(7,6)", "->", "(5,6)"]
    assert wrapped[1].startswith("      | dL/d(output) norm") and wrapped[2].startswith("      | dL/d(inputs) [0]")


def rows_of(lines):
    """The lines of a trace table that start a row (a step number first), without the header and wraps."""
    return [ln for ln in lines if ln[:4].strip().isdigit()]


def test_trace_prints_a_table_row_per_step_in_order():
    leaves, h, loss = build()
    out = io.StringIO()
    records = trace(loss, file=out)
    lines = out.getvalue().splitlines()
    assert isinstance(records, Trace)
    assert "dL/d(output)" in lines[0] and "dL/d(inputs)" in lines[0]
    assert lines[1].split()[:4] == ["step", "op", "module", "output"]
    rows = rows_of(lines)
    assert len(rows) == len(records)
    for line, r in zip(rows, records):
        step, op = line.split()[:2]
        assert step == str(r.index) and (op == r.name or r.name.startswith(op[:-3]) and op.endswith("..."))
    assert max(map(len, lines)) <= 100
    table = str(records).splitlines()
    assert table[1].split()[:4] == ["step", "op", "module", "output"]
    assert len(rows_of(table)) == len(records) and max(map(len, table)) <= 100
    # the gradients an op sends to its inputs wrap within their column: every entry is printed
    matmul = records.find(name="MatMul", scope="block.fc1")[0]
    at = [i for i, ln in enumerate(table) if ln.split()[:2] == [str(matmul.index), "MatMul"]][0]
    column = table[at].index("x.grad")
    assert table[at + 1].index("w1.grad") == column and not table[at + 1][:column].strip()
    # no limit: one line per row, every column (the input shapes, the mean and max of dL/d(output))
    wide = records.table(width=None).splitlines()
    assert len(wide) == len(records) + 3 and "shapes (inputs -> output)" in wide[1] and "mean" in wide[1]
    assert "(5,7) (7,6) -> (5,6)" in wide[3 + matmul.index] and "x.grad" in wide[3 + matmul.index]


def test_trace_never_exceeds_the_width_on_an_inception_block():
    from minception import models, nn
    nn.init.manual_seed(0)
    with name_scope("inception_resnet_b_1"):          # the long module paths of a whole network
        block = models.InceptionResNetB(16, models.Rules(width=0.05, small_input=True), version=2)
        x = Tensor(np.random.default_rng(0).standard_normal((2, 16, 5, 5)).astype(np.float32), name="x")
        y = block(x)
    for width in (100, 80, 132):
        out = io.StringIO()
        records = trace((y * y).sum(), file=out, names=block.named_parameters(), width=width, retain_graph=True,
                        verbose=width == 80)
        lines = out.getvalue().splitlines()
        assert max(map(len, lines)) <= width, max(lines, key=len)
        assert len(rows_of(lines)) == len(records) > 10
        table = records.table(width=width).splitlines()
        assert max(map(len, table)) <= width and len(rows_of(table)) == len(records)
        # the columns line up: every row's module cell starts where the header's "module" does
        at = table[1].index("module")
        assert all(ln[at - 2:at] == "  " and ln[at] != " " for ln in rows_of(table))
    assert any("...ranch" in ln or "branch" in ln for ln in lines)


def test_trace_limit_scope_and_verbose():
    leaves, h, loss = build()
    out = io.StringIO()
    records = trace(loss, file=out, scope="block.fc1", verbose=True)
    text = out.getvalue()
    assert "dL/d(input 0) -> " in text
    printed = rows_of(text.splitlines())
    assert len(printed) == len(records.find(scope="block.fc1")) == 3      # MatMul, Add, ReLU
    assert all(r.scope == "block.fc1" for r in records.find(scope="block.fc1"))

    leaves, h, loss = build()
    out = io.StringIO()
    records = trace(loss, file=out, limit=2)
    lines = out.getvalue().splitlines()
    assert len(rows_of(lines)) == 2 and lines[-1].startswith(f"... {len(records) - 2} more steps")
    assert leaves[0].grad is not None                     # the pass ran to the end anyway


def test_trace_names_from_named_parameters():
    leaves, h, loss = build()
    x, w1, b1, w2 = leaves
    for t in leaves:
        t.name = None
    records = trace(loss, file=None, names=[("fc1.weight", w1), ("fc1.bias", b1)])
    fc1 = records.find(name="MatMul", scope="block.fc1")[0]
    assert fc1.destinations == ["leaf.grad", "fc1.weight.grad"]
    add = records.find(name="Add", scope="block.fc1")[0]
    assert add.destinations == ["MatMul", "fc1.bias.grad"]


def test_trace_records_and_helpers():
    leaves, h, loss = build()
    records = trace(loss, file=None)
    assert records.by_op()["MatMul"] == 2
    assert records.first_nonfinite() is None
    relu = records.find(name="ReLU", scope="block.fc1")[0]
    np.testing.assert_allclose(relu.grad_out_norm, np.linalg.norm(h.grad))
    assert "more steps" in records.table(limit=3)


def test_trace_flags_nonfinite_gradients():
    class BadGrad(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            return gy * np.inf

    x = Tensor(np.ones(3), requires_grad=True)
    with name_scope("bad"):
        y = BadGrad()(x)
    records = trace((y * 2.0).sum(), file=None)
    first = records.first_nonfinite()
    assert first.name == "BadGrad" and first.scope == "bad"
    assert "NON-FINITE" in str(first.grad_inputs[0])


def test_trace_shows_in_a_notebook_and_repl():
    leaves, h, loss = build()
    records = trace(loss, file=None)
    page = records._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == len(records) + 1
    assert "block.fc1" in page and "&lt;" not in page.split("<tbody>")[0]
    assert repr(records).startswith(f"<Trace of {len(records)} backward steps>")
    assert "more steps" in records._repr_html_(limit=2)


@pytest.mark.gpu
def test_stepper_and_trace_on_the_gpu():
    import cupy as cp

    def run():
        rng = np.random.default_rng(3)
        x = Tensor(cp.asarray(rng.standard_normal((5, 7))), requires_grad=True, name="x")
        w = Tensor(cp.asarray(rng.standard_normal((7, 4))), requires_grad=True, name="w")
        with name_scope("fc"):
            h = ops.relu(x @ w)
        return x, w, ops.softmax_cross_entropy(h, np.array([0, 1, 2, 3, 0]))

    x1, w1, loss1 = run()
    loss1.backward()
    x2, w2, loss2 = run()
    records = trace(loss2, file=None)
    assert cp.array_equal(x1.grad, x2.grad) and cp.array_equal(w1.grad, w2.grad)
    relu = records.find(name="ReLU", scope="fc")[0]
    steps = list(backward_steps(run()[2]))
    step = [st for st in steps if st.name == "ReLU"][0]
    assert isinstance(step.grad_inputs[0], cp.ndarray)
    assert relu.grad_inputs[0].norm == pytest.approx(float(cp.linalg.norm(step.grad_inputs[0])), rel=1e-12)
    s = grad_stats(cp.asarray([3.0, 0.0, -4.0]))
    assert (s.norm, s.max_abs, s.zero_fraction) == (5.0, 4.0, pytest.approx(1 / 3))
