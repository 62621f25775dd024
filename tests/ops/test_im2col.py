"""im2col/col2im kernels: the NumPy reference against the definition, col2im as the adjoint of im2col, and the
Numba (CPU) and CuPy (GPU) kernels against the reference in float32 and float64: stride 1 and 2, padding 0, 1
and "same", square and non-square kernels (1x3, 3x1, 1x7, 7x1, even sizes), odd and tiny image sizes."""
import numpy as np
import pytest

from ops.geometry import conv_out_size, normalize_padding
from ops.kernels.cpu import im2col as im2col_numba
from ops.kernels.reference import im2col as im2col_reference

# (x shape, (kh, kw), (sh, sw), padding as conv2d takes it)
CONFIGS = [
    ((2, 3, 7, 9), (3, 3), (1, 1), 0),
    ((2, 3, 7, 9), (3, 3), (1, 1), 1),
    ((2, 3, 7, 9), (3, 3), (2, 2), 1),
    ((2, 3, 7, 9), (3, 3), (2, 2), 0),
    ((2, 2, 9, 5), (1, 3), (1, 1), "same"),
    ((2, 2, 5, 9), (3, 1), (1, 1), "same"),
    ((1, 2, 9, 11), (1, 7), (1, 1), "same"),
    ((1, 2, 11, 9), (7, 1), (1, 1), "same"),
    ((1, 2, 11, 9), (7, 1), (2, 1), "same"),      # stride on one axis only
    ((1, 2, 9, 11), (1, 7), (2, 2), "same"),
    ((2, 3, 8, 6), (2, 2), (2, 2), 0),             # even kernel
    ((2, 3, 6, 7), (1, 1), (1, 1), 0),             # pointwise
    ((2, 3, 6, 7), (1, 1), (2, 2), 0),             # pointwise subsample
    ((1, 2, 3, 2), (7, 1), (1, 1), (3, 0)),        # image shorter than the kernel: rows entirely in padding
    ((1, 1, 1, 1), (3, 3), (1, 1), "same"),        # a single pixel
    ((2, 2, 5, 4), (3, 2), (3, 2), (2, 1)),        # stride larger than the kernel on one axis
]
IDS = [f"{s[2]}x{s[3]}-k{k[0]}x{k[1]}-s{st[0]}x{st[1]}-p{p}" for s, k, st, p in CONFIGS]
DTYPES = [np.float32, np.float64]


def geometry(shape, k, s, p):
    pad = normalize_padding(p, k)
    oh, ow = conv_out_size(shape[2], k[0], s[0], pad[0]), conv_out_size(shape[3], k[1], s[1], pad[1])
    return pad, oh, ow


def sample(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def im2col_by_definition(x, k, s, pad):
    """cols[(c, i, j), (n, oy, ox)] = x[n, c, oy*sh + i - ph, ox*sw + j - pw], 0 outside the image."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = k, s, pad
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    cols = np.zeros((c, kh, kw, n, oh, ow), x.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for oy in range(oh):
                        for ox in range(ow):
                            y, xx = oy * sh + i - ph, ox * sw + j - pw
                            if 0 <= y < h and 0 <= xx < w:
                                cols[ch, i, j, b, oy, ox] = x[b, ch, y, xx]
    return cols.reshape(c * kh * kw, n * oh * ow)


@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_reference_im2col_matches_definition(shape, k, s, p):
    x = sample(shape, np.float64, 0)
    pad, _, _ = geometry(shape, k, s, p)
    np.testing.assert_array_equal(im2col_reference.im2col(x, k, s, pad), im2col_by_definition(x, k, s, pad))


@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_reference_col2im_is_the_adjoint_of_im2col(shape, k, s, p):
    """<g, im2col(x)> == <col2im(g), x> for random x and g: col2im is the transpose of the linear map im2col."""
    pad, oh, ow = geometry(shape, k, s, p)
    x = sample(shape, np.float64, 1)
    g = sample((shape[1] * k[0] * k[1], shape[0] * oh * ow), np.float64, 2)
    lhs = np.sum(g * im2col_reference.im2col(x, k, s, pad))
    rhs = np.sum(im2col_reference.col2im(g, shape, k, s, pad) * x)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_numba_im2col_matches_reference(shape, k, s, p, dtype):
    pad, oh, ow = geometry(shape, k, s, p)
    x = sample(shape, dtype, 3)
    out = np.full((shape[1] * k[0] * k[1], shape[0] * oh * ow), np.nan, dtype)   # every element must be written
    cols = im2col_numba.im2col(x, k, s, pad, out=out)
    assert cols is out and cols.dtype == dtype
    np.testing.assert_array_equal(cols, im2col_reference.im2col(x, k, s, pad))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_numba_col2im_matches_reference(shape, k, s, p, dtype):
    """Same summation order as the reference (kernel offsets in (i, j) order), so the results are identical."""
    pad, oh, ow = geometry(shape, k, s, p)
    g = sample((shape[1] * k[0] * k[1], shape[0] * oh * ow), dtype, 4)
    out = np.full(shape, np.nan, dtype)
    dx = im2col_numba.col2im(g, shape, k, s, pad, out=out)
    assert dx is out and dx.dtype == dtype
    np.testing.assert_array_equal(dx, im2col_reference.col2im(g, shape, k, s, pad))


def test_numba_kernels_accept_non_contiguous_input_and_allocate_output():
    x = sample((3, 7, 2, 5), np.float32, 5).transpose(2, 0, 3, 1)          # (2, 3, 5, 7), not contiguous
    k, s, pad = (3, 3), (2, 1), (1, 1)
    cols = im2col_numba.im2col(x, k, s, pad)
    np.testing.assert_array_equal(cols, im2col_reference.im2col(x, k, s, pad))
    dx = im2col_numba.col2im(np.asfortranarray(cols), x.shape, k, s, pad)
    np.testing.assert_array_equal(dx, im2col_reference.col2im(cols, x.shape, k, s, pad))


def test_numba_kernels_reject_bad_buffers_and_dtypes():
    x = sample((1, 2, 5, 5), np.float32, 6)
    with pytest.raises(ValueError, match=r"im2col \(Numba\): out must be a C-contiguous \(18, 25\) float32"):
        im2col_numba.im2col(x, (3, 3), (1, 1), (1, 1), out=np.empty((18, 24), np.float32))
    with pytest.raises(ValueError, match=r"im2col \(Numba\): out must be"):
        im2col_numba.im2col(x, (3, 3), (1, 1), (1, 1), out=np.empty((18, 25), np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        im2col_numba.im2col(x.astype(np.int32), (3, 3), (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"col2im \(Numba\): cols has shape \(18, 24\), expected \(18, 25\)"):
        im2col_numba.col2im(np.zeros((18, 24), np.float32), x.shape, (3, 3), (1, 1), (1, 1))


# ---------------------------------------------------------------- GPU (CuPy) kernels

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONFIGS, ids=IDS)
def test_cupy_kernels_match_reference(shape, k, s, p, dtype):
    import cupy as cp

    from ops.kernels.cuda import im2col as im2col_cupy
    pad, oh, ow = geometry(shape, k, s, p)
    x = sample(shape, dtype, 7)
    out = cp.full((shape[1] * k[0] * k[1], shape[0] * oh * ow), cp.nan, dtype)
    cols = im2col_cupy.im2col(cp.asarray(x), k, s, pad, out=out)
    assert cols is out
    np.testing.assert_array_equal(cp.asnumpy(cols), im2col_reference.im2col(x, k, s, pad))

    g = sample(cols.shape, dtype, 8)
    dx_out = cp.full(shape, cp.nan, dtype)
    dx = im2col_cupy.col2im(cp.asarray(g), shape, k, s, pad, out=dx_out)
    assert dx is dx_out
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cp.asnumpy(dx), im2col_reference.col2im(g, shape, k, s, pad), **tol)


@pytest.mark.gpu
def test_cupy_col2im_is_deterministic_in_float64():
    import cupy as cp

    from ops.kernels.cuda import im2col as im2col_cupy
    shape, k, s, pad = (4, 8, 13, 11), (3, 3), (1, 1), (1, 1)
    g = cp.asarray(sample((8 * 9, 4 * 13 * 11), np.float64, 9))
    first = im2col_cupy.col2im(g, shape, k, s, pad)
    for _ in range(3):
        assert bool(cp.all(im2col_cupy.col2im(g, shape, k, s, pad) == first))
