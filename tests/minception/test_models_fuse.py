"""The networks as built run the paper's graph, one conv per conv module; ``model.fuse()`` merges the branches'
1x1 heads and must give the same outputs, gradients and training steps (float64, to 1e-10), with the same
parameters and state-dict keys."""
import numpy as np
import pytest

import ops
from autograd import Tensor, trace
from minception import models, nn, optim
from minception.nn import fusion

NETWORKS = {
    "inception_v4": lambda **kw: models.inception_v4(**kw),
    "inception_v4_released": lambda **kw: models.inception_v4(variant="released", **kw),
    "inception_resnet_v1": lambda **kw: models.inception_resnet_v1(**kw),
    "inception_resnet_v2": lambda **kw: models.inception_resnet_v2(**kw),
    "inception_resnet_v2_released": lambda **kw: models.inception_resnet_v2(variant="released", **kw),
}
LABELS = np.array([1, 3])


def tiny(name, seed=0):
    """Width 1/16, one block of each kind (two C blocks for the released IR-v2), small input, float64, training."""
    nn.init.manual_seed(seed)
    blocks = (1, 1, 2) if name == "inception_resnet_v2_released" else (1, 1, 1)
    model = NETWORKS[name](num_classes=5, width=0.0625, blocks=blocks, small_input=True, dropout=0.0)
    return model.to(dtype=np.float64).train()


def forward_backward(model, x0):
    x = Tensor(x0.copy(), requires_grad=True)
    logits = model(x)
    loss = ops.softmax_cross_entropy(logits, LABELS)
    records = trace(loss, file=None)
    return logits.data, x.grad, {n: p.grad for n, p in model.named_parameters()}, records


def conv_modules(model):
    return sorted(path for path, m in model.named_modules() if isinstance(m, nn.Conv2d))


def close(a, b, name, scale=None):
    """Equal to 1e-10 relative, or 1e-10 of ``scale`` (default: the largest value of ``b``) absolute: some
    gradients are exactly 0 in exact arithmetic (a bias whose shift a later batch norm removes) and float noise
    in both models."""
    scale = float(np.abs(b).max()) if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * scale, err_msg=name)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_fused_network_gives_the_same_outputs_and_gradients(name, monkeypatch):
    monkeypatch.setattr(fusion, "WEIGHT_COPY_RATIO", 0)      # merge every group, however small the input
    x0 = np.random.default_rng(1).standard_normal((2, 3, 16, 16))
    plain = tiny(name)
    fused = tiny(name).fuse()
    p_logits, p_xgrad, p_grads, p_records = forward_backward(plain, x0)
    f_logits, f_xgrad, f_grads, f_records = forward_backward(fused, x0)
    close(f_logits, p_logits, "logits")
    close(f_xgrad, p_xgrad, "input gradient")
    assert list(f_grads) == list(p_grads)
    largest = max(float(np.abs(g).max()) for g in p_grads.values())
    for key in p_grads:
        close(f_grads[key], p_grads[key], key, scale=largest)
    p_state, f_state = plain.state_dict(), fused.state_dict()
    assert list(f_state) == list(p_state)
    for key in p_state:
        close(f_state[key], p_state[key], key)
    # as built: one Conv2d Function per Conv2d module, recorded under that module's path
    assert sorted(r.scope for r in p_records if r.name == "Conv2d") == conv_modules(plain)
    # fused: every group of k heads is one conv, named after the k convs it stands for
    groups = {id(m.group): m.group for m in fused.modules() if isinstance(m, nn.FusedHead)}
    assert groups
    f_convs = [r.scope for r in f_records if r.name == "Conv2d"]
    assert len(f_convs) == len(conv_modules(plain)) - sum(len(g.heads) - 1 for g in groups.values())
    assert sum("+" in s for s in f_convs) == len(groups)


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2_released"])
def test_a_training_step_after_fuse_updates_the_original_parameters(name, monkeypatch):
    """The optimizer is built before fuse(): the fused model still trains the very same Parameter objects."""
    monkeypatch.setattr(fusion, "WEIGHT_COPY_RATIO", 0)
    x0 = np.random.default_rng(2).standard_normal((2, 3, 16, 16))
    plain, fused = tiny(name), tiny(name)
    steps = []
    for model in (plain, fused):
        params = model.parameters()
        optimizer = optim.RMSProp(params, lr=0.01)
        if model is fused:
            model.fuse()
            assert all(a is b for a, b in zip(model.parameters(), params))
        for _ in range(2):
            optimizer.zero_grad()
            ops.softmax_cross_entropy(model(Tensor(x0)), LABELS).backward()
            optimizer.step()
        steps.append(model.state_dict())
    for key in steps[0]:         # (block8's up-conv bias: zero in exact arithmetic, ~1e-19 of float noise)
        close(steps[1][key], steps[0][key], key, scale=max(1.0, float(np.abs(steps[0][key]).max())))
    fused.load_state_dict(steps[0])                      # and checkpoints load across


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_a_fresh_scaled_inception_resnet_v2_traces_one_conv_per_conv_module(variant):
    """The training example's configuration (width 1/8, one block of each kind, 32x32 inputs)."""
    nn.init.manual_seed(3)
    blocks = (1, 1, 1) if variant == "paper" else (1, 1, 2)
    model = models.inception_resnet_v2(num_classes=10, width=0.125, blocks=blocks, small_input=True,
                                       variant=variant)
    x = Tensor(np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32))
    records = trace(ops.softmax_cross_entropy(model(x), LABELS), file=None)
    convs = [r.scope for r in records if r.name == "Conv2d"]
    assert sorted(convs) == conv_modules(model)
    assert not any("+" in r.scope for r in records)
