"""minception.distributed: synchronous data-parallel training over MPI (NCCL between GPUs).

The same script runs alone or as ``N`` ranks under ``mpiexec -n N``; alone, everything is as without this
package (mpi4py is not imported). Each rank trains a replica of the model on its own slice of every global
batch; after backward the gradients are averaged over the ranks, so the replicas take identical steps::

    from minception import distributed
    comm = distributed.init()                         # rank, size; single process when not under mpiexec
    dp = distributed.DataParallel(model, comm, sync_batch_norm=False)   # broadcast rank 0's weights, etc.
    loader = data.DataLoader(train, batch_size, shuffle=True, drop_last=True, shard=dp.shard)
    for x, y in loader:                               # this rank's slice of each global batch
        loss = ops.softmax_cross_entropy(model(Tensor(x)), y)
        loss.backward()
        dp.average_gradients()                        # = distributed.allreduce_gradients(model, comm)
        opt.step(); opt.zero_grad()

    trainer = Trainer(..., distributed=dp)            # or let the Trainer make those calls

Files (one idea each): ``environment`` (``init``: who am I), ``communicator`` (the collectives, single-process
and MPI), ``nccl`` (GPU all-reduce), ``gradients`` (bucketed gradient averaging), ``broadcast`` (same start),
``sync_bn_function`` / ``sync_bn_layer`` (synchronised batch norm, an option), ``sharded_dropout`` (dropout
masks of the global batch), ``data_parallel`` (the hook the Trainer uses), ``failure`` (one rank fails: all
exit), ``agreement`` (all ranks run with the same settings), ``gpu`` (one GPU per rank).

Install the extra for MPI: ``pip install -e '.[distributed]'`` (mpi4py and the MPICH wheel, which brings
``mpiexec``).
"""
from .agreement import SettingsDisagree, agree_on_settings, environment_settings
from .broadcast import broadcast_parameters
from .communicator import Communicator, MPICommunicator
from .data_parallel import DataParallel
from .environment import init, is_main, launcher_size, rank, world_size
from .failure import run_or_abort
from .gpu import use_local_gpu
from .gradients import BUCKET_BYTES, GradientBuckets, allreduce_gradients
from .sharded_dropout import ShardedDropout, shard_dropout
from .sync_bn_function import SyncBatchNorm
from .sync_bn_layer import SyncBatchNorm2d, sync_batch_norm

__all__ = ["init", "rank", "world_size", "is_main", "launcher_size", "Communicator", "MPICommunicator",
           "allreduce_gradients", "GradientBuckets", "BUCKET_BYTES", "broadcast_parameters", "SyncBatchNorm",
           "SyncBatchNorm2d", "sync_batch_norm", "ShardedDropout", "shard_dropout", "DataParallel",
           "run_or_abort", "use_local_gpu", "agree_on_settings", "environment_settings", "SettingsDisagree"]
