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


def test_the_license_file_is_the_one_pyproject_declares():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        declared = tomllib.load(f)["project"]["license"]["text"]
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
        first_line = f.readline().strip()
    assert declared == "MIT" and first_line == "MIT License"
