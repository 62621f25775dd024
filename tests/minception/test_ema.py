"""Exponential moving average of parameters: hand-computed updates, exact swap back, checkpoints."""
import numpy as np
import pytest

from autograd import Tensor
from minception import optim


def param(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def test_plain_decay_two_updates_by_hand():
    p = param([1.0, -2.0])
    ema = optim.EMA([p], decay=0.5, use_num_updates=False)
    p.data[...] = [3.0, 2.0]
    ema.update()                                   # 0.5*1 + 0.5*3 = 2;  0.5*-2 + 0.5*2 = 0
    np.testing.assert_allclose(ema.shadow[0], [2.0, 0.0])
    p.data[...] = [0.0, 4.0]
    ema.update()                                   # 0.5*2 + 0 = 1;      0 + 2 = 2
    np.testing.assert_allclose(ema.shadow[0], [1.0, 2.0])
    assert ema.num_updates == 2


def test_num_updates_debiasing_tf_rule():
    p = param([0.0])
    ema = optim.EMA([("w", p)], decay=0.9999)
    assert ema.current_decay() == pytest.approx(0.1)            # (1+0)/(10+0)
    p.data[...] = 10.0
    ema.update()                                                # 0.1*0 + 0.9*10 = 9
    assert ema.shadow["w"][0] == pytest.approx(9.0)
    assert ema.current_decay() == pytest.approx(2 / 11)
    p.data[...] = 20.0
    ema.update()                                                # 2/11*9 + 9/11*20 = 198/11 = 18
    assert ema.shadow["w"][0] == pytest.approx(18.0)
    assert ema.current_decay(step=10 ** 9) == 0.9999            # the cap only matters early
    ema.update(step=10 ** 9)
    assert ema.shadow["w"][0] == pytest.approx(0.9999 * 18 + 0.0001 * 20)


def test_swap_in_out_is_exact_and_in_place():
    rng = np.random.default_rng(0)
    p = param(rng.standard_normal((3, 4)).astype(np.float32), dtype=np.float32)
    alias = p.data                                   # e.g. a view held by a module
    ema = optim.EMA([p], decay=0.9)
    for _ in range(3):
        p.data[...] = rng.standard_normal((3, 4))
        ema.update()
    raw = p.data.copy()
    with ema.average_parameters():
        assert ema.swapped_in
        np.testing.assert_array_equal(alias, ema.shadow[0])
        with pytest.raises(RuntimeError, match="swap_out"):
            ema.update()
        with pytest.raises(RuntimeError, match="already"):
            ema.swap_in()
    assert not ema.swapped_in
    assert p.data is alias
    np.testing.assert_array_equal(p.data, raw)         # bit for bit
    with pytest.raises(RuntimeError, match="swap_in"):
        ema.swap_out()


def test_swap_out_happens_even_if_evaluation_raises():
    p = param([1.0])
    ema = optim.EMA([p], decay=0.5, use_num_updates=False)
    p.data[...] = 3.0
    ema.update()
    with pytest.raises(ZeroDivisionError):
        with ema.average_parameters():
            assert p.data[0] == 2.0
            1 / 0
    assert p.data[0] == 3.0


def test_copy_to_and_buffers():
    p = param([1.0])
    running_mean = np.array([5.0, 5.0])            # a BatchNorm buffer: a raw array
    ema = optim.EMA([("w", p), ("bn.running_mean", running_mean)], decay=0.5, use_num_updates=False)
    p.data[...] = 3.0
    running_mean[...] = 1.0
    ema.update()
    ema.copy_to()
    assert p.data[0] == 2.0
    np.testing.assert_array_equal(running_mean, [3.0, 3.0])


def test_state_dict_round_trip():
    p = param([1.0, 2.0])
    ema = optim.EMA([("w", p)], decay=0.99)
    p.data[...] = 0.0
    ema.update()
    sd = ema.state_dict()
    assert sd["num_updates"] == 1 and isinstance(sd["shadow"]["w"], np.ndarray)
    q = param([7.0, 7.0])
    other = optim.EMA([("w", q)], decay=0.5, use_num_updates=False)
    other.load_state_dict(sd)
    assert other.decay == 0.99 and other.use_num_updates and other.num_updates == 1
    np.testing.assert_array_equal(other.shadow["w"], ema.shadow["w"])
    q.data[...] = p.data                            # same weights: the resumed average continues identically
    ema.update()
    other.update()
    np.testing.assert_array_equal(other.shadow["w"], ema.shadow["w"])
    assert other.num_updates == 2
    with pytest.raises(KeyError, match="missing"):
        optim.EMA([("v", param([1.0, 2.0]))]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        optim.EMA([("w", param([1.0]))]).load_state_dict(sd)


@pytest.mark.gpu
def test_gpu_ema_swap_and_state_dict():
    import cupy as cp
    p = Tensor(cp.asarray([1.0, 2.0]), requires_grad=True)
    ema = optim.EMA([p], decay=0.5, use_num_updates=False)
    p.data[...] = 3.0
    ema.update()
    with ema.average_parameters():
        cp.testing.assert_array_equal(p.data, cp.asarray([2.0, 2.5]))
    cp.testing.assert_array_equal(p.data, cp.asarray([3.0, 3.0]))
    assert isinstance(ema.state_dict()["shadow"][0], np.ndarray)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_fused_ema_matches_cpu(dtype):
    import cupy as cp
    rng = np.random.default_rng(2)
    values = [rng.standard_normal((5, 3)).astype(dtype) for _ in range(4)]
    results = []
    for device, fused in [("cpu", False), ("cuda", False), ("cuda", True)]:
        xp = cp if device == "cuda" else np
        p = Tensor(np.zeros((5, 3), dtype), requires_grad=True)
        p.data = xp.array(values[0])            # a copy: the CPU run must not overwrite values[0]
        ema = optim.EMA([p], decay=0.9999, fused=fused)
        for v in values[1:]:
            p.data[...] = xp.asarray(v)
            ema.update()
        results.append(ema.state_dict()["shadow"][0])
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(results[1], results[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(results[2], results[0], rtol=tol, atol=tol)
