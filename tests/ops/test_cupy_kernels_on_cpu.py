"""The CuPy kernels' host side and index arithmetic, checked on a machine without a GPU.

* Which index variant (32- or 64-bit ``idx_t``) each kernel module picks for which sizes, and that the variant's
  source and parameter types really say so (the kernels are built against a stand-in ``cupy`` that records what
  it is given).
* The index arithmetic of the kernels, ported line by line to NumPy and evaluated in int32 and int64: both give
  the reference's results on small shapes, and at the largest sizes the 32-bit variant is chosen for, int32
  arithmetic still gives the int64 answers (no intermediate overflows), while just past them it would not.
* Batch norm: the walk that splits a channel over several blocks visits every value exactly once, and the
  launches (one or two reduction passes) and the arguments handed to the kernels (dtype, contiguity, shapes)
  are what the kernels expect; the reduction kernels' CUDA source itself, compiled for the CPU and executed
  (``tests/cuda_on_cpu.py``, slow tests), gives the reference's statistics and gradient sums.
* The scatter-add of the fancy-indexing backward: its algorithm against ``np.bincount``, bit for bit.
* The GPU conv2d's host code (products, reshapes, the 1x1 shortcut) against the conv2d contract.

The GPU tests (``-m gpu``) run the same kernels for real.
"""
import re
import sys
import types

import numpy as np
import pytest

from ops.geometry import conv_out_size
from ops.kernels.cuda import batch_norm as batchnorm_cupy
from ops.kernels.cuda import im2col as im2col_cupy
from ops.kernels.cuda import pooling as pool_cupy
from ops.kernels.cuda.indexing import INT32_MAX, index_type, preamble
from ops.kernels.reference import im2col as im2col_reference
from ops.kernels.reference import pooling as pool_reference

I32, I64 = np.int32, np.int64


# ---------------------------------------------------------------------------------------------- selection
def test_index_type_switches_at_int32_max():
    assert index_type(0) == "int" and index_type(INT32_MAX) == "int"
    assert index_type(INT32_MAX + 1) == "long long"
    assert preamble("int") == "typedef int idx_t;\n"
    assert preamble("long long") == "typedef long long idx_t;\n"
    with pytest.raises(ValueError, match="index type"):
        preamble("short")


def test_im2col_variant_follows_the_larger_of_image_and_columns():
    small = ((64, 32, 32, 32), (3, 3), (1, 1), (1, 1))
    assert im2col_cupy.kernel_index_type(*small) == "int"
    # columns of 256*9 rows x 256*64*64 columns = 2.4e9 elements, although the image has 2.7e8
    big_cols = ((256, 256, 64, 64), (3, 3), (1, 1), (1, 1))
    assert im2col_cupy.kernel_index_type(*big_cols) == "long long"
    # a 1x1 kernel: columns as big as the image, 46340^2 = 2147395600 < 2**31 - 1
    assert im2col_cupy.kernel_index_type((1, 1, 46340, 46340), (1, 1), (1, 1), (0, 0)) == "int"
    assert im2col_cupy.kernel_index_type((1, 1, 46341, 46341), (1, 1), (1, 1), (0, 0)) == "long long"


def test_pool_and_batchnorm_variants():
    assert pool_cupy.kernel_index_type((64, 64, 32, 32), (16, 16)) == "int"
    assert pool_cupy.kernel_index_type((2, 1, 2 ** 15, 2 ** 15), (2 ** 14, 2 ** 14)) == "long long"
    assert batchnorm_cupy.reduction_index_type((64, 64, 1024), 16) == "int"
    n, c, l = 1, 1, INT32_MAX - 100           # fits, but not with one stride of slack on top
    assert batchnorm_cupy.reduction_index_type((n, c, l), 1) == "long long"


# ---------------------------------------------------------------------------------------------- fake cupy
class Recorder:
    """Stands in for a compiled kernel: records each launch as (name, args)."""

    def __init__(self, log, name, spec=None):
        self.log, self.name, self.spec = log, name, spec

    def __call__(self, *args):
        self.log.append((self.name, args))
        return args[-1] if self.spec is not None else None    # ElementwiseKernel: the output array


def fake_cupy(log):
    """A ``cupy`` module on NumPy arrays whose kernels only record what they were built and launched with."""
    module = types.ModuleType("cupy")
    module.ndarray = np.ndarray
    module.ascontiguousarray = np.ascontiguousarray
    module.empty, module.sqrt, module.maximum = np.empty, np.sqrt, np.maximum
    module.operations = {}                     # ElementwiseKernel name -> its CUDA operation

    def elementwise(in_params, out_params, operation, name, preamble=""):
        log.append(("build", name, in_params, preamble))
        module.operations[name] = operation
        return Recorder(log, name, (in_params, out_params))

    class RawModule:
        def __init__(self, code):
            log.append(("build-raw", code))

        def get_function(self, name):
            return Recorder(log, name)

    module.ElementwiseKernel, module.RawModule = elementwise, RawModule
    return module


@pytest.fixture
def recorded(monkeypatch):
    """Swap in the fake cupy and clear the kernel caches before and after (real kernels never see fakes)."""
    caches = [im2col_cupy._kernels, pool_cupy._kernels, batchnorm_cupy._reductions, batchnorm_cupy._elementwise,
              batchnorm_cupy._relu_gate]
    for cache in caches:
        cache.cache_clear()
    log = []
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(log))
    yield log
    for cache in caches:
        cache.cache_clear()


def builds(log):
    return [entry for entry in log if entry[0] in ("build", "build-raw")]


def launches(log):
    return [entry for entry in log if entry[0] not in ("build", "build-raw")]


def test_im2col_builds_the_32_bit_variant_for_small_shapes(recorded):
    x = np.zeros((2, 3, 7, 9), np.float32)
    im2col_cupy.im2col(x, (3, 3), (2, 2), (1, 1))
    im2col_cupy.col2im(np.zeros((27, 2 * 4 * 5), np.float32), x.shape, (3, 3), (2, 2), (1, 1))
    (_, name, params, pre), (_, name2, params2, _) = builds(recorded)
    assert (name, name2) == ("minception_im2col_i32", "minception_col2im_i32")
    assert pre == "typedef int idx_t;\n" and "int32 c" in params and "int64" not in params
    assert [entry[0] for entry in launches(recorded)] == ["minception_im2col_i32", "minception_col2im_i32"]
    im2col_cupy._kernels("long long")
    _, name, params, pre = builds(recorded)[-2]
    assert name == "minception_im2col_i64" and pre == "typedef long long idx_t;\n" and "int64 c" in params


def test_kernel_sources_do_their_index_arithmetic_in_idx_t():
    for source in (im2col_cupy.IM2COL, im2col_cupy.COL2IM, pool_cupy._SIZES, pool_cupy._WINDOW_DIVISOR):
        assert "long long" not in source and "ptrdiff_t" not in source and "idx_t" in source
    for itype in ("int", "long long"):
        code = batchnorm_cupy.reduction_source("float32", itype)
        assert code.startswith(f"typedef {itype} idx_t;\n") and "typedef float T;" in code
        assert "long long" not in code.replace(f"typedef {itype} idx_t;", "")


def test_pool_builds_one_variant_per_index_type(recorded):
    x = np.zeros((2, 3, 9, 8), np.float64)
    y, argmax = pool_cupy.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))
    pool_cupy.max_pool2d_backward(y, argmax, x.shape, (3, 3), (2, 2), (1, 1))
    names = [entry[1] for entry in builds(recorded)]
    assert names == ["minception_max_pool2d_forward_i32", "minception_max_pool2d_backward_i32",
                     "minception_avg_pool2d_forward_i32", "minception_avg_pool2d_backward_i32"]
    assert {entry[3] for entry in builds(recorded)} == {"typedef int idx_t;\n"}


def test_pool_checks_its_arguments(recorded):
    x = np.zeros((2, 3, 9, 8), np.float32)
    with pytest.raises(TypeError, match="max_pool2d \\(GPU\\): x must be float32 or float64, got int64"):
        pool_cupy.max_pool2d_forward(x.astype(np.int64), (3, 3), (2, 2), (1, 1))
    y, argmax = pool_cupy.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))
    with pytest.raises(TypeError, match="argmax must be an integer CuPy array"):
        pool_cupy.max_pool2d_backward(y, argmax.astype(np.float32), x.shape, (3, 3), (2, 2), (1, 1))
    with pytest.raises(TypeError, match="argmax must be an integer CuPy array of shape"):
        pool_cupy.max_pool2d_backward(y, argmax[:, :1], x.shape, (3, 3), (2, 2), (1, 1))
    with pytest.raises(ValueError, match="must have shape \\(N, C, H, W\\)"):
        pool_cupy.avg_pool2d_forward(x[0], (3, 3), (2, 2), (1, 1))
    # a strided upstream gradient reaches the kernel contiguous
    gy = np.zeros((2, 6, 5, 4), np.float32)[:, ::2]
    pool_cupy.avg_pool2d_backward(gy, x.shape, (3, 3), (2, 2), (1, 1))
    assert launches(recorded)[-1][1][0].flags.c_contiguous


# ---------------------------------------------------------------------------------------------- batch norm
def test_blocks_per_channel_grows_with_the_channel_and_is_capped():
    bpc = batchnorm_cupy.blocks_per_channel
    per_block = batchnorm_cupy.BLOCK * batchnorm_cupy.VALUES_PER_THREAD
    assert bpc(1) == bpc(per_block - 1) == 1
    assert bpc(2 * per_block) == 2
    assert bpc(64 * 32 * 32) == 16                       # batch 64 at 32x32
    assert bpc(32 * 149 * 149 * 2) == batchnorm_cupy.MAX_PARTS == 256     # a full-size stem layer
    assert [bpc(m) for m in range(0, 10 ** 6, 997)] == sorted(bpc(m) for m in range(0, 10 ** 6, 997))


def channel_walk(n, c, l, ch, parts, dtype):
    """NumPy port of the reduction kernels' loop (``moments`` / ``grad_sums``): for every (block, thread), the
    flat indices it reads, in order. Returns a list of index arrays per (part, thread) and checks, on the way,
    that the advanced (row, j) always equals the division of the running value number k."""
    block = batchnorm_cupy.BLOCK
    n, c, l, ch = dtype(n), dtype(c), dtype(l), dtype(ch)
    stride = dtype(parts * block)
    qs, rs = stride // l, stride % l
    visited = []
    for part in range(parts):
        k0 = (dtype(part) * dtype(block) + np.arange(block, dtype=dtype)).astype(dtype)
        row, j = k0 // l, k0 % l
        k = k0.copy()
        seen = [[] for _ in range(block)]
        active = row < n
        while active.any():
            idx = (row * c + ch) * l + j
            assert np.array_equal(row[active], (k // l)[active]) and np.array_equal(j[active], (k % l)[active])
            for t in np.flatnonzero(active):
                seen[t].append(int(idx[t]))
            row, j, k = row + qs, j + rs, k + stride
            wrap = j >= l
            j, row = np.where(wrap, j - l, j), np.where(wrap, row + 1, row)
            active = row < n
        visited.extend(seen)
    return visited


@pytest.mark.parametrize("n,l,parts", [(3, 1, 1), (5, 7, 1), (2, 256, 2), (3, 300, 3), (2, 5000, 2),
                                       (700, 1, 4), (4, 97, 16)])
@pytest.mark.parametrize("dtype", [I32, I64], ids=["int32", "int64"])
def test_channel_walk_visits_every_value_of_the_channel_once(n, l, parts, dtype):
    c = 3
    for ch in range(c):
        visited = channel_walk(n, c, l, ch, parts, dtype)
        flat = sorted(i for thread in visited for i in thread)
        expected = sorted(((np.arange(n)[:, None] * c + ch) * l + np.arange(l)[None, :]).ravel().tolist())
        assert flat == expected


def test_batchnorm_forward_launches_one_or_two_passes(recorded):
    block = batchnorm_cupy.BLOCK
    small = np.random.default_rng(0).standard_normal((4, 3, 10)).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    batchnorm_cupy.forward_train(small, gamma, beta, 1e-3)
    calls = launches(recorded)
    assert [c[0] for c in calls] == ["moments", "minception_bn_affine_i32"]
    grid, threads, args = calls[0][1]
    assert grid == (3,) and threads == (block,)
    assert args[1].dtype == np.int32 and args[4] == 1               # idx_t n, parts

    recorded.clear()
    big = np.zeros((64, 3, 1024), np.float32)                        # m = 65536: 16 blocks per channel
    batchnorm_cupy.forward_train(big, gamma, beta, 1e-3)
    calls = launches(recorded)
    assert [c[0] for c in calls] == ["moments", "moments_finish", "minception_bn_affine_i32"]
    assert calls[0][1][0] == (3 * 16,) and calls[1][1][0] == (3,)
    partial = calls[0][1][2][7]
    assert partial.dtype == np.float64 and partial.size == 2 * 3 * 16 and calls[1][1][2][1] is partial


def test_batchnorm_backward_casts_and_lays_out_what_the_kernels_read(recorded):
    x = np.random.default_rng(1).standard_normal((5, 4, 6)).astype(np.float32)
    gy64 = np.random.default_rng(2).standard_normal((5, 8, 6))[:, ::2]      # float64 and strided
    invstd = np.ones(8)[::2]                                                 # strided
    mean = np.zeros(4, np.float32)                                           # not float64
    gamma = np.ones(4, np.float32)
    gx, ggamma, gbeta = batchnorm_cupy.backward_train(gy64, x, mean, invstd, gamma)
    (name, (grid, threads, args)), (name2, eargs) = launches(recorded)
    assert name == "grad_sums" and name2 == "minception_bn_input_grad_i32"
    gy_k, x_k, centre_k, invstd_k = args[0], args[1], args[2], args[8]
    assert gy_k.dtype == np.float32 and gy_k.flags.c_contiguous
    assert x_k.flags.c_contiguous and centre_k.dtype == np.float64
    assert invstd_k.dtype == np.float64 and invstd_k.flags.c_contiguous
    assert eargs[0].dtype == np.float32 and eargs[0].flags.c_contiguous
    assert ggamma.dtype == gbeta.dtype == np.float32


def test_batchnorm_gate_multiplies_and_the_eval_gradient_does_not_read_x(recorded):
    """The tiers agree on NaN (issue 21, item 11): the fused ReLU's gate is ``gy * (y > 0)`` (its CUDA expression,
    evaluated here by NumPy, keeps a NaN ``gy`` where the ReLU is off, as the reference), and in evaluation the
    input gradient is ``k1 * gy`` from a kernel that is not given ``x`` (a NaN there must not reach ``gx``)."""
    x = np.random.default_rng(1).standard_normal((5, 4, 6)).astype(np.float32)
    gy = np.random.default_rng(2).standard_normal((5, 4, 6)).astype(np.float32)
    c = np.zeros(4)
    batchnorm_cupy.backward_eval(gy, x, c, np.ones(4), np.ones(4, np.float32), y=np.maximum(x, 0))
    calls = launches(recorded)
    assert [name for name, _ in calls] == ["minception_relu_gate", "grad_sums", "minception_bn_scale_grad_i32"]
    assert not any(a is x for a in calls[2][1]) and len(calls[2][1]) == 4        # (gy, k1, c, l): no x

    operation = sys.modules["cupy"].operations["minception_relu_gate"]
    y = np.array([1.0, 0.0, -1.0, 2.0, 0.0, 0.0])
    env = {"gy": np.array([np.nan, np.nan, np.inf, 3.0, -np.inf, 5.0]), "y": y,
           "T": lambda v: np.asarray(v, np.float64)}
    python = re.sub(r"\(T\)(\w+)", r"T(\1)", operation).replace("(T)(", "T(")           # casts: T(...)
    with np.errstate(invalid="ignore"):
        exec(python, {}, env)
    g = env["g"]
    assert np.isnan(g[:3]).all() and g[3] == 3.0 and np.isnan(g[4]) and g[5] == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda x, g: batchnorm_cupy.forward_train(x.astype(np.float16), g, g, 1e-3), "supports float32 and float64"),
    (lambda x, g: batchnorm_cupy.forward_train(x, g[:2], g, 1e-3), "gamma must have shape \\(4,\\)"),
    (lambda x, g: batchnorm_cupy.forward_train(x[0], g, g, 1e-3), "x must have shape \\(N, C, L\\)"),
    (lambda x, g: batchnorm_cupy.backward_train(x[:1], x, g, g, g), "gy must have shape \\(5, 4, 6\\)"),
    (lambda x, g: batchnorm_cupy.backward_eval(x, x, g, [1.0] * 4, g), "invstd must be a CuPy array"),
])
def test_batchnorm_rejects_bad_kernel_arguments(recorded, call, message):
    x = np.zeros((5, 4, 6), np.float32)
    with pytest.raises((TypeError, ValueError), match=message):
        call(x, np.ones(4, np.float32))
    assert launches(recorded) == []


# ---------------------------------------------------------------------------------------------- ports
def im2col_sources(k, geometry, dtype):
    """NumPy port of the ``IM2COL`` body: for flat output indices ``k``, the flat input index read (-1: zero)."""
    c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, m = (dtype(v) for v in geometry)
    k = k.astype(dtype)
    r, q = k // m, k % m
    kj, ki, ch = r % kw, (r // kw) % kh, r // (kw * kh)
    ox, oy, b = q % ow, (q // ow) % oh, q // (ow * oh)
    y, xx = oy * sh + ki - ph, ox * sw + kj - pw
    inside = (0 <= y) & (y < h) & (0 <= xx) & (xx < w)
    return np.where(inside, ((b * c + ch) * h + y) * w + xx, -1).astype(np.int64)


def col2im_sources(k, geometry, dtype):
    """NumPy port of the ``COL2IM`` body: for flat pixel indices ``k``, the column entries it adds, in the
    kernel's order, as a (pixels, kh*kw) array of flat column indices (-1: skipped)."""
    c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, m = (dtype(v) for v in geometry)
    k = k.astype(dtype)
    xx, y, ch, b = k % w, (k // w) % h, (k // (w * h)) % c, k // (w * h * c)
    out = []
    for ki in range(int(kh)):
        ty = y + ph - dtype(ki)
        oy = ty // sh
        ok_y = (ty >= 0) & (ty % sh == 0) & (oy < oh)
        for kj in range(int(kw)):
            tx = xx + pw - dtype(kj)
            ox = tx // sw
            ok = ok_y & (tx >= 0) & (tx % sw == 0) & (ox < ow)
            at = ((ch * kh + dtype(ki)) * kw + dtype(kj)) * m + (b * oh + oy) * ow + ox
            out.append(np.where(ok, at, -1).astype(np.int64))
    return np.stack(out, axis=1)


def conv_geometry(x_shape, k, s, p):
    n, c, h, w = x_shape
    oh, ow = conv_out_size(h, k[0], s[0], p[0]), conv_out_size(w, k[1], s[1], p[1])
    return (c, h, w, k[0], k[1], s[0], s[1], p[0], p[1], oh, ow, n * oh * ow)


CONV_CASES = [((2, 3, 7, 9), (3, 3), (2, 2), (1, 1)), ((1, 2, 9, 11), (1, 7), (1, 1), (0, 3)),
              ((2, 2, 5, 4), (3, 2), (3, 2), (2, 1)), ((2, 3, 6, 7), (1, 1), (2, 2), (0, 0)),
              ((1, 2, 3, 2), (7, 1), (1, 1), (3, 0))]


@pytest.mark.parametrize("x_shape,k,s,p", CONV_CASES)
@pytest.mark.parametrize("dtype", [I32, I64], ids=["int32", "int64"])
def test_im2col_and_col2im_index_arithmetic_matches_the_reference(x_shape, k, s, p, dtype):
    geometry = conv_geometry(x_shape, k, s, p)
    x = np.random.default_rng(3).standard_normal(x_shape)
    cols_ref = im2col_reference.im2col(x, k, s, p)
    src = im2col_sources(np.arange(cols_ref.size), geometry, dtype)
    np.testing.assert_array_equal(np.where(src >= 0, x.ravel()[src], 0.0).reshape(cols_ref.shape), cols_ref)

    g = np.random.default_rng(4).standard_normal(cols_ref.shape)
    at = col2im_sources(np.arange(x.size), geometry, dtype)
    dx = np.zeros(x.size)
    for column in at.T:                                 # the kernel's order of additions
        dx += np.where(column >= 0, g.ravel()[column], 0.0)
    np.testing.assert_allclose(dx.reshape(x_shape), im2col_reference.col2im(g, x_shape, k, s, p), rtol=1e-12)


def last_indices(size, count=2000):
    return np.arange(size - count, size, dtype=np.int64)


@pytest.mark.parametrize("x_shape,k,s,p", [((1, 1, 46340, 46340), (1, 1), (1, 1), (0, 0)),    # 2147395600
                                           ((3, 9, 4681, 5461), (1, 1), (1, 1), (0, 0)),     # 2147357187
                                           ((1, 2, 10000, 11930), (3, 3), (1, 1), (1, 1))])  # cols 2147400000
def test_int32_arithmetic_is_exact_up_to_the_largest_sizes_given_the_32_bit_variant(x_shape, k, s, p):
    assert im2col_cupy.kernel_index_type(x_shape, k, s, p) == "int"
    geometry = conv_geometry(x_shape, k, s, p)
    n_cols = geometry[0] * k[0] * k[1] * geometry[-1]
    n_x = int(np.prod(x_shape))
    k_cols = np.concatenate([last_indices(n_cols), np.random.default_rng(5).integers(0, n_cols, 2000)])
    np.testing.assert_array_equal(im2col_sources(k_cols, geometry, I32), im2col_sources(k_cols, geometry, I64))
    k_x = np.concatenate([last_indices(n_x), np.random.default_rng(6).integers(0, n_x, 2000)])
    np.testing.assert_array_equal(col2im_sources(k_x, geometry, I32), col2im_sources(k_x, geometry, I64))


def test_int32_arithmetic_would_overflow_past_the_switch():
    x_shape, k, s, p = (1, 2, 10000, 11931), (3, 3), (1, 1), (1, 1)           # cols 2147580000 > 2**31 - 1
    assert im2col_cupy.kernel_index_type(x_shape, k, s, p) == "long long"
    geometry = conv_geometry(x_shape, k, s, p)
    k_cols = last_indices(geometry[0] * 9 * geometry[-1])
    assert not np.array_equal(im2col_sources(k_cols, geometry, I32), im2col_sources(k_cols, geometry, I64))


def pool_forward_port(x, kh, kw, sh, sw, ph, pw, dtype):
    """NumPy port of the max and average forward kernels (``count_include_pad=False``), one thread per output."""
    n, c, h, w = x.shape
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(w, kw, sw, pw)
    H, W, OH, OW, KH, KW, SH, SW, PH, PW = (dtype(v) for v in (h, w, oh, ow, kh, kw, sh, sw, ph, pw))
    t = np.arange(n * c * oh * ow).astype(dtype)
    ox, oy, plane = t % OW, (t // OW) % OH, t // (OW * OH)
    base = plane * H * W
    flat = x.ravel()
    best, best_k = np.full(t.shape, -np.inf), np.zeros(t.shape, np.int64)
    total = np.zeros(t.shape)
    for ky in range(kh):
        iy = oy * SH - PH + dtype(ky)
        for kx in range(kw):
            ix = ox * SW - PW + dtype(kx)
            ok = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            v = np.where(ok, flat[np.where(ok, base + iy * W + ix, 0)], -np.inf)
            wins = ok & ((v > best) | np.isnan(v))
            best, best_k = np.where(wins, v, best), np.where(wins, ky * kw + kx, best_k)
            total += np.where(ok, v, 0.0)
    hs, ws = oy * SH - PH, ox * SW - PW
    he, we = np.minimum(hs + KH, H), np.minimum(ws + KW, W)
    divisor = (he - np.maximum(hs, 0)) * (we - np.maximum(ws, 0))
    shape = (n, c, oh, ow)
    return best.reshape(shape), best_k.reshape(shape), (total / divisor).reshape(shape)


def max_backward_port(gy, argmax, h, w, kh, kw, sh, sw, ph, pw, dtype):
    """NumPy port of the max-pool backward kernel: one thread per input pixel gathers from its windows."""
    n, c, oh, ow = gy.shape
    H, W, OH, OW, KH, KW, SH, SW, PH, PW = (dtype(v) for v in (h, w, oh, ow, kh, kw, sh, sw, ph, pw))
    t = np.arange(n * c * h * w).astype(dtype)
    ix, iy, plane = t % W, (t // W) % H, t // (W * H)
    base = plane * OH * OW
    oy_lo = np.where(iy + PH - KH + 1 <= 0, 0, (iy + PH - KH + SH) // SH)
    oy_hi = np.minimum((iy + PH) // SH, OH - 1)
    ox_lo = np.where(ix + PW - KW + 1 <= 0, 0, (ix + PW - KW + SW) // SW)
    ox_hi = np.minimum((ix + PW) // SW, OW - 1)
    total = np.zeros(t.shape)
    for dy in range(kh):
        oy = oy_lo + dtype(dy)
        for dx in range(kw):
            ox = ox_lo + dtype(dx)
            ok = (oy <= oy_hi) & (ox <= ox_hi)
            k = (iy - oy * SH + PH) * KW + (ix - ox * SW + PW)
            o = np.where(ok, base + oy * OW + ox, 0)
            total += np.where(ok & (argmax.ravel()[o] == k), gy.ravel()[o], 0.0)
    return total.reshape(n, c, h, w)


POOL_CASES = [((2, 3, 9, 8), 3, 3, 2, 2, 1, 1), ((1, 2, 7, 7), 3, 3, 1, 1, 1, 1), ((2, 2, 10, 9), 2, 3, 2, 3, 0, 1),
              ((1, 1, 5, 6), 5, 6, 1, 1, 2, 2)]


@pytest.mark.parametrize("shape,kh,kw,sh,sw,ph,pw", POOL_CASES)
@pytest.mark.parametrize("dtype", [I32, I64], ids=["int32", "int64"])
def test_pool_index_arithmetic_matches_the_reference(shape, kh, kw, sh, sw, ph, pw, dtype):
    x = np.random.default_rng(7).permutation(np.prod(shape)).reshape(shape).astype(np.float64)    # no ties
    args = (kh, kw, sh, sw, ph, pw)
    y, argmax, avg = pool_forward_port(x, *args, dtype)
    window = ((kh, kw), (sh, sw), (ph, pw))
    y_ref, argmax_ref = pool_reference.max_pool2d_forward(x, *window)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_allclose(avg, pool_reference.avg_pool2d_forward(x, *window), rtol=1e-12)
    gy = np.random.default_rng(8).standard_normal(y.shape)
    gx = max_backward_port(gy, argmax_ref, shape[2], shape[3], *args, dtype)
    np.testing.assert_allclose(gx, pool_reference.max_pool2d_backward(gy, argmax_ref, shape, *window),
                               rtol=1e-12)


def test_batchnorm_elementwise_channel_index():
    """``ch = (i / l) % c`` of the affine and input-gradient kernels, in int32 at the largest 32-bit size."""
    n, c, l = 2 ** 9, 3, 1398101                         # n*c*l = 2147483136
    assert index_type(n * c * l) == "int"
    i = last_indices(n * c * l)
    assert np.array_equal((i.astype(I32) // I32(l)) % I32(c), (i // l) % c)


# ---------------------------------------------------------------------------------------------- scatter-add
def scatter_add_port(size, positions, values):
    """NumPy port of ``ops.kernels.cuda.scatter.scatter_add``: unique sort keys, then one float64 sum per run of equal
    positions, in the original order."""
    count = positions.size
    order = np.argsort(positions * count + np.arange(count), kind="quicksort")      # any sort: keys are unique
    sorted_pos = positions[order]
    gx = np.zeros(size, values.dtype)
    for i in range(count):
        if i == 0 or sorted_pos[i] != sorted_pos[i - 1]:
            total, k = 0.0, i
            while k < count and sorted_pos[k] == sorted_pos[i]:
                total += float(values[order[k]])
                k += 1
            gx[sorted_pos[i]] = gx[sorted_pos[i]] + values.dtype.type(total)
    return gx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_add_algorithm_equals_bincount_bit_for_bit(dtype):
    rng = np.random.default_rng(10)
    positions = rng.integers(0, 13, 200)                 # many repeats, in scrambled order
    values = (rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)).astype(dtype)
    expected = np.bincount(positions, weights=values.astype(np.float64), minlength=17).astype(dtype)
    np.testing.assert_array_equal(scatter_add_port(17, positions, values), expected)


def test_scatter_add_checks_its_arguments(monkeypatch):
    from ops.kernels.cuda import scatter as scatter_cupy
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy([]))
    gx = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="values must be 3 float32 numbers, got 3 float64"):
        scatter_cupy.scatter_add(gx, np.array([0, 1, 1]), np.ones(3))
    with pytest.raises(ValueError, match="gx must be a 1-D C-contiguous"):
        scatter_cupy.scatter_add(np.zeros((5, 2), np.float32)[:, 0], np.array([0]), np.ones(1, np.float32))
    assert scatter_cupy.scatter_add(gx, np.array([], np.int64), np.zeros(0, np.float32)) is gx


# ---------------------------------------------------------------------------------------------- run on the CPU
@pytest.fixture(scope="module")
def cuda_on_cpu():
    """The g++ emulation of CUDA kernels (``tests/cuda_on_cpu.py``)."""
    import cuda_on_cpu
    problem = cuda_on_cpu.compiler_problem()
    if problem:
        pytest.skip(problem)
    return cuda_on_cpu


@pytest.mark.slow
@pytest.mark.parametrize("shape, dtype, itype", [
    ((4, 3, 10), np.float64, "int"), ((300, 2, 1), np.float32, "int"), ((4, 3, 4096), np.float64, "int"),
    ((2, 2, 40000), np.float32, "int"), ((9000, 2, 1), np.float64, "long long"),
    ((4, 3, 4096), np.float32, "long long")])
def test_batchnorm_reduction_kernels_run_on_the_cpu(cuda_on_cpu, shape, dtype, itype):
    """The reduction kernels' CUDA source, executed (one and several blocks per channel), against the
    reference: the statistics, the gradient sums and the input-gradient coefficients."""
    from ops.kernels.reference import batch_norm as ref
    n, c, l = shape
    parts = batchnorm_cupy.blocks_per_channel(n * l)
    kernels = cuda_on_cpu.compile_kernels(batchnorm_cupy.reduction_source(np.dtype(dtype).name, itype),
                                          ["moments", "moments_finish", "grad_sums", "grad_sums_finish"],
                                          {"T": dtype, "idx_t": np.int32 if itype == "int" else np.int64})
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    gamma = (rng.standard_normal(c) * 0.5 + 1).astype(dtype)
    partial = np.full(2 * c * parts, np.nan)
    mean, var, invstd = np.full(c, np.nan), np.full(c, np.nan), np.full(c, np.nan)
    centre_t, scale_t = np.empty(c, dtype), np.empty(c, dtype)
    block = batchnorm_cupy.BLOCK
    kernels["moments"](c * parts, block, x, n, c, l, parts, 1e-3, gamma, partial, mean, var, invstd, centre_t,
                       scale_t)
    if parts > 1:
        kernels["moments_finish"](c, block, x, partial, n, l, parts, 1e-3, gamma, mean, var, invstd, centre_t,
                                  scale_t)
    _, mean_r, var_r, invstd_r = ref.forward_train(x, gamma, np.zeros(c, dtype), 1e-3)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, mean_r, **tol)
    np.testing.assert_allclose(var, var_r, rtol=tol["rtol"] * 10, atol=tol["atol"])
    np.testing.assert_allclose(invstd, invstd_r, rtol=tol["rtol"] * 10)
    gg, gb, ct, k1, k2, k3 = (np.empty(c, dtype) for _ in range(6))
    kernels["grad_sums"](c * parts, block, gy, x, mean, n, c, l, parts, gamma, invstd, 1, partial, gg, gb, ct,
                         k1, k2, k3)
    if parts > 1:
        kernels["grad_sums_finish"](c, block, partial, mean, n, l, parts, gamma, invstd, 1, gg, gb, ct, k1, k2, k3)
    gx_r, gg_r, gb_r = ref.backward_train(gy, x, mean, invstd, gamma)
    np.testing.assert_allclose(gg, gg_r, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(gb, gb_r, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    per_channel = lambda v: v[None, :, None]                                     # noqa: E731
    gx = gy * per_channel(k1) + (x - per_channel(ct)) * per_channel(k2) + per_channel(k3)
    np.testing.assert_allclose(gx, gx_r, rtol=1e-4 if dtype == np.float32 else 1e-9,
                               atol=1e-5 if dtype == np.float32 else 1e-10)


# ---------------------------------------------------------------------------------------------- conv2d host code
def test_cuda_conv2d_host_code_keeps_the_conv2d_contract(monkeypatch):
    """``cuda/conv2d.py`` with NumPy standing in for CuPy and the reference im2col for the CUDA one: its products,
    reshapes and the 1x1 shortcut give the reference conv2d's results (``ops.kernels.check``)."""
    import ops.kernels
    from ops.kernels.cuda import conv2d as conv2d_cuda
    monkeypatch.setitem(sys.modules, "cupy", np)
    monkeypatch.setattr(im2col_cupy, "im2col", lambda x, k, s, p, out=None: im2col_reference.im2col(x, k, s, p))
    monkeypatch.setattr(im2col_cupy, "col2im",
                        lambda cols, x_shape, k, s, p, out=None: im2col_reference.col2im(cols, x_shape, k, s, p))
    report = ops.kernels.check("conv2d", conv2d_cuda)
    assert report.ok, str(report)
