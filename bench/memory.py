"""Benchmark: peak memory of one training step of full Inception-v4 (299x299, batch 8), minception against PyTorch.

The step is forward, softmax cross-entropy, backward and an RMSProp update (momentum 0.9, decay 0.9, eps 1.0;
ours: ``loop.train_step`` with the benchmark recipe of ``bench/step.py``) of the paper's Inception-v4 at width 1
with 1000 classes (``bench/torch_models.py`` is the PyTorch twin: same layers, same parameter count, 42,679,816).
Each engine runs in its own subprocess, one after the other, never both at once, and reports:

  base MB        resident memory after imports, model build, optimizer creation and the random batch (VmRSS)
  fwd+bwd MB     peak resident memory (ru_maxrss) once forward + backward of the first step have run
  step MB        peak resident memory after the update of the last step (the optimizer state, 2 arrays per
                 parameter, is allocated at the first update on both sides)
  net            peak minus base: what the step itself needs (the target: ours <= 1.3 x PyTorch's)
  time s         the steps' wall times (a side note; bench/train_step.py is the timing benchmark)

Both sides use the same order: forward, zero the gradients (set to None), backward, update. ``--steps 2`` (the
default) shows the steady state, where the previous step's gradients are alive during the next forward.

    python3 bench/memory.py                 # Inception-v4, 299x299, batch 8, 2 steps each side
    python3 bench/memory.py --batch 2 --steps 1   # quicker
    python3 bench/memory.py --network inception_resnet_v2

The PyTorch side runs under ``--torch-python`` (default: ``$MINCEPTION_TORCH_PYTHON``, else
``~/torchenv/bin/python`` when it exists; see docs/performance.md, "How to reproduce").

Run alone: the machine must not be swapping or busy (the numbers are peaks, not times, but a busy machine makes
the run slow). Resident memory includes the interpreter and libraries (PyTorch's import alone is ~200 MB),
hence the "net" columns.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from step import BENCH_LR, NETWORKS, PhaseClock, bench_recipe, bench_step, build_minception  # noqa: E402
from train_step import (ROOT, THREADS, busy_seconds, child_env, children_seconds,  # noqa: E402
                        default_torch_python, limit_our_threads, peak_rss_mb, rss_mb, wait_for_quiet)


def worker_ours(args):
    import numpy as np
    limit_our_threads(THREADS)
    from autograd import Tensor

    net = build_minception(args.network, num_classes=1000)
    recipe = bench_recipe()
    opt = recipe.optimizer(net)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32))
    y = rng.integers(0, 1000, args.batch)
    base = rss_mb()
    peaks, times = [], []
    for _ in range(args.steps):
        after = PhaseClock(measure=peak_rss_mb)          # the peak once forward and backward have run
        t0 = time.perf_counter()
        bench_step(net, opt, x, y, recipe, on_phase=after)
        times.append(time.perf_counter() - t0)
        peaks.append(after.at["backward"])
    return {"engine": "minception", "base_mb": base, "fwd_bwd_mb": peaks[0], "step_mb": peak_rss_mb(),
            "times": times, "params": net.num_parameters()}


def worker_torch(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(THREADS)
    import torch_models

    torch.manual_seed(0)
    net = torch_models.build(args.network, num_classes=1000)
    opt = torch.optim.RMSprop(net.parameters(), lr=BENCH_LR, alpha=0.9, eps=1.0, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 1000, (args.batch,))
    base = rss_mb()
    peaks, times = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        peaks.append(peak_rss_mb())
        opt.step()
        times.append(time.perf_counter() - t0)
        del loss
    return {"engine": "torch", "base_mb": base, "fwd_bwd_mb": peaks[0], "step_mb": peak_rss_mb(), "times": times,
            "params": sum(p.numel() for p in net.parameters())}


def run(args, engine):
    python = args.torch_python if engine == "torch" else sys.executable
    cmd = [python, os.path.abspath(__file__), "--worker", engine, "--network", args.network, "--batch",
           str(args.batch), "--size", str(args.size), "--steps", str(args.steps)]
    wait_for_quiet(args.wait)
    b0, c0, t0 = busy_seconds(), children_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args), cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load"] = (busy_seconds() - b0 - (children_seconds() - c0)) / wall if b0 is not None else float("nan")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", default="inception_v4", choices=NETWORKS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--wait", type=float, default=60, help="max seconds to wait for a quiet machine")
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--torch-python", default=default_torch_python(),
                        help="interpreter with PyTorch (default: $MINCEPTION_TORCH_PYTHON, else ~/torchenv/bin/python "
                             "when it exists, else this one)")
    parser.add_argument("--worker", choices=("ours", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps((worker_ours if args.worker == "ours" else worker_torch)(args)))
        return
    print(f"# bench/memory.py {time.strftime('%Y-%m-%d %H:%M')}: {args.network} (width 1, 1000 classes), batch "
          f"{args.batch}, {args.size}x{args.size}, float32, {THREADS} threads, {args.steps} step(s) per side")
    results = [run(args, "ours"), run(args, "torch")]
    head = (f"{'engine':11s} {'params':>11s} {'base MB':>8s} {'fwd+bwd MB':>10s} {'(net)':>7s} {'step MB':>8s} "
            f"{'(net)':>7s} {'time s':>13s} {'load':>5s}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['engine']:11s} {r['params']:11,d} {r['base_mb']:8.0f} {r['fwd_bwd_mb']:10.0f} "
              f"{r['fwd_bwd_mb'] - r['base_mb']:7.0f} {r['step_mb']:8.0f} {r['step_mb'] - r['base_mb']:7.0f} "
              f"{' '.join(f'{t:.1f}' for t in r['times']):>13s} {r['load']:5.2f}")
    ours, theirs = results
    print(f"net peak ratio ours / torch: fwd+bwd {(ours['fwd_bwd_mb'] - ours['base_mb']) / (theirs['fwd_bwd_mb'] - theirs['base_mb']):.2f}, "
          f"whole step {(ours['step_mb'] - ours['base_mb']) / (theirs['step_mb'] - theirs['base_mb']):.2f} "
          f"(target <= 1.3); raw peak ratio {ours['step_mb'] / theirs['step_mb']:.2f}")


if __name__ == "__main__":
    main()
