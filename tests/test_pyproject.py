"""The install extras that the README and the GPU error messages name exist in pyproject.toml."""
import os
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_extras_for_cuda_12_and_13():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert extras["gpu-cuda12"] == ["cupy-cuda12x>=13"]
    assert extras["gpu-cuda13"] == ["cupy-cuda13x>=14"]
    assert extras["gpu"] == extras["gpu-cuda12"]          # the alias the README documents
