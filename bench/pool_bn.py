"""Pooling and batch-norm speed: forward and forward+backward time and GB/s per op and shape.

    python bench/pool_bn.py            # all shapes, also the NumPy reference kernels (slow)
    python bench/pool_bn.py --quick    # one shape per op, fewer repetitions
    python bench/pool_bn.py --device cuda   # the CuPy kernels (needs a GPU)

Rows "op" time the public ops (``ops.pooling`` / ``ops.normalization`` through autograd: a leaf Tensor with
``requires_grad``, forward, then ``backward`` with a random upstream gradient), which run the Numba kernels on the
CPU and the CuPy kernels on the GPU; the engine's own work (e.g. storing the leaf's gradient) is included. Rows
"kernels" call the Numba kernels directly (forward kernel, then backward kernel), rows "reference" the NumPy
reference kernels, for comparison (CPU only).

GB/s counts the bytes of the tensors at the op's interface, as the PyTorch baseline in docs/performance.md does (so
the numbers compare with it): forward = input x + output y; forward+backward = x + y + upstream
gradient gy + input gradient gx. Saved argmax indices and batch statistics are not counted. Times are the median
over the repetitions (min-max in brackets) after two warm-up calls (the first compiles the Numba kernels).
On a shared machine numbers are noisy: run alone (``--wait-idle 60`` waits for a quiet moment before each row),
check the "others" column (CPU used by other processes during the row), and compare rows of the same run.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from autograd import Tensor  # noqa: E402
from ops.kernels.cpu import batch_norm as batchnorm_numba, pooling as pool_numba  # noqa: E402
from ops.kernels.reference import batch_norm as batchnorm_reference, pooling as pool_reference  # noqa: E402
from ops.normalization import batch_norm  # noqa: E402
from ops.pooling import avg_pool2d, global_avg_pool2d, max_pool2d  # noqa: E402

# (label, op kind, args) x shapes
CASES = [
    ("max_pool2d 3x3 s2", "max", (3, 2, 0), [(64, 64, 32, 32), (64, 192, 16, 16), (64, 384, 8, 8),
                                             (64, 1024, 17, 17)]),
    ("max_pool2d 3x3 s2 p1", "max", (3, 2, 1), [(64, 64, 32, 32), (64, 384, 32, 32), (64, 1024, 16, 16)]),
    ("avg_pool2d 3x3 s1 p1 (excl pad)", "avg", (3, 1, 1), [(64, 64, 32, 32), (64, 192, 16, 16), (64, 384, 8, 8),
                                                           (64, 384, 32, 32), (64, 1024, 16, 16),
                                                           (64, 1536, 8, 8)]),
    ("global_avg_pool2d", "global", (), [(64, 1536, 8, 8)]),
    ("batch_norm train", "bn", (), [(64, 64, 32, 32), (64, 192, 16, 16), (64, 384, 8, 8), (64, 384, 32, 32),
                                    (64, 1536, 8, 8)]),
    ("batch_norm eval", "bn_eval", (), [(64, 192, 16, 16)]),
]


def op_fn(kind, args, xp, c):
    """The public op for one case: a function of the input Tensor."""
    if kind == "max":
        return lambda t: max_pool2d(t, *args)
    if kind == "avg":
        return lambda t: avg_pool2d(t, *args, count_include_pad=False)
    if kind == "global":
        return global_avg_pool2d
    gamma = Tensor(xp.ones(c, np.float32), requires_grad=True)
    beta = Tensor(xp.zeros(c, np.float32), requires_grad=True)
    rm, rv = xp.zeros(c, np.float32), xp.ones(c, np.float32)
    return lambda t: batch_norm(t, gamma, beta, rm, rv, kind == "bn")


def kernel_fns(pool, bn, kind, args, x, gy):
    """(forward, forward+backward) closures calling the kernel modules ``pool`` and ``bn`` directly (no autograd),
    or None for the ops without kernels."""
    n, c, h, w = x.shape
    if kind in ("max", "avg"):
        k, s, p = args
        a = ((k, k), (s, s), (p, p))
        if kind == "max":
            def fwd():
                return pool.max_pool2d_forward(x, *a)

            def fb():
                _, arg = pool.max_pool2d_forward(x, *a)
                return pool.max_pool2d_backward(gy, arg, x.shape, *a)
        else:
            def fwd():
                return pool.avg_pool2d_forward(x, *a)

            def fb():
                pool.avg_pool2d_forward(x, *a)
                return pool.avg_pool2d_backward(gy, x.shape, *a)
        return fwd, fb
    if kind == "bn":
        x3, gy3 = x.reshape(n, c, -1), gy.reshape(n, c, -1)
        g, b = np.ones(c, np.float32), np.zeros(c, np.float32)

        def fwd():
            return bn.forward_train(x3, g, b, 1e-3)

        def fb():
            _, mean, _, invstd = bn.forward_train(x3, g, b, 1e-3)
            return bn.backward_train(gy3, x3, mean, invstd, g)
        return fwd, fb
    return None


def _cpu_jiffies():
    """(busy, total) CPU time of the whole machine in clock ticks, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:8]]
    except OSError:
        return None
    return v[0] + v[1] + v[2] + v[4] + v[5] + v[6], sum(v)


def _own_cpu_seconds():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ForeignLoad:
    """Cores' worth of CPU time that *other* processes used while the block ran (Linux; None elsewhere)."""

    def __enter__(self):
        self.j0, self.own0, self.t0 = _cpu_jiffies(), _own_cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        j1, own1, t1 = _cpu_jiffies(), _own_cpu_seconds(), time.perf_counter()
        if self.j0 is None or j1 is None:
            self.cores = None
            return
        import os
        busy = (j1[0] - self.j0[0]) / os.sysconf("SC_CLK_TCK")
        self.cores = max(0.0, busy - (own1 - self.own0)) / max(t1 - self.t0, 1e-9)


def wait_until_idle(timeout_s):
    """Wait (up to timeout_s) for a second in which the machine is at least 90% idle."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        j0 = _cpu_jiffies()
        if j0 is None:
            return
        time.sleep(1.0)
        j1 = _cpu_jiffies()
        if (j1[0] - j0[0]) <= 0.1 * max(j1[1] - j0[1], 1):
            return


def measure(fn, reps, sync, clock=time.perf_counter):
    fn()
    fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return float(np.median(times)), min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first shape of each op, 5 repetitions, no reference")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 15, --quick 5)")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy reference rows")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with this process's CPU time instead of wall-clock time (CPU only): on a busy "
                             "machine, run with OMP_NUM_THREADS=1 and this flag to get the single-core time "
                             "the work would take alone")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each row wait up to S seconds for an idle machine (shared machines)")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 15)

    if args.device == "cuda":
        from autograd.backend import GPUUnavailableError, require_gpu
        try:
            xp = require_gpu()
        except GPUUnavailableError as e:
            parser.error(str(e))
        sync = xp.cuda.runtime.deviceSynchronize
        print(f"device: {xp.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {xp.__version__}")
    else:
        import numba
        from ops.kernels.cpu.runtime.threads import cpu_threads
        xp, sync = np, (lambda: None)
        print(f"device: CPU, Numba {numba.__version__} (serial kernels), {cpu_threads()} engine threads "
              f"(ops.kernels.cpu.runtime.threads; OMP_NUM_THREADS sets it)")
    with_reference = args.device == "cpu" and not args.quick and not args.no_reference
    clock = time.process_time if args.cpu_time and args.device == "cpu" else time.perf_counter
    print(f"float32, median of {reps} runs [min-max] of {'process CPU' if clock is time.process_time else 'wall'} "
          f"time; GB/s: fwd (x + y bytes), f+b (x + y + gy + gx bytes)\n")
    print("'others' = cores' worth of CPU used by other processes during the row (noise indicator)\n")
    print("| op | N, C, HxW | input MB | impl | fwd ms | fwd GB/s | f+b ms | f+b GB/s | others |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for label, kind, op_args, shapes in CASES:
        for shape in shapes[:1] if args.quick else shapes:
            x_host = rng.standard_normal(shape, dtype=np.float32)
            x = xp.asarray(x_host)
            f = op_fn(kind, op_args, xp, shape[1])
            y_shape = f(Tensor(x)).shape
            gy_array = xp.asarray(rng.standard_normal(y_shape, dtype=np.float32))
            gy = Tensor(gy_array)
            x_mb = x.nbytes / 1e6
            y_bytes = int(np.prod(y_shape)) * 4
            fwd_bytes, fb_bytes = x.nbytes + y_bytes, 2 * (x.nbytes + y_bytes)

            def op_fwd():
                return f(Tensor(x, requires_grad=True))

            def op_fb():
                t = Tensor(x, requires_grad=True)
                f(t).backward(gy)
                return t.grad

            rows = [("op", op_fwd, op_fb)]
            if args.device == "cpu" and kind in ("max", "avg", "bn"):
                rows.append(("kernels", *kernel_fns(pool_numba, batchnorm_numba, kind, op_args, x, gy_array)))
                if with_reference:
                    rows.append(("reference", *kernel_fns(pool_reference, batchnorm_reference, kind, op_args, x,
                                                          gy_array)))
            for impl, fwd, fb in rows:
                r = max(3, reps // 3) if impl == "reference" else reps
                if args.wait_idle:
                    wait_until_idle(args.wait_idle)
                with ForeignLoad() as load:
                    tf = measure(fwd, r, sync, clock)
                    tb = measure(fb, r, sync, clock)
                others = "?" if load.cores is None else f"{load.cores:.2f}"
                n, c, h, w = shape
                print(f"| {label} | {n}, {c}, {h}x{w} | {x_mb:.1f} | {impl} "
                      f"| {tf[0] * 1e3:.2f} [{tf[1] * 1e3:.2f}-{tf[2] * 1e3:.2f}] | {fwd_bytes / tf[0] / 1e9:.1f} "
                      f"| {tb[0] * 1e3:.2f} [{tb[1] * 1e3:.2f}-{tb[2] * 1e3:.2f}] | {fb_bytes / tb[0] / 1e9:.1f} "
                      f"| {others} |", flush=True)


if __name__ == "__main__":
    main()
