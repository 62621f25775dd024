"""batch_norm: kernels against the reference, gradient checks in training and evaluation mode for x, gamma and
beta (random upstream gradient: an all-ones one cannot see the mean/variance terms), running statistics against
a hand computation, evaluation with the running statistics, float32 against float64, errors, CPU against GPU."""
import numpy as np
import pytest

from autograd import Tensor, gradcheck
from ops.kernels.cpu import batch_norm as batchnorm_numba
from ops.kernels.reference import batch_norm as batchnorm_reference
from ops.normalization import batch_norm

EPS = 1e-3


def randn(shape, seed, scale=1.0, shift=0.0, dtype=np.float64):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


def params(c, seed=10, dtype=np.float64):
    gamma = Tensor(randn(c, seed, 0.5, 1.0, dtype), requires_grad=True)
    beta = Tensor(randn(c, seed + 1, dtype=dtype), requires_grad=True)
    return gamma, beta


# ---------------------------------------------------------------- kernels

KERNEL_SHAPES = [(4, 3, 5), (7, 5, 1), (2, 6, 33), (3, 1, 8)]


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn+relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_numba_matches_reference(shape, dtype, relu):
    """Training and eval, forward and backward; with ``relu`` the fused kernels (the backward gets ``y=``)."""
    c, s = shape[1], 50 if relu else 0                     # seeds
    x = randn(shape, s, 3.0, 5.0, dtype)
    gy = randn(shape, s + 1, dtype=dtype)
    gamma, beta = randn(c, s + 2, dtype=dtype), randn(c, s + 3, dtype=dtype)
    if relu:      # running statistics near x's own, so that the eval output has both signs too
        rm, rv = randn(c, s + 4, 3.0, 5.0, dtype), np.random.default_rng(s + 5).uniform(4.0, 12.0, c).astype(dtype)
    else:
        rm, rv = randn(c, s + 4, dtype=dtype), np.random.default_rng(s + 5).uniform(0.5, 2.0, c).astype(dtype)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)

    ref = batchnorm_reference.forward_train(x, gamma, beta, EPS, relu=relu)
    fast = batchnorm_numba.forward_train(x, gamma, beta, EPS, relu=relu)
    assert fast[0].dtype == dtype and all(a.dtype == np.float64 for a in fast[1:])
    if relu:
        assert (ref[0] == 0).any() and (ref[0] > 0).any()      # the ReLU does something
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, **tol)
    mean, invstd, y = ref[1], ref[3], ref[0] if relu else None
    for a, b in zip(batchnorm_numba.backward_train(gy, x, mean, invstd, gamma, y=y),
                    batchnorm_reference.backward_train(gy, x, mean, invstd, gamma, y=y)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)

    ref = batchnorm_reference.forward_eval(x, gamma, beta, rm, rv, EPS, relu=relu)
    for a, b in zip(batchnorm_numba.forward_eval(x, gamma, beta, rm, rv, EPS, relu=relu), ref):
        np.testing.assert_allclose(a, b, **tol)
    y = ref[0] if relu else None
    for a, b in zip(batchnorm_numba.backward_eval(gy, x, rm, ref[1], gamma, y=y),
                    batchnorm_reference.backward_eval(gy, x, rm, ref[1], gamma, y=y)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)


def test_reference_statistics_by_hand():
    x = randn((4, 3, 5), 6, 2.0, -1.0)
    y, mean, var, invstd = batchnorm_reference.forward_train(x, np.ones(3), np.zeros(3), EPS)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)))
    np.testing.assert_allclose(var, x.var(axis=(0, 2)))                     # biased
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x.var(axis=(0, 2)) + EPS))
    np.testing.assert_allclose(y, (x - x.mean(axis=(0, 2), keepdims=True)) / np.sqrt(x.var(axis=(0, 2), keepdims=True) + EPS))


def test_float32_statistics_survive_a_large_offset():
    """A mean 1e4 times the spread: the one-pass shifted variance and the centred affine stay accurate."""
    x64 = randn((8, 4, 50), 7, 1.0, 1e4)
    x32 = x64.astype(np.float32)
    gamma, beta = np.ones(4, np.float32), np.zeros(4, np.float32)
    y32, _, var32, _ = batchnorm_numba.forward_train(x32, gamma, beta, EPS)
    y64, _, var64, _ = batchnorm_reference.forward_train(x32.astype(np.float64), gamma.astype(np.float64),
                                                         beta.astype(np.float64), EPS)
    np.testing.assert_allclose(var32, var64, rtol=1e-6)
    np.testing.assert_allclose(y32, y64, atol=2e-3)


# ---------------------------------------------------------------- the op: gradients

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(3, 4, 5, 3), (5, 3)], ids=["NCHW", "NC"])
def test_gradcheck_x_gamma_beta(shape, training):
    c = shape[1]
    x = Tensor(randn(shape, 12, 2.0, 1.0), requires_grad=True)
    gamma, beta = params(c)
    rm, rv = randn(c, 13), np.random.default_rng(14).uniform(0.5, 2.0, c)
    assert gradcheck(lambda x, g, b: batch_norm(x, g, b, rm.copy(), rv.copy(), training), [x, gamma, beta])


def test_all_ones_upstream_gradient_is_blind_in_training():
    """Why gradcheck uses a random upstream gradient: with gy = 1 the input gradient is exactly zero."""
    x = Tensor(randn((4, 3, 2, 5), 15), requires_grad=True)
    gamma, beta = params(3)
    batch_norm(x, gamma, beta, None, None, True).sum().backward()
    np.testing.assert_allclose(x.grad, 0.0, atol=1e-12)
    np.testing.assert_allclose(beta.grad, 4 * 2 * 5)


# ---------------------------------------------------------------- the op: statistics and modes

def test_running_statistics_update_by_hand():
    x = randn((4, 3, 2, 5), 16, 3.0, 2.0)
    gamma, beta = params(3)
    rm0, rv0 = randn(3, 17), np.array([0.5, 1.0, 2.0])
    rm, rv = rm0.copy(), rv0.copy()
    batch_norm(x, gamma, beta, rm, rv, True, momentum=0.3)
    flat = x.transpose(1, 0, 2, 3).reshape(3, -1)                    # (C, N*H*W), M = 40
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * flat.mean(axis=1))
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * flat.var(axis=1, ddof=1))   # unbiased: divide by M - 1


def test_running_statistics_float32_buffers_are_updated_in_place():
    x = randn((6, 2, 3, 3), 18, dtype=np.float32)
    gamma, beta = params(2, dtype=np.float32)
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    rm_id, rv_id = id(rm), id(rv)
    batch_norm(x, gamma, beta, rm, rv, True, momentum=1.0)
    flat = x.transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64)
    assert id(rm) == rm_id and rm.dtype == np.float32 and rv.dtype == np.float32
    np.testing.assert_allclose(rm, flat.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, flat.var(axis=1, ddof=1), rtol=1e-5)


def test_training_output_is_normalised_and_none_skips_the_update():
    x = randn((5, 3, 4, 3), 19, 4.0, -3.0)
    gamma, beta = params(3)
    y = batch_norm(x, gamma, beta, None, None, True).data
    var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), beta.data, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), gamma.data ** 2 * var / (var + EPS))


def test_eval_uses_running_statistics_and_leaves_them_alone():
    x = randn((3, 4, 2, 5), 20)
    gamma, beta = params(4)
    rm, rv = randn(4, 21), np.random.default_rng(22).uniform(0.5, 2.0, 4)
    rm0, rv0 = rm.copy(), rv.copy()
    y = batch_norm(x, gamma, beta, rm, rv, False, eps=0.01).data
    per = (slice(None), None, None)
    expected = gamma.data[per] * (x - rm[per]) / np.sqrt(rv[per] + 0.01) + beta.data[per]
    np.testing.assert_allclose(y, expected)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


def test_nc_input_matches_nchw_with_one_pixel():
    x = randn((6, 3), 23)
    gamma, beta = params(3)
    a = batch_norm(x, gamma, beta, None, None, True).data
    b = batch_norm(x.reshape(6, 3, 1, 1), gamma, beta, None, None, True).data
    np.testing.assert_allclose(a, b.reshape(6, 3))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_float32_agrees_with_float64(training):
    x64 = randn((4, 5, 6, 7), 24, 2.0, 1.0)
    g64, b64 = params(5)
    rm, rv = randn(5, 25), np.random.default_rng(26).uniform(0.5, 2.0, 5)
    x32 = Tensor(x64.astype(np.float32), requires_grad=True)
    g32 = Tensor(g64.data.astype(np.float32), requires_grad=True)
    b32 = Tensor(b64.data.astype(np.float32), requires_grad=True)
    x64 = Tensor(x64, requires_grad=True)
    y64 = batch_norm(x64, g64, b64, rm.copy(), rv.copy(), training)
    y32 = batch_norm(x32, g32, b32, rm.astype(np.float32), rv.astype(np.float32), training)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.data, y64.data, rtol=1e-4, atol=1e-5)
    gy = randn(y64.shape, 27)
    y64.backward(gy)
    y32.backward(gy.astype(np.float32))
    for a, b in [(x32, x64), (g32, g64), (b32, b64)]:
        assert a.grad.dtype == np.float32
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- errors

def _call(x_shape=(2, 3, 4, 4), g_shape=(3,), b_shape=(3,), r_shape=(3,), training=True, dtype=np.float64,
          g_dtype=np.float64, running=True, **kw):
    x = np.zeros(x_shape, dtype) + np.arange(np.prod(x_shape)).reshape(x_shape)
    rm = np.zeros(r_shape) if running else None
    rv = np.ones(r_shape) if running else None
    return batch_norm(x, np.ones(g_shape, g_dtype), np.zeros(b_shape, g_dtype), rm, rv, training, **kw)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(x_shape=(2, 3, 4)), ValueError, r"batch_norm: expected x of shape \(N, C, H, W\) or \(N, C\), got shape \(2, 3, 4\)"),
    (dict(g_shape=(4,)), ValueError, r"batch_norm: gamma must have shape \(3,\) for x of shape \(2, 3, 4, 4\) with 3 channels, got shape \(4,\)"),
    (dict(b_shape=(3, 1)), ValueError, r"batch_norm: beta must have shape \(3,\)"),
    (dict(r_shape=(2,)), ValueError, r"batch_norm: running_mean must have shape \(3,\)"),
    (dict(g_dtype=np.float32), TypeError, r"batch_norm: gamma has dtype float32 but x has dtype float64"),
    (dict(dtype=np.int64, g_dtype=np.int64), TypeError, r"batch_norm: expected a floating-point x"),
    (dict(training=False, running=False), ValueError, r"batch_norm: evaluation mode \(training=False\) needs running_mean"),
    (dict(x_shape=(1, 3, 1, 1)), ValueError, r"batch_norm: training needs more than one value per channel"),
    (dict(x_shape=(1, 3)), ValueError, r"batch_norm: training needs more than one value per channel"),
    (dict(eps=0.0), ValueError, r"batch_norm: eps must be positive"),
])
def test_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _call(**kwargs)


def test_eval_accepts_a_single_sample():
    y = _call(x_shape=(1, 3, 1, 1), training=False)
    assert y.shape == (1, 3, 1, 1)


# ---------------------------------------------------------------- batch norm + ReLU, fused

def _away_from_the_kink(y_pre, margin=1e-3):
    """Gradient checks through a ReLU need inputs that a finite-difference step cannot move across 0."""
    assert np.abs(y_pre).min() > margin, "pick another seed: a value sits on the ReLU's kink"


def test_reference_relu_is_relu_after_batch_norm():
    x, gy = randn((4, 3, 5), 56, 2.0), randn((4, 3, 5), 57)
    gamma, beta = randn(3, 58), randn(3, 59)
    y, mean, _, invstd = batchnorm_reference.forward_train(x, gamma, beta, EPS)
    y_relu = batchnorm_reference.forward_train(x, gamma, beta, EPS, relu=True)[0]
    np.testing.assert_array_equal(y_relu, np.maximum(y, 0))
    masked = np.where(y > 0, gy, 0.0)
    for a, b in zip(batchnorm_reference.backward_train(gy, x, mean, invstd, gamma, y=y_relu),
                    batchnorm_reference.backward_train(masked, x, mean, invstd, gamma)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_relu_equals_relu_of_batch_norm(training):
    """``batch_norm(..., relu=True)`` against ``ops.relu(batch_norm(...))``: values and all three gradients."""
    import ops
    shape, c = (5, 4, 3, 7), 4
    x0, gy = randn(shape, 60, 2.0, 1.0, np.float32), randn(shape, 61, dtype=np.float32)
    g0, b0 = randn(c, 62, 0.5, 1.0, np.float32), randn(c, 63, dtype=np.float32)
    rm, rv = randn(c, 64, dtype=np.float32), np.random.default_rng(65).uniform(0.5, 2.0, c).astype(np.float32)
    outs = []
    for fused in (True, False):
        x, g, b = (Tensor(a.copy(), requires_grad=True) for a in (x0, g0, b0))
        rm_, rv_ = rm.copy(), rv.copy()
        y = (batch_norm(x, g, b, rm_, rv_, training, relu=True) if fused
             else ops.relu(batch_norm(x, g, b, rm_, rv_, training)))
        y.backward(gy)
        outs.append([y.data, x.grad, g.grad, b.grad, rm_, rv_])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck_fused_relu(training):
    shape, c = (3, 4, 5, 3), 4
    x = Tensor(randn(shape, 66, 2.0, 1.0), requires_grad=True)
    gamma, beta = params(c, seed=67)
    rm, rv = randn(c, 68), np.random.default_rng(69).uniform(0.5, 2.0, c)
    _away_from_the_kink(batch_norm(x.data, gamma.data, beta.data, rm.copy(), rv.copy(), training).data)
    assert gradcheck(lambda x, g, b: batch_norm(x, g, b, rm.copy(), rv.copy(), training, relu=True),
                     [x, gamma, beta])


def test_strided_upstream_gradient(three_threads):
    """The gradient of a branch that feeds a channel concat is a strided view: copied (on all threads) first."""
    x = randn((4, 3, 5, 2), 80, 2.0, 1.0, np.float32)
    gamma, beta = randn(3, 81, dtype=np.float32), randn(3, 82, dtype=np.float32)
    gy_wide = randn((4, 7, 5, 2), 83, dtype=np.float32)
    grads = []
    for gy in (gy_wide[:, 2:5], np.ascontiguousarray(gy_wide[:, 2:5])):
        xt, g, b = Tensor(x, requires_grad=True), Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
        batch_norm(xt, g, b, None, None, True, relu=True).backward(gy)
        grads.append((xt.grad, g.grad, b.grad))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("relu", [False, True])
def test_parallel_ranges_match_the_serial_kernels(three_threads, relu):
    """Channel ranges (the sums) and row ranges (the outputs) on 3 threads give the serial results exactly."""
    from ops.kernels.cpu.runtime import threads
    x, gy = randn((5, 7, 9), 70, 2.0, 1.0, np.float32), randn((5, 7, 9), 71, dtype=np.float32)
    gamma, beta = randn(7, 72, dtype=np.float32), randn(7, 73, dtype=np.float32)
    threaded = batchnorm_numba.forward_train(x, gamma, beta, EPS, relu=relu)
    threaded_back = batchnorm_numba.backward_train(gy, x, threaded[1], threaded[3], gamma,
                                                   y=threaded[0] if relu else None)
    threads._threads = 1
    serial = batchnorm_numba.forward_train(x, gamma, beta, EPS, relu=relu)
    serial_back = batchnorm_numba.backward_train(gy, x, serial[1], serial[3], gamma, y=serial[0] if relu else None)
    for a, b in zip(threaded + threaded_back, serial + serial_back):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", KERNEL_SHAPES + [(3, 2, 700), (300, 2, 1)])
def test_cupy_kernels_match_reference(shape, dtype):
    import cupy
    from ops.kernels.cuda import batch_norm as batchnorm_cupy
    c = shape[1]
    x = randn(shape, 40, 3.0, 5.0, dtype)
    gy = randn(shape, 41, dtype=dtype)
    gamma, beta = randn(c, 42, dtype=dtype), randn(c, 43, dtype=dtype)
    rm, rv = randn(c, 44, dtype=dtype), np.random.default_rng(45).uniform(0.5, 2.0, c).astype(dtype)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    g = [cupy.asarray(a) for a in (gy, x, gamma, beta, rm, rv)]

    ref = batchnorm_reference.forward_train(x, gamma, beta, EPS)
    for a, b in zip(batchnorm_cupy.forward_train(g[1], g[2], g[3], EPS), ref):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a.get(), b, **tol)
    mean, invstd = ref[1], ref[3]
    for a, b in zip(batchnorm_cupy.backward_train(g[0], g[1], cupy.asarray(mean), cupy.asarray(invstd), g[2]),
                    batchnorm_reference.backward_train(gy, x, mean, invstd, gamma)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a.get(), b, **tol)
    ref = batchnorm_reference.forward_eval(x, gamma, beta, rm, rv, EPS)
    for a, b in zip(batchnorm_cupy.forward_eval(g[1], g[2], g[3], g[4], g[5], EPS), ref):
        np.testing.assert_allclose(a.get(), b, **tol)
    for a, b in zip(batchnorm_cupy.backward_eval(g[0], g[1], g[4], cupy.asarray(ref[1]), g[2]),
                    batchnorm_reference.backward_eval(gy, x, rm, ref[1], gamma)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a.get(), b, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_matches_cpu(training, dtype):
    import cupy
    x = randn((4, 3, 5, 6), 30, 2.0, 1.0, dtype)
    g, b = randn(3, 31, 0.5, 1.0, dtype), randn(3, 32, dtype=dtype)
    rm, rv = randn(3, 33, dtype=dtype), np.random.default_rng(34).uniform(0.5, 2.0, 3).astype(dtype)
    gy = randn(x.shape, 35, dtype=dtype)
    cpu = [Tensor(a, requires_grad=True) for a in (x, g, b)]
    gpu = [Tensor(cupy.asarray(a), requires_grad=True) for a in (x, g, b)]
    rm_c, rv_c, rm_g, rv_g = rm.copy(), rv.copy(), cupy.asarray(rm), cupy.asarray(rv)
    yc = batch_norm(*cpu, rm_c, rv_c, training)
    yg = batch_norm(*gpu, rm_g, rv_g, training)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(yg.data.get(), yc.data, **tol)
    np.testing.assert_allclose(rm_g.get(), rm_c, **tol)
    np.testing.assert_allclose(rv_g.get(), rv_c, **tol)
    yc.backward(gy)
    yg.backward(Tensor(cupy.asarray(gy)))
    for c, g_ in zip(cpu, gpu):
        np.testing.assert_allclose(g_.grad.get(), c.grad, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gpu_fused_relu_matches_reference(training):
    import cupy
    from ops.kernels.cuda import batch_norm as batchnorm_cupy
    x, gy = randn((4, 3, 10), 74, 2.0, 1.0), randn((4, 3, 10), 75)
    gamma, beta = randn(3, 76, 0.5, 1.0), randn(3, 77)
    rm, rv = randn(3, 78), np.random.default_rng(79).uniform(0.5, 2.0, 3)
    g = [cupy.asarray(a) for a in (gy, x, gamma, beta, rm, rv)]
    tol = dict(rtol=1e-10, atol=1e-12)
    if training:
        ref = batchnorm_reference.forward_train(x, gamma, beta, EPS, relu=True)
        out = batchnorm_cupy.forward_train(g[1], g[2], g[3], EPS, relu=True)
        back_ref = batchnorm_reference.backward_train(gy, x, ref[1], ref[3], gamma, y=ref[0])
        back = batchnorm_cupy.backward_train(g[0], g[1], cupy.asarray(ref[1]), cupy.asarray(ref[3]), g[2],
                                             y=cupy.asarray(ref[0]))
    else:
        ref = batchnorm_reference.forward_eval(x, gamma, beta, rm, rv, EPS, relu=True)
        out = batchnorm_cupy.forward_eval(g[1], g[2], g[3], g[4], g[5], EPS, relu=True)
        back_ref = batchnorm_reference.backward_eval(gy, x, rm, ref[1], gamma, y=ref[0])
        back = batchnorm_cupy.backward_eval(g[0], g[1], g[4], cupy.asarray(ref[1]), g[2], y=cupy.asarray(ref[0]))
    for a, b in zip(tuple(out) + tuple(back), tuple(ref) + tuple(back_ref)):
        np.testing.assert_allclose(a.get(), b, **tol)


@pytest.mark.gpu
def test_gpu_gradcheck():
    import cupy
    x = Tensor(cupy.asarray(randn((3, 4, 3, 5), 36)), requires_grad=True)
    gamma = Tensor(cupy.asarray(randn(4, 37, 0.5, 1.0)), requires_grad=True)
    beta = Tensor(cupy.asarray(randn(4, 38)), requires_grad=True)
    assert gradcheck(lambda x, g, b: batch_norm(x, g, b, None, None, True), [x, gamma, beta])
