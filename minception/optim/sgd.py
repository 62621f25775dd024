"""Stochastic gradient descent with (Nesterov) momentum and L2 weight decay."""
import numpy as np

from autograd.backend import get_array_module
from ops.kernels import multi_tensor

from .checks import flag, real_number
from .optimizer import Optimizer


class SGD(Optimizer):
    r"""SGD with optional momentum (heavy-ball or Nesterov).

    For each parameter ``p`` with gradient ``g`` (after weight decay: ``g <- g + weight_decay * p``)::

        momentum == 0:   p <- p - lr * g
        heavy ball:      buf <- momentum * buf + g;   p <- p - lr * buf
        nesterov:        buf <- momentum * buf + g;   p <- p - lr * (g + momentum * buf)

    This is the formulation of PyTorch's ``torch.optim.SGD`` (dampening 0) and of TF's ``MomentumOptimizer``
    (``use_nesterov``): the learning rate multiplies the buffer at each step rather than living inside it
    (Sutskever et al.'s ``v <- momentum * v - lr * g; p <- p + v``), so changing lr takes effect at once.
    ``buf`` starts at zero, so the first step is ``lr * g`` (heavy ball) or ``lr * (1 + momentum) * g`` (Nesterov).

    Args:
        params: Tensors, ``(name, Tensor)`` pairs or a dict (see ``Optimizer``).
        lr: learning rate.
        momentum: momentum coefficient in [0, 1).
        nesterov: use the Nesterov form (needs momentum > 0).
        weight_decay: L2 coefficient added to the gradient (see ``Optimizer``).
        weight_decay_filter: which parameters decay (see ``Optimizer``).
        fused: on the GPU in the fast kernel tier, update all parameters of a dtype in one multi-tensor launch
            (the same formula as ``sgd_update``; results agree with it to rounding). Ignored for NumPy arrays.

    State per parameter (``opt.state[key]``): ``"mom"`` the momentum buffer ``buf`` (only when momentum > 0;
    the dict is empty otherwise).

    Shape:
        ``"mom"`` has the shape, dtype and device of its parameter.
    """

    hyper_names = ("momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 weight_decay_filter=None, fused=True):
        super().__init__(params, lr, weight_decay, weight_decay_filter)
        self.momentum = real_number("SGD", "momentum", momentum)
        self.nesterov = flag("SGD", "nesterov", nesterov)
        self.fused = flag("SGD", "fused", fused)
        self.check_hyperparameters()

    def check_hyperparameters(self):
        super().check_hyperparameters()
        real_number("SGD", "momentum", self.momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def init_state(self, data):
        if self.momentum == 0.0:
            return {}
        return {"mom": get_array_module(data).zeros_like(data)}

    def update(self, data, grad, state, weight_decay):
        sgd_update(data, grad, state.get("mom"), self.lr, self.momentum, self.nesterov, weight_decay)

    def update_many(self, batch):
        import cupy
        kernel = multi_tensor.SGD_MOMENTUM if self.momentum else multi_tensor.SGD_PLAIN
        for dtype, wd, items in multi_tensor.decay_groups(batch):
            rows = [(data, cupy.ascontiguousarray(grad, dtype=dtype)) + ((state["mom"],) if self.momentum else ())
                    for data, grad, state, _ in items]
            if not multi_tensor.check_rows(rows):
                super().update_many(items)
                continue
            t = dtype.type
            scalars = ((t(self.lr), t(self.momentum), t(wd), np.int32(self.nesterov)) if self.momentum
                       else (t(self.lr), t(wd)))
            kernel(rows, [item[3] for item in items], scalars)


def sgd_update(p, g, buf, lr, momentum, nesterov, weight_decay):
    """The readable update on NumPy or CuPy arrays; ``p`` and ``buf`` (None without momentum) change in place."""
    if weight_decay:
        g = g + weight_decay * p
    if buf is None:
        p -= lr * g
        return
    buf *= momentum
    buf += g
    if nesterov:
        p -= lr * (g + momentum * buf)
    else:
        p -= lr * buf
