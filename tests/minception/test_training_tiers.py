"""A few training steps of each of the four networks give the same numbers in both kernel tiers (``ops.kernels``):
the loss of every step (relative tolerance), and afterwards every parameter and every batch-norm running statistic
(relative to the largest value in the model's state), to 1e-10 in float64 and 1e-5 in float32.

The networks are tiny (width 1/16, one block of each kind, small_input, 16x16 images, batch 4) and train with the
training example's optimizer: RMSProp (decay 0.9, eps 1.0, momentum 0.9, weight decay), label smoothing, batch
norm in training mode; only the learning rate is smaller. Why: float32 rounding alone puts the stem's gradients
about 1e-4 (relative) from the float64 values, in either tier; after a large step that can tip a max-pool window
whose two largest values are nearly equal, or a ReLU input near 0, to the other side in one tier and not in the
other, and from then on the two runs follow different (equally right) paths. With steps 40 times smaller the runs
stay together, and a real difference between the tiers (any op computing something else) still shows at once.

Some values are rounding noise in both tiers, e.g. the bias of a conv followed (through a 1x1 conv) by batch norm,
whose gradient is 0 in exact arithmetic; comparing against the largest value of the whole state treats them so.
"""
import numpy as np
import pytest

import ops
from autograd import Tensor
from minception import models, nn, optim

NETWORKS = {
    "v4": lambda **kw: models.inception_v4(**kw),
    "ir-v1": lambda **kw: models.inception_resnet_v1(**kw),
    "ir-v2-paper": lambda **kw: models.inception_resnet_v2(**kw),
    "ir-v2-released": lambda **kw: models.inception_resnet_v2(variant="released", **kw),
}
TOL = {np.float64: 1e-10, np.float32: 1e-5}
STEPS = 3
LR = 0.0005


def train(name, dtype, tier):
    """``STEPS`` training steps in ``tier``: the losses, the model's state (parameters and buffers) afterwards, and
    the largest change of a parameter."""
    nn.init.manual_seed(0)
    model = NETWORKS[name](num_classes=5, width=0.0625, blocks=(1, 1, 1), small_input=True, dropout=0.0)
    model = model.to(dtype=dtype).train()
    initial = {n: p.data.copy() for n, p in model.named_parameters()}
    opt = optim.RMSProp(model.named_parameters(), lr=LR, decay=0.9, eps=1.0, momentum=0.9, weight_decay=4e-5)
    rng = np.random.default_rng(1)
    losses = []
    with ops.kernels.use(tier):
        for _ in range(STEPS):
            x = Tensor(rng.standard_normal((4, 3, 16, 16)).astype(dtype))
            labels = rng.integers(0, 5, 4)
            loss = ops.softmax_cross_entropy(model(x), labels, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    moved = max(float(np.abs(p.data - initial[n]).max()) for n, p in model.named_parameters())
    return losses, model.state_dict(), moved


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_training_steps_agree_in_both_tiers(name, dtype):
    ref_losses, ref_state, moved = train(name, dtype, "reference")
    fast_losses, fast_state, _ = train(name, dtype, "fast")
    np.testing.assert_allclose(fast_losses, ref_losses, rtol=TOL[dtype], atol=0)
    assert fast_state.keys() == ref_state.keys()
    numeric = {k: v for k, v in ref_state.items() if not k.endswith("rng_state")}   # dropout's seed is no number
    scale = max(float(np.abs(np.asarray(v)).max()) for v in numeric.values())
    assert moved > 10 * TOL[np.float32] * scale          # the steps moved the parameters far more than the tolerance
    for key in ref_state.keys() - numeric.keys():
        np.testing.assert_array_equal(np.asarray(fast_state[key]), np.asarray(ref_state[key]), err_msg=key)
    for key, expected in numeric.items():
        np.testing.assert_allclose(np.asarray(fast_state[key]), np.asarray(expected), rtol=TOL[dtype],
                                   atol=TOL[dtype] * scale, err_msg=key)
