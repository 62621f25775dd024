"""Worker: one rank fails while the other waits in a collective; ``run_or_abort`` must end the whole job.

    mpiexec -n 2 python failure.py raise    # rank 1 raises; rank 0 is blocked in an all-reduce
    mpiexec -n 2 python failure.py status   # rank 1 returns exit status 3; rank 0 is stuck elsewhere
Without ``run_or_abort`` both would hang until killed.
"""
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

from minception import distributed  # noqa: E402


def main(mode):
    comm = distributed.init()
    comm.allreduce_sum_(np.ones(3))             # both ranks are up and talking
    if comm.rank == 1:
        if mode == "raise":
            raise RuntimeError("deliberate failure on rank 1")
        return 3
    if mode == "raise":
        comm.allreduce_sum_(np.ones(3))         # waits for rank 1 forever
    else:
        time.sleep(600)                         # a rank that never arrives
    return 0


if __name__ == "__main__":
    sys.exit(distributed.run_or_abort(main, sys.argv[1], exit_timeout=2.0))
