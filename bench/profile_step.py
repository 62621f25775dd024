"""Profile one training step of a scaled network: where does the time go?

Three views of the same step (forward, softmax cross-entropy, backward, RMSProp update: ``loop.train_step`` with
the benchmark recipe of ``bench/step.py``; the configuration of ``bench/train_step.py``: width 0.25, blocks
(2, 2, 2), small_input, batch 64, 32x32, float32, 2 threads):

1. ``TimerHook`` (``autograd.inspect.timer_hook``): wall time per op type, forward and backward, summed over the step
   (``--by module`` groups by the first ``--depth`` parts of the module path instead).
2. The engine's own overhead: step time minus the time spent inside the ops' forward/backward (graph building,
   ``Function.__call__``, the backward walk, gradient accumulation, the module tree, the optimizer).
3. ``cProfile``: the functions sorted by their own time (tottime) and by cumulative time, top ``--top``.
   (cProfile adds a few microseconds per Python call; the TimerHook run and the plain timing are separate steps.)

    python bench/profile_step.py                          # inception_v4, all three views
    python bench/profile_step.py --network inception_resnet_v2 --by module --depth 1
    python bench/profile_step.py --no-cprofile --steps 5  # TimerHook only, median of 5 hooked steps

py-spy (not a dependency) gives the same picture including native frames:
``py-spy record --native -o step.svg -- python bench/profile_step.py --no-cprofile``.
Run it alone on the machine: other processes make BLAS and Numba threads wait.
"""
import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from step import SCALED, bench_recipe, bench_step, build_minception  # noqa: E402
from train_step import THREADS, limit_our_threads, wait_for_quiet  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", default="inception_v4")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="hooked steps (TimerHook table: per-op medians)")
    parser.add_argument("--by", choices=("op", "module"), default="op")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-cprofile", action="store_true")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--wait", type=float, default=60, help="max seconds to wait for a quiet machine")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)         # before NumPy and the engine are imported

    import numpy as np
    print("threads:", limit_our_threads(args.threads))
    from autograd import Tensor, TimerHook

    net = build_minception(args.network, **SCALED)
    recipe = bench_recipe()
    opt = recipe.optimizer(net)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, SCALED["num_classes"], args.batch)

    def step():
        bench_step(net, opt, x, y, recipe)

    for _ in range(2):                       # warm-up: Numba compilation, buffers, optimizer state
        step()
    print(f"load of other processes before timing: {wait_for_quiet(args.wait):.2f} cores")
    plain = []
    for _ in range(3):
        t0 = time.perf_counter()
        step()
        plain.append(time.perf_counter() - t0)
    print(f"\n{args.network}, batch {args.batch}: plain step {statistics.median(plain):.3f} s "
          f"(median of 3: {', '.join(f'{t:.3f}' for t in plain)})")

    # ---- 1 and 2: TimerHook
    hooked, inside, tables = [], [], []
    for _ in range(args.steps):
        timer = TimerHook()
        t0 = time.perf_counter()
        with timer:
            step()
        hooked.append(time.perf_counter() - t0)
        inside.append(timer.total_time())
        tables.append(timer)
    mid = sorted(range(args.steps), key=lambda i: hooked[i])[args.steps // 2]
    timer = tables[mid]
    print(f"\nTimerHook (the median of {args.steps} hooked steps, {hooked[mid]:.3f} s wall):")
    timer.print_summary(by=args.by, depth=args.depth)
    outside = hooked[mid] - inside[mid]
    print(f"\ninside ops {inside[mid]:.3f} s; outside ops (engine, modules, optimizer, Python) {outside:.3f} s "
          f"= {100 * outside / hooked[mid]:.1f}% of the hooked step")

    # ---- 3: cProfile
    if not args.no_cprofile:
        prof = cProfile.Profile()
        prof.enable()
        step()
        prof.disable()
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(args.top)
            text = out.getvalue()
            print(f"\ncProfile sorted by {key}:")
            print(text[text.index("   ncalls"):] if "   ncalls" in text else text)


if __name__ == "__main__":
    main()
