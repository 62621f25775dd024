import gc
import weakref

import numpy as np
import pytest

import ops
from autograd import Function, Tensor, backward_steps, gradcheck, no_grad


def leaf(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_reused_tensor_accumulates():
    # micrograd#64: b = a + a; c = b * b must give dc/da = 8a
    a = leaf((3, 2))
    b = a + a
    c = b * b
    c.backward(np.ones((3, 2)))
    np.testing.assert_allclose(a.grad, 8 * a.data)


def test_diamond_graph_order():
    a = leaf((4,))
    b = ops.exp(a)
    c = b * a            # a is used directly and through b
    d = c + b
    d.sum().backward()
    e = np.exp(a.data)
    np.testing.assert_allclose(a.grad, e * a.data + e + e)


def test_long_chain_has_no_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 5000])


def test_gradients_are_not_aliased():
    a, b = leaf((2,), 1), leaf((2,), 2)
    (a + b).sum().backward()
    assert a.grad is not b.grad
    a.grad *= 3
    np.testing.assert_allclose(b.grad, [1.0, 1.0])


def test_gradients_accumulate_across_backward_calls():
    a = leaf((2,))
    (a * 2).sum().backward()
    (a * 3).sum().backward()
    np.testing.assert_allclose(a.grad, [5.0, 5.0])


def test_no_grad_records_nothing():
    a = leaf((2,))
    with no_grad():
        b = a * 2
    assert b.creator is None and not b.requires_grad


def test_graph_is_freed_after_backward():
    class Keep(Function):
        def forward(self, x):
            self.big = x * 2
            return x * 2

        def backward(self, gy):
            return gy * 2

    a = leaf((1000,))
    y = Keep()(a)
    saved = weakref.ref(y.creator.big)
    y.sum().backward()
    gc.collect()
    assert saved() is None, "the array saved for backward is still alive after backward"
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.sum().backward()


def test_intermediate_arrays_released_when_unreferenced():
    a = leaf((500,))
    h = ops.exp(a)                      # Exp saves its output
    out = (h * 3).sum()
    ref = weakref.ref(h.data)
    del h
    out.backward()
    gc.collect()
    assert ref() is None


def test_retain_graph_allows_second_backward():
    a = leaf((3,))
    y = (ops.exp(a) * a).sum()
    y.backward(retain_graph=True)
    first = a.grad.copy()
    y.backward()
    np.testing.assert_allclose(a.grad, 2 * first)


def test_retain_grad_and_hooks():
    a = leaf((3,))
    h = a * 2
    h.retain_grad()
    seen = []
    handle = h.register_hook(lambda g: seen.append(g.copy()))
    leaf_handle = a.register_hook(lambda g: g * 10)
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(seen[0], 2 * h.data)
    np.testing.assert_allclose(a.grad, 10 * 2 * 2 * h.data)
    handle.remove()
    leaf_handle.remove()
    a.grad = None
    h2 = a * 2
    (h2 * h2).sum().backward()
    np.testing.assert_allclose(a.grad, 4 * h2.data)
    assert len(seen) == 1


def test_non_leaf_grad_is_none_without_retain_grad():
    a = leaf((3,))
    h = a * 2
    h.sum().backward()
    assert h.grad is None


def test_backward_on_non_scalar_needs_gradient():
    a = leaf((2, 3))
    with pytest.raises(RuntimeError, match=r"non-scalar tensor of shape \(2, 3\)"):
        (a * 2).backward()


def test_backward_with_wrong_gradient_shape():
    a = leaf((2, 3))
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\)"):
        (a * 2).backward(np.ones(3))


def test_backward_without_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors.*int64"):
        Tensor(np.arange(3), requires_grad=True)


def test_wrong_gradient_shape_from_backward_names_op():
    class Bad(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            return gy[:1]

    a = leaf((3,))
    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(1,\)"):
        Bad()(a).sum().backward()


def test_unused_output_gets_zero_gradient():
    a = leaf((4, 3))
    first, second = ops.split(a, [1, 2], axis=1)
    (second * 3).sum().backward()
    expected = np.zeros((4, 3))
    expected[:, 1:] = 3
    np.testing.assert_allclose(a.grad, expected)


def test_backward_steps_equal_backward():
    def run():
        a = leaf((3, 4), 5)
        w = leaf((4, 2), 6)
        loss = ops.softmax_cross_entropy(ops.relu(a @ w), np.array([0, 1, 1]))
        return a, w, loss

    a1, w1, loss1 = run()
    loss1.backward()
    a2, w2, loss2 = run()
    steps = list(backward_steps([loss2]))
    assert [s.name for s in steps] == ["SoftmaxCrossEntropy", "ReLU", "MatMul"]
    assert np.array_equal(a1.grad, a2.grad) and np.array_equal(w1.grad, w2.grad)


def test_function_instance_single_use():
    f = ops.arithmetic.Neg()
    f(leaf((2,)))
    with pytest.raises(RuntimeError, match="only once"):
        f(leaf((2,)))


def test_user_defined_function_gradcheck():
    class Square(Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return 2 * self.x * gy

    assert gradcheck(lambda x: Square()(x), [leaf((3, 5))])
