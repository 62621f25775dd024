"""``BatchNorm2d``: per-channel batch normalisation with learned scale (gamma) and shift (beta)."""
import numpy as np

import ops

from .arguments import check_positive
from .module import Module, Parameter


class BatchNorm2d(Module):
    """Batch normalisation over the N, H, W axes of each channel.

    In training mode it normalises with the batch's mean and variance and updates the running statistics in
    place (``running = (1 - momentum) * running + momentum * batch``, unbiased batch variance, as PyTorch); in
    evaluation mode it uses the running statistics.

    Args:
        num_features: the number of channels C.
        eps: added to the variance; 1e-3 as in the Inception papers' TensorFlow code (PyTorch's default is 1e-5).
        momentum: weight of the new batch in the running averages (TF's "decay" is ``1 - momentum``).
    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros); buffers ``running_mean`` (zeros),
    ``running_var`` (ones) and ``num_batches_tracked`` (0-d int64, counts training batches).

    Shape:
        x: (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, num_features, eps=1e-3, momentum=0.1):
        super().__init__()
        check_positive("BatchNorm2d", num_features=num_features)
        if not eps > 0:
            raise ValueError(f"BatchNorm2d: eps must be positive, got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.weight = Parameter(np.ones(self.num_features, np.float32))
        self.bias = Parameter(np.zeros(self.num_features, np.float32))
        self.register_buffer("running_mean", np.zeros(self.num_features, np.float32))
        self.register_buffer("running_var", np.ones(self.num_features, np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    def forward(self, x, relu=False):
        """``relu=True``: return ``relu(batch_norm(x))``, fused into one op (``ops.batch_norm(..., relu=True)``)."""
        if self.training:
            self.num_batches_tracked += 1          # in place: the buffer stays the same array
        return ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                              self.momentum, self.eps, relu=relu)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
