"""conv2d: forward against the definition, gradients against finite differences (float64), float32 against
float64, the fast tier's threaded CPU path (``ops.kernels.cpu.conv2d``) against its single-threaded one, the
1x1 fast path, argument errors, and (on a GPU) the CuPy path against the CPU."""
import numpy as np
import pytest

import ops.kernels.cpu.conv2d as conv_module
from autograd import Tensor, gradcheck, no_grad
from ops.conv import conv2d
from ops.geometry import as_pair, conv_as_gemm, conv_out_size, is_pointwise, normalize_padding, normalize_stride


def sample(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def conv_by_definition(x, w, b, stride, padding):
    """y[n, o, oy, ox] = b[o] + sum_{c,i,j} w[o, c, i, j] * x_padded[n, c, oy*sh + i, ox*sw + j]."""
    n, c, h, wd = x.shape
    cout, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), normalize_padding(padding, (kh, kw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = conv_out_size(h, kh, sh, ph), conv_out_size(wd, kw, sw, pw)
    y = np.zeros((n, cout, oh, ow), x.dtype)
    for oy in range(oh):
        for ox in range(ow):
            window = xp[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]          # (N, C, kh, kw)
            y[:, :, oy, ox] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


# (x shape, weight shape, stride, padding, bias?)
FORWARD_CONFIGS = [
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, 0, True),
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, 1, False),
    ((2, 3, 7, 9), (4, 3, 3, 3), 2, "same", True),
    ((2, 3, 9, 8), (5, 3, 1, 3), 1, "same", False),
    ((2, 3, 8, 9), (5, 3, 3, 1), (2, 1), "same", True),
    ((1, 2, 9, 11), (3, 2, 1, 7), 1, "same", True),
    ((1, 2, 11, 9), (3, 2, 7, 1), 2, "same", False),
    ((2, 4, 6, 7), (3, 4, 1, 1), 1, 0, True),           # pointwise fast path
    ((2, 4, 6, 7), (3, 4, 1, 1), 2, "valid", False),    # pointwise with stride: a subsample
    ((2, 3, 8, 6), (2, 3, 2, 2), 2, (1, 0), True),      # even kernel, padding on one axis
]
FWD_IDS = [f"{x[2]}x{x[3]}-k{w[2]}x{w[3]}-s{s}-p{p}-{'bias' if b else 'nobias'}" for x, w, s, p, b in FORWARD_CONFIGS]


@pytest.mark.parametrize("xs,ws,stride,padding,has_bias", FORWARD_CONFIGS, ids=FWD_IDS)
def test_forward_matches_definition(xs, ws, stride, padding, has_bias):
    x, w = sample(xs, 0), sample(ws, 1)
    b = sample(ws[0], 2) if has_bias else None
    y = conv2d(Tensor(x), Tensor(w), None if b is None else Tensor(b), stride, padding)
    assert isinstance(y, Tensor) and y.dtype == np.float64
    np.testing.assert_allclose(y.data, conv_by_definition(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)


def test_forward_accepts_plain_arrays_and_non_contiguous_input():
    x = sample((6, 2, 5, 3), 3).transpose(1, 3, 0, 2)           # (2, 3, 6, 5), not contiguous
    w = sample((4, 3, 3, 3), 4)
    y = conv2d(x, w, None, 1, "same")
    np.testing.assert_allclose(y.data, conv_by_definition(x, w, None, 1, "same"), rtol=1e-12, atol=1e-12)


def test_padding_same_and_valid():
    x, w = sample((1, 2, 9, 8), 5), sample((3, 2, 3, 5), 6)
    assert conv2d(x, w, padding="same").shape == (1, 3, 9, 8)     # (k-1)//2 = (1, 2): size kept at stride 1
    assert conv2d(x, w, padding="valid").shape == (1, 3, 7, 4)
    np.testing.assert_array_equal(conv2d(x, w, padding="same").data, conv2d(x, w, padding=(1, 2)).data)
    assert conv2d(x, w, stride=2, padding="same").shape == (1, 3, 5, 4)


# ---------------------------------------------------------------- gradients (float64, finite differences)

GRAD_CONFIGS = [
    # x shape, weight shape, stride, padding, bias?
    ((2, 3, 5, 7), (4, 3, 3, 3), 1, 1, True),
    ((2, 3, 7, 6), (2, 3, 3, 3), 2, 1, False),
    ((2, 2, 5, 7), (3, 2, 3, 3), 2, "same", True),
    ((1, 2, 5, 6), (3, 2, 1, 3), 1, "same", True),
    ((1, 2, 6, 5), (3, 2, 3, 1), (2, 1), "same", False),
    ((1, 2, 3, 9), (2, 2, 1, 7), 1, "same", True),
    ((1, 2, 9, 3), (2, 2, 7, 1), (2, 1), "same", True),
    ((2, 3, 5, 4), (2, 3, 1, 1), 1, 0, True),           # pointwise fast path
    ((1, 2, 7, 5), (2, 2, 2, 3), (2, 3), 0, False),     # even kernel, stride larger than kernel
]
GRAD_IDS = [f"{x[2]}x{x[3]}-k{w[2]}x{w[3]}-s{s}-p{p}-{'bias' if b else 'nobias'}" for x, w, s, p, b in GRAD_CONFIGS]


@pytest.mark.parametrize("xs,ws,stride,padding,has_bias", GRAD_CONFIGS, ids=GRAD_IDS)
def test_gradcheck(xs, ws, stride, padding, has_bias):
    x = Tensor(sample(xs, 10), requires_grad=True)
    w = Tensor(sample(ws, 11), requires_grad=True)
    inputs = [x, w]
    if has_bias:
        inputs.append(Tensor(sample(ws[0], 12), requires_grad=True))
    assert gradcheck(lambda *t: conv2d(*t, stride=stride, padding=padding), inputs)


def test_gradcheck_threaded_path(monkeypatch):
    """The worker-thread CPU path (normally only for big convs) has its own chunking: check its gradients too."""
    monkeypatch.setattr(conv_module, "MIN_THREADED_MACS", 0)
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)          # one image per chunk
    monkeypatch.setattr(conv_module, "MIN_CHUNK_COLUMNS", 1)
    x = Tensor(sample((3, 2, 5, 4), 13), requires_grad=True)
    w = Tensor(sample((3, 2, 3, 3), 14), requires_grad=True)
    b = Tensor(sample(3, 15), requires_grad=True)
    assert gradcheck(lambda *t: conv2d(*t, stride=(1, 2), padding=1), [x, w, b])


def test_only_the_requested_gradients_are_computed():
    x, w = sample((2, 3, 6, 5), 16), sample((4, 3, 3, 3), 17)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w)
    conv2d(xt, wt, padding=1).sum().backward()
    assert xt.grad is not None and wt.grad is None
    xt, wt = Tensor(x), Tensor(w, requires_grad=True)
    conv2d(xt, wt, padding=1).sum().backward()
    assert xt.grad is None and wt.grad is not None


def _forward_backward(x, w, b, stride, padding, gy):
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = conv2d(xt, wt, bt, stride, padding)
    y.backward(gy)
    return y.data, xt.grad, wt.grad, bt.grad


@pytest.mark.parametrize("threaded", [False, True], ids=["calling-thread", "worker-threads"])
@pytest.mark.parametrize("ws,stride,padding", [((8, 6, 3, 3), 1, "same"), ((8, 6, 1, 7), 2, "same"),
                                                ((8, 6, 1, 1), 1, 0)], ids=["3x3", "1x7-s2", "1x1"])
def test_float32_matches_float64(monkeypatch, ws, stride, padding, threaded):
    if threaded:
        monkeypatch.setattr(conv_module, "MIN_THREADED_MACS", 0)
    x, w, b = sample((5, 6, 11, 9), 18), sample(ws, 19), sample(ws[0], 20)
    gy_shape = conv2d(x, w, None, stride, padding).shape
    gy = sample(gy_shape, 21)
    r64 = _forward_backward(x, w, b, stride, padding, gy)
    r32 = _forward_backward(*(a.astype(np.float32) for a in (x, w, b)), stride, padding, gy.astype(np.float32))
    for name, a32, a64 in zip(("y", "dx", "dw", "db"), r32, r64):
        assert a32.dtype == np.float32, name
        np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-4 * np.abs(a64).max(), err_msg=name)


@pytest.mark.parametrize("ws,stride,padding", [((16, 12, 3, 3), 1, "same"), ((16, 12, 3, 3), 2, 0),
                                                ((16, 12, 7, 1), 1, "same"), ((16, 12, 1, 1), 1, 0)],
                         ids=["3x3", "3x3-s2", "7x1", "1x1"])
def test_worker_threads_match_calling_thread(monkeypatch, ws, stride, padding):
    """Chunked, multi-threaded CPU path (chunks of 1 and of several images) vs the single-call path."""
    x, w, b = sample((7, 12, 10, 9), 22), sample(ws, 23), sample(ws[0], 24)
    gy = sample(conv2d(x, w, None, stride, padding).shape, 25)
    expected = _forward_backward(x, w, b, stride, padding, gy)
    monkeypatch.setattr(conv_module, "MIN_THREADED_MACS", 0)
    monkeypatch.setattr(conv_module, "POINTWISE_MIN_PIXELS", 1)
    monkeypatch.setattr(conv_module, "MIN_CHUNK_COLUMNS", 1)
    for chunk_bytes in (1, 200_000):              # chunks of 1 image and of several
        monkeypatch.setattr(conv_module, "CHUNK_BYTES", chunk_bytes)
        got = _forward_backward(x, w, b, stride, padding, gy)
        for name, a, e in zip(("y", "dx", "dw", "db"), got, expected):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=f"{name}, chunk {chunk_bytes}")
        again = _forward_backward(x, w, b, stride, padding, gy)
        for a, e in zip(again, got):                                  # deterministic: same bits every run
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("ws,stride,padding", [((5, 4, 3, 3), 2, 1), ((5, 4, 1, 1), 1, 0)], ids=["3x3-s2", "1x1"])
@pytest.mark.parametrize("layout", ["channel-slice", "transposed"])
def test_backward_with_a_strided_upstream_gradient(monkeypatch, ws, stride, padding, layout):
    """A conv whose output feeds a concat gets a channel slice of the concat's gradient (a view, not C-order);
    the backward reads it in place. Any other strides must give the same gradients too."""
    monkeypatch.setattr(conv_module, "MIN_THREADED_MACS", 0)
    monkeypatch.setattr(conv_module, "POINTWISE_MIN_PIXELS", 1)
    x, w, b = sample((5, 4, 9, 7), 60), sample(ws, 61), sample(ws[0], 62)
    shape = conv2d(x, w, None, stride, padding).shape
    if layout == "channel-slice":
        gy = sample((shape[0], shape[1] + 3) + shape[2:], 63)[:, 2:2 + shape[1]]
    else:
        gy = sample((shape[3], shape[2], shape[1], shape[0]), 63).transpose(3, 2, 1, 0)
    assert not gy.flags.c_contiguous
    got = _forward_backward(x, w, b, stride, padding, gy)
    expected = _forward_backward(x, w, b, stride, padding, np.ascontiguousarray(gy))
    for name, a, e in zip(("y", "dx", "dw", "db"), got, expected):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=name)


def test_pointwise_paths_agree(monkeypatch):
    """1x1 stride-1 convs multiply each image in place (no im2col) or copy chunks through im2col: same result."""
    x, w = sample((4, 6, 5, 7), 26), sample((3, 6, 1, 1), 27)
    gy = sample((4, 3, 5, 7), 28)
    monkeypatch.setattr(conv_module, "MIN_THREADED_MACS", 0)
    results = []
    for min_pixels in (1, 10 ** 9):
        monkeypatch.setattr(conv_module, "POINTWISE_MIN_PIXELS", min_pixels)
        results.append(_forward_backward(x, w, sample(3, 29), 1, 0, gy))
    for a, e in zip(*results):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][0], conv_by_definition(x, w, sample(3, 29), 1, 0), rtol=1e-12)


def test_no_grad_records_nothing():
    x, w = Tensor(sample((1, 2, 5, 5), 30), requires_grad=True), Tensor(sample((2, 2, 3, 3), 31))
    with no_grad():
        y = conv2d(x, w, padding=1)
    assert not y.requires_grad


# ---------------------------------------------------------------- bad input

def test_geometry_helpers():
    assert as_pair(3, "kernel_size") == (3, 3) and as_pair((1, 7), "kernel_size") == (1, 7)
    assert normalize_stride((2, 1)) == (2, 1)
    assert normalize_padding("same", (1, 7)) == (0, 3) and normalize_padding("valid", 3) == (0, 0)
    assert normalize_padding(2, (3, 3)) == (2, 2)
    assert conv_out_size(32, 3, 2, 0) == 15 and conv_out_size(32, 3, 2, 1) == 16
    w = np.zeros((4, 3, 3, 1))
    kernel, out_hw, w2d = conv_as_gemm(np.zeros((2, 3, 9, 7)), w, (2, 1), (1, 0))
    assert kernel == (3, 1) and out_hw == (5, 7) and w2d.shape == (4, 9) and np.shares_memory(w2d, w)
    assert is_pointwise((1, 1), (1, 1), (0, 0))
    assert not is_pointwise((1, 1), (2, 1), (0, 0)) and not is_pointwise((1, 1), (1, 1), (0, 1))
    assert not is_pointwise((1, 3), (1, 1), (0, 0))
    with pytest.raises(TypeError, match="pool: kernel_size must be an int or a pair"):
        as_pair((1, 2, 3), "kernel_size", "pool")
    with pytest.raises(TypeError, match="must be an int or a pair"):
        as_pair(1.5, "stride")
    with pytest.raises(TypeError, match="must be an int or a pair"):
        as_pair(True, "stride")


X, W = (2, 3, 8, 8), (4, 3, 3, 3)
ERROR_CASES = [
    # (x shape, w shape, bias shape, stride, padding, error type, message pattern)
    ((3, 8, 8), W, None, 1, 0, ValueError, r"conv2d: expected x of shape \(N, C, H, W\), got a 3-D array of shape \(3, 8, 8\)"),
    (X, (4, 3, 3), None, 1, 0, ValueError, r"conv2d: expected weight of shape \(out_channels, in_channels, kh, kw\), got a 3-D"),
    (X, (4, 5, 3, 3), None, 1, 0, ValueError, r"conv2d: x has 3 channels \(shape \(2, 3, 8, 8\)\) but weight expects 5"),
    ((2, 3, 2, 8), W, None, 1, 0, ValueError, r"conv2d: kernel size 3x3 is larger than the padded input 2x8"),
    ((2, 3, 8, 1), (4, 3, 1, 3), None, 1, "valid", ValueError, r"conv2d: kernel size 1x3 is larger than the padded input 8x1"),
    (X, W, None, 0, 0, ValueError, r"conv2d: stride must be positive, got 0"),
    (X, W, None, (1, -2), 0, ValueError, r"conv2d: stride must be positive, got \(1, -2\)"),
    (X, W, None, 1.5, 0, TypeError, r"conv2d: stride must be an int or a pair of ints"),
    (X, W, None, 1, -1, ValueError, r"conv2d: padding must be non-negative, got -1"),
    (X, W, None, 1, (0, -1), ValueError, r"conv2d: padding must be non-negative"),
    (X, (4, 3, 2, 3), None, 1, "same", ValueError, r"conv2d: padding='same' needs an odd kernel size.*2x3.*even"),
    (X, W, None, 1, "full", ValueError, r"conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got 'full'"),
    (X, W, (3,), 1, 0, ValueError, r"conv2d: bias must have shape \(4,\) .*got \(3,\)"),
    (X, W, (4, 1), 1, 0, ValueError, r"conv2d: bias must have shape \(4,\)"),
    (X, (4, 3, 0, 3), None, 1, 0, ValueError, r"conv2d: empty x or weight"),
]


@pytest.mark.parametrize("xs,ws,bs,stride,padding,error,pattern", ERROR_CASES)
def test_bad_arguments_raise_clear_errors(xs, ws, bs, stride, padding, error, pattern):
    x, w = np.zeros(xs), np.zeros(ws)
    b = None if bs is None else np.zeros(bs)
    with pytest.raises(error, match=pattern):
        conv2d(x, w, b, stride, padding)


def test_dtype_errors():
    x, w = np.zeros((1, 2, 4, 4), np.float32), np.zeros((2, 2, 3, 3), np.float64)
    with pytest.raises(TypeError, match="conv2d: weight has dtype float64 but x has dtype float32"):
        conv2d(x, w)
    with pytest.raises(TypeError, match="conv2d: bias has dtype float64 but x has dtype float32"):
        conv2d(x, w.astype(np.float32), np.zeros(2))
    with pytest.raises(TypeError, match="conv2d: x must be float32 or float64, got int64"):
        conv2d(np.zeros((1, 2, 4, 4), np.int64), w)


# ---------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ws,stride,padding", [((5, 4, 3, 3), 1, "same"), ((5, 4, 3, 3), 2, 0),
                                                ((5, 4, 1, 7), (2, 1), "same"), ((5, 4, 7, 1), 1, "same"),
                                                ((5, 4, 1, 1), 1, 0)],
                         ids=["3x3", "3x3-s2", "1x7-s2x1", "7x1", "1x1"])
def test_gpu_matches_cpu(ws, stride, padding, dtype):
    x, w, b = (a.astype(dtype) for a in (sample((3, 4, 11, 9), 40), sample(ws, 41), sample(ws[0], 42)))
    gy = sample(conv2d(x, w, None, stride, padding).shape, 43).astype(dtype)
    expected = _forward_backward(x, w, b, stride, padding, gy)
    import cupy as cp
    xt, wt, bt = (Tensor(cp.asarray(a), requires_grad=True) for a in (x, w, b))
    y = conv2d(xt, wt, bt, stride, padding)
    assert y.device == "cuda"
    y.backward(cp.asarray(gy))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    for name, got, e in zip(("y", "dx", "dw", "db"), (y.data, xt.grad, wt.grad, bt.grad), expected):
        assert got.dtype == dtype, name
        np.testing.assert_allclose(cp.asnumpy(got), e, err_msg=name, **tol)


@pytest.mark.gpu
def test_gpu_gradcheck_float64():
    import cupy as cp
    x = Tensor(cp.asarray(sample((2, 3, 5, 6), 44)), requires_grad=True)
    w = Tensor(cp.asarray(sample((2, 3, 3, 1), 45)), requires_grad=True)
    b = Tensor(cp.asarray(sample(2, 46)), requires_grad=True)
    assert gradcheck(lambda *t: conv2d(*t, stride=(2, 1), padding="same"), [x, w, b])


def test_import_compiles_nothing():
    """``import ops`` must not import Numba, the Numba kernels (compiling happens at the first call), the fast
    tier's CPU runtime (no thread pool, no ctypes), its CUDA kernels nor CuPy."""
    import subprocess
    import sys
    code = ("import sys, ops; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'cupy') "
            "or m.startswith(('ops.kernels.cpu', 'ops.kernels.cuda'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
