"""Which array library holds the data: NumPy on the CPU, CuPy on the GPU.

Every op is written once against ``xp`` (the array module of its inputs); only a few kernels fork into a
NumPy/Numba version and a CuPy version. CuPy is imported lazily, the first time a GPU is asked for, so
``import autograd`` works on machines without it.

Asking for the GPU (``require_gpu()``, ``to_device(a, "cuda")``, ``Module.to("cuda")``) either works or raises
``GPUUnavailableError`` saying why: CuPy is not installed (and which extra installs it), or CuPy is installed but
no CUDA device or driver can be used (with CUDA's own message).
"""
import sys

import numpy as np

_gpu = None           # (cupy module or None, reason string or None) once probed


class GPUUnavailableError(RuntimeError):
    """The GPU was asked for but cannot be used; the message names the cause and the fix."""


def _probe():
    """Import CuPy and count the CUDA devices once; returns ``(cupy or None, why not or None)``."""
    try:
        import cupy
    except ImportError as e:
        return None, ("CuPy is not installed (" + str(e) + "). Install the extra that matches your CUDA "
                      "driver: pip install 'minception[gpu-cuda12]' (CUDA 12) or 'minception[gpu-cuda13]' "
                      "(CUDA 13); 'nvidia-smi' shows the CUDA version the driver supports")
    except Exception as e:   # a broken install fails in many ways (missing CUDA libraries, ABI mismatch)
        return None, f"CuPy is installed but cannot be imported: {type(e).__name__}: {e}"
    version = getattr(cupy, "__version__", "?")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:   # cudaErrorNoDevice, cudaErrorInsufficientDriver, no libcuda.so, ...
        return None, (f"CuPy {version} is installed but no CUDA device is usable: {type(e).__name__}: {e}. "
                      "Check the NVIDIA driver ('nvidia-smi') and that CuPy's CUDA major version matches it "
                      "(cupy-cuda12x for CUDA 12, cupy-cuda13x for CUDA 13)")
    if count < 1:
        return None, f"CuPy {version} is installed but CUDA reports no GPU on this machine"
    return cupy, None


def _state():
    global _gpu
    if _gpu is None:
        _gpu = _probe()
    return _gpu


def cupy_or_none():
    """Return the ``cupy`` module, or None when it is not installed or no GPU is usable."""
    return _state()[0]


def gpu_available():
    """True when CuPy is installed and a CUDA device can be used."""
    return cupy_or_none() is not None


def gpu_unavailable_reason():
    """None when the GPU can be used; otherwise one sentence saying why not and how to fix it."""
    return _state()[1]


def require_gpu():
    """Return the ``cupy`` module, or raise ``GPUUnavailableError`` naming the cause (no CuPy, no device).

    Call it where a run starts (``--device cuda``) so that a missing GPU is one clear line, not a traceback
    from deep inside the first op.
    """
    cupy, reason = _state()
    if cupy is None:
        raise GPUUnavailableError(f"device 'cuda' requested but the GPU cannot be used: {reason}")
    return cupy


def is_gpu_array(array):
    """True for a CuPy ndarray. Never imports CuPy: a CuPy array can only exist once CuPy has been imported."""
    if type(array) is np.ndarray:          # the common case, answered without a lookup
        return False
    cupy = sys.modules.get("cupy")
    ndarray = getattr(cupy, "ndarray", None)
    return ndarray is not None and isinstance(array, ndarray)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array (or a Tensor holding one), else ``numpy``."""
    for a in arrays:
        if type(a) is np.ndarray:
            continue
        if is_gpu_array(a) or is_gpu_array(getattr(a, "data", None)):
            return sys.modules["cupy"]
    return np


def device_of(array):
    """'cuda' for CuPy arrays, 'cpu' otherwise."""
    return "cuda" if is_gpu_array(array) else "cpu"


def check_device(device, require=False):
    """Return ``device`` if it is 'cpu' or 'cuda' (ValueError otherwise). With ``require``, also check that
    'cuda' can be used now (``require_gpu``), so the caller fails before doing any work."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    if require and device == "cuda":
        require_gpu()
    return device


def to_device(array, device):
    """Copy ``array`` to ``device`` ('cpu' or 'cuda'); returns it unchanged when already there.

    To the GPU the copy is queued on the current stream and the host does not wait: ``cupy.asarray`` of a host
    array is a synchronous copy, which from pageable memory first waits for all the GPU's queued work, so a
    training loop that copied each batch that way would stop issuing kernels until the previous step had run.
    CUDA stages the host data before the call returns, so ``array`` may change right after."""
    check_device(device)
    if device == "cpu":
        return array.get() if is_gpu_array(array) else np.asarray(array)
    if is_gpu_array(array):
        return array
    cp = require_gpu()
    host = np.asarray(array)
    if not host.flags.c_contiguous:
        host = np.ascontiguousarray(host)      # (not for every array: it makes a 0-d array 1-d)
    if host.dtype.kind not in "biuf":          # CuPy refuses objects and text; let it say so
        return cp.asarray(array)
    out = cp.empty(host.shape, host.dtype)
    out.set(host, stream=cp.cuda.get_current_stream())
    return out


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


def memory_owner(array):
    """The object whose memory ``array`` uses: ``array`` itself when it owns its memory, else the end of its
    ``.base`` chain (NumPy and CuPy both point a view's ``.base`` at the array it views). Two arrays can share
    memory only when they have the same owner."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


def may_share_memory(a, b):
    """True when arrays ``a`` and ``b`` may touch the same bytes (their address ranges overlap): NumPy's or
    CuPy's ``may_share_memory``. Arrays on different devices never share memory."""
    if type(a) is np.ndarray and type(b) is np.ndarray:     # the common case, answered without a lookup
        return bool(np.may_share_memory(a, b))
    if is_gpu_array(a) != is_gpu_array(b):
        return False
    return bool(get_array_module(a).may_share_memory(a, b))
