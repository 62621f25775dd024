"""nn.Module: registration and dotted names, shared parameters, modes, devices, gradients, the state dict and its
.npz round trip, strict loading errors, name scopes and module hooks. Built from Linear/ReLU only (no conv)."""
import numpy as np
import pytest

import ops
from autograd import Tensor, no_grad
from autograd.backend import to_device
from minception import nn


class Block(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.scale = nn.Parameter(np.full(n_out, 2.0, np.float32))
        self.register_buffer("calls", np.zeros((), np.int64))

    def forward(self, x):
        if self.training:
            self.calls += 1
        return ops.relu(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Block(4, 6)
        self.body = nn.Sequential(Block(6, 6), nn.Dropout(0.5), Block(6, 5))
        self.head = nn.Linear(5, 3, bias=False)

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def tensor(shape, seed=0, grad=False, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=grad)


# ---------------------------------------------------------------------------- registration and walking
def test_registration_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    # pre-order over modules, each module's own parameters before its children's (PyTorch's order)
    assert names == ["stem.scale", "stem.fc.weight", "stem.fc.bias",
                     "body.0.scale", "body.0.fc.weight", "body.0.fc.bias",
                     "body.2.scale", "body.2.fc.weight", "body.2.fc.bias", "head.weight"]
    assert [n for n, _ in net.named_buffers()] == ["stem.calls", "body.0.calls", "body.1.rng_state", "body.2.calls"]
    assert [n for n, _ in net.named_children()] == ["stem", "body", "head"]
    modules = net.named_modules()
    assert modules[0] == ("", net)
    assert [n for n, _ in modules] == ["", "stem", "stem.fc", "body", "body.0", "body.0.fc", "body.1", "body.2",
                                       "body.2.fc", "head"]
    assert net.get_submodule("body.2.fc") is net.body[2].fc
    assert net.parameters()[1] is net.stem.fc.weight
    assert "bias" in net.head._parameters and net.head.bias is None       # bias=False: registered as None
    assert net.num_parameters() == (4 * 6 + 6 + 6) + (6 * 6 + 6 + 6) + (6 * 5 + 5 + 5) + 5 * 3


def test_reassigning_and_deleting_attributes_updates_the_registries():
    net = Net()
    net.head = nn.Linear(5, 7)                 # replace a submodule
    assert net.head.out_features == 7 and net.num_parameters() > 0
    assert [n for n, _ in net.named_parameters()][-2:] == ["head.weight", "head.bias"]
    net.stem.scale = None                      # a parameter slot may be emptied
    assert "stem.scale" not in dict(net.named_parameters())
    with pytest.raises(TypeError, match="nn.Parameter"):
        net.stem.fc.weight = np.zeros((6, 4))  # a plain array is not a parameter
    del net.head
    assert "head" not in dict(net.named_children())
    net.stem.calls = np.full((), 7, np.int64)  # assigning to a buffer name replaces the buffer
    assert int(dict(net.named_buffers())["stem.calls"]) == 7


def test_assignment_before_init_gives_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_shared_parameters_and_modules_are_counted_once():
    shared = nn.Linear(3, 3)
    other = nn.Linear(3, 3)
    other.weight = shared.weight                       # tied weight
    net = nn.Sequential(shared, nn.ReLU(), shared, other)   # the same module twice
    params = net.parameters()
    assert len(params) == 3                            # shared.weight, shared.bias, other.bias
    assert len({id(p) for p in params}) == 3
    assert net.num_parameters() == 9 + 3 + 3
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "3.bias"]
    # the state dict has every name (a checkpoint then loads under any of them), as in PyTorch
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    assert net.modules().count(shared) == 1


def test_num_parameters_and_freezing():
    net = Net()
    total = net.num_parameters()
    net.stem.requires_grad_(False)
    frozen = 4 * 6 + 6 + 6
    assert net.num_parameters() == total - frozen
    assert net.num_parameters(trainable_only=False) == total


def test_train_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    x = tensor((8, 4))
    net.eval()
    with no_grad():
        a, b = net(x).data, net(x).data
    np.testing.assert_array_equal(a, b)                # dropout off in eval mode
    assert int(net.stem.calls) == 0                    # the eval branch of forward ran


def test_apply_visits_children_first():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 4


def test_zero_grad_sets_every_grad_to_none():
    net = Net()
    net(tensor((2, 4))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_prints_the_tree():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert text == ("Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)")


# ---------------------------------------------------------------------------- devices and dtypes
def test_to_cpu_is_a_no_op_that_keeps_identities():
    net = Net()
    params = net.parameters()
    arrays = [p.data for p in params]
    assert net.to("cpu") is net
    assert all(p is q and p.data is a for p, q, a in zip(net.parameters(), params, arrays))
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


def test_to_dtype_casts_floating_parameters_and_buffers_only():
    net = nn.Sequential(nn.Linear(3, 2))
    net.add_module("extra", Block(2, 2))
    p = net[0].weight
    net.to(dtype=np.float64)
    assert net[0].weight is p and p.dtype == np.float64
    assert net.extra.calls.dtype == np.int64
    assert net(tensor((2, 3), dtype=np.float64)).dtype == np.float64


@pytest.mark.gpu
def test_to_cuda_moves_parameters_buffers_and_grads_and_back():
    net = Net()
    x = tensor((2, 4))
    expected = net.eval()(x).data
    net(x).sum().backward()
    weight = net.stem.fc.weight
    net.to("cuda")
    assert net.stem.fc.weight is weight and weight.device == "cuda" and type(weight.grad).__module__.startswith("cupy")
    assert all(type(b).__module__.startswith("cupy") for b in net.buffers())
    y = net(Tensor(to_device(x.data, "cuda")))
    assert y.device == "cuda"
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    state = net.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    net.load_state_dict(state)
    net.to("cpu")
    assert weight.device == "cpu" and isinstance(net.stem.calls, np.ndarray)


# ---------------------------------------------------------------------------- state dict
def test_state_dict_holds_numpy_copies():
    net = Net()
    state = net.state_dict()
    assert list(state)[:4] == ["stem.scale", "stem.calls", "stem.fc.weight", "stem.fc.bias"]
    assert state["stem.calls"].shape == () and state["stem.calls"].dtype == np.int64
    state["stem.fc.weight"][...] = 0
    assert np.abs(net.stem.fc.weight.data).sum() > 0   # a copy, not a view


def test_state_dict_round_trip_through_npz(tmp_path):
    src, dst = Net(), Net()
    src.stem.calls[...] = 5
    dst_weight = dst.stem.fc.weight
    path = src.save(tmp_path / "net")
    assert path.endswith(".npz")
    result = dst.load(path)
    assert result.missing == [] and result.unexpected == []
    for (name, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert dst.stem.fc.weight is dst_weight            # loaded in place: optimizers keep the right objects
    assert int(dst.stem.calls) == 5
    x = tensor((3, 4))
    np.testing.assert_array_equal(src.eval()(x).data, dst.eval()(x).data)
    # the functional helpers do the same
    nn.save_state(src, tmp_path / "again.npz")
    assert nn.load_state(Net(), tmp_path / "again.npz") == ([], [])


def test_non_persistent_buffers_move_but_are_not_saved():
    block = Block(2, 2)
    block.register_buffer("cache", np.ones(3, np.float32), persistent=False)
    assert "cache" not in block.state_dict() and "calls" in block.state_dict()
    assert [n for n, _ in block.named_buffers()] == ["calls", "cache"]
    block.to(dtype=np.float64)
    assert block.cache.dtype == np.float64


def test_load_keeps_the_models_dtype():
    net = Net()
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in Net().state_dict().items()}
    net.load_state_dict(state)
    assert net.stem.fc.weight.dtype == np.float32
    np.testing.assert_allclose(net.stem.fc.weight.data, state["stem.fc.weight"], rtol=1e-6)


def test_strict_load_lists_missing_unexpected_and_misshaped_keys():
    net = Net()
    before = net.state_dict()
    state = Net().state_dict()
    del state["stem.scale"]
    state["stem.extra"] = np.zeros(3)
    state["head.weight"] = np.zeros((4, 5))
    with pytest.raises(KeyError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys (1): stem.scale" in message
    assert "unexpected keys (1): stem.extra" in message
    assert "mis-shaped keys (1): head.weight: checkpoint (4, 5) vs model (3, 5)" in message
    assert isinstance(info.value, ValueError)          # catchable as either
    # nothing was copied by the failed load
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_non_strict_load_returns_missing_and_unexpected():
    net = Net()
    state = Net().state_dict()
    del state["head.weight"]
    state["old.key"] = np.ones(2)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["head.weight"] and unexpected == ["old.key"]
    np.testing.assert_array_equal(net.stem.fc.weight.data, state["stem.fc.weight"])
    state["stem.scale"] = np.ones(7)                   # a mis-shaped key is an error even when not strict
    with pytest.raises(ValueError, match=r"stem.scale: checkpoint \(7,\) vs model \(6,\)"):
        net.load_state_dict(state, strict=False)


# ---------------------------------------------------------------------------- name scopes
def _functions(y):
    found, stack = [], [y.creator]
    while stack:
        fn = stack.pop()
        if fn is None or fn in found:
            continue
        found.append(fn)
        stack.extend(e[0] for e in fn.next_edges if isinstance(e, tuple))
    return found


def test_call_pushes_the_attribute_name_so_functions_record_their_module_path():
    net = Net()
    y = net(tensor((2, 4), grad=True))
    scopes = {(fn.name, fn.scope) for fn in _functions(y)}
    assert ("Linear", ("head",)) in scopes
    assert ("Linear", ("body", "2", "fc")) in scopes
    assert ("Mul", ("stem",)) in scopes              # ops in a module's own forward carry its path
    assert all(fn.scope[0] in ("stem", "body", "head") for fn in _functions(y))   # the root pushes nothing
    from autograd import config
    assert config.state.scope == ()


def test_scope_is_restored_when_forward_raises():
    from autograd import config
    net = Net()
    with pytest.raises(ValueError):
        net(tensor((2, 5)))                            # wrong in_features
    assert config.state.scope == ()


# ---------------------------------------------------------------------------- hooks
def test_forward_pre_hook_and_forward_hook_fire_can_replace_and_are_removable():
    fc = nn.Linear(3, 2)
    calls = []
    h1 = fc.register_forward_pre_hook(lambda m, args: calls.append(("pre", m, args[0].shape)))
    h2 = fc.register_forward_hook(lambda m, args, out: calls.append(("post", args[0].shape, out.shape)))
    x = tensor((4, 3))
    fc(x)
    assert calls == [("pre", fc, (4, 3)), ("post", (4, 3), (4, 2))]
    h1.remove()
    h2.remove()
    fc(x)
    assert len(calls) == 2
    with fc.register_forward_pre_hook(lambda m, args: (args[0] * 0,)):     # replaces the input
        np.testing.assert_array_equal(fc(x).data, np.broadcast_to(fc.bias.data, (4, 2)))
    with fc.register_forward_hook(lambda m, args, out: out * 2):            # replaces the output
        np.testing.assert_allclose(fc(x).data, 2 * (x.data @ fc.weight.data.T + fc.bias.data), rtol=1e-6)
    np.testing.assert_allclose(fc(x).data, x.data @ fc.weight.data.T + fc.bias.data, rtol=1e-6)


def test_full_backward_hook_sees_the_modules_own_grad_input_and_grad_output():
    fc = nn.Linear(3, 3)
    seen = []
    handle = fc.register_full_backward_hook(lambda m, gin, gout: seen.append((m, gin, gout)))
    x = tensor((4, 3), seed=1, grad=True)
    y = fc(x) + x                                        # x is also used outside the module (a residual)
    gy = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    y.backward(gy)
    assert len(seen) == 1
    module, grad_input, grad_output = seen[0]
    assert module is fc and len(grad_input) == 1 and len(grad_output) == 1
    np.testing.assert_allclose(grad_output[0], gy)
    np.testing.assert_allclose(grad_input[0], gy @ fc.weight.data, rtol=1e-5)   # the module's share only
    np.testing.assert_allclose(x.grad, gy @ fc.weight.data + gy, rtol=1e-5)       # the total is unchanged
    handle.remove()
    x.grad = None
    (fc(x) + x).backward(gy)
    assert len(seen) == 1


def test_full_backward_hook_can_replace_grad_input_and_handles_inputs_without_grad():
    fc = nn.Linear(3, 2)
    fc.register_full_backward_hook(lambda m, gin, gout: tuple(g * 0 for g in gin))
    x = tensor((4, 3), grad=True)
    fc(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros((4, 3)))
    assert fc.weight.grad is not None and np.abs(fc.weight.grad).sum() > 0

    seen = []
    relu_net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    relu_net.register_full_backward_hook(lambda m, gin, gout: seen.append((gin, gout)))
    relu_net(tensor((4, 3), grad=False)).sum().backward()   # the data needs no gradient
    (grad_input,), (grad_output,) = seen[0][0], seen[0][1]
    assert grad_input is None
    np.testing.assert_array_equal(grad_output, np.ones((4, 2), np.float32))


def test_backward_hooks_on_nested_modules_fire_innermost_last_to_first():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    order = []
    for name, m in net.named_modules():
        m.register_full_backward_hook(lambda m, gin, gout, name=name: order.append(name))
    net(tensor((2, 3), grad=True)).sum().backward()
    assert order == ["2", "1", "0", ""]
