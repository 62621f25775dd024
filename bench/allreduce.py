"""Benchmark: the time of one gradient all-reduce, for the gradient sizes of the scaled and the full networks.

Run it as N ranks; it builds each network once (to get its parameter shapes), gives every parameter a gradient,
and times ``distributed.allreduce_gradients`` (copy into ~25 MB buckets, one all-reduce per bucket, average back)
and, for comparison, one bare ``allreduce_sum_`` of a single flat buffer of the same size::

    mpiexec -n 2 python3 bench/allreduce.py                   # the default networks, NumPy arrays (MPI)
    mpiexec -n 2 python3 bench/allreduce.py --device cuda     # CuPy arrays (NCCL, one GPU per rank)
    mpiexec -n 8 -hosts a,b python3 bench/allreduce.py --repeats 50

Printed per network (rank 0; the median over ``--repeats`` timed calls after ``--warmup``, the ranks
synchronised by a barrier before each call)::

    params     gradient values (float32)        MB          bytes all-reduced per step
    buckets    all-reduces per step             bucketed ms  allreduce_gradients, median [min-max]
    flat ms    one all-reduce of the same bytes (no copies)
    algbw      MB / bucketed time (GB/s)
    busbw      algbw * 2 (p - 1) / p: the bytes each link carries in a ring all-reduce, per second; comparable
               across rank counts and to the link's bandwidth

With one rank the all-reduce is a no-op; run with ``-n 2`` or more. Timings never assert anything.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from minception import distributed, models  # noqa: E402

NETWORKS = {
    # the example's default network (width 0.125, blocks 1,1,1) and the scaled networks of bench/train_step.py
    # (width 0.25, blocks 2,2,2); CIFAR: 10 classes
    "scaled_irv2_example": lambda: models.inception_resnet_v2(num_classes=10, width=0.125, blocks=(1, 1, 1),
                                                                      small_input=True),
    "scaled_irv2": lambda: models.inception_resnet_v2(num_classes=10, width=0.25, blocks=(2, 2, 2),
                                                            small_input=True),
    "scaled_v4": lambda: models.inception_v4(num_classes=10, width=0.25, blocks=(2, 2, 2), small_input=True),
    # the paper's networks (ImageNet, 1000 classes)
    "inception_v4": lambda: models.inception_v4(),
    "inception_resnet_v1": lambda: models.inception_resnet_v1(),
    "inception_resnet_v2": lambda: models.inception_resnet_v2(),
    "inception_resnet_v2_released": lambda: models.inception_resnet_v2(variant="released"),
}


def timed(comm, fn, warmup, repeats, sync=lambda: None):
    """Median, min and max seconds of ``fn()`` over ``repeats`` calls: from a barrier before to a barrier after,
    so that the slowest rank decides (as it does in training). ``sync`` waits for queued GPU work."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(repeats):
        comm.barrier()
        t0 = time.perf_counter()
        fn()
        sync()
        comm.barrier()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def measure(name, comm, xp, sync, bucket_bytes, args):
    """One table row: build the network, give every parameter a gradient, time the all-reduces."""
    model = NETWORKS[name]()
    if args.device == "cuda":
        model.to("cuda")
    named = model.named_parameters()
    for _, param in named:
        param.grad = xp.full(param.shape, 1.0 + comm.rank, dtype=param.dtype)
    buckets = distributed.GradientBuckets(named, bucket_bytes)
    total = sum(int(param.size) for _, param in named)
    flat = xp.ones(total, dtype=np.float32)

    med, lo, hi = timed(comm, lambda: buckets.allreduce_mean(comm), args.warmup, args.repeats, sync)
    flat_med, _, _ = timed(comm, lambda: comm.allreduce_sum_(flat), args.warmup, args.repeats, sync)
    mb = total * 4 / 1e6
    algbw = mb / 1e3 / med if med > 0 else float("nan")
    busbw = algbw * 2 * (comm.size - 1) / comm.size
    return (f"{name:30s} {total:11,d} {mb:7.1f} {len(buckets.buckets):7d} "
            f"{1e3 * med:8.2f} [{1e3 * lo:.2f}-{1e3 * hi:.2f}] {1e3 * flat_med:9.2f} {algbw:10.2f} {busbw:10.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated names (default: all)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--bucket-mb", type=float, default=distributed.BUCKET_BYTES / 2 ** 20)
    args = p.parse_args()
    unknown = [n for n in args.networks.split(",") if n not in NETWORKS]
    if unknown:
        p.error(f"unknown networks {unknown}; choose from {', '.join(NETWORKS)}")
    comm = distributed.init()
    say = print if comm.is_main else (lambda *a, **k: None)
    if comm.size == 1:
        say("one rank: the all-reduce is a no-op. Run under mpiexec -n 2 (or more).")
    xp, sync = np, (lambda: None)
    if args.device == "cuda":
        import cupy as xp  # noqa: F811
        distributed.use_local_gpu(comm)
        sync = xp.cuda.get_current_stream().synchronize
    bucket_bytes = int(args.bucket_mb * 2 ** 20)
    say(f"{comm.size} ranks ({comm.local_size} on this machine), {args.device}, buckets of {args.bucket_mb:g} MB, "
        f"median of {args.repeats} after {args.warmup} warm-up calls")
    header = (f"{'network':30s} {'params':>11s} {'MB':>7s} {'buckets':>7s} {'bucketed ms':>20s} {'flat ms':>9s} "
              f"{'algbw GB/s':>10s} {'busbw GB/s':>10s}")
    say(header)
    say("-" * len(header))
    for name in args.networks.split(","):
        say(measure(name, comm, xp, sync, bucket_bytes, args))


if __name__ == "__main__":
    sys.exit(distributed.run_or_abort(main))
