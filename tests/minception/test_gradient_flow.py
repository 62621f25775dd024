"""minception.inspect.gradient_flow: per-layer and per-block gradient norms, tables and the PNG plot."""
from collections import OrderedDict

import numpy as np
import pytest

import ops
from autograd import Tensor
from minception import nn
from minception.inspect import GradientFlow, gradient_flow, plot_gradient_flow


class Reversed(nn.Module):
    """Registers its layers in the opposite order of use: forward order must come from the run, not names."""

    def __init__(self):
        super().__init__()
        self.late = nn.Linear(6, 3)
        self.early = nn.Linear(4, 6)

    def forward(self, x):
        return self.late(ops.relu(self.early(x)))


class NormBlock(nn.Module):
    """Linear, then batch norm over the features (as (N, C, 1, 1)), then ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        h = self.fc(x)
        n, c = h.shape
        return ops.relu(ops.reshape(self.bn(ops.reshape(h, (n, c, 1, 1))), (n, c)))


class Residual(nn.Module):
    def __init__(self, width, gain):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.fc.weight.data *= gain

    def forward(self, x):
        return x + ops.relu(self.fc(x))


class Plain(Residual):
    def forward(self, x):
        return ops.relu(self.fc(x))


def chain(block, depth=10, width=16, gain=0.3, seed=0):
    nn.init.manual_seed(seed)
    layers = OrderedDict([("stem", nn.Linear(8, width))])
    for i in range(depth):
        layers[f"block_{i + 1}"] = block(width, gain)
    layers["head"] = nn.Linear(width, 4)
    model = nn.Sequential(layers)
    for i, p in enumerate(model.parameters()):                      # deterministic weights
        p.data = np.random.default_rng([seed, i]).standard_normal(p.shape).astype(np.float32) * \
            (float(gain / np.sqrt(p.shape[-1])) if p.ndim == 2 else 0.0)
    return model


def batch(n=6, features=8, classes=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, classes, n)


def test_norms_match_a_plain_backward():
    nn.init.manual_seed(0)
    model = nn.Sequential(OrderedDict(block_1=NormBlock(8, 5), block_2=NormBlock(5, 5), head=nn.Linear(5, 4)))
    x, y = batch()
    flow = gradient_flow(model, x, y)
    assert [r.name for r in flow.layers] == ["block_1.fc", "block_2.fc", "head"]
    assert [r.block for r in flow.layers] == ["block_1", "block_2", "head"]
    assert [b.name for b in flow.blocks] == ["block_1", "block_2", "head"]

    # the same forward/backward by hand
    outputs = {}

    def keep(module, args, out):
        out.retain_grad()
        outputs[module] = out

    for name in ("block_1", "block_2"):
        getattr(model, name).register_forward_hook(keep)
    model.zero_grad()
    loss = ops.softmax_cross_entropy(model(Tensor(x)), y)
    loss.backward()
    assert flow.loss == pytest.approx(loss.item(), rel=1e-6)
    for r in flow.layers:
        w = dict(model.named_parameters())[r.name + ".weight"]
        assert r.grad_norm == pytest.approx(np.linalg.norm(w.grad.astype(np.float64)), rel=1e-5)
        assert r.weight_norm == pytest.approx(np.linalg.norm(w.data.astype(np.float64)), rel=1e-6)
        assert r.params == w.size
    for b in flow.blocks[:2]:
        assert b.output_grad_norm == pytest.approx(np.linalg.norm(outputs[getattr(model, b.name)].grad), rel=1e-5)
        assert b.output_shape == (6, 5)
    assert flow.blocks[0].grad_norm == pytest.approx(flow.layers[0].grad_norm)


def test_kind_all_includes_batch_norm_parameters():
    model = nn.Sequential(OrderedDict(block_1=NormBlock(8, 5), head=nn.Linear(5, 4)))
    x, y = batch()
    flow = gradient_flow(model, x, y, kind="all")
    assert [r.name for r in flow.layers] == ["block_1.fc", "block_1.bn", "head"]
    assert flow.layers[0].params == 8 * 5 + 5 and flow.layers[1].params == 10
    assert flow.blocks[0].layers == 2


def test_order_is_the_order_of_the_forward_pass():
    flow = gradient_flow(Reversed(), *batch(features=4, classes=3), block_depth=1)
    assert [r.name for r in flow.layers] == ["early", "late"]
    assert [b.name for b in flow.blocks] == ["early", "late"]


def test_model_is_left_as_it_was():
    model = nn.Sequential(OrderedDict(block_1=NormBlock(8, 5), head=nn.Linear(5, 4)))
    x, y = batch()
    marker = np.full((5, 8), 7.0, dtype=np.float32)
    model.block_1.fc.weight.grad = marker
    before = {n: b.copy() for n, b in model.named_buffers()}
    gradient_flow(model, x, y)
    assert model.block_1.fc.weight.grad is marker
    assert model.head.weight.grad is None
    for n, b in model.named_buffers():
        np.testing.assert_array_equal(b, before[n])
    assert not model.block_1._forward_hooks                          # the watching hooks are gone


def test_residual_connections_carry_gradient_to_early_layers():
    """The paper's mechanism in miniature: with small weights, a plain chain loses the gradient on its way back to
    the input; the identity path of residual blocks carries it."""
    x, y = batch()
    plain = gradient_flow(chain(Plain), x, y, label="plain")
    residual = gradient_flow(chain(Residual), x, y, label="residual")
    assert len(plain.layers) == len(residual.layers) == 12
    out_plain = [b.output_grad_norm for b in plain.blocks]
    out_res = [b.output_grad_norm for b in residual.blocks]
    # plain: the activation gradient shrinks block after block towards the input
    assert out_plain[1] < 1e-3 * out_plain[-2]
    # residual: it never falls below the gradient at the last block (the identity passes it unchanged)
    assert min(out_res[1:-1]) >= 0.99 * out_res[-2]
    # and so the first layer's weights get a gradient in the residual chain, next to none in the plain one
    assert residual.layers[0].grad_norm > 1e4 * plain.layers[0].grad_norm
    assert residual.first_to_last() > 0.1


def test_tables():
    flow = gradient_flow(chain(Residual, depth=2), *batch(), label="tiny")
    text = str(flow)
    assert text.startswith("gradient flow of tiny (loss ")
    block_lines = flow.block_table().splitlines()
    assert block_lines[0].split()[:4] == ["#", "block", "layers", "params"]
    assert [ln.split()[1] for ln in block_lines[2:]] == ["stem", "block_1", "block_2", "head"]
    layer_lines = flow.layer_table().splitlines()
    assert [ln.split()[1] for ln in layer_lines[2:]] == ["stem", "block_1.fc", "block_2.fc", "head"]


def test_plot_writes_a_png(tmp_path):
    x, y = batch()
    flows = {"plain": gradient_flow(chain(Plain, depth=3), x, y), "residual": gradient_flow(chain(Residual, depth=3), x, y)}
    path = tmp_path / "flow.png"
    fig = plot_gradient_flow(flows, path, styles={"plain": {"color": "red"}})
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()] == ["plain", "residual"]
    assert left.get_lines()[0].get_color() == "red"
    assert len(left.get_lines()[1].get_xdata()) == 5 and len(right.get_lines()[1].get_xdata()) == 5
    # one flow alone, via the method
    flows["plain"].plot(tmp_path / "one.png")
    assert (tmp_path / "one.png").exists()


def test_bad_arguments():
    x, y = batch()
    model = chain(Residual, depth=1)
    with pytest.raises(ValueError, match="kind must be"):
        gradient_flow(model, x, y, kind="biases")
    with pytest.raises(ValueError, match="block_depth"):
        gradient_flow(model, x, y, block_depth=0)
    frozen = nn.Linear(8, 4)
    for p in frozen.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="no parameter that requires grad"):
        gradient_flow(frozen, x, y)
    assert isinstance(gradient_flow(model, x, y), GradientFlow)


def test_repr_is_a_summary():
    flow = gradient_flow(chain(Residual, depth=1), *batch(), label="tiny")
    text = repr(flow)
    assert text.startswith("<GradientFlow of tiny: 3 layers, 3 blocks, loss ")
    assert "|dL/d output|" in text


@pytest.mark.gpu
def test_gradient_flow_on_the_gpu():
    x, y = batch()
    cpu = gradient_flow(chain(Residual, depth=2), x, y)
    gpu = gradient_flow(chain(Residual, depth=2).to("cuda"), Tensor(x).to("cuda"), y)
    for a, b in zip(cpu.layers, gpu.layers):
        assert a.name == b.name and b.grad_norm == pytest.approx(a.grad_norm, rel=1e-4)
    for a, b in zip(cpu.blocks, gpu.blocks):
        assert b.output_grad_norm == pytest.approx(a.output_grad_norm, rel=1e-4)
