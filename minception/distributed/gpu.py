"""One GPU per rank: ``use_local_gpu()`` makes rank ``r`` of a machine work on that machine's GPU ``r``.

CuPy allocates on the *current* device, device 0 unless told otherwise, so without this every rank of a machine
would crowd onto GPU 0 (and NCCL, which needs one GPU per rank, could not be used). Call it on every rank before
the model or any array is moved to the GPU; the ranks of each machine are numbered by ``comm.local_rank``.
"""


def use_local_gpu(comm=None):
    """Select GPU ``comm.local_rank % device count`` as CuPy's current device; returns its number.

    Raises RuntimeError when CuPy or a GPU is missing.
    """
    if comm is None:
        from .environment import init
        comm = init()
    from autograd.backend import cupy_or_none

    cupy = cupy_or_none()
    if cupy is None:
        raise RuntimeError("use_local_gpu: CuPy with a usable CUDA GPU is not available on this rank "
                           f"(rank {comm.rank} of {comm.size})")
    count = cupy.cuda.runtime.getDeviceCount()
    device = comm.local_rank % count
    cupy.cuda.Device(device).use()
    return device
