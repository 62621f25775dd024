"""residual_add: ``relu(x + scale * r)`` in one op against the same three ops written out, gradient checks
(random upstream gradient, values kept away from the ReLU's kink), the threaded path, errors, GPU."""
import numpy as np
import pytest

import ops
from autograd import Tensor, gradcheck


def randn(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def away_from_the_kink(x, r, scale, margin=1e-3):
    assert np.abs(x + scale * r).min() > margin, "pick another seed: a sum sits on the ReLU's kink"


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("scale", [0.17, 1.0])
def test_equals_the_three_ops(scale, relu):
    x0, r0 = randn((3, 5, 4, 7), 0, np.float32), randn((3, 5, 4, 7), 1, np.float32)
    gy = randn((3, 5, 4, 7), 2, np.float32)
    results = []
    for fused in (True, False):
        x, r = Tensor(x0.copy(), requires_grad=True), Tensor(r0.copy(), requires_grad=True)
        if fused:
            y = ops.residual_add(x, r, scale, relu)
        else:
            y = x + r * scale
            y = ops.relu(y) if relu else y
        y.backward(gy)
        results.append((y.data, x.grad, r.grad))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("relu", [True, False])
def test_gradcheck(relu):
    x, r = randn((2, 3, 5, 3), 3), randn((2, 3, 5, 3), 4)
    away_from_the_kink(x, r, 0.3)
    assert gradcheck(lambda x, r: ops.residual_add(x, r, 0.3, relu),
                     [Tensor(x, requires_grad=True), Tensor(r, requires_grad=True)])


def test_threaded_path_equals_the_plain_one(three_threads):
    x, r = randn((7, 2, 3, 5), 5, np.float32), randn((7, 2, 3, 5), 6, np.float32)
    gy = randn(x.shape, 7, np.float32)
    xt, rt = Tensor(x, requires_grad=True), Tensor(r, requires_grad=True)
    y = ops.residual_add(xt, rt, 0.2)
    y.backward(gy)
    expected = np.maximum(x + r * np.float32(0.2), 0)
    np.testing.assert_array_equal(y.data, expected)
    np.testing.assert_array_equal(xt.grad, gy * (expected > 0))
    np.testing.assert_array_equal(rt.grad, gy * (expected > 0) * np.float32(0.2))


def test_only_the_needed_gradient_is_computed():
    x = Tensor(randn((2, 3, 2, 2), 8))
    r = Tensor(randn((2, 3, 2, 2), 9), requires_grad=True)
    ops.residual_add(x, r, 0.5).sum().backward()
    assert x.grad is None and r.grad is not None


@pytest.mark.parametrize("x_shape,r_shape,dtypes,error,pattern", [
    ((2, 4, 3, 3), (2, 2, 3, 3), (np.float32, np.float32), ValueError, r"residual_add: .*\(2, 4, 3, 3\).*\(2, 2, 3, 3\)"),
    ((2, 4, 3, 3), (4, 3, 3), (np.float32, np.float32), ValueError, "must be equal"),
    ((2, 4), (2, 4), (np.float32, np.float64), TypeError, "residual_add: .*float32.*float64"),
    ((2, 4), (2, 4), (np.int64, np.int64), TypeError, "floating-point"),
])
def test_errors(x_shape, r_shape, dtypes, error, pattern):
    x, r = np.ones(x_shape, dtypes[0]), np.ones(r_shape, dtypes[1])
    with pytest.raises(error, match=pattern):
        ops.residual_add(x, r)


@pytest.mark.gpu
@pytest.mark.parametrize("relu", [True, False])
def test_gpu_matches_cpu(relu):
    import cupy
    x, r, gy = randn((2, 3, 4, 5), 10), randn((2, 3, 4, 5), 11), randn((2, 3, 4, 5), 12)
    cpu = [Tensor(a, requires_grad=True) for a in (x, r)]
    gpu = [Tensor(cupy.asarray(a), requires_grad=True) for a in (x, r)]
    yc, yg = ops.residual_add(*cpu, 0.1, relu), ops.residual_add(*gpu, 0.1, relu)
    yc.backward(gy)
    yg.backward(Tensor(cupy.asarray(gy)))
    np.testing.assert_allclose(yg.data.get(), yc.data, rtol=1e-12)
    for c, g in zip(cpu, gpu):
        np.testing.assert_allclose(g.grad.get(), c.grad, rtol=1e-12)
