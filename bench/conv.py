"""Benchmark: ops.conv2d against the bare GEMMs it is built on, on the Inception conv shapes.

For each shape (batch 64, float32, realistic Inception-v4 channel counts at 32x32, 16x16 and 8x8) it prints:

  fwd ms          conv2d forward (no graph recorded), median of --reps runs
  fwd GF/s        forward FLOPs (2 * N * Cout * OH * OW * Cin * kh * kw) / time
  gemm ms         the bare forward GEMM of the same sizes: W2d (Cout, K) @ B (K, N*OH*OW), K = Cin*kh*kw
  fwd/gemm        the ratio (target: <= 1.25)
  f+b ms          forward + backward (grads of x and weight)
  f+b GF/s        3 x forward FLOPs / time
  3gemm ms        the three bare GEMMs of the same sizes: forward, dW = gY2d @ B.T, dcols = W2d.T @ gY2d
  f+b/3gemm       the ratio (target: <= 1.5)
  load            CPU cores used by *other* processes while the row ran (from /proc/stat; Linux only): rows
                  measured with load > 0.1 are not trustworthy (a 2-core machine shared with other jobs). Each
                  row first waits (up to 60 s) for a quiet machine and is retried (up to 3 times) if disturbed;
                  --no-wait turns that off

The bare GEMMs use preallocated operands and NumPy's matmul (OpenBLAS, as many threads as it is set to use), so
they are what an im2col convolution can at best reach; conv2d's extra time is im2col, col2im, reordering and
allocation. Timings never assert anything.

    python bench/conv.py                  # the full table (about a minute on 2 cores)
    python bench/conv.py --quick          # batch 8, 3 reps: a smoke run
    python bench/conv.py --device cuda    # CuPy: synchronised timing, cupy.matmul as the GEMM
    python bench/conv.py --threads 1 --cpu-time --no-wait   # one core, CPU seconds: usable on a busy machine

Run it alone: other processes using the CPU (tests, a second benchmark) slow 2-thread GEMMs down 10x or more.
"""
import argparse
import os
import platform
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from autograd import Tensor, no_grad  # noqa: E402
from ops.conv import conv2d  # noqa: E402

# name, Cin, H (=W), Cout, (kh, kw), stride, padding   -- where in Inception-v4 (small_input: 35->32, 17->16)
SHAPES = [
    ("3x3 s1", 64, 32, 96, (3, 3), 1, "same"),       # Inception-A branch 2
    ("3x3 s1", 96, 32, 96, (3, 3), 1, "same"),       # Inception-A branch 2, second 3x3
    ("1x1", 384, 32, 96, (1, 1), 1, 0),              # Inception-A branch 0
    ("3x3 s2", 224, 32, 256, (3, 3), 2, 1),          # Reduction-A, last conv of branch 2 (32 -> 16)
    ("1x1", 1024, 16, 192, (1, 1), 1, 0),            # Inception-B branch 1 entry
    ("1x7", 192, 16, 224, (1, 7), 1, "same"),        # Inception-B branch 1
    ("7x1", 224, 16, 256, (7, 1), 1, "same"),        # Inception-B branch 1
    ("3x3 s1", 256, 16, 256, (3, 3), 1, "same"),     # Inception-ResNet Reduction-B branch 3
    ("3x3 s2", 192, 16, 192, (3, 3), 2, 1),          # Reduction-B branch 0 (16 -> 8)
    ("1x1", 1536, 8, 256, (1, 1), 1, 0),             # Inception-C branch 0
    ("1x3", 384, 8, 256, (1, 3), 1, "same"),         # Inception-C branch 1a
    ("3x1", 384, 8, 256, (3, 1), 1, "same"),         # Inception-C branch 1b
]


# ---------------------------------------------------------------- load of other processes (noise note)

def _busy_seconds():
    """CPU seconds spent by all processes (from /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class LoadMeter:
    """Cores used by other processes between start() and stop()."""

    def start(self):
        self.t0, self.b0, self.o0 = time.perf_counter(), _busy_seconds(), _own_seconds()

    def stop(self):
        if self.b0 is None:
            return float("nan")
        wall = time.perf_counter() - self.t0
        other = (_busy_seconds() - self.b0) - (_own_seconds() - self.o0)
        return max(0.0, other) / wall


def wait_until_quiet(max_wait_s=60.0, threshold=0.1):
    """Wait (at most ``max_wait_s``) until other processes use less than ``threshold`` cores over half a second."""
    meter, t0 = LoadMeter(), time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        meter.start()
        time.sleep(0.5)
        if not meter.stop() >= threshold:      # also True for nan (no /proc/stat)
            return


# ---------------------------------------------------------------- timing

CLOCK = time.perf_counter                  # --cpu-time: time.process_time (CPU seconds of all our threads)


def median_ms(fn, reps, sync):
    fn()                                   # warm-up (compilation, buffers, caches)
    sync()
    times = []
    for _ in range(reps):
        t = CLOCK()
        fn()
        sync()
        times.append(CLOCK() - t)
    return 1e3 * float(np.median(times))


def bench_shape(xp, sync, shape, batch, dtype, reps):
    _, cin, hw, cout, (kh, kw), stride, padding = shape
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((batch, cin, hw, hw)).astype(dtype))
    w = xp.asarray((rng.standard_normal((cout, cin, kh, kw)) / np.sqrt(cin * kh * kw)).astype(dtype))
    with no_grad():
        y = conv2d(x, w, None, stride, padding)
    oh, ow = y.shape[2:]
    gy = xp.asarray(rng.standard_normal(y.shape).astype(dtype))
    k, m = cin * kh * kw, batch * oh * ow
    flops = 2.0 * cout * k * m

    def forward():
        with no_grad():
            conv2d(x, w, None, stride, padding)

    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)

    def forward_backward():
        xt.grad = wt.grad = None
        conv2d(xt, wt, None, stride, padding).backward(gy)

    w2d = w.reshape(cout, k)
    b = xp.asarray(rng.standard_normal((k, m)).astype(dtype))
    gy2d = xp.asarray(rng.standard_normal((cout, m)).astype(dtype))
    meter = LoadMeter()
    meter.start()
    t_fwd = median_ms(forward, reps, sync)
    t_fb = median_ms(forward_backward, reps, sync)
    t_g1 = median_ms(lambda: w2d @ b, reps, sync)
    t_g2 = median_ms(lambda: gy2d @ b.T, reps, sync)
    t_g3 = median_ms(lambda: w2d.T @ gy2d, reps, sync)
    load = meter.stop()
    del b, gy2d
    return dict(out=(oh, ow), k=k, m=m, gflop=flops / 1e9, fwd=t_fwd, fb=t_fb, gemm=t_g1, gemm3=t_g1 + t_g2 + t_g3,
                load=load)


# ---------------------------------------------------------------- environment report

def describe_environment(device):
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, machine {platform.machine()}, "
             f"{os.cpu_count()} CPUs"]
    try:
        import numba
        from ops.kernels.cpu.runtime.threads import cpu_threads
        lines.append(f"numba {numba.__version__} (serial kernels), engine CPU threads {cpu_threads()}")
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
        for d in threadpool_info():
            lines.append(f"threadpoolctl: {d.get('internal_api')} {d.get('version')} "
                         f"arch={d.get('architecture')} threads={d.get('num_threads')} "
                         f"({os.path.basename(d.get('filepath', ''))})")
    except ImportError:
        lines.append("threadpoolctl not installed (pip install threadpoolctl to log the BLAS configuration)")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_CORETYPE"):
        if var in os.environ:
            lines.append(f"{var}={os.environ[var]}")
    if device == "cuda":
        import cupy as cp
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        lines.append(f"cupy {cp.__version__}, GPU {props['name'].decode()}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8, 3 reps (a smoke run)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 64, 8 with --quick)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per number (default 7)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="set OpenBLAS to this many threads (conv2d uses as many workers); default: as is")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time CPU seconds of this process instead of wall time: with --threads 1 this stays "
                             "meaningful on a machine busy with other jobs")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for a quiet machine before each row, nor retry disturbed rows")
    args = parser.parse_args(argv)
    batch = args.batch or (8 if args.quick else 64)
    reps = args.reps or (3 if args.quick else 7)

    if args.threads is not None:
        from ops.kernels.cpu.runtime.blas import openblas
        if openblas().set is None:
            parser.error("--threads: NumPy's BLAS is not OpenBLAS, cannot set its thread count")
        openblas().set(args.threads)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.device == "cuda":
        from autograd.backend import GPUUnavailableError, require_gpu
        try:
            cp = require_gpu()
        except GPUUnavailableError as e:
            parser.error(str(e))
        xp, sync = cp, cp.cuda.Device().synchronize
    else:
        xp, sync = np, (lambda: None)

    clock = "CPU time of the process" if args.cpu_time else "wall time"
    print(f"conv2d vs bare GEMM, device {args.device}, batch {batch}, {args.dtype}, median of {reps} reps, {clock}")
    for line in describe_environment(args.device):
        print("  " + line)
    head = (f"{'conv':7s} {'Cin->Cout':>10s} {'in->out':>9s} {'K':>5s} {'GFLOP':>6s} | {'fwd ms':>7s} {'GF/s':>6s} "
            f"{'gemm ms':>7s} {'ratio':>5s} | {'f+b ms':>7s} {'GF/s':>6s} {'3gemm ms':>8s} {'ratio':>5s} | {'load':>4s}")
    print(head)
    print("-" * len(head))
    ratios_f, ratios_fb = [], []
    for shape in SHAPES:
        r = None
        for _ in range(1 if args.no_wait else 3):         # retry a row that other processes disturbed
            if not args.no_wait:
                wait_until_quiet()
            attempt = bench_shape(xp, sync, shape, batch, np.dtype(args.dtype), reps)
            if r is None or attempt["load"] < r["load"]:
                r = attempt
            if not r["load"] > 0.1:
                break
        name, cin, hw, cout = shape[:4]
        rf, rfb = r["fwd"] / r["gemm"], r["fb"] / r["gemm3"]
        ratios_f.append(rf)
        ratios_fb.append(rfb)
        chans, sizes = f"{cin}->{cout}", f"{hw}->{r['out'][0]}"
        print(f"{name:7s} {chans:>10s} {sizes:>9s} {r['k']:5d} {r['gflop']:6.2f} | "
              f"{r['fwd']:7.1f} {r['gflop'] / r['fwd'] * 1e3:6.0f} {r['gemm']:7.1f} {rf:5.2f} | "
              f"{r['fb']:7.1f} {3 * r['gflop'] / r['fb'] * 1e3:6.0f} {r['gemm3']:8.1f} {rfb:5.2f} | "
              f"{r['load']:4.2f}", flush=True)
    gm = lambda v: float(np.exp(np.mean(np.log(v))))  # noqa: E731
    print(f"geometric mean ratio: forward {gm(ratios_f):.2f} (target <= 1.25), "
          f"forward+backward {gm(ratios_fb):.2f} (target <= 1.5); worst {max(ratios_f):.2f} / {max(ratios_fb):.2f}")


if __name__ == "__main__":
    main()
