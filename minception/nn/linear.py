"""``Linear``: the fully connected layer ``y = x W^T + b``."""
import numpy as np

import ops

from . import init
from .arguments import check_positive
from .module import Module, Parameter


class Linear(Module):
    """Fully connected layer.

    Args:
        in_features, out_features: sizes of each input and output row.
        bias: add a learned bias (zeros at start).
    Weight ``(out_features, in_features)``, He-normal (std ``sqrt(2/in_features)``, see ``nn.init``).

    Shape:
        x: (N, in_features) -> (N, out_features)
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), np.float32))
        init.he_normal_(self.weight)
        self.register_parameter("bias", Parameter(np.zeros(self.out_features, np.float32)) if bias else None)

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

