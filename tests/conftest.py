"""Test-suite setup: GPU tests skip with a clear reason where CuPy or a CUDA device is missing."""
import pytest

from autograd.backend import gpu_available


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    from autograd.backend import gpu_unavailable_reason
    reason = f"needs CuPy and a CUDA device: {gpu_unavailable_reason().split('. ')[0]}"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("gpu") is not None:   # the marker, not any node named "gpu" (a folder, a test)
            item.add_marker(skip)


@pytest.fixture
def three_threads(monkeypatch):
    """Force the fast tier's CPU threads (``ops.kernels.cpu.threads``) to 3, and every kernel and elementwise op
    onto its parallel path whatever the size, so small test shapes exercise the range splitting (3 parts on any
    machine)."""
    from ops.kernels.cpu import parts, threads
    monkeypatch.setattr(threads, "_threads", 3)
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "KERNEL_MIN_BYTES", 0)
    monkeypatch.setattr(parts, "PARALLEL_MIN_BYTES", 0)
    yield
    if threads._pool is not None:
        threads._pool[0].shutdown()
