"""``ops.kernels.cpu.runtime.blas``: the fast tier holds OpenBLAS at one thread only while a threaded convolution runs,
and restores the process's setting afterwards: after a normal return, after an error, and when several threads run
convolutions at once (the contract in the module docstring)."""
import threading
import time

import numpy as np
import pytest

import ops
from autograd import Tensor
from ops.kernels.cpu import conv2d as cpu_conv2d
from ops.kernels.cpu.runtime import blas


@pytest.fixture
def openblas_at_3(monkeypatch, three_threads):
    """OpenBLAS at 3 threads (restored after the test), every conv on the threaded path."""
    lib = blas.openblas()
    if lib.set is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: its thread count cannot be read, and the fast tier leaves it alone")
    before = lib.get()
    lib.set(3)
    monkeypatch.setattr(cpu_conv2d, "MIN_THREADED_MACS", 0)
    yield lib
    lib.set(before)


def spy_on_gemm(monkeypatch, fail=False):
    """Record OpenBLAS's thread count during each weight-gradient GEMM (optionally raise there)."""
    seen = []
    original = cpu_conv2d._dw_gemm

    def gemm(gy2d, cols, out):
        seen.append(blas.openblas_threads())
        if fail:
            raise RuntimeError("GEMM failed")
        original(gy2d, cols, out)

    monkeypatch.setattr(cpu_conv2d, "_dw_gemm", gemm)
    return seen


def conv_forward_backward():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3, 6, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 3, 3, 3)), requires_grad=True)
    with ops.kernels.use("fast"):
        ops.conv2d(x, w, padding=1).sum().backward()
    return w.grad


def test_one_thread_while_the_conv_runs_then_restored(openblas_at_3, monkeypatch):
    seen = spy_on_gemm(monkeypatch)
    conv_forward_backward()
    assert seen and set(seen) == {1}
    assert openblas_at_3.get() == 3


def test_restored_after_an_error(openblas_at_3, monkeypatch):
    spy_on_gemm(monkeypatch, fail=True)
    with pytest.raises(RuntimeError, match="GEMM failed"):
        conv_forward_backward()
    assert openblas_at_3.get() == 3


def test_concurrent_convs_do_not_interleave_save_and_restore(openblas_at_3):
    expected = conv_forward_backward()
    results, errors = [], []

    def user():
        try:
            for _ in range(5):
                results.append(conv_forward_backward())
        except Exception as e:          # reported below
            errors.append(e)

    users = [threading.Thread(target=user) for _ in range(4)]
    for t in users:
        t.start()
    for t in users:
        t.join()
    assert not errors and len(results) == 20
    for r in results:            # a conv that finds OpenBLAS held at 1 by another runs in its calling thread alone:
        np.testing.assert_allclose(r, expected, rtol=1e-12)             # the same sums, in another order
    assert openblas_at_3.get() == 3


def test_a_second_block_waits_for_the_first(openblas_at_3):
    """Two threads: the second ``one_thread()`` block starts only after the first has restored the count (so it
    saves the user's setting, not the 1 of the first block)."""
    a_inside, release_a, events = threading.Event(), threading.Event(), []

    def first():
        with blas.one_thread():
            a_inside.set()
            release_a.wait(10)
            events.append("first leaves")

    def second():
        a_inside.wait(10)
        with blas.one_thread():
            events.append("second enters")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    a_inside.wait(10)
    time.sleep(0.2)                       # time for the second thread to reach its block
    release_a.set()
    for t in threads:
        t.join()
    assert events == ["first leaves", "second enters"]
    assert openblas_at_3.get() == 3


def test_reference_tier_never_touches_blas(openblas_at_3, monkeypatch):
    seen = []
    monkeypatch.setattr(blas.OpenBLAS, "__init__", lambda self: seen.append("looked up"))
    monkeypatch.setattr(blas, "_blas", None)
    rng = np.random.default_rng(1)
    with ops.kernels.use("reference"):
        ops.conv2d(Tensor(rng.standard_normal((4, 3, 6, 5))), rng.standard_normal((2, 3, 3, 3)), padding=1)
    assert seen == []
