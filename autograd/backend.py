"""Which array library holds the data: NumPy on the CPU, CuPy on the GPU.

Every op is written once against ``xp`` (the array module of its inputs); only a few kernels fork into a
NumPy/Numba version and a CuPy version. CuPy is imported lazily, the first time a GPU array is seen or asked
for, so ``import autograd`` works on machines without it.
"""
import numpy as np

_cupy = None          # the cupy module once imported
_cupy_checked = False


def cupy_or_none():
    """Return the ``cupy`` module, or None when it is not installed or no GPU is usable."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy
            cupy.cuda.runtime.getDeviceCount()
            _cupy = cupy
        except Exception:  # ImportError, or CUDA errors when no driver/device is present
            _cupy = None
    return _cupy


def gpu_available():
    """True when CuPy is installed and a CUDA device can be used."""
    return cupy_or_none() is not None


def is_gpu_array(array):
    """True for a CuPy ndarray. Never imports CuPy for NumPy arrays."""
    return type(array).__module__.startswith("cupy")


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array (or a Tensor holding one), else ``numpy``."""
    for a in arrays:
        a = getattr(a, "data", a) if not isinstance(a, np.ndarray) else a
        if is_gpu_array(a):
            return cupy_or_none()
    return np


def device_of(array):
    """'cuda' for CuPy arrays, 'cpu' otherwise."""
    return "cuda" if is_gpu_array(array) else "cpu"


def check_device(device):
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    return device


def to_device(array, device):
    """Copy ``array`` to ``device`` ('cpu' or 'cuda'); returns it unchanged when already there."""
    check_device(device)
    if device == "cpu":
        return array.get() if is_gpu_array(array) else np.asarray(array)
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError("device 'cuda' requested but CuPy with a usable GPU is not available "
                           "(install the [gpu] extra on a machine with an NVIDIA GPU)")
    return array if is_gpu_array(array) else cp.asarray(array)


def to_numpy(array):
    """A NumPy array with the same values (copies from the GPU if needed)."""
    return array.get() if is_gpu_array(array) else np.asarray(array)


def sum_to(array, shape):
    """Sum ``array`` over the axes that broadcasting added or stretched, so it gets ``shape``.

    This is the one place where broadcasting is undone in backward: if ``a`` of shape (3, 1) was broadcast
    against (2, 3, 4), the gradient arriving with shape (2, 3, 4) is summed over axis 0 and axis 2.
    """
    if array.shape == tuple(shape):
        return array
    lead = array.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and array.shape[i + lead] != 1)
    out = array.sum(axis=axes, keepdims=True)
    if lead:
        out = out.reshape(out.shape[lead:])
    return out
