"""NCCL all-reduce for CuPy arrays: the GPUs sum the gradients among themselves, with no trip through host memory.

NCCL (NVIDIA's collective library, bound by CuPy as ``cupy.cuda.nccl``) runs a ring all-reduce over NVLink, PCIe
or InfiniBand. Its communicator is created from a "unique id" that one rank draws and the others receive; MPI
carries that id, so ``mpiexec`` remains the only launcher::

    rank 0: uid = nccl.get_unique_id()        --MPI broadcast-->      every rank: uid
    every rank: NcclCommunicator(size, uid, rank)                      (collective: all ranks at once)

NCCL needs one GPU per rank: two ranks on the same device cannot join one communicator. Each rank must therefore
select its own GPU (``distributed.use_local_gpu()``) before it allocates anything there. When any rank cannot use
NCCL (no NCCL in CuPy, or two ranks sharing a GPU), every rank falls back to MPI through host memory: the choice
is made together, because a rank using NCCL while another uses MPI would wait forever.

The reduction is queued on CuPy's current stream like any other kernel, so the operations after it (dividing by
the world size, the optimizer step) see the summed values without an explicit synchronisation.
"""
import socket

import numpy as np


def nccl_module():
    """``cupy.cuda.nccl`` when CuPy was built with NCCL, else None."""
    try:
        from cupy.cuda import nccl
    except Exception:           # noqa: BLE001 -- ImportError, or a missing libnccl
        return None
    if not getattr(nccl, "available", True):
        return None
    return nccl


def _this_gpu():
    """(host name, PCI bus id) of this rank's current GPU: equal for two ranks exactly when they share a device."""
    import cupy

    return socket.gethostname(), cupy.cuda.Device().pci_bus_id


def create_nccl_allreduce(comm):
    """An ``NcclAllreduce`` over the ranks of ``comm`` (an ``MPICommunicator``), or None on every rank when NCCL
    cannot be used by all of them. Collective: every rank calls it at the same point (their first GPU reduction).
    """
    nccl = nccl_module()
    gpu = _this_gpu() if nccl is not None else None
    gpus = comm.comm.allgather(gpu)
    shared = len(set(gpus)) < len(gpus)
    if None in gpus or shared:
        if comm.is_main:
            why = ("two ranks share a GPU (call distributed.use_local_gpu() before moving the model)" if shared
                   else "cupy.cuda.nccl is not available on every rank")
            print(f"minception.distributed: NCCL not used ({why}); GPU arrays are reduced through host memory "
                  "with MPI", flush=True)
        return None
    uid = nccl.get_unique_id() if comm.rank == 0 else None
    uid = comm.broadcast_object(uid, root=0)
    return NcclAllreduce(nccl, nccl.NcclCommunicator(comm.size, uid, comm.rank))


class NcclAllreduce:
    """Sum CuPy arrays over the ranks with NCCL, in place, on the current CUDA stream."""

    #: NumPy dtype -> name of the NCCL data type constant in ``cupy.cuda.nccl``
    DTYPES = {np.dtype(np.float16): "NCCL_FLOAT16", np.dtype(np.float32): "NCCL_FLOAT32",
              np.dtype(np.float64): "NCCL_FLOAT64", np.dtype(np.int32): "NCCL_INT32",
              np.dtype(np.int64): "NCCL_INT64", np.dtype(np.uint8): "NCCL_UINT8"}

    def __init__(self, nccl, communicator):
        self.nccl, self.communicator = nccl, communicator

    def allreduce_sum_(self, array):
        """``array`` (a C-contiguous CuPy array) becomes the sum over all ranks. Returns it."""
        import cupy

        name = self.DTYPES.get(np.dtype(array.dtype))
        if name is None:
            raise TypeError(f"NCCL all-reduce: unsupported dtype {array.dtype} (supported: "
                            f"{', '.join(str(d) for d in self.DTYPES)})")
        if array.size == 0:
            return array
        stream = cupy.cuda.get_current_stream()
        # in place: NCCL allows the send and receive buffers to be the same memory
        self.communicator.allReduce(array.data.ptr, array.data.ptr, array.size, getattr(self.nccl, name),
                                    self.nccl.NCCL_SUM, stream.ptr)
        return array
