"""Test-suite setup: GPU tests skip with a clear reason where CuPy or a CUDA device is missing."""
import pytest

from autograd.backend import gpu_available


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    reason = "needs CuPy and a CUDA device (install the [gpu] extra on a machine with an NVIDIA GPU)"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
