"""Pooling kernels: the NumPy reference against a brute-force definition, and the Numba (CPU) and CuPy (GPU)
kernels against the reference, in float32 and float64, on odd and non-square shapes, kernels and strides, with
and without padding; the tie and NaN rules of max pooling."""
import numpy as np
import pytest

from ops.kernels.cpu import pooling as pool_numba
from ops.kernels.reference import pooling as pool_reference

# (input shape, (kh, kw), (sh, sw), (ph, pw))
CONFIGS = [
    ((2, 3, 9, 11), (3, 3), (2, 2), (0, 0)),      # Inception's 3x3/2 "valid" pool
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1)),      # ... and its small-input "same" version
    ((2, 3, 9, 11), (3, 3), (1, 1), (1, 1)),      # Inception's 3x3/1/pad-1 average pool
    ((1, 2, 7, 6), (2, 3), (1, 2), (1, 1)),       # non-square kernel and stride
    ((2, 1, 6, 7), (3, 2), (2, 1), (0, 1)),       # ... transposed, padding on one axis only
    ((1, 2, 8, 5), (5, 4), (3, 2), (2, 2)),       # big window, padding = kernel // 2
    ((3, 2, 5, 5), (1, 1), (2, 3), (0, 0)),       # 1x1 window with strides (a subsample)
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),       # a single pixel
    ((2, 40, 4, 3), (2, 2), (2, 2), (0, 0)),      # many small planes (several plane groups), odd width
    ((1, 2, 17, 3), (3, 1), (1, 3), (1, 0)),      # tall and narrow
]
IDS = [f"{s[2]}x{s[3]}-k{k[0]}x{k[1]}-s{st[0]}x{st[1]}-p{p[0]}x{p[1]}" for s, k, st, p in CONFIGS]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def brute_force(x, k, s, p, mode, count_include_pad=False):
    """Pooling written straight from the definition: one window at a time (max with its first argmax)."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, c, oh, ow), x.dtype)
    arg = np.zeros((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for oy in range(oh):
                for ox in range(ow):
                    vals, offs = [], []
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
                            inside = 0 <= iy < h and 0 <= ix < w
                            if mode == "max":
                                vals.append(x[b, ch, iy, ix] if inside else -np.inf)
                                offs.append(ky * kw + kx)
                            elif inside or count_include_pad:
                                vals.append(x[b, ch, iy, ix] if inside else 0.0)
                    if mode == "max":
                        best = int(np.argmax(vals))              # np.argmax: the first maximum
                        y[b, ch, oy, ox], arg[b, ch, oy, ox] = vals[best], offs[best]
                    else:
                        y[b, ch, oy, ox] = sum(vals) / len(vals)
    return y, arg


def sample(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape,k,s,p", CONFIGS[:6], ids=IDS[:6])
def test_reference_matches_brute_force(shape, k, s, p):
    x = sample(shape, np.float64, 1)
    y, arg = pool_reference.max_pool2d_forward(x, k, s, p)
    y0, arg0 = brute_force(x, k, s, p, "max")
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(arg, arg0)
    for cip in (False, True):
        y = pool_reference.avg_pool2d_forward(x, k, s, p, count_include_pad=cip)
        np.testing.assert_allclose(y, brute_force(x, k, s, p, "avg", cip)[0], rtol=1e-12)


def test_reference_backward_is_the_transpose_of_forward():
    """<gy, pool(x)> = <pool_backward(gy), x> for the linear average pool, and max pool is linear given argmax."""
    x = sample((2, 3, 7, 6), np.float64, 2)
    gy_shape = pool_reference.avg_pool2d_forward(x, (3, 2), (2, 1), (1, 1)).shape
    gy = sample(gy_shape, np.float64, 3)
    for cip in (False, True):
        y = pool_reference.avg_pool2d_forward(x, (3, 2), (2, 1), (1, 1), cip)
        gx = pool_reference.avg_pool2d_backward(gy, x.shape, (3, 2), (2, 1), (1, 1), cip)
        assert np.isclose((gy * y).sum(), (gx * x).sum(), rtol=1e-12)
    y, arg = pool_reference.max_pool2d_forward(x, (3, 2), (2, 1), (1, 1))
    gx = pool_reference.max_pool2d_backward(gy, arg, x.shape, (3, 2), (2, 1), (1, 1))
    assert np.isclose((gy * y).sum(), (gx * x).sum(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_numba_matches_reference(shape, k, s, p, dtype):
    _numba_matches_reference(shape, k, s, p, dtype)


@pytest.mark.parametrize("shape,k,s,p", [CONFIGS[i] for i in (0, 2, 3, 8)], ids=[IDS[i] for i in (0, 2, 3, 8)])
def test_numba_parallel_ranges_match_reference(three_threads, shape, k, s, p):
    """The kernels cut into 3 ranges of plane groups run on 3 threads: the same results as the reference."""
    _numba_matches_reference(shape, k, s, p, np.float32)


def _numba_matches_reference(shape, k, s, p, dtype):
    x = sample(shape, dtype, 4)
    args = (k, s, p)
    y0, a0 = pool_reference.max_pool2d_forward(x, *args)
    y1, a1 = pool_numba.max_pool2d_forward(x, *args)
    assert y1.dtype == dtype and a1.dtype == a0.dtype == np.uint8
    np.testing.assert_array_equal(y1, y0)                 # a max is exact: bit for bit
    np.testing.assert_array_equal(a1, a0)
    gy = sample(y0.shape, dtype, 5)
    g0 = pool_reference.max_pool2d_backward(gy, a0, shape, *args)
    g1 = pool_numba.max_pool2d_backward(gy, a1, shape, *args)
    assert g1.dtype == dtype
    np.testing.assert_allclose(g1, g0, **TOL[dtype])
    for cip in (False, True):
        y0 = pool_reference.avg_pool2d_forward(x, *args, count_include_pad=cip)
        y1 = pool_numba.avg_pool2d_forward(x, *args, count_include_pad=cip)
        assert y1.dtype == dtype
        np.testing.assert_allclose(y1, y0, **TOL[dtype])
        g0 = pool_reference.avg_pool2d_backward(gy, shape, *args, count_include_pad=cip)
        g1 = pool_numba.avg_pool2d_backward(gy, shape, *args, count_include_pad=cip)
        assert g1.dtype == dtype
        np.testing.assert_allclose(g1, g0, **TOL[dtype])


def test_numba_accepts_non_contiguous_input():
    x = sample((3, 2, 9, 8), np.float32, 6).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(pool_numba.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))[0],
                                  pool_reference.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))[0])


# A 3x3 plane whose maximum 5 appears four times: row-major order makes (0, 1) the first one.
TIE_PLANE = np.array([[1.0, 5.0, 5.0],
                      [5.0, 2.0, 0.0],
                      [5.0, 5.0, 1.0]])


def tie_cases():
    yield "3x3 window, no padding", TIE_PLANE[None, None], ((3, 3), (1, 1), (0, 0)), [[1]]
    # 2x2 windows, stride 1: each overlapping window has its own first maximum
    yield "2x2 windows, overlapping", TIE_PLANE[None, None], ((2, 2), (1, 1), (0, 0)), [[1, 0], [0, 2]]
    # all-equal input with padding: padding is -inf, so the first *real* pixel of each window wins
    yield "constant input, padding 1", np.full((1, 1, 3, 3), 7.0), ((3, 3), (2, 2), (1, 1)), [[4, 3], [1, 0]]


@pytest.mark.parametrize("module", [pool_reference, pool_numba], ids=["reference", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_ties_go_to_first_maximum_in_row_major_order(module, dtype):
    for name, x, args, expected in tie_cases():
        y, arg = module.max_pool2d_forward(x.astype(dtype), *args)
        np.testing.assert_array_equal(arg[0, 0], expected, err_msg=name)
        gy = np.ones_like(y)
        gx = module.max_pool2d_backward(gy, arg, x.shape, *args)
        assert gx.sum() == y.size, name                   # one winner per window, never split
    # the gradient of the 3x3 window goes to the first 5 only
    y, arg = module.max_pool2d_forward(TIE_PLANE[None, None].astype(dtype), (3, 3), (1, 1), (0, 0))
    gx = module.max_pool2d_backward(np.ones_like(y), arg, (1, 1, 3, 3), (3, 3), (1, 1), (0, 0))
    np.testing.assert_array_equal(gx[0, 0], [[0, 1, 0], [0, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("module", [pool_reference, pool_numba], ids=["reference", "numba"])
def test_max_pool_propagates_nan_and_handles_infinities(module):
    x = np.array([[[[1.0, np.nan, 3.0, 0.0],
                    [-np.inf, -np.inf, 2.0, np.inf]]]], np.float32)
    y, arg = module.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    assert np.isnan(y[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 1
    assert y[0, 0, 0, 1] == np.inf and arg[0, 0, 0, 1] == 3
    # a window holding only -inf: its max is -inf and its argmax the first offset
    y, arg = module.max_pool2d_forward(np.full((1, 1, 2, 2), -np.inf, np.float32), (2, 2), (1, 1), (1, 1))
    assert np.all(y == -np.inf) and np.all(arg == 0)


def test_large_window_uses_int32_argmax():
    x = sample((1, 2, 18, 17), np.float64, 7)
    x[:, :, 17, 16] = 100.0                                # the max of window (1, 1) is its last pixel
    args = ((17, 16), (1, 1), (0, 0))                            # 272 offsets: more than a byte holds
    y0, a0 = pool_reference.max_pool2d_forward(x, *args)
    y1, a1 = pool_numba.max_pool2d_forward(x, *args)
    assert a0.dtype == a1.dtype == np.int32
    assert np.all(a0[:, :, 1, 1] == 16 * 16 + 15)
    np.testing.assert_array_equal(a1, a0)
    np.testing.assert_array_equal(y1, y0)
    gy = sample(y0.shape, np.float64, 8)
    np.testing.assert_allclose(pool_numba.max_pool2d_backward(gy, a1, x.shape, *args),
                               pool_reference.max_pool2d_backward(gy, a0, x.shape, *args), rtol=1e-12)


def test_kernels_do_not_modify_their_inputs():
    x = sample((2, 3, 7, 6), np.float32, 9)
    x0 = x.copy()
    y, arg = pool_numba.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))
    gy = sample(y.shape, np.float32, 10)
    gy0, arg0 = gy.copy(), arg.copy()
    pool_numba.max_pool2d_backward(gy, arg, x.shape, (3, 3), (2, 2), (1, 1))
    pool_numba.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1))
    pool_numba.avg_pool2d_backward(gy, x.shape, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)
    np.testing.assert_array_equal(arg, arg0)


# ---------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_cupy_matches_reference(shape, k, s, p, dtype):
    import cupy
    from ops.kernels.cuda import pooling as pool_cupy
    x = sample(shape, dtype, 11)
    args = (k, s, p)
    y0, a0 = pool_reference.max_pool2d_forward(x, *args)
    y1, a1 = pool_cupy.max_pool2d_forward(cupy.asarray(x), *args)
    assert a1.dtype == a0.dtype
    np.testing.assert_array_equal(y1.get(), y0)
    np.testing.assert_array_equal(a1.get(), a0)
    gy = sample(y0.shape, dtype, 12)
    g0 = pool_reference.max_pool2d_backward(gy, a0, shape, *args)
    g1 = pool_cupy.max_pool2d_backward(cupy.asarray(gy), a1, shape, *args)
    np.testing.assert_allclose(g1.get(), g0, **TOL[dtype])
    for cip in (False, True):
        y0 = pool_reference.avg_pool2d_forward(x, *args, count_include_pad=cip)
        y1 = pool_cupy.avg_pool2d_forward(cupy.asarray(x), *args, count_include_pad=cip)
        np.testing.assert_allclose(y1.get(), y0, **TOL[dtype])
        g0 = pool_reference.avg_pool2d_backward(gy, shape, *args, count_include_pad=cip)
        g1 = pool_cupy.avg_pool2d_backward(cupy.asarray(gy), shape, *args, count_include_pad=cip)
        np.testing.assert_allclose(g1.get(), g0, **TOL[dtype])


@pytest.mark.gpu
def test_cupy_ties_nan_and_int32_argmax():
    import cupy
    from ops.kernels.cuda import pooling as pool_cupy
    for name, x, args, expected in tie_cases():
        _, arg = pool_cupy.max_pool2d_forward(cupy.asarray(x), *args)
        np.testing.assert_array_equal(arg.get()[0, 0], expected, err_msg=name)
    x = cupy.asarray(np.array([[[[1.0, np.nan], [3.0, 0.0]]]], np.float32))
    y, arg = pool_cupy.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    assert bool(cupy.isnan(y[0, 0, 0, 0])) and int(arg[0, 0, 0, 0]) == 1
    x = sample((1, 2, 18, 17), np.float64, 13)
    y0, a0 = pool_reference.max_pool2d_forward(x, (17, 16), (1, 1), (0, 0))
    y1, a1 = pool_cupy.max_pool2d_forward(cupy.asarray(x), (17, 16), (1, 1), (0, 0))
    assert a1.dtype == np.int32
    np.testing.assert_array_equal(a1.get(), a0)


@pytest.mark.gpu
def test_cupy_backward_is_deterministic():
    import cupy
    from ops.kernels.cuda import pooling as pool_cupy
    x = cupy.asarray(sample((4, 8, 15, 13), np.float32, 14))
    y, arg = pool_cupy.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1))
    gy = cupy.asarray(sample(y.shape, np.float32, 15))
    a = pool_cupy.max_pool2d_backward(gy, arg, x.shape, (3, 3), (1, 1), (1, 1))
    b = pool_cupy.max_pool2d_backward(gy, arg, x.shape, (3, 3), (1, 1), (1, 1))
    assert bool((a == b).all())
    a = pool_cupy.avg_pool2d_backward(gy, x.shape, (3, 3), (1, 1), (1, 1))
    b = pool_cupy.avg_pool2d_backward(gy, x.shape, (3, 3), (1, 1), (1, 1))
    assert bool((a == b).all())
