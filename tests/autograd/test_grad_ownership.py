"""A leaf's first gradient is stored as it is, without a copy, unless another holder may see its memory.

Whoever holds a ``.grad`` may write into it in place (data-parallel averaging does ``p.grad[...] = average``), so
after backward no two ``.grad`` may share memory, nor a ``.grad`` and the caller's seed, the leaf's own data or
an array the producing Function saved; and every ``.grad`` is writable and C-contiguous. Ops return fresh arrays,
so in the usual case nothing is copied (engine.py, ``_new_grad``).
"""
import sys
import types

import numpy as np
import pytest

import ops
from autograd import Function, Tensor, backward_steps
from autograd.backend import may_share_memory, memory_owner


def leaf(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


class Returns(Function):
    """y = x; backward returns ``make(gy)``: ``gy`` itself, a view of it, or an array it holds."""

    def __init__(self, make):
        self.make = make

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return self.make(gy)


class Fresh(Function):
    """y = 2 x; backward returns a new array, and remembers it (the test compares ``.grad`` with it)."""

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        self.returned = 2 * gy
        return self.returned


def assert_private(*tensors, others=()):
    """Every ``.grad`` writable, C-contiguous and sharing memory with no other ``.grad`` nor any of ``others``."""
    grads = [t.grad for t in tensors]
    for i, g in enumerate(grads):
        assert g.flags.writeable and g.flags.c_contiguous
        for other in grads[i + 1:] + [t.data for t in tensors] + list(others):
            assert not np.shares_memory(g, other)


# ---------------------------------------------------------------------------------------------- no copy
def test_the_array_an_op_returns_becomes_the_grad():
    x = leaf((3, 4))
    fn = Fresh()
    fn(x).backward(np.ones((3, 4)))
    assert x.grad is fn.returned


def test_a_parameter_grad_is_the_array_its_op_made():
    x, w = leaf((5, 4), 1), leaf((4, 3), 2)
    steps = {step.name: step for step in backward_steps(ops.relu(x @ w).sum())}
    assert w.grad is steps["MatMul"].grad_inputs[1] and x.grad is steps["MatMul"].grad_inputs[0]
    assert_private(x, w)


def test_later_gradients_are_added_into_a_new_array():
    x = leaf((2, 3))
    fn = Fresh()
    (fn(x) + ops.exp(x)).sum().backward()
    np.testing.assert_allclose(x.grad, 2 + np.exp(x.data))
    assert not np.shares_memory(x.grad, fn.returned)        # the first gradient was kept, then x.grad + g


# ---------------------------------------------------------------------------------------------- copies
def test_two_leaves_given_the_same_array_get_separate_grads():
    # Add's backward returns gy for both inputs: the second leaf gets a copy.
    a, b = leaf((3, 4), 1), leaf((3, 4), 2)
    (a + b).backward(np.full((3, 4), 2.0))
    np.testing.assert_array_equal(a.grad, 2.0)
    np.testing.assert_array_equal(b.grad, 2.0)
    assert_private(a, b)
    a.grad[...] = 7.0                            # an in-place write to one grad leaves the other alone
    np.testing.assert_array_equal(b.grad, 2.0)


def test_the_same_leaf_twice_sums_into_a_new_array():
    x = leaf((2, 2))
    seed = np.ones((2, 2))
    (x + x).backward(seed)
    np.testing.assert_array_equal(x.grad, 2.0)
    assert_private(x, others=[seed])


@pytest.mark.parametrize("second", ["reshape", "concat slice", "reversed view", "same array"])
def test_a_view_of_a_grad_already_handed_out_is_copied(second):
    # Fresh makes a new gy; Add hands it to the leaf a (kept) and, through a second op, a view of it to b.
    a = leaf((4, 3), 1)
    if second == "reshape":
        b = leaf((2, 6), 2)
        other = ops.reshape(b, (4, 3))                                       # backward: gy.reshape(2, 6)
    elif second == "concat slice":
        b = leaf((2, 3), 2)
        other = ops.concat([b, Tensor(np.zeros((2, 3)))], axis=0)            # backward: gy[:2], a view
    else:
        b = leaf((4, 3), 2)
        other = Returns((lambda gy: gy[::-1][::-1]) if second == "reversed view" else (lambda gy: gy))(b)
    fn = Fresh()
    fn(a + other).backward(np.ones((4, 3)))
    assert a.grad is fn.returned                                             # the first one keeps it
    assert_private(a, b)
    np.testing.assert_array_equal(b.grad, 2.0)


def test_disjoint_slices_of_one_gradient_are_kept_without_a_copy():
    b1, b2 = leaf((2, 3), 1), leaf((2, 3), 2)
    fn = Fresh()
    fn(ops.concat([b1, b2], axis=0)).backward(np.ones((4, 3)))
    assert memory_owner(b1.grad) is memory_owner(b2.grad) is fn.returned    # two views of Fresh's array
    assert_private(b1, b2)


def test_a_non_contiguous_or_read_only_gradient_is_copied():
    x, z = leaf((3, 4), 1), leaf((4, 3), 2)
    Returns(lambda gy: gy.T.copy().T)(x).backward(np.ones((3, 4)))                  # F-ordered
    Returns(lambda gy: np.broadcast_to(gy[:1], gy.shape))(z).backward(np.ones((4, 3)))   # read-only view
    assert_private(x, z)
    s = leaf((2, 5), 3)
    s.sum().backward()                           # Sum's backward broadcasts gy: the grad is a plain array
    assert_private(s)


def test_the_callers_seed_never_becomes_a_grad():
    seed = np.full((3, 4), 3.0)
    a = leaf((3, 4))
    Returns(lambda gy: gy)(a).backward(seed)     # the op hands the seed itself to the leaf
    assert_private(a, others=[seed])
    a.grad[...] = 0.0
    np.testing.assert_array_equal(seed, 3.0)
    x = leaf((2, 2))
    x.backward(seed_tensor := Tensor(np.ones((2, 2))))     # a leaf as the output: its seed is its grad
    assert_private(x, others=[seed_tensor.data])


def test_a_grad_never_aliases_the_leafs_data_or_what_the_op_saved():
    class Saved(Function):
        def forward(self, a, b):
            self.b = b
            return a * b

        def backward(self, gy):          # a wrong but legal shortcut: returns the saved array itself
            return self.b, self.b.copy()

    a, b = leaf((2, 3), 1), leaf((2, 3), 2)
    Saved()(a, b).backward(np.ones((2, 3)))
    assert_private(a, b)                         # a.grad is not b.data

    class OwnData(Function):
        def forward(self, x):
            self.x = x
            return x.copy()

        def backward(self, gy):
            return self.x

    x = leaf((3,))
    OwnData()(x).backward(np.ones(3))
    assert_private(x)


def test_a_hook_returning_one_array_for_two_leaves_gives_separate_grads():
    shared = np.full((2, 2), 5.0)
    a, b = leaf((2, 2), 1), leaf((2, 2), 2)
    a.register_hook(lambda g: shared)
    b.register_hook(lambda g: shared)
    (a * 2 + b * 3).sum().backward()
    assert_private(a, b)
    np.testing.assert_array_equal(a.grad, 5.0)


def test_a_retained_grad_and_a_leaf_grad_do_not_share_memory():
    a, h = leaf((2, 3), 1), leaf((2, 3), 2)
    y = ops.exp(h) + 0.0
    y.retain_grad()
    z = Returns(lambda gy: gy)(y) + a            # gy reaches y (retained) and, unchanged, the leaf a
    z.backward(np.ones((2, 3)))
    assert not np.shares_memory(y.grad, a.grad)
    assert_private(a, h)


def test_in_place_averaging_of_one_grad_changes_no_other():
    # What minception/distributed/gradients.py does after backward: p.grad[...] = average.
    params = [leaf((4,), i) for i in range(4)]
    seed = np.ones(4)
    y = params[0] + params[1] + ops.reshape(ops.reshape(params[2], (2, 2)), (4,)) + params[3]
    y.backward(seed)
    before = [p.grad.copy() for p in params]
    for i, p in enumerate(params):
        p.grad[...] = p.grad * 0.5 + i
        for j, q in enumerate(params):
            if j > i:
                np.testing.assert_array_equal(q.grad, before[j])
    np.testing.assert_array_equal(seed, 1.0)


def test_data_parallel_averaging_halves_each_grad_once():
    from minception.distributed.gradients import GradientBuckets

    class OtherRankHasZeros:           # two ranks, the other one with zero gradients: each average is grad / 2
        size = 2

        def allreduce_sum_(self, buffer):
            pass                       # our buffer plus the other rank's zeros (gradients and presence flags)

    a, b, c, d = (leaf((3,), i) for i in range(4))
    seed = np.ones(3)
    (a + b + ops.reshape(ops.reshape(c, (3, 1)), (3,)) + d).backward(seed)
    GradientBuckets([("a", a), ("b", b), ("c", c), ("d", d)]).allreduce_mean(OtherRankHasZeros())
    for p in (a, b, c, d):             # written in place one after the other: a shared array would halve twice
        np.testing.assert_array_equal(p.grad, 0.5)
    np.testing.assert_array_equal(seed, 1.0)


def test_may_share_memory_on_cpu_arrays():
    a = np.zeros((4, 6))
    assert may_share_memory(a, a[1:3]) and may_share_memory(a[:, ::2], a[:, 1::2])   # bounds overlap
    assert not may_share_memory(a[:2], a[2:]) and not may_share_memory(a, np.zeros(3))
    assert memory_owner(a[1:].reshape(-1)[::2]) is a and memory_owner(a) is a


class FakeGPUArray:
    """Stands in for a CuPy array: a host array in ``.host`` and a ``.base``, nothing else."""

    def __init__(self, host, base=None):
        self.host, self.base = host, base


def test_gpu_arrays_ask_cupy_and_never_share_with_cpu_arrays(monkeypatch):
    asked = []

    def fake_may_share_memory(a, b):
        asked.append((a, b))
        return np.may_share_memory(a.host, b.host)

    fake = types.SimpleNamespace(ndarray=FakeGPUArray, may_share_memory=fake_may_share_memory)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    host = np.zeros((4, 6))
    a, top, bottom = FakeGPUArray(host), FakeGPUArray(host[:2], base=None), FakeGPUArray(host[2:], base=None)
    assert may_share_memory(a, top) and not may_share_memory(top, bottom) and len(asked) == 2
    assert not may_share_memory(a, host) and not may_share_memory(host, a) and len(asked) == 2
    view = FakeGPUArray(host[1:], base=a)
    assert memory_owner(FakeGPUArray(host[1:][0], base=view)) is a      # follows .base to the owner
