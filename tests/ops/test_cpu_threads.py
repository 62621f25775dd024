"""The fast tier's CPU threads (``ops.kernels.cpu.runtime.threads``: ``parallel_for``) and elementwise work cut into
parts along the batch axis (``ops.kernels.cpu.runtime.parts``: ``in_parts``): run in threads, they must give exactly
the plain NumPy results. The split only starts above ``PARALLEL_MIN_BYTES``; these tests lower that limit to 0 and
force 3 threads (the ``three_threads`` fixture), so small odd shapes take it."""
import numpy as np
import pytest

import ops
from autograd import Tensor, gradcheck
from ops.kernels.cpu.runtime import parts, threads


@pytest.fixture
def forced_parts(three_threads):
    yield


def test_in_parts_matches_the_plain_call_with_broadcast_operands(forced_parts):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 3, 5)).astype(np.float32)
    for b in (rng.standard_normal((7, 3, 5)), rng.standard_normal((3, 5)), rng.standard_normal((1, 3, 1)),
              np.float32(2.5) * np.ones(())):
        b = np.asarray(b, np.float32)
        out = parts.in_parts(np.multiply, np.empty_like(a), a, b)
        np.testing.assert_array_equal(out, a * b)


def test_in_parts_with_fewer_rows_than_threads_and_strided_inputs(forced_parts):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 9, 4))[:, ::2]          # a non-contiguous view
    out = parts.in_parts(np.add, np.empty(a.shape), a, a)
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
        a = ops.relu(x)                                   # x feeds three consumers
        b = ops.concat([a * w, x * 0.3, a + x], axis=1)
        return ops.relu(b + ops.concat([w, w, x], axis=1))

    assert gradcheck(fn, [x, w])


def test_engine_sum_of_many_consumers(forced_parts):
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((6, 4)).astype(np.float32), requires_grad=True)
    total = x * 1.0 + x * 2.0 + x * 3.0 + x * 4.0
    total.backward(np.ones((6, 4), np.float32))
    np.testing.assert_allclose(x.grad, np.full((6, 4), 10.0, np.float32))


def test_parallel_for_covers_the_range_once_in_order(forced_parts):
    seen = []

    def job(lo, hi):
        seen.append((lo, hi))
        return list(range(lo, hi))

    results = threads.parallel_for(job, 7)
    assert [i for part in results for i in part] == list(range(7))
    assert sorted(seen) == [(0, 2), (2, 4), (4, 7)]
    assert threads.parallel_for(job, 7, parallel=False) == [list(range(7))]
    assert threads.parallel_for(job, 1) == [[0]]


def test_parallel_for_inside_a_job_runs_serially(forced_parts):
    """A job that calls parallel_for again must not wait on the pool it occupies (that could deadlock)."""
    import threading

    def outer(lo, hi):
        me, ran_on = threading.get_ident(), []

        def inner(a, b):
            ran_on.append(threading.get_ident())
            return b - a

        assert threads.parallel_for(inner, 5) == [5] and ran_on == [me]
        return lo

    assert threads.parallel_for(outer, 3) == [0, 1, 2]


def test_parallel_for_reports_a_failing_part(forced_parts):
    def job(lo, hi):
        if lo == 0:
            raise ValueError("part 0 failed")
        return lo

    with pytest.raises(ValueError, match="part 0 failed"):
        threads.parallel_for(job, 6)
    assert threads.parallel_for(lambda lo, hi: hi, 6) == [2, 4, 6]      # the pool still works


def test_parallel_for_from_several_user_threads_at_once(forced_parts):
    from concurrent.futures import ThreadPoolExecutor
    data = np.arange(3000.0)

    def total(_):
        return sum(threads.parallel_for(lambda lo, hi: data[lo:hi].sum(), data.size))

    with ThreadPoolExecutor(4) as users:
        assert list(users.map(total, range(8))) == [data.sum()] * 8
