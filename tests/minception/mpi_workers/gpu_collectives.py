"""Worker (GPU): the collectives on CuPy arrays, as ``mpiexec -n N`` ranks (N = 1 is useful too: it runs the
NCCL path on a single GPU). Each rank selects its machine's GPU ``local_rank % count``; with more ranks than
GPUs, NCCL cannot be used and the arrays go through host memory instead. Rank 0 prints ``ok <name> <path>``
after each check (path: "nccl" or "host").
"""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

from autograd import Tensor  # noqa: E402
from minception import distributed, nn  # noqa: E402


def rank_array(rank, shape, dtype):
    return (np.random.default_rng([3, rank]).standard_normal(shape) * (rank + 1)).astype(dtype)


def ok(comm, name):
    comm.barrier()
    if comm.is_main:
        print(f"ok {name} {comm.gpu_path}", flush=True)


def main():
    import cupy as cp

    comm = distributed.init()
    assert isinstance(comm, distributed.MPICommunicator), "run me under mpiexec"
    distributed.use_local_gpu(comm)

    for dtype in (np.float32, np.float64, np.int64):
        a = cp.asarray(rank_array(comm.rank, (5, 7), np.float64).astype(dtype))
        comm.allreduce_sum_(a)
        expected = sum(rank_array(r, (5, 7), np.float64).astype(dtype) for r in range(comm.size))
        np.testing.assert_allclose(cp.asnumpy(a), expected, rtol=1e-6, err_msg=str(dtype))
    ok(comm, "gpu_allreduce")

    params = [(f"p{i}", nn.Parameter(cp.zeros(shape, cp.float32))) for i, shape in enumerate([(3, 4), (10,), (2, 2)])]
    for _, p in params:
        p.grad = cp.asarray(rank_array(comm.rank, p.shape, np.float32))
    distributed.allreduce_gradients(params, comm, bucket_bytes=32)
    for _, p in params:
        expected = np.mean([rank_array(r, p.shape, np.float32) for r in range(comm.size)], axis=0)
        np.testing.assert_allclose(cp.asnumpy(p.grad), expected, rtol=1e-6, atol=1e-6)
    ok(comm, "gpu_gradients")

    # synchronised BN on the GPU shards == BN of the whole batch on the CPU (float64)
    n, c = 2, 3
    everything = np.random.default_rng(4).standard_normal((comm.size * n, c, 5, 3)) + 0.5
    upstream = np.random.default_rng(5).standard_normal(everything.shape)
    mine = slice(comm.rank * n, (comm.rank + 1) * n)
    whole = nn.BatchNorm2d(c).to(dtype=np.float64)
    x_all = Tensor(everything.copy(), requires_grad=True)
    whole(x_all, relu=True).backward(upstream)
    sync = distributed.SyncBatchNorm2d.from_batch_norm(nn.BatchNorm2d(c).to(dtype=np.float64), comm).to("cuda")
    x = Tensor(cp.asarray(everything[mine]), requires_grad=True)
    y = sync(x, relu=True)
    y.backward(cp.asarray(upstream[mine]))
    np.testing.assert_allclose(cp.asnumpy(x.grad), x_all.grad[mine], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(cp.asnumpy(sync.running_var), whole.running_var, rtol=1e-12)
    ok(comm, "gpu_sync_batch_norm")

    nn.init.manual_seed(20 + comm.rank)                 # different weights on every rank ...
    model = nn.Sequential(nn.ConvBNReLU(3, 4, 3)).to("cuda")
    distributed.broadcast_parameters(model, comm)
    weight = model[0].conv.weight.data
    total = weight.copy()
    comm.allreduce_sum_(total)                           # ... equal after: the sum is size times each rank's
    np.testing.assert_allclose(cp.asnumpy(total), comm.size * cp.asnumpy(weight), rtol=1e-6)
    ok(comm, "gpu_broadcast")
    return 0


if __name__ == "__main__":
    sys.exit(distributed.run_or_abort(main))
