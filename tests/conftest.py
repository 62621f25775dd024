"""Test-suite setup: GPU tests skip with a clear reason where CuPy or a CUDA device is missing; scripts (the
examples, data generators) load as modules through one loader."""
import importlib.util

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
    """Force the fast tier's CPU threads (``ops.kernels.cpu.runtime.threads``) to 3, and every kernel and elementwise op
    onto its parallel path whatever the size, so small test shapes exercise the range splitting (3 parts on any
    machine), and convs into as many parts as they have images."""
    from ops.kernels.cpu import conv2d
    from ops.kernels.cpu.runtime import parts, threads
    monkeypatch.setattr(conv2d, "MIN_PART_MACS", 1)
    monkeypatch.setattr(conv2d, "MIN_CHUNK_COLUMNS", 1)
    monkeypatch.setattr(threads, "_threads", 3)
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "KERNEL_MIN_BYTES", 0)
    monkeypatch.setattr(threads, "MIN_PART_BYTES", 0)
    monkeypatch.setattr(parts, "PARALLEL_MIN_BYTES", 0)
    yield
    if threads._pool is not None:
        threads._pool[0].shutdown()


def load_script(path, module_name):
    """Run the script at ``path`` (an example, a generator) as a fresh module named ``module_name`` and return it;
    its ``if __name__ == "__main__"`` block does not run, so tests call its functions directly."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def script_loader():
    """``load_script`` for tests in any folder (conftest functions are not importable by path from subfolders)."""
    return load_script

