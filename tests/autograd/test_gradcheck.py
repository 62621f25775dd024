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
