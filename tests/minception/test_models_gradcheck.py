"""Gradient checks of the whole networks and of the residual blocks, in float64 with central differences.

Whole networks, tiny (width 1/16, one block of each kind, small_input, a 2x3x16x16 input, batch norm in training
mode, dropout off), loss = softmax cross-entropy with fixed labels, in both kernel tiers (``ops.kernels``):
  * ``autograd.gradcheck`` in directional mode, with respect to the input and every parameter at once;
  * one random direction inside each parameter group (each stage: stem, every block, reductions, head);
  * single elements sampled from parameters of every block type (each element is its own direction).
Residual blocks on their own: every element of the input and of the up conv (full check), the rest directional.

Batch norm in training mode normalises with the batch's statistics, so the repeated forwards of a check see one
function even though each forward also updates the running statistics.

ReLU kinks. A ReLU network is piecewise smooth; a finite difference that steps over a kink measures a mix of two
slopes. Perturbing a stem weight moves every unit of the network, so with ~10^5 units some pre-activation lies
within 1e-7 of zero now and then (the tests found one at 5e-8 in a residual sum). Two defences: (1) the up convs'
biases get small random values instead of their initial zeros (see ``away_from_kinks``); (2) our own checks take
the largest step in (1e-6, 1e-7, 1e-8) at which the left and right differences agree, i.e. where the loss is
smooth, and gradcheck runs with eps = 1e-8 (float64 evaluates these losses to ~1e-15, so the differences are still
accurate to ~1e-7, far inside the tolerances). Seeds are fixed; with them every check passes with margin.
"""
import numpy as np
import pytest

import ops
from autograd import Tensor, gradcheck, no_grad
from minception import models, nn
from minception.models import Rules

NETWORKS = {
    "v4": lambda **kw: models.inception_v4(**kw),
    "ir-v1": lambda **kw: models.inception_resnet_v1(**kw),
    "ir-v2-paper": lambda **kw: models.inception_resnet_v2(**kw),
    "ir-v2-released": lambda **kw: models.inception_resnet_v2(variant="released", **kw),
}
LABELS = np.array([1, 3])
BLOCK_TYPES = (models.InceptionV4Stem, models.InceptionResNetV1Stem, models.Mixed5b, models.InceptionA,
               models.InceptionB, models.InceptionC, models.ReductionA, models.ReductionB,
               models.InceptionResNetReductionB, models.InceptionResNetBlock, models.ClassifierHead)


def away_from_kinks(module, seed=0):
    """Give the residual up convs' biases small random values instead of their initial zeros.

    ReLU outputs hold exact zeros. Where a residual block's input ``x`` and all its branch outputs are 0 at a
    position, ``x + s*up(branches)`` is exactly ``s*bias = 0``: the ReLU sits on its kink, and moving the bias
    moves across it, so a central difference in the bias sees half the slope.
    """
    rng = np.random.default_rng(seed)
    for m in module.modules():
        if isinstance(m, models.InceptionResNetBlock):
            shape = m.conv2d.bias.shape
            m.conv2d.bias.data = rng.uniform(0.05, 0.2, shape) * rng.choice([-1.0, 1.0], shape)
    return module


def tiny_network(name, seed=0):
    """Width 1/16, one block of each kind (the released Inception-ResNet-v2: also one scaled Block8 before the
    last, unactivated one), 32x32-style geometry, float64, training mode."""
    nn.init.manual_seed(seed)
    blocks = (1, 1, 2) if name == "ir-v2-released" else (1, 1, 1)
    model = NETWORKS[name](num_classes=5, width=0.0625, blocks=blocks, small_input=True, dropout=0.0)
    return away_from_kinks(model.to(dtype=np.float64).train(), seed)


def check_directional_derivatives(loss_fn, tensors, directions, atol=1e-6, rtol=1e-4):
    """Compare ``<grad, d>`` from one backward with ``(L(t + h d) - L(t - h d)) / 2h`` for each direction.

    ``tensors``: name -> Tensor; ``directions``: list of (label, {name: array}). ``h`` is the largest step in
    (1e-6, 1e-7, 1e-8) at which the left and right differences agree (the loss is smooth at that scale).
    """
    for t in tensors.values():
        t.grad = None
    loss_fn().backward()
    analytic = {name: t.grad for name, t in tensors.items()}
    with no_grad():
        base = float(loss_fn().data)

    def loss_at(step, direction):
        originals = {n: tensors[n].data.copy() for n in direction}
        for n, d in direction.items():
            tensors[n].data[...] = originals[n] + step * d
        with no_grad():
            value = float(loss_fn().data)
        for n, o in originals.items():
            tensors[n].data[...] = o
        return value

    for label, direction in directions:
        predicted = sum(float((analytic[n] * d).sum()) for n, d in direction.items())
        for h in (1e-6, 1e-7, 1e-8):
            plus, minus = loss_at(h, direction), loss_at(-h, direction)
            right, left = (plus - base) / h, (base - minus) / h
            if abs(right - left) <= atol + rtol * abs(right) + 1e-14 / h:      # smooth at this scale
                break
        numeric = (plus - minus) / (2 * h)
        assert abs(numeric - predicted) <= atol + rtol * abs(numeric), \
            f"{label}: numeric {numeric:.10g} (step {h:g}), analytic {predicted:.10g}"


def parameter_groups(model):
    """Each block-type module that is not inside another one (stem, blocks, reductions, head), plus the loose
    layers of the released Inception-ResNet-v2 (its stem convs, conv2d_7b, classif)."""
    groups, covered = [], set()
    for path, m in model.named_modules():
        if path and isinstance(m, BLOCK_TYPES) and not any(path.startswith(c + ".") for c in covered):
            covered.add(path)
            groups.append((path, m.named_parameters(path)))
    grouped = {n for _, named in groups for n, _ in named}
    loose = [(n, p) for n, p in model.named_parameters() if n not in grouped]
    if loose:
        groups.append(("loose layers", loose))
    return groups


def sampled_elements(model, rng):
    """One element from each of a few parameters of every block: its first conv's weight, the gamma of its
    last BatchNorm, and for residual blocks the up conv's weight and bias; plus the classifier's weight and the
    released Inception-ResNet-v2's first conv and conv2d_7b."""
    picks = []
    for path, m in model.named_modules():
        if isinstance(m, BLOCK_TYPES) and not isinstance(m, models.ClassifierHead):
            named = m.named_parameters(path)
            picks.append(next((n, p) for n, p in named if n.endswith("conv.weight")))
            picks.append([(n, p) for n, p in named if n.endswith("bn.weight")][-1])
            if isinstance(m, models.InceptionResNetBlock):
                picks += [(f"{path}.conv2d.weight", m.conv2d.weight), (f"{path}.conv2d.bias", m.conv2d.bias)]
        elif isinstance(m, nn.Linear):
            picks.append((f"{path}.weight", m.weight))
        elif path in ("conv2d_1a", "conv2d_7b"):            # loose layers of the released Inception-ResNet-v2
            picks.append((f"{path}.conv.weight", m.conv.weight))
    directions = []
    for name, p in dict(picks).items():
        e = np.zeros(p.shape)
        index = tuple(int(i) for i in np.unravel_index(rng.integers(p.size), p.shape))
        e[index] = 1.0
        directions.append((f"{name}{list(index)}", {name: e}))
    return directions


# ---------------------------------------------------------------------------------------------- whole networks
@pytest.fixture(params=ops.kernels.TIERS)
def tier(request):
    """Run the test in each kernel tier (``ops.kernels``): the reference kernels and the fast ones."""
    with ops.kernels.use(request.param):
        yield request.param


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_gradients(name, tier):
    model = tiny_network(name)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 16, 16)), requires_grad=True)

    def loss(x):
        return ops.softmax_cross_entropy(model(x), LABELS)

    # 1. the input and every parameter together (autograd.gradcheck, directional mode)
    gradcheck(loss, [x], eps=1e-8, params=model.named_parameters(), mode="directional", n_directions=2)

    # 2. one random direction per parameter group, 3. single elements of every block type
    constant = Tensor(x.data)
    tensors = dict(model.named_parameters())
    rng = np.random.default_rng(1)
    directions = []
    for group, named in parameter_groups(model):
        d = {n: rng.standard_normal(p.shape) for n, p in named}
        norm = np.sqrt(sum(float((v * v).sum()) for v in d.values()))
        directions.append((f"group {group}", {n: v / norm for n, v in d.items()}))
    assert len(directions) >= 7
    directions += sampled_elements(model, rng)
    check_directional_derivatives(lambda: loss(constant), tensors, directions)


# ---------------------------------------------------------------------------------------------- residual blocks
@pytest.mark.parametrize("cls, version", [
    (models.InceptionResNetA, 1), (models.InceptionResNetB, 2), (models.InceptionResNetC, 2),
], ids=["A-v1", "B-v2", "C-v2"])
def test_residual_block_with_scale_0_2(cls, version):
    nn.init.manual_seed(3)
    block = away_from_kinks(cls(4, Rules(0.03125), version=version, scale=0.2).to(dtype=np.float64))
    x = Tensor(np.random.default_rng(3).standard_normal((2, 4, 3, 5)), requires_grad=True)
    # every element of the input and of the up conv (the residual mechanics), then all parameters along
    # random directions
    gradcheck(block, [x], params=[("conv2d.weight", block.conv2d.weight), ("conv2d.bias", block.conv2d.bias)],
              mode="full")
    gradcheck(block, [x], eps=1e-8, params=block.named_parameters(), mode="directional", n_directions=3)


def test_released_last_block_without_relu():
    nn.init.manual_seed(4)
    block = models.InceptionResNetC(4, Rules(0.03125), version=2, scale=1.0, relu=False)
    block = away_from_kinks(block.to(dtype=np.float64))
    x = Tensor(np.random.default_rng(4).standard_normal((2, 4, 3, 4)), requires_grad=True)
    y = block(x)
    assert (y.data < 0).any()                       # no ReLU after the sum
    with no_grad():
        expected = x.data + block.conv2d(block.branches(x)).data
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    gradcheck(block, [x], params=[("conv2d.bias", block.conv2d.bias)], mode="full")
    gradcheck(block, [x], eps=1e-8, params=block.named_parameters(), mode="directional", n_directions=3)
