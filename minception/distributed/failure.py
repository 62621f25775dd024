"""A rank that fails takes the whole job down, with a message, instead of leaving the others waiting forever.

Collective operations wait for every rank. If one rank dies with an exception, the others block in their next
all-reduce, and ``mpiexec`` does not notice: the job hangs. ``run_or_abort(main)`` prevents that:

- an exception on any rank prints its traceback and ``[rank r of N] failed: ...`` to stderr, then calls
  ``MPI_Abort``, which ends every process of the job (exit status 1);
- a non-zero exit status on a rank (a stop the ranks agreed on, or one they did not) waits, with a timeout, for
  the other ranks to finish too; if they do not arrive, the job is aborted the same way.

In a single process it simply runs ``main``: exceptions propagate as usual.
"""
import sys
import time
import traceback


def run_or_abort(main, *args, comm=None, exit_timeout=60.0, **kwargs):
    """Call ``main(*args, **kwargs)`` and return its result (an exit status), ending all ranks if this one fails.

    Args:
        main: the program's entry point, returning an exit status (0 or None for success).
        comm: the communicator (default ``distributed.init()``).
        exit_timeout: seconds to wait for the other ranks after a non-zero exit status before aborting.
    """
    if comm is None:
        from .environment import init
        comm = init()
    if comm.size == 1:
        return main(*args, **kwargs)
    try:
        status = main(*args, **kwargs)
    except SystemExit as stop:           # argparse's --help and errors: the same on every rank
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if status:
            _leave_together(comm, status, exit_timeout)
        raise
    except BaseException as error:      # noqa: BLE001 -- including KeyboardInterrupt: never leave ranks hanging
        detail = traceback.format_exc()
        sys.stdout.flush()
        sys.stderr.write(f"{detail}[rank {comm.rank} of {comm.size}] failed: {type(error).__name__}: {error}\n"
                         f"[rank {comm.rank} of {comm.size}] aborting all {comm.size} processes of the job\n")
        _before_abort()
        comm.abort(1)                    # does not return
    if status:
        _leave_together(comm, status, exit_timeout)
    return status


def _leave_together(comm, status, timeout):
    """Wait up to ``timeout`` seconds for every rank to get here too; abort the job if they do not."""
    if not comm.wait_for_all(timeout):
        sys.stderr.write(f"[rank {comm.rank} of {comm.size}] stopped with exit status {status}, but other ranks "
                         f"are still running after {timeout:g} s; aborting all {comm.size} processes\n")
        _before_abort()
        comm.abort(status)


#: seconds between the last message and the abort (see ``_before_abort``)
ABORT_GRACE_S = 0.5


def _before_abort():
    """Flush, then give the launcher a moment to forward this rank's last lines: an abort tears the job down at
    once, and MPICH's launcher dropped the message of a failing rank about one time in four without the pause."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)
