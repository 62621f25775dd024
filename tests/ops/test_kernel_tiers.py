"""The two kernel tiers (``ops.kernels``): the switch itself, and every op that has kernels giving the same outputs
and gradients in both tiers (float64 to 1e-10, float32 to 1e-5, relative to the largest value), on the fast tier's
calling-thread path and on its threaded, chunked path. A fresh process in the reference tier, where Numba and the
fast tier's CPU runtime cannot even be imported, trains a small network: the reference tier uses neither."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ops
from autograd import Tensor
from ops import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def sample(shape, seed, dtype, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


def assert_close(got, expected, dtype, what):
    """Equal to ``TOL[dtype]`` relative to the largest value of ``expected``, same dtype and shape."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    scale = max(float(np.abs(expected).max()), 1e-30)
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


# ---------------------------------------------------------------------------------------------- the switch

def test_use_as_a_call_and_as_a_block():
    before = kernels.current()
    assert before in kernels.TIERS == ("reference", "fast")
    try:
        kernels.use("reference")
        assert kernels.current() == "reference"
        with kernels.use("fast") as switch:
            assert kernels.current() == "fast" and switch.name == "fast"
            with kernels.use("reference"):
                assert kernels.current() == "reference"
            assert kernels.current() == "fast"
        assert kernels.current() == "reference"
        with pytest.raises(KeyError):
            with kernels.use("fast"):
                raise KeyError("inside the block")
        assert kernels.current() == "reference"            # restored after an exception too
    finally:
        kernels.use(before)
    assert kernels.current() == before


def test_unknown_tier_and_family_are_clear_errors():
    before = kernels.current()
    with pytest.raises(ValueError, match=r"ops.kernels.use: unknown kernel tier 'numba'; the registered tiers are "
                                         r"'reference', 'fast'"):
        kernels.use("numba")
    assert kernels.current() == before
    with pytest.raises(ValueError, match="unknown kernel family 'im2cols'"):
        kernels.lookup("im2cols", np.zeros(1))


def test_lookup_follows_the_tier():
    x = np.zeros((1, 1, 3, 3))
    with kernels.use("reference"):
        for family in kernels.FAMILIES:
            assert kernels.lookup(family, x).__name__ == f"ops.kernels.reference.{family}"
    with kernels.use("fast"):
        assert kernels.lookup("conv2d", x).__name__ == "ops.kernels.cpu.conv2d"
        assert kernels.lookup("batch_norm", x).__name__ == "ops.kernels.cpu.batch_norm"
        assert kernels.lookup("elementwise", x).__name__ == "ops.kernels.cpu.elementwise"
        assert kernels.lookup("scatter", x).__name__ == "ops.kernels.reference.scatter"
        assert kernels.lookup("loss", x).__name__ == "ops.kernels.reference.loss"


def _current_in_fresh_process(value):
    env = dict(os.environ)
    env.pop(kernels.ENV_VAR, None)
    if value is not None:
        env[kernels.ENV_VAR] = value
    return subprocess.run([sys.executable, "-c", "import ops; print(ops.kernels.current())"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_environment_variable_is_read_at_import():
    assert _current_in_fresh_process(None).stdout.strip() == "fast"
    assert _current_in_fresh_process("").stdout.strip() == "fast"
    assert _current_in_fresh_process("reference").stdout.strip() == "reference"
    bad = _current_in_fresh_process("Reference")
    assert bad.returncode != 0
    assert "environment variable MINCEPTION_KERNELS: unknown kernel tier 'Reference'" in bad.stderr


def test_a_function_keeps_its_forward_tier_for_backward(monkeypatch):
    """Switching tiers between forward and backward changes nothing: each op's backward uses the kernels its
    forward used, and the kernels those ask the table for (the reference conv2d's col2im) come from the forward's
    tier too (here the fast tier's backward kernels would fail the test)."""
    from ops.kernels.cpu import batch_norm as batchnorm_numba
    from ops.kernels.cpu import conv2d as cpu_conv2d
    from ops.kernels.cpu import im2col as im2col_numba
    from ops.kernels.cpu import pooling as pool_numba

    x, w = sample((2, 3, 7, 6), 1, np.float64), sample((4, 3, 3, 3), 2, np.float64)
    gamma, beta = np.ones(4), np.zeros(4)
    gy = sample((2, 4, 4, 3), 3, np.float64)
    grads = []
    for switch in (False, True):
        xt = Tensor(x, requires_grad=True)
        with kernels.use("reference"):
            y = ops.conv2d(xt, w, padding=1)
            y = ops.batch_norm(y, gamma, beta, None, None, True, relu=True)
            y = ops.max_pool2d(y, 3, 2, 1)
        if switch:
            for module, name in ((cpu_conv2d, "backward"), (pool_numba, "max_pool2d_backward"),
                                 (batchnorm_numba, "backward_train"), (im2col_numba, "col2im"),
                                 (im2col_numba, "im2col")):
                monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("a fast-tier backward kernel ran"))
            with kernels.use("fast"):
                y.backward(gy)
        else:
            y.backward(gy)
        grads.append(xt.grad)
    np.testing.assert_array_equal(grads[0], grads[1])


# ---------------------------------------------------------------------------------------------- ops in both tiers

def _conv(stride, padding, bias=True, x=(2, 3, 7, 9), w=(4, 3, 3, 3)):
    def build(dt, device):
        arrays = [sample(x, 1, dt), sample(w, 2, dt)] + ([sample(w[0], 3, dt)] if bias else [])
        return lambda *t: ops.conv2d(*t, stride=stride, padding=padding), [device(a) for a in arrays], []
    return build


def _pool(op, k, s, p, **kw):
    def build(dt, device):
        return lambda x: op(x, k, s, p, **kw), [device(sample((2, 3, 9, 8), 4, dt))], []
    return build


def _batch_norm(training, relu, x=(3, 4, 5, 6)):
    def build(dt, device):
        c = x[1]
        rm = device(sample(c, 5, dt, 0.5, 1.0))
        rv = device(np.random.default_rng(6).uniform(0.5, 2.0, c).astype(dt))
        arrays = [sample(x, 7, dt, 2.0, 1.0), sample(c, 8, dt, 0.5, 1.0), sample(c, 9, dt)]
        return (lambda *t: ops.batch_norm(*t, rm, rv, training, relu=relu)), [device(a) for a in arrays], [rm, rv]
    return build


def _elementwise(fn, *shapes):
    def build(dt, device):
        return fn, [device(sample(s, 10 + i, dt)) for i, s in enumerate(shapes)], []
    return build


CASES = {
    "conv-3x3-same-bias": _conv(1, "same"),
    "conv-3x3-s2-p1": _conv(2, 1, bias=False),
    "conv-1x7-s2x1-same": _conv((2, 1), "same", w=(4, 3, 1, 7)),
    "conv-7x1-same": _conv(1, "same", x=(2, 3, 9, 5), w=(4, 3, 7, 1)),
    "conv-1x1": _conv(1, 0, x=(3, 5, 6, 7), w=(4, 5, 1, 1)),
    "conv-2x3-s2x3-valid": _conv((2, 3), "valid", w=(4, 3, 2, 3)),
    "max_pool-3x3-s2": _pool(ops.max_pool2d, 3, 2, 0),
    "max_pool-3x3-s1-p1": _pool(ops.max_pool2d, 3, 1, 1),
    "avg_pool-3x3-s1-p1": _pool(ops.avg_pool2d, 3, 1, 1),
    "avg_pool-3x2-s2-p1-include-pad": _pool(ops.avg_pool2d, (3, 2), 2, 1, count_include_pad=True),
    "batch_norm-train": _batch_norm(True, False),
    "batch_norm-train-relu": _batch_norm(True, True),
    "batch_norm-eval": _batch_norm(False, False),
    "batch_norm-eval-relu": _batch_norm(False, True),
    "batch_norm-2d-train-relu": _batch_norm(True, True, x=(5, 3)),
    "relu": _elementwise(ops.relu, (3, 4, 5, 2)),
    "add": _elementwise(ops.add, (3, 4, 5, 2), (3, 4, 5, 2)),
    "add-broadcast": _elementwise(ops.add, (3, 4, 5, 2), (4, 1, 1)),
    "mul": _elementwise(ops.mul, (3, 4, 5, 2), (3, 4, 5, 2)),
    "mul-broadcast": _elementwise(ops.mul, (3, 1, 5, 2), (3, 4, 5, 2)),
    "concat": _elementwise(lambda a, b, c: ops.concat([a, b, c], axis=1), (3, 2, 4, 5), (3, 1, 4, 5), (3, 4, 4, 5)),
    "residual_add-relu": _elementwise(lambda x, r: ops.residual_add(x, r, 0.17), (3, 4, 5, 2), (3, 4, 5, 2)),
    "residual_add": _elementwise(lambda x, r: ops.residual_add(x, r, 0.3, relu=False), (3, 4, 5, 2), (3, 4, 5, 2)),
}


def run_case(name, dtype, tier, device=np.asarray):
    """Forward and backward (random upstream gradient) of case ``name`` in ``tier``, with arrays made by
    ``device`` (``cupy.asarray`` for the GPU): the output, the gradient of every input, and any state the op
    updates (batch norm's running statistics)."""
    fn, arrays, state = CASES[name](dtype, device)
    with kernels.use(tier):
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        y = fn(*tensors)
        y.backward(device(sample(y.shape, 99, dtype)))
    return [y.data] + [t.grad for t in tensors] + state


@pytest.fixture(params=["calling-thread", "threaded"])
def fast_tier_path(request, monkeypatch):
    """The fast tier as it runs small shapes (calling thread), or forced onto its threaded paths: 3 CPU threads, no
    size thresholds, conv chunks of one image."""
    if request.param == "threaded":
        request.getfixturevalue("three_threads")
        from ops.kernels.cpu import conv2d as cpu_conv2d
        monkeypatch.setattr(cpu_conv2d, "MIN_THREADED_MACS", 0)
        monkeypatch.setattr(cpu_conv2d, "CHUNK_BYTES", 1)
        monkeypatch.setattr(cpu_conv2d, "MIN_CHUNK_COLUMNS", 1)
        monkeypatch.setattr(cpu_conv2d, "POINTWISE_MIN_PIXELS", 1)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_op_gives_the_same_outputs_and_gradients_in_both_tiers(name, dtype, fast_tier_path):
    reference = run_case(name, dtype, "reference")
    fast = run_case(name, dtype, "fast")
    assert len(reference) == len(fast)
    for i, (got, expected) in enumerate(zip(fast, reference)):
        assert_close(got, expected, dtype, f"{name}: result {i} (0: output, then input gradients, then state)")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_both_tiers_on_the_gpu_match_the_cpu(name, dtype):
    """The reference files run as they are on CuPy arrays; the fast tier runs the CuPy kernels."""
    import cupy as cp
    expected = run_case(name, dtype, "reference")
    for tier in ("reference", "fast"):
        got = run_case(name, dtype, tier, device=cp.asarray)
        for i, (g, e) in enumerate(zip(got, expected)):
            assert isinstance(g, cp.ndarray), f"{name} in the {tier} tier: result {i} left the GPU"
            assert_close(cp.asnumpy(g), e, dtype, f"{name} on the GPU, {tier} tier: result {i}")


@pytest.mark.gpu
@pytest.mark.parametrize("buffers", ["float32", "float64", "mean only", "var only", "mixed dtypes"])
def test_gpu_running_statistics_update_matches_the_reference(buffers):
    """The one-kernel update (cuda/batch_norm.py) against the reference's NumPy formula, for every buffer layout the
    op may meet; the kernel serves the common case and the others fall back to the formula."""
    import cupy as cp
    from ops.kernels.cuda import batch_norm as batchnorm_cupy
    from ops.kernels.reference import batch_norm as batchnorm_reference
    rng = np.random.default_rng(5)
    c = 37
    mean, var = rng.standard_normal(c), rng.uniform(0.1, 2.0, c)
    dtypes = {"float32": (np.float32, np.float32), "float64": (np.float64, np.float64),
              "mean only": (np.float32, None), "var only": (None, np.float64),
              "mixed dtypes": (np.float32, np.float64)}[buffers]
    start = [None if d is None else rng.standard_normal(c).astype(d) for d in dtypes]
    expected = [None if a is None else a.copy() for a in start]
    batchnorm_reference.update_running_stats(*expected, mean, var, 0.1, 4 * 9 * 9)
    got = [None if a is None else cp.asarray(a) for a in start]
    batchnorm_cupy.update_running_stats(*got, cp.asarray(mean), cp.asarray(var), 0.1, 4 * 9 * 9)
    for g, e in zip(got, expected):
        if e is not None:
            assert g.dtype == e.dtype
            np.testing.assert_allclose(cp.asnumpy(g), e, rtol=1e-15 if e.dtype == np.float64 else 1e-7)


@pytest.mark.gpu
def test_gpu_batch_norm_relu_keeps_nan_and_gates_the_gradient():
    """The ReLU inside the GPU batch norm: NaN stays NaN (as the reference's clip), and the backward passes the
    gradient only where the output is positive."""
    import cupy as cp
    from ops.kernels.cuda import batch_norm as batchnorm_cupy
    from ops.kernels.reference import batch_norm as batchnorm_reference
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 5))
    x[1, 2, 3] = np.nan                          # channel 2's statistics become NaN: its whole output is NaN
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)
    y_ref = batchnorm_reference.forward_train(x, gamma, beta, 1e-3, relu=True)[0]
    y_gpu = cp.asnumpy(batchnorm_cupy.forward_train(cp.asarray(x), cp.asarray(gamma), cp.asarray(beta), 1e-3,
                                                    relu=True)[0])
    np.testing.assert_array_equal(np.isnan(y_gpu), np.isnan(y_ref))
    ok = ~np.isnan(y_ref)
    np.testing.assert_allclose(y_gpu[ok], y_ref[ok], rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(x.shape)
    gated = cp.asnumpy(batchnorm_cupy._relu_gate()(cp.asarray(gy), cp.asarray(y_ref)))
    np.testing.assert_array_equal(gated, np.where(y_ref > 0, gy, 0.0))


# ---------------------------------------------------------------------------------------------- no fast tier at all

NO_FAST_TIER = r"""
import importlib.abc, sys

BLOCKED = ("numba", "cupy", "ops.kernels.cpu.", "ops.kernels.cuda")      # the fast tier: Numba, CPU runtime, CUDA


class Poison(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(BLOCKED) or name == "ops.kernels.cpu":
            raise ImportError(f"POISONED: the reference tier imported {name}")
        return None


sys.meta_path.insert(0, Poison())
import numpy as np
import ops
from autograd import Tensor
from minception import models, nn, optim

assert ops.kernels.current() == "reference", ops.kernels.current()
for dtype in (np.float64, np.float32):
    nn.init.manual_seed(0)
    model = models.inception_resnet_v2(num_classes=3, width=0.0625, blocks=(1, 1, 1), small_input=True,
                                       dropout=0.0).to(dtype=dtype).train()
    opt = optim.RMSProp(model.named_parameters(), lr=0.01)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(dtype), requires_grad=True)
    for step in range(2):
        logits = model(x)
        extra = ops.mul(ops.add(ops.relu(logits), logits), 0.5)                # the elementwise ops too
        loss = ops.softmax_cross_entropy(ops.sub(logits, extra), np.array([0, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.isfinite(loss.item()) and x.grad is not None
    pooled = ops.avg_pool2d(x, 3, 1, 1, count_include_pad=True)
    pooled.backward(np.ones(pooled.shape, dtype))
loaded = sorted(m for m in sys.modules if m.startswith(BLOCKED) or m == "ops.kernels.cpu")
print("LOADED", loaded)
ops.kernels.use("fast")                                                         # the poison works: the fast tier
try:                                                                            # cannot run here
    ops.relu(Tensor(np.ones((2, 2))))
except ImportError as e:
    print("FAST TIER", e)
"""


def test_reference_tier_runs_without_numba_or_the_cpu_runtime():
    """Forward, backward and optimizer steps of a small Inception-ResNet-v2 (every kind of kernel: conv, max and
    average pooling, batch norm with and without ReLU, concat, residual add) plus ReLU, add and mul, in a process
    where importing Numba, any Numba or CuPy kernel module, or the fast tier's CPU runtime raises."""
    env = dict(os.environ, **{kernels.ENV_VAR: "reference"})
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(NO_FAST_TIER)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED []" in out.stdout, out.stdout
    assert "FAST TIER POISONED: the reference tier imported ops.kernels.cpu" in out.stdout, out.stdout
