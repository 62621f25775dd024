"""Benchmark: training throughput of P processes x T threads, for the same global batch (images/s).

Data parallelism on one machine trades the engine's threads inside one process for processes that each train a
replica on a slice of the batch and all-reduce the gradients. This runs the same training steps of a scaled
network in several configurations and prints images per second::

    python3 bench/data_parallel.py                         # 1 process x 2 threads against 2 processes x 1 thread
    python3 bench/data_parallel.py --configs 1x16,2x8,4x4,8x2,16x1 --global-batch 128    # a 16-core host
    python3 bench/data_parallel.py --configs 1x1,2x1,4x1,8x1 --global-batch 64            # scaling in processes

A configuration ``PxT`` runs ``mpiexec -n P`` (or plain ``python`` for P = 1) with ``OMP_NUM_THREADS=T``; each
process trains on ``global batch / P`` images per step (synthetic 32x32 images, 10 classes; ``loop.train_step``
with the benchmark recipe of ``bench/step.py``, RMSProp; per-process batch norm unless ``--sync-bn``),
``--warmup`` steps untimed, then ``--steps`` timed steps between barriers.
Printed per configuration (from rank 0):

    step ms         median time of one step of the global batch [min-max]
    images/s        global batch / median step time
    allreduce ms    median time of the gradient all-reduce alone inside the step (0 for one process)
    speed-up        images/s relative to the first configuration

Run it alone on the machine (other processes distort it). Timings never assert anything.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from step import PhaseClock, bench_recipe, bench_step  # noqa: E402


# ---------------------------------------------------------------------------------------------- worker ---
def worker(args):
    """One rank of one configuration: train, time, print one JSON line on rank 0."""
    from autograd import Tensor
    from minception import data, distributed, models, nn

    comm = distributed.init()
    if args.global_batch % comm.size:
        raise SystemExit(f"--global-batch {args.global_batch} is not divisible by {comm.size} processes")
    batch = args.global_batch // comm.size
    train, _ = data.make_synthetic(args.global_batch * 2, 10, seed=1)
    loader = data.DataLoader(train, batch, shuffle=True, drop_last=True, seed=0,
                             shard=(comm.rank, comm.size))
    nn.init.manual_seed(0)
    blocks = tuple(int(b) for b in args.blocks.split(","))
    model = models.inception_resnet_v2(num_classes=10, width=args.width, blocks=blocks, small_input=True)
    model.fuse()                          # as the training example does (nn.fusion)
    dp = distributed.DataParallel(model, comm, sync_batch_norm=args.sync_bn) if comm.size > 1 else None
    recipe = bench_recipe()
    opt = recipe.optimizer(model)

    step_times, reduce_times = [], []
    for step in range(args.warmup + args.steps):
        x, y = loader.batch(step // len(loader), step % len(loader))
        comm.barrier()
        clock = PhaseClock()
        t0 = time.perf_counter()
        bench_step(model, opt, Tensor(x), y, recipe, on_phase=clock,
                   average_gradients=None if dp is None else dp.average_gradients)
        comm.barrier()
        if step >= args.warmup:
            step_times.append(time.perf_counter() - t0)
            # the gradient all-reduce alone (0 for one process)
            reduce_times.append(clock.at.get("average", clock.at["backward"]) - clock.at["backward"])
    if comm.is_main:
        print(json.dumps({"step_s": step_times, "allreduce_s": reduce_times}), flush=True)


# ---------------------------------------------------------------------------------------------- driver ---
def find_mpiexec():
    found = shutil.which("mpiexec")
    if found:
        return found
    candidate = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    return candidate if os.path.exists(candidate) else None


def run_config(processes, threads, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--global-batch", str(args.global_batch),
               "--width", str(args.width), "--blocks", args.blocks, "--steps", str(args.steps),
               "--warmup", str(args.warmup)] + (["--sync-bn"] if args.sync_bn else [])
    if processes > 1:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise SystemExit("no mpiexec found: pip install -e '.[distributed]'")
        command = [mpiexec, "-n", str(processes)] + command
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise SystemExit(f"{processes}x{threads} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="1x2,2x1", help="comma-separated PROCESSESxTHREADS (default 1x2,2x1)")
    p.add_argument("--global-batch", type=int, default=32)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--blocks", default="1,1,1")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        from minception import distributed
        return distributed.run_or_abort(worker, args)

    configs = [tuple(int(v) for v in c.lower().split("x")) for c in args.configs.split(",")]
    print(f"inception_resnet_v2 width {args.width} blocks {args.blocks}, global batch {args.global_batch}, 32x32, "
          f"{'synchronised' if args.sync_bn else 'per-process'} batch norm; median of {args.steps} steps after "
          f"{args.warmup}")
    header = f"{'processes x threads':>19s} {'step ms':>22s} {'images/s':>9s} {'allreduce ms':>12s} {'speed-up':>8s}"
    print(header)
    print("-" * len(header))
    first = None
    for processes, threads in configs:
        result = run_config(processes, threads, args)
        steps = result["step_s"]
        med = statistics.median(steps)
        rate = args.global_batch / med
        first = first or rate
        print(f"{f'{processes} x {threads}':>19s} {1e3 * med:8.1f} [{1e3 * min(steps):.1f}-{1e3 * max(steps):.1f}]"
              f" {rate:9.1f} {1e3 * statistics.median(result['allreduce_s']):12.2f} {rate / first:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
