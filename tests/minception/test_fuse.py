"""``model.fuse()``: the branches' 1x1 head units run as one conv must give what they give one by one (outputs,
every gradient, the running statistics), keep each parameter and state-dict key, name the merged conv after the
convs it stands for, and step aside for hooks, small inputs and other inputs."""
import threading

import numpy as np
import pytest

import ops
from autograd import Tensor, gradcheck, no_grad, trace
from minception import nn
from minception.nn import fusion
from minception.nn import init


class Block(nn.Module):
    """Five branches on one input: three start with a 1x1 unit, one with a pool, one with a 3x3 unit."""

    def __init__(self):
        super().__init__()
        self.branch0 = nn.ConvBNReLU(6, 3, 1)
        self.branch1 = nn.Sequential(nn.ConvBNReLU(6, 2, 1), nn.ConvBNReLU(2, 4, 3, padding=1))
        self.branch2 = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.ConvBNReLU(6, 2, 1))       # head is a pool
        self.branch3 = nn.ConvBNReLU(6, 5, 3, padding=1)                                  # head is 3x3
        self.branch4 = nn.Sequential(nn.ConvBNReLU(6, 4, 1), nn.ConvBNReLU(4, 3, (1, 3), padding=(0, 1)))

    def forward(self, x):
        return [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]


def make_block(fused):
    init.manual_seed(7)
    block = Block().to(dtype=np.float64)
    return block.fuse() if fused else block


def run(fused, x0, gys, training=True):
    block = make_block(fused).train(training)
    x = Tensor(x0.copy(), requires_grad=True)
    outs = block(x)
    loss = sum((o * g).sum() for o, g in zip(outs, gys))
    records = trace(loss, file=None)
    grads = {name: p.grad for name, p in block.named_parameters()}
    return outs, x.grad, grads, block.state_dict(), records


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_merged_heads_equal_the_branches_one_by_one(training):
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 6, 5, 7))
    gys = [rng.standard_normal(s) for s in [(3, 3, 5, 7), (3, 4, 5, 7), (3, 2, 5, 7), (3, 5, 5, 7), (3, 3, 5, 7)]]
    fused = run(True, x0, gys, training)
    plain = run(False, x0, gys, training)
    for a, b in zip(fused[0], plain[0]):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused[1], plain[1], rtol=1e-12, atol=1e-12)
    assert list(fused[2]) == list(plain[2])
    for name in plain[2]:
        np.testing.assert_allclose(fused[2][name], plain[2][name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert list(fused[3]) == list(plain[3])
    for key in plain[3]:                      # running statistics, num_batches_tracked
        np.testing.assert_allclose(fused[3][key], plain[3][key], rtol=1e-12, atol=1e-12, err_msg=key)
    # one conv stands for the three 1x1 heads and is named after them; every batch norm keeps its module path
    names = {(r.name, r.scope) for r in fused[4]}
    assert ("Conv2d", "branch0.conv+branch1.0.conv+branch4.0.conv") in names
    assert {("BatchNormReLU", s) for s in ("branch0.bn", "branch1.0.bn", "branch4.0.bn", "branch1.1.bn")} <= names
    convs = [r for r in fused[4] if r.name == "Conv2d"]
    assert len(convs) == len([r for r in plain[4] if r.name == "Conv2d"]) - 2


def test_unfused_block_runs_one_conv_per_conv_module():
    block = make_block(fused=False)
    outs = block(Tensor(np.random.default_rng(1).standard_normal((3, 6, 5, 7)), requires_grad=True))
    records = trace(sum(o.sum() for o in outs), file=None)
    conv_scopes = sorted(r.scope for r in records if r.name == "Conv2d")
    assert conv_scopes == sorted(path for path, m in block.named_modules() if isinstance(m, nn.Conv2d))


def test_fuse_keeps_the_parameters_and_the_state_dict_keys():
    plain = make_block(fused=False)
    params, keys = plain.parameters(), list(plain.state_dict())
    fused = plain.fuse()
    assert fused is plain
    assert all(a is b for a, b in zip(fused.parameters(), params)) and len(fused.parameters()) == len(params)
    assert list(fused.state_dict()) == keys
    heads = [path for path, m in fused.named_modules() if isinstance(m, nn.FusedHead)]
    assert heads == ["branch0", "branch1.0", "branch4.0"]
    assert "conv merged with branch1.0, branch4.0" in repr(fused.branch0)
    before = fused.modules()
    fused.fuse()                                          # a second fuse() changes nothing
    assert fused.modules() == before
    fused.load_state_dict(make_block(fused=False).state_dict())      # an unfused checkpoint loads as it is


def test_gradcheck_through_the_merged_heads():
    block = make_block(fused=True)
    x = Tensor(np.random.default_rng(1).standard_normal((2, 6, 4, 3)), requires_grad=True)
    assert gradcheck(lambda t: sum((o * o).sum() for o in block(t)), [x],
                     params=block.named_parameters(), mode="directional")


def test_a_unit_with_hooks_is_left_as_it_is():
    block = make_block(fused=False)
    seen = []
    block.branch1[0].bn.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    block.fuse()
    assert type(block.branch1[0]) is nn.ConvBNReLU
    assert isinstance(block.branch0, nn.FusedHead) and isinstance(block.branch4[0], nn.FusedHead)
    with no_grad():
        outs = block(Tensor(np.random.default_rng(2).standard_normal((2, 6, 4, 3))))
    assert seen == [(2, 2, 4, 3)]
    assert [o.shape for o in outs] == [(2, 3, 4, 3), (2, 4, 4, 3), (2, 2, 4, 3), (2, 5, 4, 3), (2, 3, 4, 3)]


def test_a_hook_on_a_fused_head_s_conv_makes_it_run_its_own_conv():
    block = make_block(fused=True)
    seen = []
    block.branch1[0].conv.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    x = Tensor(np.random.default_rng(3).standard_normal((3, 6, 5, 7)), requires_grad=True)
    outs = block(x)
    assert seen == [(3, 2, 5, 7)]
    scopes = {r.scope for r in trace(sum(o.sum() for o in outs), file=None) if r.name == "Conv2d"}
    assert {"branch0.conv+branch4.0.conv", "branch1.0.conv"} <= scopes
    plain = make_block(fused=False)(Tensor(x.data))
    for a, b in zip(outs, plain):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-12)


def test_concat_module_fuses():
    init.manual_seed(8)
    cat = nn.Concat(a=nn.ConvBNReLU(4, 2, 1), b=nn.ConvBNReLU(4, 3, 1), c=nn.MaxPool2d(3, 1, 1))
    x = Tensor(np.random.default_rng(3).standard_normal((2, 4, 5, 5)).astype(np.float32), requires_grad=True)
    plain = cat(x)
    assert not any("+" in r.scope for r in trace(plain, np.ones(plain.shape, np.float32), file=None))
    y = cat.fuse()(x)
    names = [(r.name, r.scope) for r in trace(y, np.ones(y.shape, np.float32), file=None)]
    assert ("Conv2d", "a.conv+b.conv") in names
    np.testing.assert_allclose(y.data, plain.data, rtol=1e-5, atol=1e-6)


def test_small_inputs_run_one_by_one():
    """Below WEIGHT_COPY_RATIO pixels per merged channel the weight copy would cost more than it saves."""
    block = make_block(fused=True)
    x = Tensor(np.random.default_rng(4).standard_normal((1, 6, 2, 3)), requires_grad=True)   # 6 pixels < 4 * 9
    outs = block(x)
    scopes = {r.scope for r in trace(sum(o.sum() for o in outs), file=None)}
    assert not any("+" in s for s in scopes)


def test_heads_called_on_different_inputs_each_get_their_own_conv():
    """A block that feeds its heads different tensors: the group starts over on each new input."""
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.left = nn.ConvBNReLU(3, 4, 1)
            self.right = nn.ConvBNReLU(3, 5, 1)

        def forward(self, x):
            return ops.concat([self.left(x), self.right(x * 2.0), self.left(x * 3.0)], axis=1)

    init.manual_seed(9)
    plain = TwoInputs().to(dtype=np.float64)
    init.manual_seed(9)
    fused = TwoInputs().to(dtype=np.float64).fuse()
    assert isinstance(fused.left, nn.FusedHead)
    x0 = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    y = fused(Tensor(x0, requires_grad=True))
    np.testing.assert_allclose(y.data, plain(Tensor(x0)).data, rtol=1e-12, atol=1e-12)
    convs = [r.scope for r in trace(y.sum(), file=None) if r.name == "Conv2d"]
    assert sorted(convs) == ["left.conv+right.conv", "left.conv+right.conv", "right.conv+left.conv"]


def test_threads_keep_their_own_parts():
    """A thread takes head 0's part of x1, another thread takes every head's part of x2, then the first takes the
    other parts: of x1."""
    block = make_block(fused=True)
    group = block.branch0.group
    rng = np.random.default_rng(7)
    x1, x2 = Tensor(rng.standard_normal((3, 6, 5, 7))), Tensor(rng.standard_normal((3, 6, 5, 7)))
    took_first, go_on, worker = threading.Event(), threading.Event(), {}

    def first():
        worker[0] = group.conv_part(0, x1)
        took_first.set()
        go_on.wait()
        for i in (1, 2):
            worker[i] = group.conv_part(i, x1)

    thread = threading.Thread(target=first)
    thread.start()
    took_first.wait()
    main = [group.conv_part(i, x2) for i in range(3)]
    go_on.set()
    thread.join()
    for i, head in enumerate(group.heads):
        np.testing.assert_allclose(worker[i].data, head.conv(x1).data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(main[i].data, head.conv(x2).data, rtol=1e-12, atol=1e-12)
    assert group._pending == {}


def test_a_chain_is_not_a_group():
    init.manual_seed(10)
    chain = nn.Sequential(nn.ConvBNReLU(4, 4, 1), nn.ConvBNReLU(4, 4, 1)).fuse()
    assert not any(isinstance(m, nn.FusedHead) for m in chain.modules())


def test_a_wrong_input_gets_the_branch_s_own_error():
    block = make_block(fused=True)
    x = Tensor(np.zeros((2, 5, 6, 6)))                   # 5 channels where the units expect 6
    with pytest.raises(ValueError, match="conv2d: x has 5 channels"):
        block(x)


def test_weight_copy_ratio_is_the_switch(monkeypatch):
    monkeypatch.setattr(fusion, "WEIGHT_COPY_RATIO", 10 ** 9)
    block = make_block(fused=True)
    outs = block(Tensor(np.random.default_rng(6).standard_normal((3, 6, 5, 7)), requires_grad=True))
    assert not any("+" in r.scope for r in trace(sum(o.sum() for o in outs), file=None))
