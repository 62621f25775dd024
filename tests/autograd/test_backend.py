"""The backend's device handling on a CPU machine: a missing CuPy or GPU gives one clear error naming the cause,
and CuPy arrays are recognised by type, not by the name of their module. CuPy is simulated: a ``None`` entry in
``sys.modules`` makes ``import cupy`` fail, a small fake module stands in for a CuPy without a device."""
import sys
import types

import numpy as np
import pytest

from autograd import Tensor, backend
from autograd.backend import GPUUnavailableError


@pytest.fixture
def fresh_probe(monkeypatch):
    """Forget the cached GPU probe for this test (and restore it afterwards)."""
    monkeypatch.setattr(backend, "_gpu", None)
    return monkeypatch


def fake_cupy(device_count=None, error=None):
    """A stand-in ``cupy`` module: an ``ndarray`` class and ``cuda.runtime.getDeviceCount``."""
    module = types.ModuleType("cupy")
    module.__version__ = "99.0-fake"

    class ndarray:
        pass

    def get_device_count():
        if error is not None:
            raise error
        return device_count

    module.ndarray = ndarray
    module.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    module.asarray = lambda a: a
    return module


def test_missing_cupy_names_the_extras(fresh_probe):
    fresh_probe.setitem(sys.modules, "cupy", None)          # import cupy -> ImportError
    assert not backend.gpu_available()
    reason = backend.gpu_unavailable_reason()
    assert "CuPy is not installed" in reason
    assert "minception[gpu-cuda12]" in reason and "minception[gpu-cuda13]" in reason
    with pytest.raises(GPUUnavailableError, match="CuPy is not installed"):
        backend.require_gpu()


def test_cupy_without_a_device_says_so(fresh_probe):
    fresh_probe.setitem(sys.modules, "cupy", fake_cupy(error=RuntimeError("cudaErrorNoDevice: no CUDA-capable "
                                                                           "device is detected")))
    with pytest.raises(GPUUnavailableError, match="CuPy 99.0-fake is installed but no CUDA device is usable.*"
                                                  "cudaErrorNoDevice"):
        backend.require_gpu()
    assert not backend.gpu_available()


def test_cupy_with_zero_devices_says_so(fresh_probe):
    fresh_probe.setitem(sys.modules, "cupy", fake_cupy(device_count=0))
    with pytest.raises(GPUUnavailableError, match="CUDA reports no GPU"):
        backend.require_gpu()


def test_cupy_with_a_device_is_returned(fresh_probe):
    cupy = fake_cupy(device_count=1)
    fresh_probe.setitem(sys.modules, "cupy", cupy)
    assert backend.require_gpu() is cupy
    assert backend.gpu_available() and backend.gpu_unavailable_reason() is None


def test_probe_runs_once(fresh_probe):
    calls = []
    cupy = fake_cupy(device_count=1)
    cupy.cuda.runtime.getDeviceCount = lambda: calls.append(1) or 1
    fresh_probe.setitem(sys.modules, "cupy", cupy)
    for _ in range(3):
        backend.gpu_available()
    assert calls == [1]


@pytest.mark.parametrize("move", [
    lambda: backend.to_device(np.zeros(3), "cuda"),
    lambda: Tensor(np.zeros(3)).to("cuda"),
    lambda: backend.check_device("cuda", require=True),
], ids=["to_device", "Tensor.to", "check_device"])
def test_moving_to_cuda_without_cupy_raises_the_clear_error(fresh_probe, move):
    fresh_probe.setitem(sys.modules, "cupy", None)
    with pytest.raises(GPUUnavailableError, match="device 'cuda' requested.*CuPy is not installed"):
        move()


def test_module_to_cuda_without_cupy_raises_the_clear_error_and_leaves_the_model(fresh_probe):
    from minception import nn
    fresh_probe.setitem(sys.modules, "cupy", None)
    layer = nn.Linear(3, 2)
    before = layer.weight.data
    with pytest.raises(GPUUnavailableError, match="gpu-cuda12"):
        layer.to("cuda")
    assert layer.weight.data is before


def test_check_device_rejects_unknown_names_and_accepts_cpu_without_cupy(fresh_probe):
    fresh_probe.setitem(sys.modules, "cupy", None)
    assert backend.check_device("cpu", require=True) == "cpu"
    assert backend.check_device("cuda") == "cuda"            # a name check only, without require
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        backend.check_device("gpu")


def test_gpu_arrays_are_recognised_by_type_not_module_name(monkeypatch):
    cupy = fake_cupy(device_count=1)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    on_gpu = cupy.ndarray()
    impostor = type("ndarray", (), {"__module__": "cupy_lookalike"})()
    assert backend.is_gpu_array(on_gpu)
    assert not backend.is_gpu_array(impostor)
    assert not backend.is_gpu_array(np.zeros(2))
    assert backend.get_array_module(np.zeros(2), on_gpu) is cupy
    assert backend.get_array_module(types.SimpleNamespace(data=on_gpu)) is cupy     # a Tensor-like holder
    assert backend.get_array_module(impostor, np.zeros(1)) is np
    assert backend.device_of(on_gpu) == "cuda" and backend.device_of(impostor) == "cpu"


def test_no_cupy_imported_means_no_gpu_array(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert not backend.is_gpu_array(object())
    assert "cupy" not in sys.modules                       # asking never imports CuPy


def test_to_device_queues_the_copy_on_the_stream_instead_of_waiting(fresh_probe):
    """``cupy.asarray(host)`` is a synchronous copy (from pageable memory it waits for all queued GPU work);
    ``to_device`` allocates and calls ``ndarray.set(host, stream=...)``, which CUDA queues after staging."""
    cupy = fake_cupy(device_count=1)
    calls = []

    class DeviceArray(cupy.ndarray):
        def __init__(self, shape, dtype):
            self.shape, self.dtype = shape, dtype

        def set(self, host, stream=None):
            calls.append((host.copy(), host.flags.c_contiguous, stream))

    cupy.empty = DeviceArray
    cupy.cuda.get_current_stream = lambda: "the current stream"
    cupy.asarray = lambda a: calls.append(("asarray", a)) or a
    fresh_probe.setitem(sys.modules, "cupy", cupy)
    host = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2]            # a strided view
    out = backend.to_device(host, "cuda")
    assert isinstance(out, DeviceArray) and out.shape == (3, 2) and out.dtype == np.int64
    (copied, contiguous, stream), = calls
    assert contiguous and stream == "the current stream"
    np.testing.assert_array_equal(copied, host)
    calls.clear()
    scalar = backend.to_device(np.array(7), "cuda")                        # 0-d stays 0-d (a BN step counter)
    assert scalar.shape == () and calls[0][0].shape == ()
    calls.clear()
    backend.to_device(np.array(["text"]), "cuda")                          # CuPy itself refuses text: say it there
    assert calls[0][0] == "asarray"


@pytest.mark.gpu
def test_to_device_on_a_gpu_copies_and_does_not_depend_on_the_host_array_afterwards():
    host = np.arange(10, dtype=np.float32)
    dev = backend.to_device(host, "cuda")
    host[:] = -1                                     # CUDA staged the data before the call returned
    np.testing.assert_array_equal(dev.get(), np.arange(10, dtype=np.float32))
    labels = backend.to_device([3, 1, 2], "cuda")
    assert labels.get().tolist() == [3, 1, 2]
