"""``nn.run_branches``: the branches' 1x1 head units run as one conv must give what the branches give one by
one (outputs, every gradient, the running statistics), keep each op's module path, and step aside for hooks."""
from collections import OrderedDict

import numpy as np
import pytest

from autograd import Tensor, gradcheck, no_grad, trace
from minception import nn
from minception.nn import branches as branches_module
from minception.nn import init


def make_branches():
    init.manual_seed(7)
    block = nn.Module()
    block.branch0 = nn.ConvBNReLU(6, 3, 1)
    block.branch1 = nn.Sequential(nn.ConvBNReLU(6, 2, 1), nn.ConvBNReLU(2, 4, 3, padding=1))
    block.branch2 = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.ConvBNReLU(6, 2, 1))       # head is a pool
    block.branch3 = nn.ConvBNReLU(6, 5, 3, padding=1)                                  # head is 3x3
    block.branch4 = nn.Sequential(nn.ConvBNReLU(6, 4, 1), nn.ConvBNReLU(4, 3, (1, 3), padding=(0, 1)))
    block.to(dtype=np.float64)
    return block, [block.branch0, block.branch1, block.branch2, block.branch3, block.branch4]


def run(merge, monkeypatch, x0, gys, training=True):
    monkeypatch.setattr(branches_module, "MERGE_HEADS", merge)
    block, branches = make_branches()
    block.train(training)
    x = Tensor(x0.copy(), requires_grad=True)
    outs = nn.run_branches(x, *branches)
    loss = sum((o * g).sum() for o, g in zip(outs, gys))
    records = trace(loss, file=None)
    grads = {name: p.grad for name, p in block.named_parameters()}
    return outs, x.grad, grads, block.state_dict(), records


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_merged_heads_equal_the_branches_one_by_one(monkeypatch, training):
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 6, 5, 7))
    gys = [rng.standard_normal(s) for s in [(3, 3, 5, 7), (3, 4, 5, 7), (3, 2, 5, 7), (3, 5, 5, 7), (3, 3, 5, 7)]]
    merged = run(True, monkeypatch, x0, gys, training)
    plain = run(False, monkeypatch, x0, gys, training)
    for a, b in zip(merged[0], plain[0]):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged[1], plain[1], rtol=1e-12, atol=1e-12)
    assert merged[2].keys() == plain[2].keys()
    for name in plain[2]:
        np.testing.assert_allclose(merged[2][name], plain[2][name], rtol=1e-10, atol=1e-12, err_msg=name)
    for key in plain[3]:                      # running statistics, num_batches_tracked
        np.testing.assert_allclose(merged[3][key], plain[3][key], rtol=1e-12, atol=1e-12, err_msg=key)
    # one conv stands for the three 1x1 heads; every batch norm keeps its module path
    names = {(r.name, r.scope) for r in merged[4]}
    assert ("Conv2d", "branch0+branch1.0+branch4.0") in names
    assert {("BatchNormReLU", s) for s in ("branch0.bn", "branch1.0.bn", "branch4.0.bn", "branch1.1.bn")} <= names
    convs = [r for r in merged[4] if r.name == "Conv2d"]
    assert len(convs) == len([r for r in plain[4] if r.name == "Conv2d"]) - 2


def test_gradcheck_through_the_merged_heads():
    block, branches = make_branches()
    x = Tensor(np.random.default_rng(1).standard_normal((2, 6, 4, 3)), requires_grad=True)
    assert gradcheck(lambda t: sum((o * o).sum() for o in nn.run_branches(t, *branches)), [x],
                     params=block.named_parameters(), mode="directional")


def test_a_hook_keeps_its_unit_out_of_the_merge():
    block, branches = make_branches()
    x = Tensor(np.random.default_rng(2).standard_normal((2, 6, 4, 3)))
    seen = []
    block.branch1[0].bn.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with no_grad():
        outs = nn.run_branches(x, *branches)
    assert seen == [(2, 2, 4, 3)]
    assert [o.shape for o in outs] == [(2, 3, 4, 3), (2, 4, 4, 3), (2, 2, 4, 3), (2, 5, 4, 3), (2, 3, 4, 3)]


def test_concat_module_uses_it():
    init.manual_seed(8)
    cat = nn.Concat(OrderedDict(a=nn.ConvBNReLU(4, 2, 1), b=nn.ConvBNReLU(4, 3, 1), c=nn.MaxPool2d(3, 1, 1)))
    x = Tensor(np.random.default_rng(3).standard_normal((2, 4, 5, 5)).astype(np.float32), requires_grad=True)
    y = cat(x)
    names = [(r.name, r.scope) for r in trace(y, np.ones(y.shape, np.float32), file=None)]
    assert ("Conv2d", "a+b") in names
    np.testing.assert_allclose(y.data[:, :2], cat.a(x).data, rtol=1e-5, atol=1e-6)


def test_small_inputs_run_one_by_one():
    """Below WEIGHT_COPY_RATIO pixels per merged channel the weight copy would cost more than it saves."""
    block, branches = make_branches()
    x = Tensor(np.random.default_rng(4).standard_normal((1, 6, 2, 3)), requires_grad=True)   # 6 pixels < 4 * 9
    outs = nn.run_branches(x, *branches)
    scopes = {r.scope for r in trace(sum(o.sum() for o in outs), file=None)}
    assert not any("+" in s for s in scopes)


def test_a_wrong_input_gets_the_branch_s_own_error():
    block, branches = make_branches()
    x = Tensor(np.zeros((2, 5, 6, 6)))                   # 5 channels where the units expect 6
    with pytest.raises(ValueError, match="conv2d: x has 5 channels"):
        nn.run_branches(x, *branches)
