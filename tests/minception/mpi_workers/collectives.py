"""Worker: the building blocks of ``minception.distributed`` checked with real MPI ranks (``mpiexec -n 2``).

Each check compares what the ranks computed together with what one process computes from everybody's data
(every rank can rebuild every other rank's inputs: they are drawn from generators seeded by rank). A failed
assertion ends the job through ``run_or_abort`` with a non-zero status; rank 0 prints ``ok <name>`` after each
check, so the test can see that all of them ran.
"""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

from autograd import Tensor  # noqa: E402
from minception import data, distributed, nn, optim, train  # noqa: E402


def ok(comm, name):
    comm.barrier()
    if comm.is_main:
        print(f"ok {name}", flush=True)


def rank_gradient(rank, shape, dtype):
    """The gradient that rank ``rank`` holds for a parameter of ``shape``: different on every rank."""
    return np.random.default_rng([5, rank, *shape]).standard_normal(shape).astype(dtype) * (rank + 1)


def check_gradient_average(comm):
    """Unequal gradients, several buckets, two dtypes, a parameter missing on one rank and one missing on all."""
    shapes = {"a.weight": (3, 5), "b.weight": (7,), "c.bias": (2, 2, 3), "d.weight": (11, 3), "e.scale": (1,)}
    params = {name: nn.Parameter(np.zeros(shape, np.float64 if name[0] in "ac" else np.float32))
              for name, shape in shapes.items()}
    for name, p in params.items():
        p.grad = rank_gradient(comm.rank, p.shape, p.dtype)
    params["d.weight"].grad = None if comm.rank == 1 else params["d.weight"].grad    # unused on rank 1
    params["e.scale"].grad = None                                                    # unused everywhere
    kept = params["a.weight"].grad
    distributed.allreduce_gradients(list(params.items()), comm, bucket_bytes=64)   # ~one parameter per bucket
    for name, p in params.items():
        grads = [rank_gradient(r, p.shape, p.dtype) for r in range(comm.size)]
        if name == "d.weight":
            grads[1] = np.zeros(p.shape, p.dtype)             # a missing gradient counts as zero
        if name == "e.scale":
            assert p.grad is None, "a parameter without a gradient on every rank must keep grad=None"
            continue
        expected = np.mean(np.stack(grads).astype(np.float64), axis=0)
        tol = 1e-14 if p.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(p.grad, expected, rtol=tol, atol=tol, err_msg=name)
        assert p.grad.dtype == p.dtype, (name, p.grad.dtype)
    assert params["a.weight"].grad is kept, "gradients are averaged in place"
    ok(comm, "gradient_average")


def check_broadcast(comm):
    nn.init.manual_seed(100 + comm.rank)
    model = nn.Sequential(nn.ConvBNReLU(3, 4, 3), nn.Linear(4, 2))
    model[0].bn.running_mean[...] = comm.rank + 1.0
    distributed.broadcast_parameters(model, comm)
    nn.init.manual_seed(100)
    reference = nn.Sequential(nn.ConvBNReLU(3, 4, 3), nn.Linear(4, 2))
    reference[0].bn.running_mean[...] = 1.0
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    ok(comm, "broadcast")


def check_sync_batch_norm(comm):
    """SyncBatchNorm2d on each rank's shard == BatchNorm2d on the whole batch: outputs, input gradients, the
    averaged gamma/beta gradients and the running statistics; with and without the fused ReLU."""
    n, c, h, w = 3, 5, 4, 3                    # per rank; odd sizes
    everything = np.random.default_rng(9).standard_normal((comm.size * n, c, h, w)) * 2.0 + 0.5
    upstream = np.random.default_rng(10).standard_normal((comm.size * n, c, h, w))
    mine = slice(comm.rank * n, (comm.rank + 1) * n)
    for relu in (False, True):
        nn.init.manual_seed(3)
        whole = nn.BatchNorm2d(c).to(dtype=np.float64)
        whole.weight.data[...] = np.linspace(0.5, 1.5, c)
        whole.bias.data[...] = np.linspace(-0.2, 0.3, c)
        sync = distributed.SyncBatchNorm2d.from_batch_norm(nn.BatchNorm2d(c).to(dtype=np.float64), comm)
        sync.weight.data[...] = whole.weight.data
        sync.bias.data[...] = whole.bias.data

        x_all = Tensor(everything.copy(), requires_grad=True)
        y_all = whole(x_all, relu=relu)
        y_all.backward(upstream)
        x = Tensor(everything[mine].copy(), requires_grad=True)
        y = sync(x, relu=relu)
        # the global loss is sum(upstream * y) over all ranks: this rank's share of the seed is its rows
        y.backward(upstream[mine])
        distributed.allreduce_gradients([("bn.weight", sync.weight), ("bn.bias", sync.bias)], comm)
        np.testing.assert_allclose(y.data, y_all.data[mine], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(x.grad, x_all.grad[mine], rtol=1e-10, atol=1e-12)
        # averaged over ranks = (1/size) * the gradient of the whole batch's sum(upstream * y)
        np.testing.assert_allclose(sync.weight.grad * comm.size, whole.weight.grad, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sync.bias.grad * comm.size, whole.bias.grad, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sync.running_mean, whole.running_mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(sync.running_var, whole.running_var, rtol=1e-12, atol=1e-14)
    ok(comm, "sync_batch_norm")


def check_sharded_dropout(comm):
    rows = 4
    x = np.ones((rows, 6, 2, 2), np.float32)
    source = nn.Dropout(0.5, seed=1)
    sharded = distributed.ShardedDropout.from_dropout(source, comm)
    assert sharded.rng_state is source.rng_state   # the layer's own stream, not a copy
    plain = nn.Dropout(0.5, seed=1)
    for _ in range(2):                             # the streams stay in step
        mask = sharded(Tensor(x)).data
        whole = plain(Tensor(np.ones((rows * comm.size, 6, 2, 2), np.float32))).data
        np.testing.assert_array_equal(mask, whole[comm.rank * rows:(comm.rank + 1) * rows])
    np.testing.assert_array_equal(sharded.rng_state, plain.rng_state)
    # DataParallel: dropout seeded differently on every rank ends with rank 0's stream, sharded
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5, seed=10 + comm.rank))
    distributed.DataParallel(model, comm)
    assert isinstance(model[1], distributed.ShardedDropout), model
    np.testing.assert_array_equal(model[1].rng_state, [10, 0])
    ok(comm, "sharded_dropout")


def check_loader_shards(comm):
    images = np.random.default_rng(2).integers(0, 256, size=(40, 3, 6, 6), dtype=np.uint8)
    labels = np.arange(40)
    aug = data.standard_augmentation(padding=1)
    shard = data.DataLoader((images, labels), 4, drop_last=True, transform=aug, seed=5, shard=(comm.rank, comm.size))
    whole = data.DataLoader((images, labels), 4 * comm.size, drop_last=True, transform=aug, seed=5)
    assert len(shard) == len(whole) == 40 // (4 * comm.size)
    for epoch in range(2):
        for index in range(len(whole)):
            x, y = shard.batch(epoch, index)
            x_all, y_all = whole.batch(epoch, index)
            mine = slice(comm.rank * 4, (comm.rank + 1) * 4)
            np.testing.assert_array_equal(y, y_all[mine])
            np.testing.assert_array_equal(x, x_all[mine])
    ok(comm, "loader_shards")


def check_on_main_and_any(comm):
    assert comm.on_main(lambda: {"rank": comm.rank}) == {"rank": 0}

    def fails():
        raise FileNotFoundError("no such checkpoint")
    try:
        comm.on_main(fails)
    except FileNotFoundError as e:
        assert "no such checkpoint" in str(e)
    else:
        raise AssertionError("on_main did not raise on every rank")
    assert comm.any(comm.rank == comm.size - 1) is True
    assert comm.any(False) is False
    ok(comm, "on_main_any")


def check_non_finite_stops_every_rank(comm):
    """A NaN loss on the last rank alone: every rank raises NonFiniteLossError in the same step (the NaN reaches
    everybody's averaged gradients), none updates its weights, and none is left waiting in a collective."""
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    dp = distributed.DataParallel(model, comm)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    x = np.ones((2, 4), np.float32)
    last = comm.rank == comm.size - 1
    if last:
        x[0, 0] = np.nan
    before = model[0].weight.data.copy()
    try:
        train.train_step(model, opt, Tensor(x), np.array([0, 1]), average_gradients=dp.average_gradients)
    except train.NonFiniteLossError as e:
        what = e.what
    else:
        what = None
    assert what == ("loss" if last else "gradient norm"), what
    np.testing.assert_array_equal(model[0].weight.data, before)
    ok(comm, "non_finite_stop")


def main():
    comm = distributed.init()
    assert comm.size > 1, "run me under mpiexec -n 2"
    check_gradient_average(comm)
    check_broadcast(comm)
    check_sync_batch_norm(comm)
    check_sharded_dropout(comm)
    check_loader_shards(comm)
    check_on_main_and_any(comm)
    check_non_finite_stops_every_rank(comm)
    return 0


if __name__ == "__main__":
    sys.exit(distributed.run_or_abort(main))
