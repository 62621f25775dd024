"""nn layers: forward against plain NumPy computations, parameter counts and key names, initialisation statistics,
containers, and clear errors for bad arguments."""
from collections import OrderedDict

import numpy as np
import pytest

from autograd import Tensor, gradcheck, no_grad
from autograd.backend import to_device
from minception import nn
from minception.nn import init


def array(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tensor(shape, seed=0, grad=False, dtype=np.float32):
    return Tensor(array(shape, seed, dtype), requires_grad=grad)


# ---------------------------------------------------------------------------- NumPy references
def conv_reference(x, w, b, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.tensordot(patch, w.astype(np.float64), axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]


def pool_reference(x, k, s, p, kind, count_include_pad=False):
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    real = np.pad(np.ones(x.shape[2:]), ((p[0], p[0]), (p[1], p[1])))
    ho, wo = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1, (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            rows, cols = slice(i * s[0], i * s[0] + k[0]), slice(j * s[1], j * s[1] + k[1])
            window = xp[:, :, rows, cols]
            if kind == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                count = k[0] * k[1] if count_include_pad else real[rows, cols].sum()
                out[:, :, i, j] = window.sum(axis=(2, 3)) / count
    return out


# ---------------------------------------------------------------------------- Linear
def test_linear_forward_matches_numpy_and_counts_parameters():
    fc = nn.Linear(5, 3)
    fc.bias.data[...] = [1.0, -2.0, 0.5]
    x = tensor((4, 5))
    np.testing.assert_allclose(fc(x).data, x.data @ fc.weight.data.T + fc.bias.data, rtol=1e-5, atol=1e-6)
    assert fc.weight.shape == (3, 5) and fc.num_parameters() == 18
    assert nn.Linear(5, 3, bias=False).num_parameters() == 15
    assert fc.weight.dtype == np.float32 and np.all(nn.Linear(5, 3).bias.data == 0)


# ---------------------------------------------------------------------------- Conv2d
@pytest.mark.parametrize("kernel,stride,padding,bias", [
    (3, 1, 0, True),
    ((1, 3), 2, 1, True),            # non-square kernel, stride and padding
    ((3, 1), (2, 1), (1, 0), False),
    ((1, 7), 1, "same", True),       # "same": (k-1)//2 on each side -> (0, 3)
    (2, 2, "valid", True),
])
def test_conv2d_forward_matches_numpy(kernel, stride, padding, bias):
    conv = nn.Conv2d(3, 4, kernel, stride=stride, padding=padding, bias=bias)
    if bias:
        conv.bias.data[...] = array(4, seed=5)
    x = tensor((2, 3, 7, 6), seed=1)
    y = conv(x)
    expected = conv_reference(x.data, conv.weight.data, conv.bias.data if bias else None, conv.stride, conv.padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-5)


def test_conv2d_resolves_its_arguments_and_counts_parameters():
    conv = nn.Conv2d(3, 8, (1, 7), stride=2, padding="same")
    assert conv.kernel_size == (1, 7) and conv.stride == (2, 2) and conv.padding == (0, 3)
    assert conv.weight.shape == (8, 3, 1, 7)
    assert conv.num_parameters() == 8 * 3 * 7 + 8
    assert nn.Conv2d(3, 8, 3, bias=False).num_parameters() == 8 * 3 * 9
    assert repr(conv) == "Conv2d(3, 8, kernel_size=(1, 7), stride=(2, 2), padding=(0, 3), bias=True)"


@pytest.mark.parametrize("make,error,pattern", [
    (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels must be a positive integer"),
    (lambda: nn.Conv2d(3, 4, 0), ValueError, "kernel_size must be positive"),
    (lambda: nn.Conv2d(3, 4, 2.5), TypeError, "kernel_size"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, "stride must be positive"),
    (lambda: nn.Conv2d(3, 4, 2, padding="same"), ValueError, "odd kernel"),
    (lambda: nn.Linear(3, -1), ValueError, "out_features must be a positive integer"),
    (lambda: nn.BatchNorm2d(4, eps=0), ValueError, "eps must be positive"),
    (lambda: nn.Dropout(1.0), ValueError, r"p must be a number in \[0, 1\)"),
    (lambda: nn.Dropout(0.5, seed=-1), ValueError, "seed"),
    (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be positive"),
])
def test_bad_layer_arguments_give_clear_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_conv2d_channel_mismatch_is_reported_by_the_op():
    with pytest.raises(ValueError, match="conv2d"):
        nn.Conv2d(3, 4, 3)(tensor((1, 2, 5, 5)))


# ---------------------------------------------------------------------------- initialisation
def test_he_initialisation_statistics_on_big_layers():
    init.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)                     # fan_in 576, 73,728 weights
    w = conv.weight.data.astype(np.float64)
    assert abs(w.std() / np.sqrt(2 / 576) - 1) < 0.02
    assert abs(w.mean()) < 0.02 * np.sqrt(2 / 576)
    assert np.all(conv.bias.data == 0)
    fc = nn.Linear(1024, 512)
    assert abs(fc.weight.data.std() / np.sqrt(2 / 1024) - 1) < 0.02


def test_he_initialisation_preserves_the_second_moment_through_relu_layers():
    # the reason for sqrt(2/fan_in): after 10 linear+ReLU layers the signal neither explodes nor vanishes
    init.manual_seed(1)
    x = Tensor(np.random.default_rng(100).standard_normal((512, 256)).astype(np.float32))
    net = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(256, 256), nn.ReLU())])
    with no_grad():
        y = net(x).data
    mean_square = float((y.astype(np.float64) ** 2).mean())
    # layer 1: Var[z] = fan_in * (2/fan_in) * E[x^2] = 2, so E[relu(z)^2] = Var[z]/2 = 1; every later layer keeps it
    assert 0.7 < mean_square < 1.4


def test_init_functions():
    assert init.compute_fans((8, 3, 1, 7)) == (21, 56)
    assert init.compute_fans((10, 20)) == (20, 10)
    with pytest.raises(ValueError, match="at least 2 axes"):
        init.compute_fans((5,))
    w = np.empty((400, 500), np.float32)
    rng = np.random.default_rng(0)
    for distribution in ("normal", "truncated_normal", "uniform"):
        init.variance_scaling_(w, 2.0, "fan_in", distribution, rng=rng)
        assert abs(w.std() / np.sqrt(2 / 500) - 1) < 0.02, distribution
    assert np.abs(w).max() <= np.sqrt(3 * 2 / 500) * (1 + 1e-6)
    init.variance_scaling_(w, 2.0, "fan_in", "truncated_normal", rng=rng)
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 500) / 0.8796 * (1 + 1e-6)
    init.glorot_uniform_(w, rng=rng)
    assert abs(w.std() / np.sqrt(2 / 900) - 1) < 0.02
    t = Tensor(np.zeros((3, 4)))
    assert init.ones_(t) is t and np.all(t.data == 1)
    with pytest.raises(ValueError, match="mode"):
        init.variance_scaling_(w, mode="fan_max")
    init.manual_seed(7)
    a = nn.Linear(3, 3).weight.data.copy()
    init.manual_seed(7)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.data, a)


# ---------------------------------------------------------------------------- BatchNorm2d
def test_batchnorm2d_parameters_buffers_and_defaults():
    bn = nn.BatchNorm2d(5)
    assert bn.eps == 1e-3 and bn.momentum == 0.1
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert np.all(bn.weight.data == 1) and np.all(bn.bias.data == 0)
    assert np.all(bn.running_mean == 0) and np.all(bn.running_var == 1)
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == np.int64
    assert bn.num_parameters() == 10


def test_batchnorm2d_training_and_eval_match_numpy():
    bn = nn.BatchNorm2d(3, eps=1e-3, momentum=0.1)
    bn.weight.data[...] = [1.0, 2.0, 0.5]
    bn.bias.data[...] = [0.0, -1.0, 3.0]
    x = tensor((4, 3, 5, 3), seed=2)
    x.data[...] = x.data * 2 + 1
    xd = x.data.astype(np.float64)
    mean, var = xd.mean(axis=(0, 2, 3)), xd.var(axis=(0, 2, 3))
    gamma, beta = bn.weight.data[None, :, None, None], bn.bias.data[None, :, None, None]
    expected = (xd - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3) * gamma + beta
    np.testing.assert_allclose(bn(x).data, expected, rtol=1e-4, atol=1e-4)
    m = xd.size / 3
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var * m / (m - 1), rtol=1e-4)   # unbiased variance
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    running_mean, running_var = bn.running_mean.copy(), bn.running_var.copy()
    expected = ((xd - running_mean[None, :, None, None]) / np.sqrt(running_var[None, :, None, None] + 1e-3)
                * gamma + beta)
    np.testing.assert_allclose(bn(x).data, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(bn.running_mean, running_mean)      # untouched in eval mode
    assert int(bn.num_batches_tracked) == 1


# ---------------------------------------------------------------------------- pooling, activation, dropout
@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 1)), (2, None, 0)])
def test_pooling_layers_match_numpy(kernel, stride, padding):
    x = tensor((2, 3, 7, 8), seed=3)
    maxpool = nn.MaxPool2d(kernel, stride, padding)
    k, s, p = maxpool.kernel_size, maxpool.stride, maxpool.padding
    assert s == (k if stride is None else s)
    np.testing.assert_allclose(maxpool(x).data, pool_reference(x.data, k, s, p, "max"), rtol=1e-6)
    for include in (False, True):
        avgpool = nn.AvgPool2d(kernel, stride, padding, count_include_pad=include)
        np.testing.assert_allclose(avgpool(x).data, pool_reference(x.data, k, s, p, "avg", include),
                                   rtol=1e-5, atol=1e-6)


def test_global_avg_pool_relu_flatten():
    x = tensor((2, 3, 4, 5), seed=4)
    np.testing.assert_allclose(nn.GlobalAvgPool2d()(x).data, x.data.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(nn.ReLU()(x).data, np.maximum(x.data, 0))
    assert nn.Flatten()(x).shape == (2, 60)
    np.testing.assert_array_equal(nn.Flatten()(x).data, x.data.reshape(2, 60))


def test_dropout_in_training_and_eval():
    drop = nn.Dropout(0.25, seed=0)
    x = Tensor(np.ones((200, 100), np.float32))
    y = drop(x).data
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert drop.eval()(x) is x
    assert repr(drop) == "Dropout(p=0.25)"


def test_dropout_masks_come_from_its_state_dict():
    """Mask k of a layer is drawn from default_rng([seed, k]); (seed, k) is the buffer rng_state, so loading a
    state dict continues the stream where it was saved (this is what makes a resumed run exact)."""
    x = Tensor(np.ones((6, 50), np.float32))
    a = nn.Dropout(0.5, seed=11)
    first = a(x).data
    keep = np.random.default_rng([11, 0]).random((6, 50)) >= 0.5
    np.testing.assert_array_equal(first != 0, keep)
    saved = a.state_dict()
    np.testing.assert_array_equal(saved["rng_state"], [11, 1])
    second = a(x).data
    b = nn.Dropout(0.5, seed=99)
    b.load_state_dict(saved)
    np.testing.assert_array_equal(b(x).data, second)
    assert not np.array_equal(first, second)
    a.eval()
    a(x)
    np.testing.assert_array_equal(a.rng_state, [11, 2])         # evaluation draws nothing


def test_dropout_seeds_follow_manual_seed_without_changing_weights():
    nn.init.manual_seed(5)
    net1 = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    nn.init.manual_seed(5)
    net2 = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    nn.init.manual_seed(5)
    plain = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    np.testing.assert_array_equal(net1[1].rng_state, net2[1].rng_state)
    np.testing.assert_array_equal(net1[2].weight.data, plain[1].weight.data)   # the layer took no weight draws
    nn.init.manual_seed(6)
    assert nn.Dropout(0.5).rng_state[0] != net1[1].rng_state[0]


# ---------------------------------------------------------------------------- containers
def test_sequential_names_indexing_and_append():
    a, b, c = nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)
    seq = nn.Sequential(a, b, c)
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [b, c]
    x = tensor((3, 4))
    np.testing.assert_allclose(seq(x).data, c(b(a(x))).data)
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_children()] == ["fc", "act"]
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    seq.append(nn.ReLU())
    assert [n for n, _ in seq.named_children()][-1] == "3"
    with pytest.raises(TypeError, match="Sequential: every entry must be a Module, got function"):
        nn.Sequential(lambda x: x)


def test_concat_runs_branches_on_the_same_input_and_joins_channels():
    left = nn.ConvBNReLU(3, 4, 1)
    right = nn.Sequential(nn.ConvBNReLU(3, 2, 1), nn.ConvBNReLU(2, 5, 3, padding=1))
    pool = nn.MaxPool2d(3, 1, 1)
    block = nn.Concat(left, right, pool)
    assert [n for n, _ in block.named_children()] == ["branch_0", "branch_1", "branch_2"]
    x = tensor((2, 3, 6, 5), seed=6)
    y = block(x)
    assert y.shape == (2, 4 + 5 + 3, 6, 5)
    np.testing.assert_array_equal(y.data[:, :4], left(x).data)
    np.testing.assert_array_equal(y.data[:, 4:9], right(x).data)
    np.testing.assert_array_equal(y.data[:, 9:], pool(x).data)
    assert "branch_1.1.bn.running_var" in block.state_dict()
    named = nn.Concat(OrderedDict(a=nn.ReLU(), b=nn.ReLU()))
    assert [n for n, _ in named.named_children()] == ["a", "b"]
    assert [n for n, _ in nn.Concat(left=nn.ReLU(), right=nn.ReLU()).named_children()] == ["left", "right"]
    with pytest.raises(ValueError, match="concat"):
        nn.Concat(nn.MaxPool2d(3, 1, 1), nn.MaxPool2d(3, 2))(x)       # spatial sizes differ


def test_conv_bn_relu_key_names_and_forward():
    unit = nn.ConvBNReLU(3, 6, (1, 3), stride=(1, 2), padding=(0, 1))
    assert list(unit.state_dict()) == ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                       "bn.running_var", "bn.num_batches_tracked"]
    assert unit.conv.bias is None and unit.bn.eps == 1e-3
    assert unit.num_parameters() == 6 * 3 * 3 + 2 * 6
    x = tensor((2, 3, 5, 7), seed=7)
    expected = np.maximum(unit.bn(unit.conv(x)).data, 0)
    unit.eval()
    y = unit(x)
    with no_grad():
        np.testing.assert_allclose(y.data, np.maximum(unit.bn(unit.conv(x)).data, 0), rtol=1e-6)
    unit.train()
    np.testing.assert_allclose(unit(x).data, expected, rtol=1e-5, atol=1e-6)
    assert (y.data >= 0).all()


def test_conv_bn_relu_fused_and_unfused_agree():
    """``fuse_relu=True`` (the default: ReLU inside the batch-norm op) and ``False`` (two ops): same outputs,
    input and parameter gradients and running statistics; the graph has a BatchNormReLU node or BN + ReLU."""
    from autograd import trace
    init.manual_seed(5)
    fused = nn.ConvBNReLU(3, 6, 3, stride=2, padding=1)
    split = nn.ConvBNReLU(3, 6, 3, stride=2, padding=1, fuse_relu=False)
    split.load_state_dict(fused.state_dict())
    x0 = tensor((4, 3, 9, 7), seed=9).data
    gy = np.random.default_rng(10).standard_normal((4, 6, 5, 4)).astype(np.float32)
    results = []
    for unit in (fused, split):
        x = Tensor(x0.copy(), requires_grad=True)
        y = unit(x)
        records = trace(y, gy, file=None)              # runs the backward pass, recording each op
        results.append(([r.name for r in records][::-1], y.data, x.grad, unit.conv.weight.grad, unit.bn.weight.grad,
                         unit.bn.bias.grad, unit.bn.running_mean, unit.bn.running_var))
    assert results[0][0] == ["Conv2d", "BatchNormReLU"] and results[1][0] == ["Conv2d", "BatchNorm", "ReLU"]
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_a_small_float64_network():
    init.manual_seed(3)
    net = nn.Sequential(nn.ConvBNReLU(2, 3, 3, stride=2, padding=1), nn.AvgPool2d(2, 1),
                        nn.Concat(nn.Conv2d(3, 2, 1), nn.MaxPool2d(3, 1, 1)), nn.GlobalAvgPool2d(), nn.Linear(5, 3))
    net.to(dtype=np.float64)
    x = tensor((3, 2, 7, 5), seed=8, grad=True, dtype=np.float64)
    assert gradcheck(lambda x: net(x), [x], params=net.named_parameters(), atol=1e-6, rtol=1e-4)


@pytest.mark.gpu
def test_a_small_network_gives_the_same_outputs_and_gradients_on_the_gpu():
    init.manual_seed(4)
    net = nn.Sequential(nn.ConvBNReLU(3, 4, 3, stride=2, padding=1), nn.Concat(nn.ConvBNReLU(4, 2, 1),
                        nn.AvgPool2d(3, 1, 1)), nn.MaxPool2d(2), nn.GlobalAvgPool2d(), nn.Dropout(0.0),
                        nn.Linear(6, 3))
    x = array((2, 3, 9, 8), seed=9)
    y_cpu = net(Tensor(x))
    y_cpu.sum().backward()
    grads = {n: p.grad.copy() for n, p in net.named_parameters()}
    running = net[0].bn.running_mean.copy()
    net.zero_grad()
    net[0].bn.running_mean[...] = 0
    net[0].bn.running_var[...] = 1
    net[1].branch_0.bn.running_mean[...] = 0
    net[1].branch_0.bn.running_var[...] = 1
    net.to("cuda")
    y_gpu = net(Tensor(to_device(x, "cuda")))  # an array moved by the backend (no graph needed)
    y_gpu.sum().backward()
    np.testing.assert_allclose(y_gpu.numpy(), y_cpu.data, rtol=1e-4, atol=1e-5)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad.get(), grads[name], rtol=1e-3, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(net[0].bn.running_mean.get(), running, rtol=1e-4, atol=1e-6)
    assert "Total params: 149" in net.summary((1, 3, 9, 8), print_fn=None)
