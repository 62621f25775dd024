"""RMSProp with momentum, in TensorFlow's form (the Inception-v4 paper's optimizer) or PyTorch's.

The paper trained with RMSProp, decay 0.9, eps 1.0, momentum 0.9, learning rate 0.045. It ran on TensorFlow,
whose RMSProp puts eps *inside* the square root, ``g / sqrt(ms + eps)``; PyTorch (and cs231n, and Chainer by
default) put it outside, ``g / (sqrt(ms) + eps)``. With the usual eps = 1e-8 that is a rounding detail; with the
paper's eps = 1.0 it is not: writing ms = s**2, TF divides by sqrt(s**2 + 1) and PyTorch by s + 1, which differ
by up to a factor sqrt(2) (at s = 1). (With eps = 1 and gradients much smaller than 1, both forms come close to
momentum SGD with step ``lr * g``: eps = 1.0 makes RMSProp's normalisation act on large gradients only.)
See the class docstring for the full update.

The course hands out ``rmsprop_update`` with its solution region (between the ``# --- solution: begin/end ---``
markers) removed: the student writes the update (``python -m minception.course new DIR``).
"""
import numpy as np

from autograd.backend import get_array_module
from ops.kernels import multi_tensor

from .checks import flag, real_number
from .optimizer import Optimizer


class RMSProp(Optimizer):
    r"""RMSProp with momentum.

    For each parameter ``p`` with gradient ``g`` (after weight decay: ``g <- g + weight_decay * p``)::

        ms  <- decay * ms + (1 - decay) * g**2                # running mean of the squared gradient
        mom <- momentum * mom + lr * g / sqrt(ms + eps)       # TensorFlow (default, eps_inside_sqrt=True)
        mom <- momentum * mom + lr * g / (sqrt(ms) + eps)     # PyTorch    (eps_inside_sqrt=False)
        p   <- p - mom

    This is TF1's ``tf.train.RMSPropOptimizer`` (and ``ApplyRMSProp``) exactly. In both forms the learning rate
    sits inside the momentum buffer, as in TF: PyTorch instead keeps ``buf = momentum*buf + g/(sqrt(ms)+eps)``
    and steps by ``lr * buf``; the two agree while lr is constant and differ by how fast a new lr takes effect.

    Initial mean square ``ms_init``: TF1's RMSPropOptimizer (the paper's system) starts ``ms`` at **ones**;
    Keras / TF2 and PyTorch start at zeros. With zeros and a small eps, the first steps divide by
    ``sqrt(0.1 g**2)``, i.e. move every weight by about ``3 * lr`` whatever its gradient; ones damp that start.
    ``ms_init=None`` (default) follows the formula's framework: 1.0 with ``eps_inside_sqrt=True``, 0.0 without.

    Args:
        params: Tensors, ``(name, Tensor)`` pairs or a dict (see ``Optimizer``).
        lr: learning rate (0.045 in the paper, decayed by 0.94 every two epochs).
        decay: decay of the mean square (TF's ``decay``, PyTorch's ``alpha``).
        eps: added to the mean square (inside the root) or to its root (outside).
        momentum: momentum coefficient; 0 gives plain RMSProp.
        weight_decay: L2 coefficient added to the gradient (see ``Optimizer``).
        eps_inside_sqrt: True for TensorFlow's ``sqrt(ms + eps)``, False for PyTorch's ``sqrt(ms) + eps``.
        ms_init: initial value of ``ms`` (None: see above).
        weight_decay_filter: which parameters decay (see ``Optimizer``).
        fused: on the GPU in the fast kernel tier, update all parameters of a dtype in one multi-tensor launch
            (the same formula as ``rmsprop_update``; results agree with it to rounding). Ignored for NumPy arrays.

    State per parameter (``opt.state[key]``): ``"ms"`` the mean square, ``"mom"`` the momentum buffer
    (a step already multiplied by lr), both shaped like the parameter.

    Shape:
        every state array has the shape, dtype and device of its parameter.
    """

    hyper_names = ("decay", "eps", "momentum", "weight_decay", "eps_inside_sqrt", "ms_init")

    def __init__(self, params, lr=0.045, decay=0.9, eps=1.0, momentum=0.9, weight_decay=0.0,
                 eps_inside_sqrt=True, ms_init=None, weight_decay_filter=None, fused=True):
        super().__init__(params, lr, weight_decay, weight_decay_filter)
        self.decay = real_number("RMSProp", "decay", decay)
        self.eps = real_number("RMSProp", "eps", eps)
        self.momentum = real_number("RMSProp", "momentum", momentum)
        self.eps_inside_sqrt = flag("RMSProp", "eps_inside_sqrt", eps_inside_sqrt)
        self.ms_init = real_number("RMSProp", "ms_init", (1.0 if self.eps_inside_sqrt else 0.0) if ms_init is None
                                   else ms_init)
        self.fused = flag("RMSProp", "fused", fused)
        self.check_hyperparameters()

    def check_hyperparameters(self):
        super().check_hyperparameters()
        for name in ("decay", "eps", "momentum", "ms_init"):
            real_number("RMSProp", name, getattr(self, name))
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"RMSProp: decay must be in [0, 1), got {self.decay}")
        if not self.eps >= 0.0:
            raise ValueError(f"RMSProp: eps must be >= 0, got {self.eps}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"RMSProp: momentum must be in [0, 1), got {self.momentum}")
        if not self.ms_init >= 0.0:
            raise ValueError(f"RMSProp: ms_init must be >= 0, got {self.ms_init}")

    def init_state(self, data):
        xp = get_array_module(data)
        return {"ms": xp.full_like(data, self.ms_init), "mom": xp.zeros_like(data)}

    def update(self, data, grad, state, weight_decay):
        rmsprop_update(data, grad, state["ms"], state["mom"], self.lr, self.decay, self.eps, self.momentum,
                       weight_decay, self.eps_inside_sqrt)

    def update_many(self, batch):
        import cupy
        for dtype, wd, items in multi_tensor.decay_groups(batch):
            rows = [(data, cupy.ascontiguousarray(grad, dtype=dtype), state["ms"], state["mom"])
                    for data, grad, state, _ in items]
            if not multi_tensor.check_rows(rows):
                super().update_many(items)
                continue
            t = dtype.type    # scalars rounded as the array code rounds them: (1 - decay) in float64 first
            scalars = (t(self.lr), t(self.decay), t(1.0 - self.decay), t(self.eps), t(self.momentum), t(wd),
                       np.int32(self.eps_inside_sqrt))
            multi_tensor.RMSPROP(rows, [item[3] for item in items], scalars)


def rmsprop_update(p, g, ms, mom, lr, decay, eps, momentum, weight_decay, eps_inside_sqrt):
    """The readable update on NumPy or CuPy arrays; ``p``, ``ms`` and ``mom`` are changed in place.

    Task: one RMSProp step with momentum in TensorFlow's form, for one parameter ``p`` with gradient ``g``.

    Shape:
        p, g, ms, mom: the same shape and dtype; the rest Python numbers -> None (p, ms, mom changed in place)

    Formula (``g <- g + weight_decay * p`` first, when weight_decay is not 0)::

        ms  <- decay * ms + (1 - decay) * g**2
        mom <- momentum * mom + lr * g / sqrt(ms + eps)       (eps_inside_sqrt; else lr * g / (sqrt(ms) + eps))
        p   <- p - mom

    Hints: change the arrays in place (``ms *= decay``, ``p -= mom``): ``ms = decay * ms`` only rebinds the local
    name and the optimizer never sees the new value. Never change ``g``: make a new array for the decayed one.
    """
    # --- solution: begin ---
    if weight_decay:
        g = g + weight_decay * p
    ms *= decay
    ms += (1.0 - decay) * (g * g)
    if eps_inside_sqrt:
        denom = (ms + eps) ** 0.5
    else:
        denom = ms ** 0.5 + eps
    mom *= momentum
    mom += lr * g / denom
    p -= mom
    # --- solution: end ---
