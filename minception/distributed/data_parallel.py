"""``DataParallel``: everything a training loop must do differently when it is one of several ranks.

Synchronous data parallelism in five rules, each a method or an effect of the constructor:

1. Same start: rank 0's parameters and buffers are broadcast to every rank (constructor).
2. Own data: each rank trains on its own slice of each global batch (``shard``; the loader does the slicing).
3. Same step: after backward, the gradients are averaged over the ranks (``average_gradients``), so every rank
   applies the same update and the replicas stay identical.
4. One voice: only rank 0 (``is_main``) writes files and prints; the numbers it reports cover the global batch
   (``batch_totals``), a decision such as "stop now" is taken together (``any``), and what only rank 0 can do
   (read a checkpoint, evaluate on the test set) it does for everybody (``on_main``).
5. Same randomness: dropout layers draw their masks for the global batch (``ShardedDropout``), so the run is the
   single-process run on the global batch; their random streams are buffers (``rng_state``), broadcast by rule 1.

Optionally, 6. batch norm uses the global batch's statistics (``sync_batch_norm=True``; see ``sync_bn_layer``).
It reaches every batch norm, those inside ``nn.FusedHead`` units too, whether ``model.fuse()`` ran before or after.

The ``Trainer`` takes one as ``distributed=``; with it, ``N`` ranks with ``--batch-size B`` follow, step for step,
one process with batch ``N*B`` (exactly, with synchronised batch norm; with per-rank batch norm, up to the
statistics each replica normalises with).
"""
import numpy as np

from .broadcast import broadcast_parameters
from .gradients import BUCKET_BYTES, GradientBuckets
from .sharded_dropout import shard_dropout
from .sync_bn_layer import sync_batch_norm as _sync_batch_norm


class DataParallel:
    """Prepare ``model`` for data-parallel training over the ranks of ``comm`` (in place), and serve the loop.

    Call it on every rank, after the model is built and moved to its device, before training (the optimizer
    may be built before or after: parameters keep their identity).

    Args:
        model: the ``nn.Module`` replicated on every rank.
        comm: a communicator (default ``distributed.init()``).
        sync_batch_norm: use global-batch statistics in every batch norm (off by default: per-rank statistics).
        bucket_bytes: size of the gradient buckets (see ``gradients``).
    """

    def __init__(self, model, comm=None, *, sync_batch_norm=False, bucket_bytes=BUCKET_BYTES):
        if comm is None:
            from .environment import init
            comm = init()
        self.comm, self.model, self.sync_batch_norm = comm, model, bool(sync_batch_norm)
        shard_dropout(model, comm)
        if self.sync_batch_norm:
            _sync_batch_norm(model, comm)
        broadcast_parameters(model, comm)
        self.buckets = GradientBuckets(model.named_parameters(), bucket_bytes)

    # ------------------------------------------------------------------------------------- who am I ---
    @property
    def rank(self):
        return self.comm.rank

    @property
    def world_size(self):
        return self.comm.size

    @property
    def is_main(self):
        """True on rank 0: it alone evaluates, writes files and prints."""
        return self.comm.rank == 0

    @property
    def shard(self):
        """``(rank, world_size)``, for ``DataLoader(..., shard=...)``."""
        return self.comm.rank, self.comm.size

    # ------------------------------------------------------------------------------- in every step ---
    def average_gradients(self):
        """After ``loss.backward()``: every gradient becomes its average over the ranks (a few all-reduces)."""
        self.buckets.allreduce_mean(self.comm)

    def batch_totals(self, mean_loss, correct, count):
        """The global batch's mean loss and number of correct predictions, from each rank's shard numbers
        (``mean_loss`` over ``count`` images, ``correct`` of them right). The same result on every rank."""
        totals = np.array([mean_loss * count, correct, count], dtype=np.float64)
        self.comm.allreduce_sum_(totals)
        return float(totals[0] / totals[2]), int(round(totals[1]))

    def any(self, flag):
        """True on every rank when ``flag`` is true on at least one (e.g. Ctrl-C reached only some ranks)."""
        return self.comm.any(flag)

    # ------------------------------------------------------------------------------- files ----------
    def on_main(self, fn):
        """``fn()`` run on rank 0 only (reading a checkpoint, evaluating on the test set), its result given to
        every rank; an exception it raises is raised on every rank."""
        return self.comm.on_main(fn)

    def __repr__(self):
        return (f"DataParallel(rank {self.rank} of {self.world_size}, sync_batch_norm={self.sync_batch_norm}, "
                f"{len(self.buckets.params)} parameter arrays)")
