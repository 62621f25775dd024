"""max_pool2d, avg_pool2d, global_avg_pool2d as differentiable ops: output shapes, gradient checks (float64,
random upstream gradient, odd non-square shapes, stride > 1, padding > 0, max-pool inputs without ties),
float32 against float64, argument errors, and CPU against GPU."""
import numpy as np
import pytest

from autograd import Tensor, gradcheck, no_grad
from ops.pooling import avg_pool2d, global_avg_pool2d, max_pool2d


def distinct(shape, seed=0, dtype=np.float64):
    """Well separated values without ties: a random permutation of a linspace (Chainer's trick)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return Tensor(rng.permutation(np.linspace(-2.0, 2.0, n)).reshape(shape).astype(dtype), requires_grad=True)


# (kernel_size, stride, padding) on a (2, 3, 7, 6) input
WINDOWS = [
    (3, 2, 0),
    (3, 2, 1),
    (3, 1, 1),
    ((3, 2), (2, 1), (1, 1)),
    ((2, 3), (1, 2), (0, 1)),
    (2, None, 0),
]


@pytest.mark.parametrize("k,s,p", WINDOWS)
def test_max_pool_gradcheck(k, s, p):
    assert gradcheck(lambda x: max_pool2d(x, k, s, p), [distinct((2, 3, 7, 6), 1)])


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("k,s,p", WINDOWS)
def test_avg_pool_gradcheck(k, s, p, count_include_pad):
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 7, 6)), requires_grad=True)
    assert gradcheck(lambda x: avg_pool2d(x, k, s, p, count_include_pad), [x])


def test_global_avg_pool_gradcheck():
    x = Tensor(np.random.default_rng(3).standard_normal((3, 4, 5, 2)), requires_grad=True)
    assert gradcheck(global_avg_pool2d, [x])


@pytest.mark.parametrize("h,w,k,s,p,expected", [
    (35, 35, 3, 2, 0, (17, 17)),            # Inception stem / reductions, "valid"
    (32, 32, 3, 2, "same", (16, 16)),        # small-input mode: padding 1
    (8, 8, 3, 1, 1, (8, 8)),                 # the 3x3/1/pad-1 pool branch keeps the size
    (7, 6, (3, 2), (2, 1), (1, 0), (4, 5)),
    (9, 11, 2, None, 0, (4, 5)),             # stride defaults to the kernel size
    (5, 5, 3, 2, "valid", (2, 2)),
])
def test_output_shapes(h, w, k, s, p, expected):
    x = np.zeros((2, 3, h, w), np.float32)
    assert max_pool2d(x, k, s, p).shape == (2, 3) + expected
    assert avg_pool2d(x, k, s, p).shape == (2, 3) + expected
    assert global_avg_pool2d(x).shape == (2, 3)


def test_values_by_hand():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(max_pool2d(x, 2).data[0, 0], [[5, 7], [13, 15]])
    # 3x3/1/pad 1 average: corner windows hold 4 real pixels, edge windows 6, inner ones 9
    y = avg_pool2d(x, 3, 1, 1).data[0, 0]
    assert y[0, 0] == np.mean([0, 1, 4, 5]) and y[0, 1] == np.mean([0, 1, 2, 4, 5, 6])
    assert y[1, 1] == np.mean([0, 1, 2, 4, 5, 6, 8, 9, 10])
    assert avg_pool2d(x, 3, 1, 1, count_include_pad=True).data[0, 0, 0, 0] == (0 + 1 + 4 + 5) / 9
    # max pool padding is -inf, not 0: an all-negative image keeps its values
    np.testing.assert_array_equal(max_pool2d(-1.0 - x, 3, 2, 1).data[0, 0], [[-1, -2], [-5, -6]])
    np.testing.assert_allclose(global_avg_pool2d(x).data, [[7.5]])


def test_max_pool_backward_sends_tied_gradient_to_first_maximum():
    x = Tensor(np.array([[[[1.0, 5.0, 5.0], [5.0, 2.0, 0.0], [5.0, 5.0, 1.0]]]]), requires_grad=True)
    max_pool2d(x, 3).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 1, 0], [0, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("op", ["max", "avg", "global"])
def test_float32_agrees_with_float64(op):
    x64 = distinct((2, 5, 9, 7), 4)
    x32 = Tensor(x64.data.astype(np.float32), requires_grad=True)
    f = {"max": lambda x: max_pool2d(x, 3, 2, 1), "avg": lambda x: avg_pool2d(x, (3, 2), (1, 2), (1, 1)),
         "global": global_avg_pool2d}[op]
    y64, y32 = f(x64), f(x32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.data, y64.data, rtol=1e-5, atol=1e-6)
    gy = np.random.default_rng(5).standard_normal(y64.shape)
    y64.backward(gy)
    y32.backward(gy.astype(np.float32))
    assert x32.grad.dtype == np.float32
    np.testing.assert_allclose(x32.grad, x64.grad, rtol=1e-5, atol=1e-6)


def test_no_grad_and_plain_arrays():
    x = distinct((1, 2, 5, 5), 6)
    with no_grad():
        y = max_pool2d(x, 3, 2, 1)
    assert not y.requires_grad
    assert isinstance(avg_pool2d(x.data, 3).data, np.ndarray)


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: max_pool2d(np.zeros((3, 5, 5)), 2), ValueError, r"max_pool2d: expected a 4-D input \(N, C, H, W\), got shape \(3, 5, 5\)"),
    (lambda: avg_pool2d(np.zeros((1, 1, 2, 3, 3)), 2), ValueError, r"avg_pool2d: expected a 4-D input"),
    (lambda: global_avg_pool2d(np.zeros((2, 3))), ValueError, r"global_avg_pool2d: expected a 4-D input"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4), np.int64), 2), TypeError, r"max_pool2d: expected a floating-point input"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 5), ValueError, r"max_pool2d: kernel size 5x5 is larger than the padded input 4x4"),
    (lambda: avg_pool2d(np.zeros((1, 1, 4, 4)), (3, 7), 1, 1), ValueError, r"avg_pool2d: kernel size 3x7 is larger than the padded input 6x6"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 2, 0), ValueError, r"max_pool2d: stride must be positive"),
    (lambda: avg_pool2d(np.zeros((1, 1, 4, 4)), 2, (1, -1)), ValueError, r"avg_pool2d: stride must be positive"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 3, 1, 2), ValueError, r"max_pool2d: padding 2,2 is more than half the kernel size 3x3"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), (2, 3), 1, (1, 2)), ValueError, r"max_pool2d: padding 1,2 is more than half the kernel size 2x3"),
    (lambda: avg_pool2d(np.zeros((1, 1, 4, 4)), 3, 1, -1), ValueError, r"avg_pool2d: padding must be non-negative"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 0), ValueError, r"max_pool2d: kernel_size must be positive"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 2.5), TypeError, r"max_pool2d: kernel_size must be an int or a pair"),
    (lambda: avg_pool2d(np.zeros((1, 1, 4, 4)), 2, padding="full"), ValueError, r"avg_pool2d: padding must be"),
    (lambda: max_pool2d(np.zeros((1, 1, 4, 4)), 2, padding="same"), ValueError, r"max_pool2d: padding='same' needs an odd kernel"),
])
def test_errors_name_the_op_and_shapes(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ---------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_matches_cpu_forward_and_backward(dtype):
    import cupy
    x = distinct((2, 3, 9, 8), 7, dtype)
    cases = [lambda t: max_pool2d(t, 3, 2, 1), lambda t: max_pool2d(t, (3, 2), (1, 2), 0),
             lambda t: avg_pool2d(t, 3, 1, 1), lambda t: avg_pool2d(t, (2, 3), 2, (1, 1), True),
             global_avg_pool2d]
    for f in cases:
        xc = Tensor(x.data, requires_grad=True)
        xg = Tensor(cupy.asarray(x.data), requires_grad=True)
        yc, yg = f(xc), f(xg)
        assert isinstance(yg.data, cupy.ndarray) and yg.dtype == dtype
        np.testing.assert_allclose(yg.data.get(), yc.data, rtol=1e-6, atol=1e-7)
        gy = np.random.default_rng(8).standard_normal(yc.shape).astype(dtype)
        yc.backward(gy)
        yg.backward(Tensor(cupy.asarray(gy)))
        np.testing.assert_allclose(xg.grad.get(), xc.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_gpu_gradcheck():
    import cupy
    x = distinct((2, 3, 7, 6), 9)
    xg = Tensor(cupy.asarray(x.data), requires_grad=True)
    assert gradcheck(lambda t: max_pool2d(t, (3, 2), (2, 1), (1, 1)), [xg])
    assert gradcheck(lambda t: avg_pool2d(t, 3, 2, 1), [xg])
