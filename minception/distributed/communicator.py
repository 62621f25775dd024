"""The communicator: who am I (rank), how many are we (size), and the few collective operations training needs.

Data-parallel training runs the same program in ``size`` processes ("ranks" 0 .. size-1), each on its own part
of every batch. They talk only through collective operations, which every rank must call in the same order with
arrays of the same shape:

- ``allreduce_sum_(array)``: every rank ends with the element-wise sum of everybody's array (in place);
- ``broadcast_(array, root)``: every rank ends with the root's array (in place);
- ``broadcast_object(obj, root)`` and ``on_main(fn)``: the same for a Python object (a loaded checkpoint);
- ``allgather_object(obj)``: every rank ends with the list of everybody's object, in rank order;
- ``any(flag)``: True on every rank when it is True on at least one (agreeing to stop together);
- ``barrier()``: wait until everybody is here.

Two implementations:

``Communicator``: one process alone (size 1). Every collective is the identity, so code written against the
interface runs unchanged without MPI; this is what ``distributed.init()`` returns when the program was not
started by ``mpiexec`` (and mpi4py is then never imported).

``MPICommunicator``: the ranks of an ``mpiexec`` job, through mpi4py. NumPy arrays go straight to MPI
(``Allreduce`` / ``Bcast`` on the array's own contiguous buffer, no copy). CuPy arrays are summed by NCCL, the
GPU-to-GPU library, when every rank can use it (``nccl.NcclAllreduce``); otherwise they are copied to the host,
reduced by MPI, and copied back.
"""
import os
import pickle
import sys
import time

from autograd.backend import is_gpu_array


class Communicator:
    """A single process: rank 0 of 1. Every collective returns at once with the input unchanged.

    Attributes:
        rank: this process's number, 0 .. size-1 (rank 0 is the "main" rank that writes files).
        size: the number of processes.
        local_rank, local_size: rank and count among the processes on this machine (to pick a GPU).
    """

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1

    @property
    def is_main(self):
        """True on rank 0: the one rank that reads and writes files and prints progress."""
        return self.rank == 0

    def allreduce_sum_(self, array):
        """Sum ``array`` over all ranks, in place; returns it. Shape and dtype must agree on every rank."""
        return array

    def broadcast_(self, array, root=0):
        """Overwrite ``array`` with ``root``'s, in place; returns it."""
        return array

    def broadcast_object(self, obj, root=0):
        """``root``'s Python object, on every rank (pickled; only for trusted data between our own ranks)."""
        return obj

    def allgather_object(self, obj):
        """``[rank 0's obj, rank 1's obj, ...]`` on every rank (pickled; only between our own ranks)."""
        return [obj]

    def any(self, flag):
        """True on every rank if ``flag`` is true on at least one."""
        return bool(flag)

    def barrier(self):
        """Return once every rank has called it."""

    def wait_for_all(self, timeout):
        """A barrier that gives up: True once every rank has called it, False after ``timeout`` seconds."""
        return True

    def abort(self, code=1):
        """End every process of the job now with exit status ``code`` (single process: just this one)."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def on_main(self, fn):
        """Run ``fn()`` on rank 0 only and return its result on every rank.

        If ``fn`` raises, every rank raises: rank 0 the original exception, the others the same exception
        (or a ``RuntimeError`` with its text, when it cannot be pickled). So "rank 0 reads the checkpoint" can
        fail cleanly everywhere instead of leaving the other ranks waiting for a broadcast that never comes.
        """
        return fn()

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class MPICommunicator(Communicator):
    """The ranks of an ``mpiexec`` job (``mpi_comm``: an mpi4py communicator, usually ``MPI.COMM_WORLD``).

    Creating it is itself collective (it finds the ranks sharing this machine), so every rank creates it at the
    same point; ``distributed.init()`` does that once.
    """

    def __init__(self, mpi_comm):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = mpi_comm
        self.rank = mpi_comm.Get_rank()
        self.size = mpi_comm.Get_size()
        node = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)       # the ranks that share this machine's memory
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._nccl = None            # the NCCL communicator, created on the first CuPy reduction
        self._nccl_checked = False

    # ------------------------------------------------------------------------------------ arrays ---
    def allreduce_sum_(self, array):
        if is_gpu_array(array):
            return self._allreduce_gpu_(array)
        _check_contiguous("allreduce_sum_", array)
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        return array

    def _allreduce_gpu_(self, array):
        """CuPy: NCCL when every rank has it; else through host memory (MPI on a NumPy copy)."""
        _check_contiguous("allreduce_sum_", array)
        nccl = self._nccl_communicator()
        if nccl is not None:
            nccl.allreduce_sum_(array)
            return array
        host = array.get()
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        array.set(host)
        return array

    @property
    def gpu_path(self):
        """How CuPy arrays are reduced: "nccl", "host" (MPI on host copies), or None before the first one."""
        if not self._nccl_checked:
            return None
        return "nccl" if self._nccl is not None else "host"

    def _nccl_communicator(self):
        """The NCCL communicator, created by every rank together on first use; None where NCCL can't be used."""
        if not self._nccl_checked:
            from .nccl import create_nccl_allreduce

            self._nccl = create_nccl_allreduce(self)
            self._nccl_checked = True
        return self._nccl

    def broadcast_(self, array, root=0):
        """Overwrite ``array`` with ``root``'s (CuPy arrays travel through host memory: this runs once per run,
        not per step)."""
        if is_gpu_array(array):
            host = array.get()
            self.comm.Bcast(host, root=root)
            array.set(host)
            return array
        _check_contiguous("broadcast_", array)
        self.comm.Bcast(array, root=root)
        return array

    # ----------------------------------------------------------------------------------- objects ---
    def broadcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    def any(self, flag):
        return bool(self.comm.allreduce(1 if flag else 0, op=self.MPI.MAX))

    def barrier(self):
        self.comm.Barrier()

    def wait_for_all(self, timeout):
        request = self.comm.Ibarrier()          # non-blocking: poll it, so that waiting can end
        deadline = time.monotonic() + timeout
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)       # tells mpiexec to end every rank ...
        os._exit(code)              # ... and in case the call returns before this process is ended

    def on_main(self, fn):
        payload = result = error = None
        if self.rank == 0:
            try:
                result = fn()
                payload = pickle.dumps(("ok", result))
            except Exception as e:        # noqa: BLE001 -- handed to every rank, then raised there
                error, payload = e, _pickled_error(e)
        payload = self.comm.bcast(payload, root=0)     # bytes: pickling can no longer fail inside the broadcast
        if self.rank == 0:
            if error is not None:
                raise error
            return result
        kind, value = pickle.loads(payload)
        if kind == "error":
            raise value
        return value


def _pickled_error(error):
    """``error`` pickled so that it unpickles on the other ranks; a RuntimeError with its text if it doesn't."""
    try:
        payload = pickle.dumps(("error", error))
        pickle.loads(payload)             # some exceptions pickle but cannot be rebuilt (extra __init__ args)
        return payload
    except Exception:                     # noqa: BLE001
        return pickle.dumps(("error", RuntimeError(f"rank 0 failed: {type(error).__name__}: {error}")))


def _check_contiguous(op, array):
    if not array.flags.c_contiguous:
        raise ValueError(f"{op}: MPI and NCCL need a C-contiguous array, got shape {array.shape} with strides "
                         f"{array.strides}; pass np.ascontiguousarray(a) and copy the result back")
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{op}: expected a numeric array, got dtype {array.dtype}")
