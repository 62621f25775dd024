import re

import numpy as np
import pytest

import ops
from autograd import Function, GradcheckError, Tensor, gradcheck


class WrongSquare(Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return 2.1 * self.x * gy          # deliberately wrong


def test_catches_wrong_backward_with_report():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongSquare()(t), [x])
    report = str(info.value)
    assert "input 0" in report and "worst element" in report and "numeric" in report and "analytic" in report
    assert "atol=1e-05" in report


def test_directional_mode_catches_wrong_backward_and_names_tensor():
    x = Tensor(np.random.default_rng(1).standard_normal((30, 20)), requires_grad=True)
    w = Tensor(np.random.default_rng(2).standard_normal((20,)), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"(?s)directional.*input 0 .*MISMATCH.*weight .* ok"):
        gradcheck(lambda t: WrongSquare()(t * 1.0) * 1.0 + w, [x], params=[("weight", w)], mode="directional")


def test_wrong_batchnorm_like_backward_is_caught_thanks_to_random_upstream():
    # normalising over the batch: with an all-ones upstream gradient the true gradient is 0 and a backward that
    # returns 0 would pass; the random upstream gradient makes the check meaningful.
    class BadNormalize(Function):
        def forward(self, x):
            self.std = x.std(axis=0)
            return (x - x.mean(axis=0)) / self.std

        def backward(self, gy):
            return np.zeros_like(gy)

    x = Tensor(np.random.default_rng(3).standard_normal((5, 3)), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: BadNormalize()(t), [x])


def test_refuses_float32():
    x = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, [x])


def test_passes_correct_ops_and_leaves_inputs_unchanged():
    data = np.random.default_rng(4).standard_normal((3, 5))
    x = Tensor(data.copy(), requires_grad=True)
    assert gradcheck(lambda t: ops.exp(t) * t, [x])
    np.testing.assert_array_equal(x.data, data)
    assert x.grad is None


def test_nothing_to_check():
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda t: t * 2, [Tensor(np.ones(2))])


# ---------------------------------------------------------------------------------------------- the report
WRONG = re.compile(r"^ +at \(([\d, ]+)\): analytic (\S+)  numeric (\S+)$")


def printed_positions(report):
    """The (position, analytic, numeric) triples the report prints under "first wrong positions"."""
    found = []
    for line in report.splitlines():
        m = WRONG.match(line)
        if m:
            found.append((tuple(int(i) for i in m.group(1).split(",")), float(m.group(2)), float(m.group(3))))
    return found


def test_report_names_tensors_by_their_names_and_by_names_argument():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True, name="x")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongSquare()(t), [x])
    assert "  x (shape (3, 4)): 12 of 12 elements disagree" in str(info.value)
    assert "input 0" not in str(info.value)
    y = Tensor(np.random.default_rng(1).standard_normal((2,)), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"  logits \(shape \(2,\)\)"):
        gradcheck(lambda t: WrongSquare()(t), [y], names=["logits"])


def test_every_failing_tensor_is_reported_and_passing_ones_are_named():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True, name="x")
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True, name="w")
    b = Tensor(rng.standard_normal((4,)), requires_grad=True, name="b")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x, w, b: WrongSquare()(x) * WrongSquare()(w) + b, [x, w, b])
    report = str(info.value)
    assert report.startswith("gradcheck failed for 2 of 3 checked tensors")
    assert "\n  x (shape (3, 4)): " in report and "\n  w (shape (3, 4)): " in report
    assert "passed: b" in report and "a wrong constant factor?" in report
    assert max(len(line) for line in report.splitlines()) <= 100


def test_printed_positions_are_ones_that_disagree():
    class WrongAtTwo(Function):          # right everywhere except two elements
        def forward(self, x):
            return x * 3.0

        def backward(self, gy):
            gx = 3.0 * gy
            gx[1, 2] += 0.5
            gx[3, 0] = 0.0
            return gx

    x = Tensor(np.random.default_rng(6).standard_normal((4, 5)), requires_grad=True, name="x")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongAtTwo()(t), [x])
    report = str(info.value)
    assert "2 of 20 elements disagree" in report
    shown = printed_positions(report)
    assert [p for p, _, _ in shown] == [(1, 2), (3, 0)]
    for _, analytic, numeric in shown:
        assert abs(analytic - numeric) > 1e-5 + 1e-3 * abs(numeric)


class OverwritingMaxPool(Function):
    """3x3 max pooling with stride 2 (windows overlap) whose backward writes ``=`` where ``+=`` is needed: an
    element that is the maximum of two windows gets the gradient of one of them only."""

    def forward(self, x):
        self.shape = x.shape
        out_h, out_w = (x.shape[0] - 3) // 2 + 1, (x.shape[1] - 3) // 2 + 1
        y, self.argmax = np.empty((out_h, out_w)), {}
        for i in range(out_h):
            for j in range(out_w):
                window = x[2 * i:2 * i + 3, 2 * j:2 * j + 3]
                a, b = np.unravel_index(np.argmax(window), (3, 3))
                self.argmax[i, j] = (2 * i + a, 2 * j + b)
                y[i, j] = window[a, b]
        return y

    def backward(self, gy):
        gx = np.zeros(self.shape)
        for (i, j), position in self.argmax.items():
            gx[position] = gy[i, j]          # the bug: gx[position] += gy[i, j]
        return gx


def test_max_pool_overwrite_bug_is_reported_at_the_shared_maxima():
    x = Tensor(np.random.default_rng(7).standard_normal((15, 15)), requires_grad=True, name="x")
    pool = OverwritingMaxPool()
    pool(x)
    winners = list(pool.argmax.values())
    shared = sorted({p for p in winners if winners.count(p) > 1})   # maxima of more than one window
    assert shared, "the fixed input must have an element that is the maximum of two windows"
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: OverwritingMaxPool()(t), [x])
    report = str(info.value)
    assert f"x (shape (15, 15)): {len(shared)} of 225 elements disagree" in report
    shown = printed_positions(report)
    assert [p for p, _, _ in shown] == shared[:6]
    for _, analytic, numeric in shown:
        assert abs(analytic - numeric) > 1e-5 + 1e-3 * abs(numeric)
    assert "overwritten (= where += is needed" in report


def test_upstream_gradient_seed_is_not_a_students_and_never_equals_the_input():
    import importlib
    import inspect

    module = importlib.import_module("autograd.gradcheck")      # autograd.gradcheck is the function
    assert inspect.signature(gradcheck).parameters["seed"].default is None
    assert module.SEED not in (0, 1, 42, 1234) and module.SEED > 2 ** 32

    seen = []

    class Spy(Function):
        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            seen.append(gy.copy())
            return gy

    for seed in (0, 1, 42, module.SEED):       # the input drawn with a student's seed, or with ours
        seen.clear()
        x = Tensor(np.random.default_rng(seed).standard_normal((4, 3)), requires_grad=True, name="x")
        assert gradcheck(lambda t: Spy()(t), [x])
        assert not np.array_equal(seen[0], x.data)
