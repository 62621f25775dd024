"""``autograd.engine.in_parts``: elementwise work cut along the batch axis and run in threads must give exactly
the plain NumPy results. The fast path only starts above ``PARALLEL_MIN_BYTES``; these tests lower that limit to 0
and force 3 threads, so small odd shapes take it."""
import numpy as np
import pytest

import ops
from autograd import Tensor, engine, gradcheck


@pytest.fixture
def forced_parts(monkeypatch):
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "_threads", 3)
    monkeypatch.setattr(engine, "_pool", None)
    yield
    if engine._pool is not None:
        engine._pool.shutdown()


def test_in_parts_matches_the_plain_call_with_broadcast_operands(forced_parts):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 3, 5)).astype(np.float32)
    for b in (rng.standard_normal((7, 3, 5)), rng.standard_normal((3, 5)), rng.standard_normal((1, 3, 1)),
              np.float32(2.5) * np.ones(())):
        b = np.asarray(b, np.float32)
        out = engine.in_parts(np.multiply, np.empty_like(a), a, b)
        np.testing.assert_array_equal(out, a * b)


def test_in_parts_with_fewer_rows_than_threads_and_strided_inputs(forced_parts):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 9, 4))[:, ::2]          # a non-contiguous view
    out = engine.in_parts(np.add, np.empty(a.shape), a, a)
    np.testing.assert_array_equal(out, a + a)


def test_ops_fast_paths_equal_the_readable_formulas(forced_parts):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 4, 6)).astype(np.float32)
    y = rng.standard_normal((5, 3, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(ops.relu(Tensor(x)).data, np.maximum(x, 0))
    np.testing.assert_array_equal(ops.add(Tensor(x), Tensor(y)).data, x + y)
    np.testing.assert_array_equal(ops.mul(Tensor(x), 0.17).data, x * np.float32(0.17))
    np.testing.assert_array_equal(ops.concat([Tensor(x), Tensor(y[:, :2])], axis=1).data,
                                  np.concatenate([x, y[:, :2]], axis=1))
    t = Tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    ops.relu(t).backward(g)
    np.testing.assert_array_equal(t.grad, np.where(x > 0, g, 0))


def test_gradients_through_the_fast_paths(forced_parts):
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((5, 3, 3, 2)) + 0.05, requires_grad=True)   # float64, away from ReLU's kink
    w = Tensor(rng.standard_normal((5, 3, 3, 2)), requires_grad=True)

    def fn(x, w):
        a = ops.relu(x)                                   # x feeds three consumers: the engine sums in place
        b = ops.concat([a * w, x * 0.3, a + x], axis=1)
        return ops.relu(b + ops.concat([w, w, x], axis=1))

    assert gradcheck(fn, [x, w])


def test_engine_sum_of_many_consumers(forced_parts):
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((6, 4)).astype(np.float32), requires_grad=True)
    total = x * 1.0 + x * 2.0 + x * 3.0 + x * 4.0
    total.backward(np.ones((6, 4), np.float32))
    np.testing.assert_allclose(x.grad, np.full((6, 4), 10.0, np.float32))
