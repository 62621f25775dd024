"""Optimizers and gradient clipping: each update rule against steps computed by hand, state and checkpoints.

The expected numbers are computed here element by element with Python's math module (a scalar oracle written
from the formulas), and for the paper's RMSProp setting also as literal decimals worked out on paper, so that
the tests never call the code they check.
"""
import math

import numpy as np
import pytest

from autograd import Tensor
from minception import optim
from minception.optim.rmsprop import rmsprop_update
from minception.optim.sgd import sgd_update


def param(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def run_two_steps(opt, p, grads):
    for g in grads:
        p.grad = np.array(g, dtype=p.data.dtype)
        opt.step()
    return p.data


# ---------------------------------------------------------------------------------------------- RMSProp ---
def rmsprop_oracle(p0, grads, lr, decay, eps, momentum, wd, inside, ms0):
    """Scalar RMSProp, one element at a time, straight from the formulas."""
    out = []
    for i, p in enumerate(p0):
        ms, mom = ms0, 0.0
        for g in grads:
            g = g[i] + wd * p
            ms = decay * ms + (1 - decay) * g * g
            denom = math.sqrt(ms + eps) if inside else math.sqrt(ms) + eps
            mom = momentum * mom + lr * g / denom
            p = p - mom
        out.append(p)
    return out


def test_rmsprop_paper_setting_literal_numbers():
    # lr 0.1, decay 0.9, eps 1, momentum 0.9, TF form, ms starts at 1; gradient 0.5 then -1.0 on p = 1.
    # step 1: ms = 0.9 + 0.1*0.25 = 0.925;  mom = 0.1*0.5/sqrt(1.925) = 0.036037498...;  p = 0.963962501...
    # step 2: ms = 0.8325 + 0.1 = 0.9325;   mom = 0.9*0.036037498 - 0.1/sqrt(1.9325) = -0.039501251...;  p = 1.003463753...
    p = param([1.0])
    opt = optim.RMSProp([p], lr=0.1, decay=0.9, eps=1.0, momentum=0.9)
    p.grad = np.array([0.5])
    opt.step()
    assert opt.state[0]["ms"][0] == pytest.approx(0.925, rel=1e-12)
    assert opt.state[0]["mom"][0] == pytest.approx(0.0360374985, rel=1e-9)
    assert p.data[0] == pytest.approx(0.9639625015, rel=1e-9)
    p.grad = np.array([-1.0])
    opt.step()
    assert opt.state[0]["ms"][0] == pytest.approx(0.9325, rel=1e-12)
    assert opt.state[0]["mom"][0] == pytest.approx(-0.0395012515, rel=1e-9)
    assert p.data[0] == pytest.approx(1.0034637530, rel=1e-9)


@pytest.mark.parametrize("inside", [True, False])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_rmsprop_two_steps_against_scalar_oracle(inside, wd):
    p0 = [0.7, -1.3, 0.0, 2.5, -0.2]
    grads = [[0.3, -2.0, 0.01, 5.0, -0.4], [-0.6, 1.5, 0.0, 4.0, 0.9]]
    lr, decay, eps, momentum = 0.045, 0.9, (1.0 if inside else 1e-3), 0.9
    ms0 = 1.0 if inside else 0.0
    p = param(p0)
    opt = optim.RMSProp([p], lr=lr, decay=decay, eps=eps, momentum=momentum, weight_decay=wd,
                        eps_inside_sqrt=inside)
    assert opt.ms_init == ms0
    got = run_two_steps(opt, p, grads)
    np.testing.assert_allclose(got, rmsprop_oracle(p0, grads, lr, decay, eps, momentum, wd, inside, ms0),
                               rtol=1e-12, atol=1e-15)


def test_rmsprop_tf_and_pytorch_forms_differ_with_eps_one():
    grads = [[1.0]]
    a, b = param([0.0]), param([0.0])
    run_two_steps(optim.RMSProp([a], lr=1.0, momentum=0.0, ms_init=0.0, eps_inside_sqrt=True), a, grads)
    run_two_steps(optim.RMSProp([b], lr=1.0, momentum=0.0, ms_init=0.0, eps_inside_sqrt=False), b, grads)
    # ms = 0.1: TF steps by 1/sqrt(1.1), PyTorch by 1/(sqrt(0.1) + 1)
    assert a.data[0] == pytest.approx(-1 / math.sqrt(1.1))
    assert b.data[0] == pytest.approx(-1 / (math.sqrt(0.1) + 1))


def test_rmsprop_ms_init_option_and_no_momentum():
    p0, grads = [0.5, -0.5], [[0.2, 0.1], [0.3, -0.1]]
    p = param(p0)
    opt = optim.RMSProp([p], lr=0.01, decay=0.8, eps=0.5, momentum=0.0, ms_init=0.0)
    got = run_two_steps(opt, p, grads)
    np.testing.assert_allclose(got, rmsprop_oracle(p0, grads, 0.01, 0.8, 0.5, 0.0, 0.0, True, 0.0), rtol=1e-12)


def test_rmsprop_float32_keeps_dtype_and_updates_in_place():
    p = param([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    view = p.data[0]             # an alias that must see the update
    opt = optim.RMSProp([p])
    p.grad = np.full((2, 2), 0.25, dtype=np.float32)
    opt.step()
    assert p.data.dtype == np.float32
    assert opt.state[0]["ms"].dtype == np.float32 and opt.state[0]["mom"].dtype == np.float32
    assert view[0] == p.data[0, 0] and view[0] != 1.0


def test_lr_change_takes_effect_inside_momentum():
    # TF form: mom = momentum*mom + lr*step, so a new lr scales only the new term
    p = param([0.0])
    opt = optim.RMSProp([p], lr=1.0, decay=0.0, eps=0.0, momentum=0.5)   # decay 0: ms = g**2, step = sign(g)
    p.grad = np.array([2.0])
    opt.step()                    # mom = 1
    opt.lr = 0.1
    opt.step()                    # mom = 0.5 + 0.1
    assert p.data[0] == pytest.approx(-1.0 - 0.6)


# -------------------------------------------------------------------------------------------------- SGD ---
def sgd_oracle(p0, grads, lr, momentum, nesterov, wd):
    out = []
    for i, p in enumerate(p0):
        buf = 0.0
        for g in grads:
            g = g[i] + wd * p
            if momentum == 0:
                p = p - lr * g
                continue
            buf = momentum * buf + g
            p = p - lr * (g + momentum * buf if nesterov else buf)
        out.append(p)
    return out


def test_sgd_literal_numbers():
    # lr 0.1, momentum 0.9, p = 1, gradients 1 then 2.
    # heavy ball: buf 1 -> p 0.9; buf 0.9+2 = 2.9 -> p 0.9 - 0.29 = 0.61
    # nesterov:   buf 1 -> p 1 - 0.1*(1 + 0.9) = 0.81; buf 2.9 -> p 0.81 - 0.1*(2 + 2.61) = 0.349
    for nesterov, expected in [(False, [0.9, 0.61]), (True, [0.81, 0.349])]:
        p = param([1.0])
        opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov)
        for g, e in zip([1.0, 2.0], expected):
            p.grad = np.array([g])
            opt.step()
            assert p.data[0] == pytest.approx(e, rel=1e-12)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_sgd_two_steps_against_scalar_oracle(momentum, nesterov, wd):
    p0 = [0.7, -1.3, 0.0, 2.5]
    grads = [[0.3, -2.0, 0.01, 5.0], [-0.6, 1.5, 0.0, 4.0]]
    p = param(p0)
    opt = optim.SGD([p], lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    got = run_two_steps(opt, p, grads)
    np.testing.assert_allclose(got, sgd_oracle(p0, grads, 0.05, momentum, nesterov, wd), rtol=1e-12, atol=1e-15)
    assert set(opt.state[0]) == ({"mom"} if momentum else set())


def test_sgd_rejects_bad_hyperparameters():
    p = param([1.0])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([p], lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="decay"):
        optim.RMSProp([p], decay=1.0)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = float("nan")


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("build, err, match", [
    (lambda p: optim.RMSProp([p], lr=INF), ValueError, "learning rate must be finite"),
    (lambda p: optim.SGD([p], lr=INF), ValueError, "learning rate must be finite"),
    (lambda p: optim.RMSProp([p], lr="0.1"), TypeError, "learning rate must be a real number"),
    (lambda p: optim.SGD([p], lr=True), TypeError, "learning rate"),
    (lambda p: optim.SGD([p], lr=None), TypeError, "learning rate"),
    (lambda p: optim.RMSProp([p], eps=INF), ValueError, "eps must be finite"),
    (lambda p: optim.RMSProp([p], eps="1.0"), TypeError, "eps"),
    (lambda p: optim.RMSProp([p], decay="0.9"), TypeError, "decay"),
    (lambda p: optim.RMSProp([p], momentum=NAN), ValueError, "momentum"),
    (lambda p: optim.RMSProp([p], ms_init=INF), ValueError, "ms_init"),
    (lambda p: optim.RMSProp([p], eps_inside_sqrt="False"), TypeError, "eps_inside_sqrt"),
    (lambda p: optim.RMSProp([p], weight_decay=INF), ValueError, "weight_decay"),
    (lambda p: optim.SGD([p], lr=0.1, momentum="0.9"), TypeError, "momentum"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=0.9, nesterov="yes"), TypeError, "nesterov"),
    (lambda p: optim.SGD([p], lr=0.1, weight_decay_filter="weights"), TypeError, "weight_decay_filter"),
    (lambda p: optim.EMA([p], decay="0.99"), TypeError, "decay"),
    (lambda p: optim.EMA([p], decay=NAN), ValueError, "decay"),
    (lambda p: optim.exponential_decay(INF, 10), ValueError, "lr"),
    (lambda p: optim.exponential_decay(0.1, 10, rate=INF), ValueError, "rate"),
    (lambda p: optim.exponential_decay(0.1, 10, epochs_per_decay=0), ValueError, "epochs_per_decay"),
    (lambda p: optim.ExponentialDecay(0.1, 2.5), TypeError, "decay_steps"),
    (lambda p: optim.CosineDecay("0.1", 10), TypeError, "lr"),
    (lambda p: optim.StepDecay(0.1, [2, 4], gamma=NAN), ValueError, "gamma"),
    (lambda p: optim.Constant(-0.1), ValueError, "lr"),
    (lambda p: optim.clip_grad_norm([p], "2.0"), TypeError, "max_norm"),
])
def test_settings_must_be_finite_numbers_of_the_right_type(build, err, match):
    """Issue 12.6: lr=inf and lr="0.1" were accepted (the first gives all-NaN weights after one step)."""
    with pytest.raises(err, match=match):
        build(param([1.0]))


def test_the_learning_rate_setter_refuses_what_the_constructor_refuses():
    opt = optim.RMSProp([param([1.0])], lr=0.1)
    for bad, err in ((INF, ValueError), ("0.1", TypeError), (-1.0, ValueError)):
        with pytest.raises(err, match="learning rate"):
            opt.lr = bad
    assert opt.lr == 0.1
    opt.lr = np.float32(0.5)                                     # NumPy scalars are numbers
    assert opt.lr == 0.5 and type(opt.lr) is float


def test_a_refused_optimizer_state_changes_nothing():
    p = param([1.0, 2.0])
    opt = optim.RMSProp([("w", p)], lr=0.1, eps=1.0)
    p.grad = np.array([0.5, 0.5])
    opt.step()
    sd = opt.state_dict()
    sd["hyper"]["eps"] = INF
    sd["lr"] = 0.5
    before = {k: v.copy() for k, v in opt.state["w"].items()}
    with pytest.raises(ValueError, match="eps"):
        opt.load_state_dict(sd)
    assert opt.eps == 1.0 and opt.lr == 0.1 and opt.steps == 1
    for k, v in before.items():
        np.testing.assert_array_equal(v, opt.state["w"][k])


# ------------------------------------------------------------------------------- parameters and state ---
def test_named_parameters_key_state_and_skip_params_without_grad():
    a, b = param([1.0, 2.0]), param([3.0])
    opt = optim.SGD([("conv.weight", a), ("fc.bias", b)], lr=0.1, momentum=0.9)
    a.grad = np.array([1.0, 1.0])
    opt.step()
    assert list(opt.state) == ["conv.weight"]
    np.testing.assert_array_equal(b.data, [3.0])
    np.testing.assert_array_equal(opt.state["conv.weight"]["mom"], [1.0, 1.0])
    assert opt.steps == 1
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_parameter_list_errors():
    a = param([1.0])
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([a, a], lr=0.1)
    with pytest.raises(ValueError, match="duplicate"):
        optim.SGD([("w", a), ("w", param([2.0]))], lr=0.1)
    with pytest.raises(TypeError, match="Tensor"):
        optim.SGD([np.zeros(3)], lr=0.1)
    opt = optim.SGD([("w", a)], lr=0.1)
    a.grad = np.zeros(2)
    with pytest.raises(ValueError, match=r"'w'.*\(1,\).*\(2,\)"):
        opt.step()


def test_weight_decay_filter_weights_only():
    w, bias = param(np.ones((2, 2))), param([1.0, 1.0])
    opt = optim.SGD([("w", w), ("b", bias)], lr=1.0, weight_decay=0.5, weight_decay_filter=optim.weights_only)
    w.grad, bias.grad = np.zeros((2, 2)), np.zeros(2)
    opt.step()
    np.testing.assert_array_equal(w.data, np.full((2, 2), 0.5))
    np.testing.assert_array_equal(bias.data, [1.0, 1.0])


def test_real_backward_then_step():
    # minimise sum((w - 3)^2) from w = 0 with a real autograd graph: it must converge
    w = Tensor(np.zeros(4), requires_grad=True)
    opt = optim.RMSProp([w], lr=0.1, momentum=0.5)
    for _ in range(200):
        opt.zero_grad()
        loss = ((w - 3.0) * (w - 3.0)).sum()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.data, 3.0, atol=1e-3)


@pytest.mark.parametrize("make", [
    lambda ps: optim.RMSProp(ps, lr=0.01, weight_decay=1e-3),
    lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True),
])
def test_state_dict_round_trip_continues_identically(tmp_path, make):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 2)), rng.standard_normal(5)]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(4)]

    def fresh():
        ps = [("w", param(init[0].copy())), ("b", param(init[1].copy()))]
        return ps, make(ps)

    def steps(ps, opt, gs):
        for g_list in gs:
            for (_, p), g in zip(ps, g_list):
                p.grad = g
            opt.step()

    ps_a, opt_a = fresh()
    steps(ps_a, opt_a, grads)            # four steps straight

    ps_b, opt_b = fresh()
    steps(ps_b, opt_b, grads[:2])
    sd = opt_b.state_dict()
    assert all(isinstance(a, np.ndarray) for st in sd["state"].values() for a in st.values())
    # through an .npz file, flattened the way a checkpoint writer would
    flat = {f"state/{k}/{n}": a for k, st in sd["state"].items() for n, a in st.items()}
    np.savez(tmp_path / "opt.npz", lr=sd["lr"], steps=sd["steps"], **flat)
    z = np.load(tmp_path / "opt.npz")
    loaded = {"type": sd["type"], "lr": float(z["lr"]), "steps": int(z["steps"]), "hyper": sd["hyper"],
              "state": {}}
    for name in z.files:
        if name.startswith("state/"):
            _, k, n = name.split("/")
            loaded["state"].setdefault(k, {})[n] = z[name]
    params_c = [(k, param(p.data.copy())) for k, p in ps_b]
    opt_c = make(params_c)
    opt_c.load_state_dict(loaded)
    assert opt_c.steps == 2
    steps(params_c, opt_c, grads[2:])
    for (_, pa), (_, pc) in zip(ps_a, params_c):
        np.testing.assert_array_equal(pa.data, pc.data)


def test_load_state_dict_errors():
    p = param([1.0, 2.0])
    opt = optim.RMSProp([("w", p)])
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    other = optim.RMSProp([("v", param([1.0, 2.0]))])
    with pytest.raises(KeyError, match="'w'"):
        other.load_state_dict(sd)
    wrong = optim.RMSProp([("w", param([1.0, 2.0, 3.0]))])
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        wrong.load_state_dict(sd)
    with pytest.raises(ValueError, match="RMSProp"):
        optim.SGD([("w", param([1.0, 2.0]))], lr=0.1).load_state_dict(sd)


def test_index_keys_survive_str_round_trip():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(1)
    opt.step()
    sd = opt.state_dict()
    sd["state"] = {str(k): v for k, v in sd["state"].items()}
    opt2 = optim.SGD([param([1.0])], lr=0.5, momentum=0.9)
    opt2.load_state_dict(sd)
    assert list(opt2.state) == [0] and opt2.lr == 0.1


# ------------------------------------------------------------------------------------------- clipping ---
def test_clip_grad_norm_scales_to_max_norm_and_returns_norm_before():
    a, b, c = param([0.0, 0.0]), param([0.0]), param([0.0])
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])      # global norm 5; c has no grad
    norm = optim.clip_grad_norm([a, b, c], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [0.6, 0.0])
    np.testing.assert_allclose(b.grad, [0.8])
    assert c.grad is None
    assert optim.grad_norm([a, b]) == pytest.approx(1.0)


def test_clip_grad_norm_leaves_small_gradients_and_float32():
    a = param([0.0, 0.0], dtype=np.float32)
    g = np.array([0.3, 0.4], dtype=np.float32)
    a.grad = g
    assert optim.clip_grad_norm([a], max_norm=2.0) == pytest.approx(0.5)
    assert a.grad is g                      # untouched
    a.grad = np.array([30.0, 40.0], dtype=np.float32)
    optim.clip_grad_norm([("a", a)], max_norm=2.0)
    assert a.grad.dtype == np.float32
    np.testing.assert_allclose(a.grad, [1.2, 1.6], rtol=1e-6)


def test_grad_norm_of_float32_gradients_is_accumulated_in_float64(monkeypatch):
    """The GPU kernel sums squares in float64; the CPU must too (a float32 BLAS dot rounds the sum to float32),
    also when the gradient is converted a chunk at a time."""
    from minception.optim import clip
    rng = np.random.default_rng(3)
    g = (rng.standard_normal(10_001) * 3).astype(np.float32)
    p = Tensor(np.zeros_like(g), requires_grad=True)
    p.grad = g
    exact = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
    assert optim.grad_norm([p]) == pytest.approx(exact, rel=1e-14)
    monkeypatch.setattr(clip, "_CHUNK", 999)                    # 11 chunks, the last one short
    assert optim.grad_norm([p]) == pytest.approx(exact, rel=1e-14)


def test_clip_grad_norm_shared_gradient_array_scaled_once():
    a, b = param([0.0]), param([0.0])
    shared = np.array([10.0])
    a.grad = b.grad = shared
    norm = optim.clip_grad_norm([a, b], max_norm=1.0)
    assert norm == pytest.approx(math.sqrt(200))
    np.testing.assert_allclose(a.grad, 10 / math.sqrt(200))
    np.testing.assert_allclose(b.grad, 10 / math.sqrt(200))


def test_clip_grad_norm_nonfinite():
    a = param([0.0, 0.0])
    a.grad = np.array([np.inf, 1.0])
    assert math.isinf(optim.clip_grad_norm([a], 1.0))
    np.testing.assert_array_equal(a.grad, [np.inf, 1.0])
    with pytest.raises(FloatingPointError):
        optim.clip_grad_norm([a], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm([a], 0.0)


# ------------------------------------------------------------------------------------------------ GPU ---
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps, fused: optim.RMSProp(ps, lr=0.05, weight_decay=0.01, fused=fused),
    lambda ps, fused: optim.RMSProp(ps, lr=0.05, eps=1e-3, eps_inside_sqrt=False, fused=fused),
    lambda ps, fused: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, fused=fused),
    lambda ps, fused: optim.SGD(ps, lr=0.05, momentum=0.9, fused=fused),
])
def test_gpu_fused_and_plain_updates_match_cpu(dtype, make):
    import cupy as cp
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((7, 5)).astype(dtype)
    grads = [rng.standard_normal((7, 5)).astype(dtype) for _ in range(3)]
    results = []
    for device, fused in [("cpu", False), ("cuda", False), ("cuda", True)]:
        p = Tensor(p0.copy(), requires_grad=True)
        if device == "cuda":
            p.data = cp.asarray(p.data)
        opt = make([p], fused)
        for g in grads:
            p.grad = cp.asarray(g) if device == "cuda" else g.copy()
            opt.step()
        results.append(cp.asnumpy(p.data) if device == "cuda" else p.data)
        assert type(opt.state[0][next(iter(opt.state[0]))]) is type(p.data)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[1], results[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(results[2], results[0], rtol=tol, atol=tol)


@pytest.mark.gpu
def test_gpu_clip_grad_norm_and_state_dict():
    import cupy as cp
    a, b = Tensor(cp.zeros(2), requires_grad=True), Tensor(cp.zeros((1, 1), cp.float32), requires_grad=True)
    a.grad, b.grad = cp.asarray([3.0, 0.0]), cp.asarray([[4.0]], cp.float32)
    assert optim.clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    assert isinstance(a.grad, cp.ndarray) and b.grad.dtype == cp.float32
    cp.testing.assert_allclose(a.grad, cp.asarray([0.6, 0.0]))
    cp.testing.assert_allclose(b.grad, cp.asarray([[0.8]]), rtol=1e-6)
    opt = optim.RMSProp([a])
    opt.step()
    sd = opt.state_dict()
    assert isinstance(sd["state"][0]["ms"], np.ndarray)
    opt2 = optim.RMSProp([Tensor(cp.zeros(2), requires_grad=True)])
    opt2.load_state_dict(sd)
    assert isinstance(opt2.state[0]["ms"], cp.ndarray)


def test_reference_update_functions_work_on_plain_arrays():
    # the readable functions that students read first, on raw arrays
    p, ms, mom = np.array([1.0]), np.array([1.0]), np.array([0.0])
    rmsprop_update(p, np.array([0.5]), ms, mom, 0.1, 0.9, 1.0, 0.9, 0.0, True)
    assert p[0] == pytest.approx(1 - 0.05 / math.sqrt(1.925))
    p, buf = np.array([1.0]), np.array([0.0])
    sgd_update(p, np.array([1.0]), buf, 0.1, 0.9, False, 0.0)
    assert p[0] == pytest.approx(0.9) and buf[0] == 1.0


@pytest.mark.gpu
def test_gpu_global_norm_kernel_matches_numpy_reference():
    import cupy as cp
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in [(37, 5), (3, 2, 7, 11), (1,), (4097,)]]
    cpu = [param(np.zeros(g.shape, np.float32), dtype=np.float32) for g in grads]
    gpu = [Tensor(cp.zeros(g.shape, cp.float32), requires_grad=True) for g in grads]
    for c, d, g in zip(cpu, gpu, grads):
        c.grad, d.grad = g, cp.asarray(g)
    expected = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert optim.grad_norm(cpu) == pytest.approx(expected, rel=1e-6)
    assert optim.grad_norm(gpu) == pytest.approx(expected, rel=1e-12)


def test_multi_tensor_launches_belong_to_the_fast_tier(monkeypatch):
    """On the GPU the optimizers and the EMA batch their updates into multi-tensor launches, the fast tier's CUDA
    kernels; in any other tier every parameter takes the readable per-parameter ``update``. The GPU is played by
    NumPy arrays that ``is_gpu_array`` calls GPU arrays, and the launches are recorded instead of run."""
    import ops
    import minception.optim.ema as ema_module
    import minception.optim.optimizer as optimizer_module
    monkeypatch.setattr(optimizer_module, "is_gpu_array", lambda a: isinstance(a, np.ndarray))
    monkeypatch.setattr(ema_module, "is_gpu_array", lambda a: isinstance(a, np.ndarray))
    launches = []

    class Recorder:
        def __getattr__(self, name):
            return lambda *args: launches.append(name)

    monkeypatch.setattr(ema_module, "multi_tensor", Recorder())
    monkeypatch.setattr(optim.RMSProp, "update_many", lambda self, batch: launches.append("RMSPROP"))
    params = [Tensor(np.ones((3, 5), np.float32), requires_grad=True) for _ in range(3)]
    opt, ema = optim.RMSProp(params, lr=0.1), optim.EMA(params, decay=0.5)
    for tier, expected in (("reference", []), ("fast", ["RMSPROP", "EMA"])):
        launches.clear()
        for p in params:
            p.grad = np.full((3, 5), 0.5, np.float32)
        before = [p.data.copy() for p in params]
        with ops.kernels.use(tier):
            opt.step()
            ema.update()
        assert launches == expected, tier
        if tier == "reference":            # the per-parameter update ran instead
            assert all((p.data != b).all() for p, b in zip(params, before))
