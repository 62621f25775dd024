"""Optimizer, EMA and clipping state across model moves, the multi-tensor kernels' host side, and the
weight-decay-0 rule, checked on the CPU.

A move to the GPU is simulated: a stand-in ``cupy`` whose arrays are a NumPy subclass, so ``Module.to("cuda")``,
``is_gpu_array`` and the optimizer's device checks see a second device while the arithmetic stays NumPy's. The
multi-tensor kernels' CUDA sources are compiled for the CPU and executed (``tests/cuda_on_cpu.py``, slow tests);
on a GPU they run in the GPU tests (``-m gpu``).
"""
import sys
import types

import numpy as np
import pytest

from autograd import Tensor, backend
from minception import nn, optim
from ops.kernels.cuda import multi_tensor


# ---------------------------------------------------------------------------------------------- a second device
class FakeGPUArray(np.ndarray):
    """A NumPy array that the backend takes for a CuPy array (it is an instance of the fake ``cupy.ndarray``)."""

    def get(self):
        return np.asarray(self).copy()

    def set(self, host, stream=None):      # CuPy's host-to-device copy (queued on ``stream``)
        np.copyto(np.asarray(self), host)


def _on_fake_gpu(a):
    return np.array(a, copy=True).view(FakeGPUArray)


@pytest.fixture
def fake_gpu(monkeypatch):
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "0-fake"
    cupy.ndarray = FakeGPUArray
    cupy.asarray = _on_fake_gpu
    cupy.zeros_like = lambda a: np.zeros_like(np.asarray(a)).view(FakeGPUArray)
    cupy.full_like = lambda a, v: np.full_like(np.asarray(a), v).view(FakeGPUArray)
    cupy.ascontiguousarray = lambda a, dtype=None: np.ascontiguousarray(a, dtype=dtype).view(FakeGPUArray)
    cupy.copyto = np.copyto
    cupy.empty = lambda shape, dtype: np.empty(shape, dtype).view(FakeGPUArray)
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                      get_current_stream=lambda: None)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "_gpu", None)
    return cupy


def linear_with_grads(seed=0, dtype=np.float32):
    nn.init.manual_seed(seed)
    layer = nn.Linear(3, 2).to(dtype=dtype)
    return layer


def set_grads(layer, seed):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.grad = rng.standard_normal(p.shape).astype(p.data.dtype)
        if backend.is_gpu_array(p.data):
            p.grad = _on_fake_gpu(p.grad)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, fused=False),
    lambda ps: optim.RMSProp(ps, lr=0.01, weight_decay=0.01, fused=False),
], ids=["sgd", "rmsprop"])
def test_optimizer_state_follows_a_dtype_move(make):
    """Steps in float32, then model.to(float64), then more steps: the state is cast and the run continues as a
    float64 run started from the cast state would."""
    layer = linear_with_grads()
    opt = make(layer.named_parameters())
    set_grads(layer, 1)
    opt.step()
    layer.to(dtype=np.float64)
    twin = linear_with_grads().to(dtype=np.float64)
    for p, q in zip(twin.parameters(), layer.parameters()):
        p.data[...] = q.data
    opt2 = make(twin.named_parameters())
    opt2.load_state_dict(opt.state_dict())
    for seed in (2, 3):
        set_grads(layer, seed), set_grads(twin, seed)
        opt.step(), opt2.step()
    for key, state in opt.state.items():
        for name, a in state.items():
            assert a.dtype == np.float64, (key, name)
            np.testing.assert_array_equal(a, opt2.state[key][name])
    for p, q in zip(layer.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_optimizer_state_follows_a_device_move(fake_gpu):
    layer = linear_with_grads()
    opt = optim.RMSProp(layer.named_parameters(), lr=0.01, fused=False)
    set_grads(layer, 1)
    opt.step()
    assert not any(backend.is_gpu_array(a) for st in opt.state.values() for a in st.values())
    layer.to("cuda")
    set_grads(layer, 2)
    opt.step()
    assert all(backend.is_gpu_array(a) for st in opt.state.values() for a in st.values())
    layer.to("cpu")
    set_grads(layer, 3)
    opt.step()
    assert not any(backend.is_gpu_array(a) for st in opt.state.values() for a in st.values())


def test_gradient_on_another_device_is_a_clear_error(fake_gpu):
    layer = linear_with_grads()
    opt = optim.SGD(layer.named_parameters(), lr=0.1, fused=False)
    set_grads(layer, 1)
    layer.weight.grad = _on_fake_gpu(layer.weight.grad)
    with pytest.raises(ValueError, match="parameter 'weight' is on cpu but its gradient is on cuda"):
        opt.step()


def test_ema_shadows_follow_parameters_and_buffers_through_the_module(fake_gpu):
    model = nn.BatchNorm2d(3)
    averaged = model.named_parameters() + [(n, b) for n, b in model.named_buffers() if b.dtype.kind == "f"]
    ema = optim.EMA(averaged, decay=0.5, use_num_updates=False, module=model, fused=False)
    model.to("cuda")
    model.running_mean[...] = 4.0
    ema.update()
    assert all(backend.is_gpu_array(a) for a in ema.shadow.values())
    np.testing.assert_array_equal(ema.shadow["running_mean"], 2.0)       # 0.5 * 0 + 0.5 * 4: the new buffer
    with ema.average_parameters():
        np.testing.assert_array_equal(model.running_mean, 2.0)
    np.testing.assert_array_equal(model.running_mean, 4.0)


def test_ema_with_stale_buffers_raises_instead_of_averaging_them(fake_gpu):
    model = nn.BatchNorm2d(3)
    averaged = model.named_parameters() + [(n, b) for n, b in model.named_buffers() if b.dtype.kind == "f"]
    ema = optim.EMA(averaged, decay=0.5, fused=False)
    model.to("cuda")
    with pytest.raises(RuntimeError, match="buffer 'running_mean' is on cpu but the parameters are on cuda.*"
                                           "module=model"):
        ema.update()


def test_ema_follows_buffers_replaced_by_a_dtype_move_on_the_cpu():
    model = nn.BatchNorm2d(2)
    averaged = [(n, b) for n, b in model.named_buffers() if b.dtype.kind == "f"]
    ema = optim.EMA(averaged, decay=0.5, use_num_updates=False, module=model)
    model.to(dtype=np.float64)
    model.running_var[...] = 3.0
    ema.update()
    assert ema.shadow["running_var"].dtype == np.float64
    np.testing.assert_array_equal(ema.shadow["running_var"], 2.0)         # 0.5 * 1 + 0.5 * 3


def test_ema_module_must_hold_the_buffers():
    model, other = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
    with pytest.raises(ValueError, match="'running_mean' is not a buffer of the given module"):
        optim.EMA(list(other.named_buffers())[:1], module=model)
    with pytest.raises(ValueError, match="'bn.running_mean' is not a buffer"):
        optim.EMA([("bn.running_mean", model.running_mean)], module=model)


# ---------------------------------------------------------------------------------------------- weight decay 0
@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.RMSProp(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, weight_decay_filter=lambda k, p: False),
], ids=["sgd", "momentum", "rmsprop", "filtered"])
def test_infinite_parameter_stays_infinite_without_weight_decay(make):
    p = Tensor(np.array([np.inf, -np.inf, 1.0]), requires_grad=True)
    opt = make([p])
    for _ in range(2):
        p.grad = np.array([0.5, 0.5, 0.5])
        opt.step()
    assert p.data[0] == np.inf and p.data[1] == -np.inf and np.isfinite(p.data[2])


# ---------------------------------------------------------------------------------------------- clipping
def test_clip_without_sync_returns_the_norm_as_an_array():
    a = Tensor(np.zeros(2), requires_grad=True)
    a.grad = np.array([3.0, 4.0])
    norm = optim.clip_grad_norm([a], max_norm=1.0, sync=False)
    assert isinstance(norm, np.ndarray) and norm.shape == () and float(norm) == 5.0
    np.testing.assert_allclose(a.grad, [0.6, 0.8])
    assert isinstance(optim.grad_norm([a], sync=False), np.ndarray)
    with pytest.raises(ValueError, match="error_if_nonfinite.*sync=False"):
        optim.clip_grad_norm([a], 1.0, error_if_nonfinite=True, sync=False)


def test_clip_rejects_gradients_on_two_devices(fake_gpu):
    a, b = Tensor(np.zeros(2), requires_grad=True), Tensor(np.zeros(2), requires_grad=True)
    a.grad, b.grad = np.ones(2), _on_fake_gpu(np.ones(2))
    with pytest.raises(ValueError, match="different devices"):
        optim.clip_grad_norm([a, b], 1.0)


# ---------------------------------------------------------------------------------------------- multi-tensor
def test_block_layout_cuts_each_parameter_into_chunks():
    chunk = multi_tensor.CHUNK
    sizes = (chunk + 1, 1, 0, chunk, 2 * chunk + 5)
    block_param, block_start = multi_tensor.block_layout(sizes)
    assert block_param.tolist() == [0, 0, 1, 3, 4, 4, 4]
    assert block_start.tolist() == [0, chunk, 0, 0, 0, chunk, 2 * chunk]
    # every value of every parameter is covered exactly once
    covered = {(k, s + i) for k, s in zip(block_param, block_start) for i in range(min(chunk, sizes[k] - s))}
    assert covered == {(k, e) for k, n in enumerate(sizes) for e in range(n)}


def test_pack_table_layout():
    chunk = multi_tensor.CHUNK
    table, n_blocks = multi_tensor.pack_table([[10, 20, 30], [40, 50, 60]], [chunk + 1, 7], [1, 0])
    assert n_blocks == 3
    assert table.dtype == np.int64
    assert table.tolist() == [10, 40, 20, 50, 30, 60,      # array a of parameter k at a*K + k
                              chunk + 1, 7,                 # sizes
                              1, 0,                         # flags
                              0, 0, 1,                      # parameter of each block
                              0, chunk, 0]                  # first value of each block


def test_kernel_source_declares_the_arrays_and_scalars():
    src = multi_tensor.SGD_MOMENTUM.source("float32")
    assert "typedef float T;" in src
    assert "T* p = (T*)table[0 * (long long)n_params + k];" in src
    assert "const T* g = (const T*)table[1 * (long long)n_params + k];" in src
    assert "T* buf = (T*)table[2 * (long long)n_params + k];" in src
    assert "const long long* table, int n_params, int n_blocks, T lr, T momentum, T wd, int nesterov)" in src
    assert "if (flag) gw += wd * p[e];" in src and "const bool flag" in src
    ema = multi_tensor.EMA.source("float64")
    assert "typedef double T;" in ema and "bool flag" not in ema     # declared only where the body reads it
    assert "sqrt" in multi_tensor.RMSPROP.source("float32")


def test_decay_groups_share_one_weight_decay_per_launch():
    f32, f64 = np.zeros(2, np.float32), np.zeros(2, np.float64)
    batch = [(f32, None, {}, 0.01), (f32, None, {}, 0.0), (f64, None, {}, 0.01), (f32, None, {}, 0.01)]
    groups = list(multi_tensor.decay_groups(batch))
    assert [(d, wd, len(items)) for d, wd, items in groups] == [(np.float32, 0.01, 3), (np.float64, 0.01, 1)]
    mixed = [(f32, None, {}, 0.01), (f32, None, {}, 0.0), (f32, None, {}, 0.02)]
    groups = list(multi_tensor.decay_groups(mixed))
    assert [(wd, [item[3] for item in items]) for _, wd, items in groups] == [(0.01, [0.0, 0.01]), (0.02, [0.02])]


def test_global_norm_sources_are_templated_per_dtype():
    first, finish = multi_tensor.norm_sources("float32")
    assert "typedef float T;" in first and "partial[blockIdx.x] = s[0];" in first
    assert "max_norm / total" in finish and "isfinite(total)" in finish


# ---------------------------------------------------------------------------------------------- run on the CPU
@pytest.fixture(scope="module")
def kernels_on_cpu():
    """The multi-tensor kernels' CUDA sources compiled for the CPU (``tests/cuda_on_cpu.py``), per dtype."""
    import cuda_on_cpu
    problem = cuda_on_cpu.compiler_problem()
    if problem:
        pytest.skip(problem)
    updates = (multi_tensor.SGD_MOMENTUM, multi_tensor.SGD_PLAIN, multi_tensor.RMSPROP, multi_tensor.EMA,
               multi_tensor.SCALE)
    built = {}
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        first, finish = multi_tensor.norm_sources(name)
        source = "\n".join([k.source(name) for k in updates] + [first, finish])
        names = [k.name for k in updates] + ["minception_sum_of_squares_multi", "minception_norm_finish"]
        built[dtype] = cuda_on_cpu.compile_kernels(source, names, {"T": dtype})
    return built


def launch_multi(kernels, kernel, rows, flags, *scalars):
    """What ``MultiTensorKernel.__call__`` does, with host addresses in the table."""
    kept = [(row, flag) for row, flag in zip(rows, flags) if row[0].size]
    table, n_blocks = multi_tensor.pack_table([[a.ctypes.data for a in row] for row, _ in kept],
                                              [row[0].size for row, _ in kept], [flag for _, flag in kept])
    kernels[kernel.name](n_blocks, multi_tensor.BLOCK, table, len(kept), n_blocks, *scalars)


SHAPES = [(7, 5), (1,), (0,), (multi_tensor.CHUNK,), (multi_tensor.CHUNK + 3,), (3, 5, 9, 11)]


def arrays(seed, dtype, positive=False):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    return [np.abs(a) for a in out] if positive else out


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_tensor_update_kernels_run_on_the_cpu(kernels_on_cpu, dtype):
    """The CUDA update kernels, executed over parameters of several sizes (empty, one value, a chunk and a bit),
    against the plain array code of each update (``sgd_update``, ``rmsprop_update``, the EMA formula)."""
    from minception.optim.rmsprop import rmsprop_update
    from minception.optim.sgd import sgd_update
    k, t = kernels_on_cpu[dtype], np.dtype(dtype).type
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    flags = [i % 2 for i in range(len(SHAPES))]
    for nesterov in (0, 1):
        p, g, buf = arrays(1, dtype), arrays(2, dtype), arrays(3, dtype)
        expected = [(a.copy(), b.copy()) for a, b in zip(p, buf)]
        for (pe, be), ge, f in zip(expected, g, flags):
            sgd_update(pe, ge, be, t(0.1), t(0.9), bool(nesterov), t(0.01) if f else 0.0)
        launch_multi(k, multi_tensor.SGD_MOMENTUM, list(zip(p, g, buf)), flags, t(0.1), t(0.9), t(0.01), nesterov)
        for (pe, be), a, b in zip(expected, p, buf):
            np.testing.assert_allclose(a, pe, **tol)
            np.testing.assert_allclose(b, be, **tol)
    p, g = arrays(4, dtype), arrays(5, dtype)
    expected = [a.copy() for a in p]
    for pe, ge, f in zip(expected, g, flags):
        sgd_update(pe, ge, None, t(0.1), 0.0, False, t(0.01) if f else 0.0)
    launch_multi(k, multi_tensor.SGD_PLAIN, list(zip(p, g)), flags, t(0.1), t(0.01))
    for pe, a in zip(expected, p):
        np.testing.assert_allclose(a, pe, **tol)
    for inside in (1, 0):
        p, g, ms, mom = arrays(6, dtype), arrays(7, dtype), arrays(8, dtype, positive=True), arrays(9, dtype)
        eps = 1.0 if inside else 1e-3
        expected = [(a.copy(), b.copy(), c.copy()) for a, b, c in zip(p, ms, mom)]
        for (pe, mse, me), ge, f in zip(expected, g, flags):
            rmsprop_update(pe, ge, mse, me, t(0.045), t(0.9), t(eps), t(0.9), t(0.01) if f else 0.0, bool(inside))
        launch_multi(k, multi_tensor.RMSPROP, list(zip(p, g, ms, mom)), flags, t(0.045), t(0.9), t(1.0 - 0.9),
                     t(eps), t(0.9), t(0.01), inside)
        for (pe, mse, me), a, b, c in zip(expected, p, ms, mom):
            np.testing.assert_allclose(a, pe, rtol=tol["rtol"] * 10, atol=tol["atol"])
            np.testing.assert_allclose(b, mse, **tol)
            np.testing.assert_allclose(c, me, rtol=tol["rtol"] * 10, atol=tol["atol"])
    avg, value = arrays(10, dtype), arrays(11, dtype)
    expected = [a - t(0.25) * (a - v) for a, v in zip(avg, value)]
    launch_multi(k, multi_tensor.EMA, list(zip(avg, value)), [0] * len(SHAPES), t(0.25))
    for e, a in zip(expected, avg):
        np.testing.assert_allclose(a, e, **tol)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_norm_and_scale_kernels_run_on_the_cpu(kernels_on_cpu, dtype):
    k = kernels_on_cpu[dtype]
    grads = [g for g in arrays(12, dtype) if g.size]
    table, n_blocks = multi_tensor.pack_table([[g.ctypes.data] for g in grads], [g.size for g in grads],
                                              [0] * len(grads))
    partial = np.full(n_blocks, np.nan)
    k["minception_sum_of_squares_multi"](n_blocks, multi_tensor.BLOCK, table, len(grads), n_blocks, partial)
    expected = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    norm, factor = np.zeros(1), np.zeros(1)
    for max_norm, want in ((2.0, 2.0 / expected), (1e9, 1.0)):
        k["minception_norm_finish"](1, multi_tensor.BLOCK, partial, n_blocks, max_norm, norm, factor)
        assert norm[0] == pytest.approx(expected, rel=1e-12)
        assert factor[0] == pytest.approx(want, rel=1e-14)
    outs = [np.full(g.shape, np.nan, dtype) for g in grads]
    factor[0] = 0.3
    launch_multi(k, multi_tensor.SCALE, list(zip(grads, outs)), [0] * len(grads), factor)
    for g, o in zip(grads, outs):
        np.testing.assert_array_equal(o, g * dtype(0.3))
    partial[0] = np.inf
    k["minception_norm_finish"](1, multi_tensor.BLOCK, partial, n_blocks, 2.0, norm, factor)
    assert np.isinf(norm[0]) and factor[0] == 1.0                # non-finite: gradients left as they are
