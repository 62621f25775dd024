"""Every op on the GPU against the same op on the CPU, in float64: outputs and gradients agree to 1e-10.

Each case builds its inputs on the CPU (seeded, small odd non-square shapes, stride > 1 and padding > 0 where
they apply, ReLU inputs away from 0, max-pool inputs without ties), runs the op and a backward with a random
upstream gradient once with NumPy arrays and once with the same values as CuPy arrays, and compares. The CPU
side is the tested reference of the op, so agreement to 1e-10 means the GPU kernels compute the same function
(the differences left are summation orders: cuBLAS against OpenBLAS, tree against sequential sums).

The comparisons run only where CuPy and a GPU are available (``-m gpu``; ``bench/device_check.py`` runs them);
the list of cases is checked against ``ops`` everywhere, and the CPU half of every case runs everywhere too.
"""
import numpy as np
import pytest

import ops
from autograd import Tensor
from autograd.backend import get_array_module

TOL = dict(rtol=1e-10, atol=1e-10)


def rand(shape, seed, low=None):
    """Standard normal values; with ``low``, magnitudes at least ``low`` (away from kinks and zeros)."""
    a = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        a = np.sign(a) * (np.abs(a) + low)
        a[a == 0] = low
    return a


def distinct(shape, seed):
    """Values without ties (a scaled permutation): max pooling has one winner per window."""
    return np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) / 7.0 - 3.0


def positive(shape, seed):
    return np.abs(rand(shape, seed)) + 0.5


def fancy_index(x):
    """Rows and columns with repeated pairs, on x's device."""
    xp = get_array_module(x)
    return xp.asarray([0, 2, 0, 0, 1]), xp.asarray([1, 1, 3, 1, 1])


class Case:
    """``fn(*tensors) -> Tensor`` on inputs ``arrays``; ``grad`` says which inputs get gradients."""

    def __init__(self, name, fn, arrays, grad=None):
        self.name, self.fn, self.arrays = name, fn, arrays
        self.grad = [True] * len(arrays) if grad is None else grad


def _bn(training, relu=False, shape=(4, 3, 5, 6)):
    c = shape[1]
    arrays = [rand(shape, 30, 0.1) * 2 + 1, positive(c, 31), rand(c, 32)]

    def fn(x, g, b):
        xp = get_array_module(x)
        rm, rv = xp.linspace(-0.5, 0.5, c), xp.linspace(0.5, 2.0, c)      # fresh running statistics per run
        return ops.batch_norm(x, g, b, rm, rv, training, relu=relu)
    return fn, arrays


CASES = [
    Case("relu", ops.relu, [rand((3, 4, 5), 1, 0.05)]),
    Case("add-broadcast", ops.add, [rand((3, 4), 2), rand((4,), 3)]),
    Case("sub", ops.sub, [rand((3, 4), 4), rand((3, 4), 5)]),
    Case("mul-broadcast", ops.mul, [rand((2, 3, 4), 6), rand((3, 1), 7)]),
    Case("div", ops.div, [rand((3, 4), 8), rand((3, 4), 9, 0.5)]),
    Case("neg", ops.neg, [rand((5,), 10)]),
    Case("pow", lambda x: ops.pow(x, 2.5), [positive((3, 4), 11)]),
    Case("exp", ops.exp, [rand((3, 4), 12)]),
    Case("log", ops.log, [positive((3, 4), 13)]),
    Case("sqrt", ops.sqrt, [positive((3, 4), 14)]),
    Case("conv3x3-s2-p1-bias", lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1),
         [rand((2, 3, 9, 7), 15), rand((5, 3, 3, 3), 16), rand((5,), 17)]),
    Case("conv1x7-same", lambda x, w: ops.conv2d(x, w, padding="same"),
         [rand((2, 3, 9, 11), 18), rand((4, 3, 1, 7), 19)]),
    Case("conv7x1-s2x1-same", lambda x, w: ops.conv2d(x, w, stride=(2, 1), padding="same"),
         [rand((2, 3, 11, 9), 20), rand((4, 3, 7, 1), 21)]),
    Case("conv1x1", lambda x, w: ops.conv2d(x, w), [rand((2, 3, 5, 7), 22), rand((4, 3, 1, 1), 23)]),
    Case("conv1x1-stride2", lambda x, w: ops.conv2d(x, w, stride=2), [rand((2, 3, 7, 9), 24), rand((4, 3, 1, 1), 25)]),
    Case("conv1x1-pad1", lambda x, w, b: ops.conv2d(x, w, b, padding=1),
         [rand((2, 3, 5, 6), 26), rand((4, 3, 1, 1), 27), rand((4,), 28)]),
    Case("conv-frozen-weight", lambda x, w: ops.conv2d(x, w, stride=2, padding=1),
         [rand((2, 3, 7, 9), 29), rand((4, 3, 3, 3), 30)], grad=[True, False]),
    Case("conv-frozen-input", lambda x, w: ops.conv2d(x, w, padding=1),
         [rand((2, 3, 7, 9), 31), rand((4, 3, 3, 3), 32)], grad=[False, True]),
    Case("conv-realistic", lambda x, w: ops.conv2d(x, w, padding=1),
         [rand((8, 32, 17, 17), 33), rand((48, 32, 3, 3), 34)]),
    Case("linear", ops.linear, [rand((4, 7), 35), rand((3, 7), 36), rand((3,), 37)]),
    Case("matmul", ops.matmul, [rand((4, 7), 38), rand((7, 5), 39)]),
    Case("batch_norm-train", *_bn(True)),
    Case("batch_norm-eval", *_bn(False)),
    Case("batch_norm-relu-train", *_bn(True, relu=True)),
    Case("batch_norm-relu-eval", *_bn(False, relu=True)),
    Case("batch_norm-NC-train", *_bn(True, shape=(7, 5))),
    Case("batch_norm-NC-eval", *_bn(False, shape=(7, 5))),
    Case("batch_norm-two-pass", *_bn(True, shape=(64, 3, 16, 16))),       # 16384 values a channel: 4 blocks each
    Case("max_pool3x3-s2-p1", lambda x: ops.max_pool2d(x, 3, 2, 1), [distinct((2, 3, 9, 8), 40)]),
    Case("max_pool-int32-argmax", lambda x: ops.max_pool2d(x, (17, 16), 1), [distinct((2, 2, 19, 18), 41)]),
    Case("avg_pool3x3-s1-p1", lambda x: ops.avg_pool2d(x, 3, 1, 1), [rand((2, 3, 7, 6), 42)]),
    Case("avg_pool-count-pad", lambda x: ops.avg_pool2d(x, 3, 2, 1, count_include_pad=True), [rand((2, 3, 7, 6), 43)]),
    Case("global_avg_pool", ops.global_avg_pool2d, [rand((2, 3, 5, 4), 44)]),
    Case("residual_add-relu", lambda x, r: ops.residual_add(x, r, 0.17),
         [rand((2, 3, 4, 5), 45, 0.05), rand((2, 3, 4, 5), 46)]),
    Case("residual_add-linear", lambda x, r: ops.residual_add(x, r, 1.0, relu=False),
         [rand((2, 3, 4, 5), 47), rand((2, 3, 4, 5), 48)]),
    Case("softmax", lambda x: ops.softmax(x, axis=1), [rand((4, 6), 49)]),
    Case("log_softmax", lambda x: ops.log_softmax(x, axis=-1), [rand((4, 6), 50)]),
    Case("cross_entropy", lambda x: ops.softmax_cross_entropy(x, np.array([0, 5, 2, 2])), [rand((4, 6), 51)]),
    Case("cross_entropy-smoothing", lambda x: ops.softmax_cross_entropy(x, np.array([1, 0, 4]), label_smoothing=0.1),
         [rand((3, 5), 52)]),
    Case("sum-axis", lambda x: ops.sum(x, axis=(0, 2), keepdims=True), [rand((3, 4, 5), 53)]),
    Case("mean", lambda x: ops.mean(x, axis=1), [rand((3, 4, 5), 54)]),
    Case("max", lambda x: ops.max(x, axis=2), [distinct((3, 4, 5), 55)]),
    Case("reshape", lambda x: ops.reshape(x, (4, -1)), [rand((2, 6, 3), 56)]),
    Case("transpose", lambda x: ops.transpose(x, (2, 0, 1)), [rand((2, 3, 4), 57)]),
    Case("flatten", ops.flatten, [rand((2, 3, 4, 5), 58)]),
    Case("getitem-slice", lambda x: x[:, 1:3], [rand((3, 5), 59)]),
    Case("getitem-fancy-repeats", lambda x: ops.getitem(x, fancy_index(x)), [rand((3, 4), 60)]),
    Case("concat", lambda a, b: ops.concat([a, b], axis=1), [rand((2, 3, 4), 61), rand((2, 2, 4), 62)]),
    Case("split", lambda x: ops.concat([t * float(i + 1) for i, t in enumerate(ops.split(x, [2, 3], axis=1))], axis=1),
         [rand((2, 5, 3), 63)]),
    Case("dropout", lambda x: ops.dropout(x, 0.3, True, rng=np.random.default_rng(7)), [rand((4, 9), 64)]),
]


def run(case, xp, gy=None):
    """Outputs and input gradients of ``case`` with arrays of module ``xp``, as NumPy arrays."""
    tensors = [Tensor(xp.asarray(a), requires_grad=g) for a, g in zip(case.arrays, case.grad)]
    y = case.fn(*tensors)
    gy = np.random.default_rng(99).standard_normal(y.shape) if gy is None else gy
    y.backward(xp.asarray(gy) if y.ndim else None)
    host = lambda a: a.get() if hasattr(a, "get") else np.asarray(a)
    grads = [host(t.grad) if t.requires_grad else None for t in tensors]
    return host(y.data), grads, gy


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gpu_matches_cpu_in_float64(case):
    import cupy
    y_cpu, g_cpu, gy = run(case, np)
    y_gpu, g_gpu, _ = run(case, cupy, gy)
    assert y_gpu.dtype == y_cpu.dtype == np.float64
    np.testing.assert_allclose(y_gpu, y_cpu, **TOL, err_msg=f"{case.name}: output")
    for i, (a, b) in enumerate(zip(g_gpu, g_cpu)):
        if b is None:
            assert a is None
            continue
        np.testing.assert_allclose(a, b, **TOL, err_msg=f"{case.name}: gradient of input {i}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cpu_half_of_each_case_runs(case):
    """The cases themselves are sound (shapes, arguments, a finite output and gradients) on any machine."""
    y, grads, _ = run(case, np)
    assert np.all(np.isfinite(y))
    assert all(g is None or (g.shape == a.shape and np.all(np.isfinite(g))) for g, a in zip(grads, case.arrays))


def test_every_public_op_has_a_parity_case():
    """A new op in ``ops`` must get a case here (or be named below with the reason it has none)."""
    covered = {"relu", "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "conv2d", "linear", "matmul",
               "batch_norm", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "residual_add", "softmax",
               "log_softmax", "softmax_cross_entropy", "sum", "mean", "max", "reshape", "transpose", "flatten",
               "getitem", "concat", "split", "dropout"}
    not_numeric = {"to_device", "astype"}          # moves and casts: covered by the device tests
    public = {n for n in dir(ops) if not n.startswith("_") and callable(getattr(ops, n))
              and getattr(getattr(ops, n), "__module__", "").startswith("ops.")}
    assert public - covered - not_numeric == set()


@pytest.mark.gpu
def test_fancy_index_backward_is_deterministic_and_equals_the_cpu_bit_for_bit():
    """The fast tier's scatter kernel (``ops/kernels/cuda/scatter.py``); the reference tier's ``cupy.bincount``
    adds with atomics, in an order that may change from run to run."""
    import cupy
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 7))
    rows = rng.integers(0, 50, 5000)                     # many repeats: the old atomics would reorder sums
    gy = rng.standard_normal((5000, 7)) * 10.0 ** rng.integers(-6, 6, (5000, 1))

    def grad(xp):
        t = Tensor(xp.asarray(x), requires_grad=True)
        with ops.kernels.use("fast"):
            ops.getitem(t, xp.asarray(rows) if xp is not np else rows).backward(xp.asarray(gy))
        return t.grad

    cpu = grad(np)
    first = grad(cupy)
    for _ in range(3):
        assert bool(cupy.all(grad(cupy) == first))
    np.testing.assert_array_equal(first.get(), cpu)
