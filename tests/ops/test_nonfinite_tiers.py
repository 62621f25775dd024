"""The two kernel tiers agree on NaN and infinity (issue 21, item 11).

The trainer stops at the first non-finite loss or gradient norm; if the tiers disagreed on where a NaN goes, one
tier would stop a run the other lets go on. The contract (``ops/kernels/reference/elementwise.py`` and
``batch_norm.py``) is the reference's: a ReLU's gradient is the upstream gradient *multiplied* by the mask
``y > 0``, so a NaN or an infinity upstream stays non-finite where the ReLU is off (NaN * 0 and inf * 0 are NaN).
The fast tier's fused gates once selected instead (``gy if y > 0 else 0``) and turned it into a 0.

Every op with kernels runs here in both tiers with an upstream gradient holding NaN, +inf or -inf at many
positions (some where a ReLU is off, some where it is on); the positions of NaN, +inf and -inf in the output and in
every gradient must be the same. A NaN in an input goes through the forward and the backward too (in evaluation,
batch norm's ``gx = gamma * invstd * gy`` does not read ``x``, so the NaN must not reach ``gx`` in either tier).
"""
import numpy as np
import pytest

import ops
from autograd import Tensor
from autograd.backend import get_array_module, to_numpy
from ops import kernels


def sample(shape, seed, dtype, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


def _inputs(*shapes):
    def build(dt):
        return [sample(s, 10 + i, dt) for i, s in enumerate(shapes)]
    return build


def _batch_norm(training, relu, x=(3, 4, 5, 6)):
    def fn(x_, gamma, beta):
        c, xp = x[1], get_array_module(x_.data)
        rm = xp.asarray(sample(c, 5, x_.data.dtype, 0.5, 1.0))
        rv = xp.asarray(np.random.default_rng(6).uniform(0.5, 2.0, c).astype(x_.data.dtype))
        return ops.batch_norm(x_, gamma, beta, rm, rv, training, relu=relu)

    def build(dt):
        return [sample(x, 7, dt, 2.0, 1.0), sample(x[1], 8, dt, 0.5, 1.0), sample(x[1], 9, dt)]
    return fn, build


def _loss(x_):
    return ops.softmax_cross_entropy(x_, np.array([0, 3, 1, 2, 4]), label_smoothing=0.1)


CASES = {
    "conv-3x3-same-bias": (lambda x, w, b: ops.conv2d(x, w, b, padding="same"), _inputs((2, 3, 7, 9), (4, 3, 3, 3), 4)),
    "conv-3x3-s2-p1": (lambda x, w: ops.conv2d(x, w, stride=2, padding=1), _inputs((2, 3, 7, 9), (4, 3, 3, 3))),
    "conv-1x1": (lambda x, w: ops.conv2d(x, w), _inputs((3, 5, 6, 7), (4, 5, 1, 1))),
    "conv-1x7-same": (lambda x, w: ops.conv2d(x, w, padding="same"), _inputs((2, 3, 9, 5), (4, 3, 1, 7))),
    "max_pool-3x3-s2": (lambda x: ops.max_pool2d(x, 3, 2), _inputs((2, 3, 9, 8))),
    "max_pool-3x3-s1-p1": (lambda x: ops.max_pool2d(x, 3, 1, 1), _inputs((2, 3, 9, 8))),
    "avg_pool-3x3-s1-p1": (lambda x: ops.avg_pool2d(x, 3, 1, 1), _inputs((2, 3, 9, 8))),
    "avg_pool-include-pad": (lambda x: ops.avg_pool2d(x, (3, 2), 2, 1, count_include_pad=True), _inputs((2, 3, 9, 8))),
    "global_avg_pool": (ops.global_avg_pool2d, _inputs((2, 3, 5, 4))),
    "batch_norm-train": _batch_norm(True, False),
    "batch_norm-train-relu": _batch_norm(True, True),
    "batch_norm-eval": _batch_norm(False, False),
    "batch_norm-eval-relu": _batch_norm(False, True),
    "batch_norm-2d-train-relu": _batch_norm(True, True, x=(5, 3)),
    "batch_norm-2d-eval-relu": _batch_norm(False, True, x=(5, 3)),
    "relu": (ops.relu, _inputs((3, 4, 5, 2))),
    "residual_add-relu": (lambda x, r: ops.residual_add(x, r, 0.17), _inputs((3, 4, 5, 2), (3, 4, 5, 2))),
    "residual_add": (lambda x, r: ops.residual_add(x, r, 0.3, relu=False), _inputs((3, 4, 5, 2), (3, 4, 5, 2))),
    "add": (ops.add, _inputs((3, 4, 5, 2), (3, 4, 5, 2))),
    "add-broadcast": (ops.add, _inputs((3, 4, 5, 2), (4, 1, 1))),
    "mul": (ops.mul, _inputs((3, 4, 5, 2), (3, 4, 5, 2))),
    "mul-broadcast": (ops.mul, _inputs((3, 1, 5, 2), (3, 4, 5, 2))),
    "concat": (lambda a, b, c: ops.concat([a, b, c], axis=1), _inputs((3, 2, 4, 5), (3, 1, 4, 5), (3, 4, 4, 5))),
    "linear": (ops.linear, _inputs((5, 6), (4, 6), 4)),
    "getitem-repeated": (lambda x: ops.getitem(x, np.array([0, 2, 2, 1, 0, 2])), _inputs((3, 4))),
    "log_softmax": (ops.log_softmax, _inputs((5, 7))),
    "softmax_cross_entropy": (_loss, _inputs((5, 7))),
}

BAD = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def _upstream(shape, dtype, bad):
    """A random upstream gradient with ``bad`` at every fifth position (both sides of any ReLU are hit)."""
    gy = sample(shape, 99, dtype)
    gy.reshape(-1)[::5] = bad
    return gy


def _run(name, dtype, tier, bad, bad_input=False, device=np.asarray):
    """Output and input gradients of case ``name`` in ``tier`` (arrays made by ``device``), as NumPy arrays."""
    fn, build = CASES[name]
    arrays = build(dtype)
    if bad_input:
        arrays[0].reshape(-1)[1] = bad
    with kernels.use(tier), np.errstate(invalid="ignore", over="ignore"):     # NaN * 0 is the point here
        tensors = [Tensor(device(a), requires_grad=True) for a in arrays]
        y = fn(*tensors)
        y.backward(device(_upstream(y.shape, dtype, bad) if y.ndim else np.asarray(bad, dtype)))
    return [to_numpy(a) for a in [y.data] + [t.grad for t in tensors]]


def _pattern(a):
    a = np.asarray(a)
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", list(CASES))
def test_a_non_finite_upstream_gradient_lands_in_the_same_places_in_both_tiers(name, bad, dtype):
    reference = _run(name, dtype, "reference", BAD[bad])
    fast = _run(name, dtype, "fast", BAD[bad])
    assert any(not np.isfinite(r).all() for r in reference[1:]), f"{name}: nothing non-finite reached the input"
    for i, (got, expected) in enumerate(zip(fast, reference)):
        for kind, g, e in zip(("NaN", "+inf", "-inf"), _pattern(got), _pattern(expected)):
            assert np.array_equal(g, e), (f"{name}, {bad} upstream: result {i} (0: output, then input gradients) has "
                                          f"{kind} at {int(g.sum())} positions in the fast tier, "
                                          f"{int(e.sum())} in the reference")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_non_finite_input_lands_in_the_same_places_in_both_tiers(name, dtype):
    """A NaN in the first input, through the forward and the backward (finite upstream gradient elsewhere)."""
    reference = _run(name, dtype, "reference", np.nan, bad_input=True)
    fast = _run(name, dtype, "fast", np.nan, bad_input=True)
    for i, (got, expected) in enumerate(zip(fast, reference)):
        for kind, g, e in zip(("NaN", "+inf", "-inf"), _pattern(got), _pattern(expected)):
            assert np.array_equal(g, e), f"{name}, NaN input: result {i} differs in where it holds {kind}"


@pytest.mark.gpu
@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", list(CASES))
def test_on_the_gpu_both_tiers_put_non_finite_values_where_the_cpu_does(name, bad):
    """The CuPy kernels (cuda/batch_norm.py's gate and eval gradient among them) against the CPU reference."""
    import cupy as cp
    expected = _run(name, np.float32, "reference", BAD[bad])
    for tier in ("reference", "fast"):
        got = _run(name, np.float32, tier, BAD[bad], device=cp.asarray)
        for i, (g, e) in enumerate(zip(got, expected)):
            for kind, gp, ep in zip(("NaN", "+inf", "-inf"), _pattern(g), _pattern(e)):
                assert np.array_equal(gp, ep), f"{name}, {bad} upstream, GPU {tier} tier: result {i}, {kind}"


def test_the_fused_relu_gates_keep_a_nan_where_the_relu_is_off():
    """The case of the issue, stated directly: batch norm + ReLU in eval mode (each gradient element depends on its
    own upstream element only), NaN upstream exactly where the ReLU's output is 0."""
    fn, build = CASES["batch_norm-eval-relu"]
    for tier in ("reference", "fast"):
        arrays = build(np.float32)
        with kernels.use(tier), np.errstate(invalid="ignore"):
            tensors = [Tensor(a, requires_grad=True) for a in arrays]
            y = fn(*tensors)
            off = y.data <= 0
            assert off.any() and (~off).any()
            gy = np.where(off, np.float32(np.nan), np.float32(1.0))
            y.backward(gy)
        assert np.isnan(tensors[0].grad[off]).all(), tier
        assert np.isfinite(tensors[0].grad[~off]).all(), tier
