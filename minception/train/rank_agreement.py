"""The points where the ranks of a data-parallel job must act together, as the Trainer sees them.

The Trainer's loop is the same alone and as one rank of ``mpiexec -n N``: it calls one of these objects at each
such point, and ``SingleProcess`` answers for a process alone (every agreement is its own answer), while
``DataParallelRanks`` asks the other ranks (``minception.distributed.DataParallel``, whose docstring has the
rules). The points:

- ``average_gradients``: after backward, every gradient becomes its mean over the ranks (None alone);
- ``batch_totals``: the loss and accuracy reported are the global batch's, the same on every rank;
- ``world_size``: images per step are ``world_size`` times the local batch;
- ``any``: stop (Ctrl-C) when any rank was asked, all after the same step;
- ``on_main``: what only rank 0 can do (read a checkpoint, evaluate on the test set), done for all;
- ``refuse_together``: a rank without a run folder writes nothing, but must still stop when rank 0 refuses to
  write a non-finite state.
"""


class SingleProcess:
    """A process training alone: nothing to agree on."""

    world_size = 1
    average_gradients = None      # loop.train_step's ``average_gradients``: none

    def batch_totals(self, mean_loss, correct, count):
        """The batch's numbers as they are."""
        return mean_loss, correct

    def any(self, flag):
        return flag

    def on_main(self, fn):
        return fn()

    def refuse_together(self, check):
        """Nothing: a process without a run folder writes nothing, so it has nothing to refuse."""


class DataParallelRanks:
    """One rank of a data-parallel job: each agreement is a collective over ``data_parallel``'s ranks (a
    ``distributed.DataParallel``), so every rank must reach the same calls in the same order."""

    def __init__(self, data_parallel):
        self.data_parallel = data_parallel

    @property
    def world_size(self):
        return self.data_parallel.world_size

    @property
    def average_gradients(self):
        return self.data_parallel.average_gradients

    def batch_totals(self, mean_loss, correct, count):
        """The global batch's mean loss and correct count from this rank's (``count`` images)."""
        return self.data_parallel.batch_totals(mean_loss, correct, count)

    def any(self, flag):
        """True on every rank when ``flag`` is true on at least one."""
        return self.data_parallel.any(flag)

    def on_main(self, fn):
        """``fn()`` on rank 0, its result (or its exception) on every rank."""
        return self.data_parallel.on_main(fn)

    def refuse_together(self, check):
        """``check()``, which raises on every rank when rank 0 refuses the state it would write."""
        check()


def rank_agreement(data_parallel):
    """``SingleProcess()`` for None, else ``DataParallelRanks(data_parallel)``."""
    return SingleProcess() if data_parallel is None else DataParallelRanks(data_parallel)
