"""Matrix products: ``matmul`` and the fully connected layer's ``linear``."""
from autograd import Function
from autograd.backend import get_array_module


class MatMul(Function):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        ga = gy @ self.b.T if self.needs_input_grad[0] else None
        gb = self.a.T @ gy if self.needs_input_grad[1] else None
        return ga, gb


class Linear(Function):
    """``y = x @ W.T + b`` with W (out_features, in_features)."""

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        gx = gy @ self.weight if self.needs_input_grad[0] else None
        gw = gy.T @ self.x if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 3:
            return gx, gw, gy.sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gw


def matmul(a, b):
    """Matrix product of two 2-D tensors.

    Shape:
        a: (M, K), b: (K, N) -> (M, N)
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected 2-D tensors (M, K) and (K, N), got {tuple(a.shape)} and {tuple(b.shape)}")
    return MatMul()(a, b)


def linear(x, weight, bias=None):
    """Fully connected layer.

    Shape:
        x: (N, in_features), weight: (out_features, in_features), bias: (out_features,) -> (N, out_features)
    """
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear: expected x (N, in_features) and weight (out_features, in_features) with matching "
                         f"in_features, got x {tuple(x.shape)} and weight {tuple(weight.shape)}")
    if bias is None:
        return Linear()(x, weight)
    if tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    return Linear()(x, weight, bias)
