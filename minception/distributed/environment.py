"""Where this process stands: started by ``mpiexec`` (one rank of many) or alone.

``init()`` looks at the environment that MPI launchers give their processes (``PMI_RANK``/``PMI_SIZE`` from MPICH,
Intel MPI and MVAPICH, ``OMPI_COMM_WORLD_*`` from Open MPI, ``PMIX_RANK`` from PMIx launchers such as Slurm's
``srun --mpi=pmix``):

- none of them set: a plain ``python script.py``. The answer is the single-process ``Communicator`` (rank 0 of
  1), and mpi4py is not even imported, so everything runs exactly as without this package;
- set: mpi4py is imported (which initialises MPI) and the answer is an ``MPICommunicator`` over all ranks. If
  mpi4py is missing, that is an error when the job has several processes (each would otherwise train alone),
  and a plain single process when ``mpiexec -n 1`` started it.

``init()`` is idempotent: the first call decides, later calls return the same communicator. Nothing calls it at
import time, so ``import minception`` never touches MPI.
"""
import os

from .communicator import Communicator, MPICommunicator

#: environment variables that tell the job's size, by launcher family
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
#: any of these means "started by an MPI launcher"
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")

_current = None


def launcher_size(environ=None):
    """The number of processes the MPI launcher started (None when not started by one; 0 when it did not say)."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        if environ.get(name, "").strip().isdigit():
            return int(environ[name])
    if any(name in environ for name in RANK_VARIABLES):
        return 0
    return None


def init():
    """The communicator of this process (created on the first call; see the module docstring).

    Raises RuntimeError when ``mpiexec`` started several processes but mpi4py is not installed.
    """
    global _current
    if _current is None:
        _current = _create()
    return _current


def _create():
    size = launcher_size()
    if size is None:
        return Communicator()
    try:
        from mpi4py import MPI
    except ImportError as error:
        if size == 1:
            return Communicator()
        raise RuntimeError(
            f"minception.distributed: this process was started by an MPI launcher "
            f"({'job of ' + str(size) + ' processes' if size else 'job size unknown'}), but mpi4py is not "
            f"installed ({error}). Install the extra: pip install -e '.[distributed]'") from error
    return MPICommunicator(MPI.COMM_WORLD)


def rank():
    """This process's rank (0 when alone)."""
    return init().rank


def world_size():
    """The number of processes in the job (1 when alone)."""
    return init().size


def is_main():
    """True on rank 0, the rank that writes files and prints."""
    return init().rank == 0
