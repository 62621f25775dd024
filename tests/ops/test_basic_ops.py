"""Gradient checks (float64, random upstream gradient, odd non-square shapes) of the elementwise, reduction,
shape, matrix, activation, loss and dropout ops; float32 agrees with float64; bad input gives clear errors."""
import numpy as np
import pytest

import ops
from autograd import Tensor, gradcheck


def t(shape, seed=0, low=None, grad=True):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape) if low is None else rng.uniform(low, low + 2.0, shape)
    return Tensor(data, requires_grad=grad)


@pytest.mark.parametrize("op", [ops.add, ops.sub, ops.mul, ops.div])
def test_binary_broadcasting_gradcheck(op):
    a = t((3, 1, 5), 1, low=0.5)
    b = t((4, 1), 2, low=0.5)
    assert gradcheck(op, [a, b])


@pytest.mark.parametrize("op", [ops.add, ops.mul, ops.div, ops.sub])
def test_binary_with_python_scalar_keeps_dtype(op):
    x = Tensor(np.ones((2, 3), np.float32))
    assert op(x, 2.0).dtype == np.float32 and op(3, x).dtype == np.float32


def test_binary_rejects_incompatible_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3, 2\) and \(3,\) cannot be broadcast"):
        ops.add(t((3, 2)), t((3,)))


@pytest.mark.parametrize("op,low", [(ops.exp, None), (ops.log, 0.5), (ops.sqrt, 0.5), (ops.neg, None),
                                    (lambda x: ops.pow(x, 3), None), (lambda x: x ** -1.5, 0.5)])
def test_unary_gradcheck(op, low):
    assert gradcheck(op, [t((3, 5), 3, low=low)])


def test_relu_gradcheck_away_from_zero():
    x = t((3, 7), 4)
    x.data[np.abs(x.data) < 0.05] = 0.3
    assert gradcheck(ops.relu, [x])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
@pytest.mark.parametrize("op", [ops.sum, ops.mean, ops.max])
def test_reductions_gradcheck(op, axis, keepdims):
    x = t((3, 4, 5), 5)
    assert gradcheck(lambda a: op(a, axis, keepdims), [x])


def test_max_ties_go_to_first_element():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    ops.max(x, axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])


def test_reduction_axis_out_of_range():
    with pytest.raises(ValueError, match="sum: axis 3 is out of range"):
        ops.sum(t((2, 3)), axis=3)


def test_shape_ops_gradcheck():
    x = t((2, 3, 5), 6)
    assert gradcheck(lambda a: ops.reshape(a, (5, -1)) * ops.reshape(a, (5, 6)), [x])
    assert gradcheck(lambda a: ops.transpose(a, (2, 0, 1)), [x])
    assert gradcheck(lambda a: ops.flatten(a), [x])
    assert gradcheck(lambda a: a.T, [x])


@pytest.mark.parametrize("index", [(slice(None), 1), (Ellipsis, slice(1, 4, 2)), (np.array([0, 1, 1, 0]),),
                                   (slice(None), np.array([2, 0, 2]))])
def test_getitem_gradcheck_with_repeated_indices(index):
    x = t((2, 3, 5), 7)
    assert gradcheck(lambda a: a[index], [x])


def test_concat_split_gradcheck():
    a, b, c = t((2, 3, 3, 5), 8), t((2, 1, 3, 5), 9), t((2, 4, 3, 5), 10)
    assert gradcheck(lambda x, y, z: ops.concat([x, y, z], axis=1), [a, b, c])
    assert gradcheck(lambda x: ops.split(x, [1, 2, 1], axis=1)[1] * 2, [t((2, 4, 3, 5), 11)])
    parts = ops.split(t((2, 6, 3), 12), 3, axis=1)
    assert [p.shape for p in parts] == [(2, 2, 3)] * 3


def test_concat_and_split_errors():
    with pytest.raises(ValueError, match=r"concat: along axis 1 .* \(2, 3, 4\), \(2, 3, 5\)"):
        ops.concat([t((2, 3, 4)), t((2, 3, 5))], axis=1)
    with pytest.raises(ValueError, match="split: sizes"):
        ops.split(t((2, 5)), [2, 2], axis=1)


def test_reshape_error():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        ops.reshape(t((2, 3)), (4, 2))


def test_matmul_and_linear_gradcheck():
    assert gradcheck(ops.matmul, [t((3, 4), 13), t((4, 5), 14)])
    assert gradcheck(ops.linear, [t((3, 4), 15), t((5, 4), 16), t((5,), 17)])
    assert gradcheck(lambda x, w: ops.linear(x, w), [t((3, 4), 18), t((5, 4), 19)])


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: .* x \(3, 4\) and weight \(5, 3\)"):
        ops.linear(t((3, 4)), t((5, 3)))
    with pytest.raises(ValueError, match=r"matmul: .* \(3, 4\) and \(5, 2\)"):
        ops.matmul(t((3, 4)), t((5, 2)))


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax_gradcheck(axis):
    assert gradcheck(lambda x: ops.softmax(x, axis), [t((3, 5), 20)])
    assert gradcheck(lambda x: ops.log_softmax(x, axis), [t((3, 5), 21)])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(smoothing):
    logits = t((5, 7), 22)
    labels = np.array([0, 6, 3, 3, 1])
    assert gradcheck(lambda z: ops.softmax_cross_entropy(z, labels, smoothing), [logits])
    z = logits.data
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    q = np.full((5, 7), smoothing / 7)
    q[np.arange(5), labels] += 1 - smoothing
    expected = -(q * logp).sum() / 5
    np.testing.assert_allclose(ops.softmax_cross_entropy(logits, labels, smoothing).item(), expected)


def test_softmax_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(5,\)"):
        ops.softmax_cross_entropy(t((5, 3)), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        ops.softmax_cross_entropy(t((2, 3)), np.array([0, 3]))


def test_dropout_gradcheck_and_scaling():
    x = t((4, 6), 23)
    assert gradcheck(lambda a: ops.dropout(a, 0.3, True, rng=np.random.default_rng(0)), [x])
    y = ops.dropout(Tensor(np.ones((200, 200))), 0.25, True, rng=np.random.default_rng(1)).data
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert ops.dropout(x, 0.5, training=False) is x


def test_float32_matches_float64():
    rng = np.random.default_rng(24)
    a64, w64 = rng.standard_normal((6, 5)), rng.standard_normal((4, 5))
    labels = np.array([0, 1, 2, 3, 0, 1])
    results = {}
    for dtype in (np.float32, np.float64):
        a = Tensor(a64.astype(dtype), requires_grad=True)
        w = Tensor(w64.astype(dtype), requires_grad=True)
        loss = ops.softmax_cross_entropy(ops.relu(ops.linear(a, w)) * 2.0 + ops.exp(a).sum(1, True) * 0.1, labels)
        loss.backward()
        assert loss.dtype == dtype and a.grad.dtype == dtype
        results[dtype] = (loss.item(), a.grad, w.grad)
    for x32, x64 in zip(results[np.float32], results[np.float64]):
        np.testing.assert_allclose(x32, x64, rtol=1e-4, atol=1e-5)
