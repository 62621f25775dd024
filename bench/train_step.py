"""Benchmark: one training step of each scaled network, minception against PyTorch on the same machine.

A step is forward, softmax cross-entropy, backward and an RMSProp update (momentum 0.9, decay 0.9, eps 1.0), on a
random float32 batch of 64 images 32x32 with 10 classes, for the four networks at width 0.25, blocks (2, 2, 2),
small_input. Ours is, by default, the plain loop a user writes (``--loop plain``): ``model.fuse()`` once, then
forward, ``ops.softmax_cross_entropy``, ``zero_grad()``, ``backward()``, ``step()`` with the library's defaults
and nothing opted into; ``--loop train_step`` times ``loop.train_step`` with the benchmark recipe
(``bench/step.py``), as the Trainer runs it. ``--system-malloc`` runs our side with ``MINCEPTION_SYSTEM_MALLOC=1``
(glibc's malloc defaults instead of the fast tier's, ``ops/kernels/cpu/runtime/malloc.py``). The PyTorch side is
``bench/torch_models.py`` (same layers and widths; checked there by parameter counts and float64 outputs), with
``torch.optim.RMSprop`` (PyTorch's eps-outside-the-root form; the same work per parameter).

Each engine runs in its own subprocess, one after the other, never both at once (PyTorch's OpenMP threads and
our OpenBLAS and pool threads would fight over the 2 cores). Before each subprocess the parent waits (up to
``--wait`` seconds) for the machine to be quiet, and measures the CPU time that *other* processes used while it
ran ("load", in cores): rows with load above ~0.15 are disturbed. A disturbed run is repeated (``--retries``)
and the least disturbed one kept.

Printed per network:

  ours s / torch s   median step time over --steps timed steps after --warmup steps, [min-max]
  ratio              ours / torch (target: <= 1)
  conv GF            conv FLOPs of one step: 3 x forward (2*N*Cout*OH*OW*Cin*kh*kw; input grad + weight grad)
  GF/s, %100, %here  conv GF / step time, and that as a share of ~100 GFLOP/s (the float32 GEMM rate on
                     conv-like shapes of the 2-core Zen 3 baseline machine of docs/performance.md) and of the GEMM
                     rate measured on this machine at the start of the run (printed)
  our threads        (header) OpenBLAS's threads and the engine's CPU threads (``ops.kernels.cpu.runtime.threads``), and
                     what the fast tier did to glibc's malloc (``ops/kernels/cpu/runtime/malloc.py``)
  peak MB (net)      peak resident memory of the subprocess (ru_maxrss), and peak minus the resident memory
                     after imports, model build and batch creation (net: what the steps themselves need)
  fwd/bwd/upd        median split of the step: forward + loss, backward, optimizer update

Commands (run alone on the machine; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the subprocesses'
environment unless --keep-openblas-env, since forced values can pick a slower or hanging OpenBLAS kernel)::

    python -m venv ~/torchenv && ~/torchenv/bin/pip install torch==2.13.0     # once: PyTorch in its own venv
    export MINCEPTION_TORCH_PYTHON=~/torchenv/bin/python                      # or --torch-python on each call
    python3 bench/train_step.py                 # the four networks, 7 steps each side
    python3 bench/train_step.py --quick         # batch 16, 2 timed steps: a smoke run
    python3 bench/train_step.py --networks inception_v4 --rounds 3
    python3 bench/train_step.py --batch 16      # the plain loop at batch 16 (also 32; 64 is the default)
    python3 bench/train_step.py --loop train_step --system-malloc   # the Trainer's step, glibc's malloc
    python3 bench/train_step.py --what inference   # full Inception-v4 and IR-v2 (released), 299x299, batch 1

Run it with minception's interpreter: our side runs in a subprocess of this interpreter, the PyTorch side in a
subprocess of ``--torch-python`` (default: ``$MINCEPTION_TORCH_PYTHON``, else ``~/torchenv/bin/python`` when it
exists, else this interpreter). The parent process imports neither engine. PyTorch is never a dependency of the
package. Timings never assert anything.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)     # the workers import this tree's engine, installed or not (importing it is lazy)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from step import BENCH_LR, NETWORKS, SCALED, PhaseClock, bench_recipe, bench_step, build_minception  # noqa: E402

GEMM_RATE = 100.0   # GFLOP/s: float32 GEMM on conv-like shapes, 2 threads, the baseline machine (docs/performance.md)
THREADS = 2


# =============================================================================================  machine load

def busy_seconds():
    """CPU seconds used by all processes so far (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def children_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_for_quiet(max_wait, threshold=0.15, window=1.0):
    """Wait until other processes use less than ``threshold`` cores over ``window`` seconds (at most
    ``max_wait`` seconds). Returns the last measured load."""
    deadline = time.time() + max_wait
    while True:
        b0 = busy_seconds()
        if b0 is None:
            return float("nan")
        time.sleep(window)
        load = (busy_seconds() - b0) / window
        if load < threshold or time.time() > deadline:
            return load


def rss_mb():
    """Resident memory of this process now, MB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds():
    """CPU time (user + system) of this process so far, all threads: spinning threads count too."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KB on Linux


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


# =============================================================================================  our side

def default_torch_python():
    """The interpreter of the PyTorch side: ``$MINCEPTION_TORCH_PYTHON``, else ``~/torchenv/bin/python`` when it
    exists (the venv of docs/performance.md, "How to reproduce"), else this interpreter."""
    if os.environ.get("MINCEPTION_TORCH_PYTHON"):
        return os.path.expanduser(os.environ["MINCEPTION_TORCH_PYTHON"])
    venv = os.path.expanduser(os.path.join("~", "torchenv", "bin", "python"))
    return venv if os.path.exists(venv) else sys.executable


def limit_our_threads(n):
    """OpenBLAS at ``n`` threads (threadpoolctl when available; else the environment set by the parent); returns
    threadpoolctl's info or a note. Nothing else is set: the library's defaults are what is measured."""
    sys.path.insert(0, ROOT)
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed (OPENBLAS_NUM_THREADS set in the environment instead)"
    threadpoolctl.threadpool_limits(n)
    return [{k: d.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")}
            for d in threadpoolctl.threadpool_info()]


def conv_flop_counter():
    """A function hook that adds up the forward FLOPs of every Conv2d op: 2 * output size * Cin * kh * kw."""
    from autograd import FunctionHook

    class ConvFlops(FunctionHook):
        flops = 0

        def forward_post(self, fn, inputs, outputs):
            if fn.name == "Conv2d":
                w = inputs[1]
                self.flops += 2 * outputs[0].size * w.shape[1] * w.shape[2] * w.shape[3]

    return ConvFlops()


def _engine_threads():
    """The engine's CPU thread count and malloc policy (read after the steps ran)."""
    from ops.kernels.cpu.runtime import threads
    from ops.kernels.cpu.runtime.malloc import malloc_policy
    return {"cpu_threads": threads.cpu_threads(), "malloc": malloc_policy()}


def plain_step(model, optimizer, x, y, recipe, on_phase):
    """The step as a user writes it, with the library's defaults: forward, loss, zero_grad, backward, step. Returns
    the loss (a float: read after the update, as a user's print would)."""
    import ops
    loss = ops.softmax_cross_entropy(model(x), y)
    on_phase("forward")
    optimizer.zero_grad()
    loss.backward()
    on_phase("backward")
    optimizer.step()
    on_phase("update")
    return float(loss.data)


def bench_step_loss(model, optimizer, x, y, recipe, on_phase):
    return bench_step(model, optimizer, x, y, recipe, on_phase=on_phase).loss


def worker_ours(args):
    import numpy as np
    info = limit_our_threads(args.threads)
    from autograd import Tensor, no_grad

    rng = np.random.default_rng(0)
    if args.what == "inference":
        net = build_minception(args.network, width=1.0).eval()
        x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
        base = rss_mb()
        times = []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            with no_grad():
                net(Tensor(x))
            times.append(time.perf_counter() - t0)
        return {"engine": "minception", "step": summary(times[args.warmup:]), "base_mb": base,
                "peak_mb": peak_rss_mb(), "threads": info}

    net = build_minception(args.network, **dict(SCALED, small_input=args.size <= 64))
    recipe = bench_recipe()
    opt = recipe.optimizer(net)
    step = plain_step if args.loop == "plain" else bench_step_loss
    x = Tensor(rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32))
    y = rng.integers(0, SCALED["num_classes"], args.batch)
    base = rss_mb()
    counter = conv_flop_counter()
    split, losses = {"fwd": [], "bwd": [], "upd": []}, []
    times, cpu = [], []
    for i in range(args.warmup + args.steps):
        if i == 0:
            counter.add()
        c0 = cpu_seconds()
        clock = PhaseClock()
        t0 = time.perf_counter()
        loss = step(net, opt, x, y, recipe, on_phase=clock)
        t1, t2, t3 = clock.at["forward"], clock.at["backward"], clock.at["update"]
        if i == 0:
            counter.remove()
        losses.append(loss)
        times.append(t3 - t0)
        cpu.append(cpu_seconds() - c0)
        if i >= args.warmup:
            split["fwd"].append(t1 - t0), split["bwd"].append(t2 - t1), split["upd"].append(t3 - t2)
    info = {"blas": info, **_engine_threads()}
    return {"engine": "minception", "step": summary(times[args.warmup:]),
            "cpu": statistics.median(cpu[args.warmup:]),
            "split": {k: statistics.median(v) for k, v in split.items()}, "conv_flops": 3 * counter.flops,
            "base_mb": base, "peak_mb": peak_rss_mb(), "losses": losses, "threads": info,
            "params": net.num_parameters()}


def worker_gemm(args):
    """float32 GEMM rate of this machine on conv-like shapes (Cout x K) @ (K x N*H*W), NumPy/OpenBLAS."""
    import numpy as np
    info = limit_our_threads(args.threads)
    rng = np.random.default_rng(0)
    rates = []
    for m, k, n in [(64, 576, 65536), (128, 1152, 16384), (256, 2304, 4096)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        c = np.empty((m, n), np.float32)
        times = []
        for i in range(9):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
        rates.append(2 * m * k * n / statistics.median(times[2:]) / 1e9)
    return {"engine": "gemm", "rates": rates, "threads": info}


# =============================================================================================  PyTorch side

def worker_torch(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    sys.path.insert(0, HERE)
    import torch_models

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    info = {"torch": torch.__version__, "num_threads": torch.get_num_threads(),
            "config": torch.__config__.parallel_info().splitlines()[:4]}
    if args.what == "inference":
        net = torch_models.build(args.network, width=1.0).eval()
        x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
        base = rss_mb()
        times = []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            with torch.no_grad():
                net(x)
            times.append(time.perf_counter() - t0)
        return {"engine": "torch", "step": summary(times[args.warmup:]), "base_mb": base, "peak_mb": peak_rss_mb(),
                "threads": info}

    net = torch_models.build(args.network, **dict(SCALED, small_input=args.size <= 64))
    opt = torch.optim.RMSprop(net.parameters(), lr=BENCH_LR, alpha=0.9, eps=1.0, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    y = torch.randint(0, SCALED["num_classes"], (args.batch,), generator=gen)
    base = rss_mb()
    flops = [0]

    def count(module, inputs, output):
        kh, kw = module.kernel_size
        flops[0] += 2 * output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    split, losses, times, cpu = {"fwd": [], "bwd": [], "upd": []}, [], [], []
    for i in range(args.warmup + args.steps):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i == 0:
            for h in handles:
                h.remove()
        losses.append(loss.item())
        times.append(t3 - t0)
        cpu.append(cpu_seconds() - c0)
        if i >= args.warmup:
            split["fwd"].append(t1 - t0), split["bwd"].append(t2 - t1), split["upd"].append(t3 - t2)
        del loss
    return {"engine": "torch", "step": summary(times[args.warmup:]),
            "cpu": statistics.median(cpu[args.warmup:]),
            "split": {k: statistics.median(v) for k, v in split.items()}, "conv_flops": 3 * flops[0],
            "base_mb": base, "peak_mb": peak_rss_mb(), "losses": losses, "threads": info,
            "params": sum(p.numel() for p in net.parameters())}


# =============================================================================================  parent

def child_env(args):
    env = dict(os.environ)
    if not args.keep_openblas_env:
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(k, None)
    threads = str(getattr(args, "threads", THREADS))
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = threads
    env.pop("MINCEPTION_SYSTEM_MALLOC", None)
    if getattr(args, "system_malloc", False):
        env["MINCEPTION_SYSTEM_MALLOC"] = "1"
    return env


def run_worker(args, engine, network):
    """Run one worker subprocess (waiting for a quiet machine first); returns its result dict plus the load."""
    python = args.torch_python if engine == "torch" else sys.executable
    if engine == "gemm":
        network = "-"
    cmd = [python, os.path.abspath(__file__), "--worker", engine, "--network", network, "--what", args.what,
           "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--loop", args.loop]
    best = None
    for attempt in range(args.retries + 1):
        wait_for_quiet(args.wait)
        b0, c0, t0 = busy_seconds(), children_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args), cwd=ROOT)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{engine} worker failed for {network}:\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["load"] = (busy_seconds() - b0 - (children_seconds() - c0)) / wall if b0 is not None else float("nan")
        if best is None or result["load"] < best["load"]:
            best = result
        if result["load"] <= args.max_load:
            break
    return best


def fmt_time(s):
    return f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]"


def print_header(args):
    print(f"# bench/train_step.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  python {platform.python_version()}")
    print(f"# cpu: {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.2f} (1 min)")
    removed = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if removed and not args.keep_openblas_env:
        print(f"# removed from the subprocesses' environment: {', '.join(f'{k}={os.environ[k]}' for k in removed)}")
    elif removed:
        print(f"# WARNING: kept {removed}: forced OpenBLAS core types can be 3-5x slower or hang")
    print(f"# {args.what}: batch {args.batch}, {args.size}x{args.size}, float32, {args.threads} thread(s) each side; "
          f"{args.warmup} warm-up + {args.steps} timed steps per run, {args.rounds} round(s); median [min-max] s")
    if args.what == "train":
        print(f"# our loop: {args.loop}; malloc: "
              f"{'glibc defaults (MINCEPTION_SYSTEM_MALLOC=1)' if args.system_malloc else 'the library default'}")


def alternate(args, network):
    """``--rounds`` rounds of our worker then PyTorch's on ``network``; each run's result, per engine."""
    runs = {"minception": [], "torch": []}
    for r in range(args.rounds):
        for engine in ("ours", "torch"):
            res = run_worker(args, engine, network)
            runs[res["engine"]].append(res)
            print(f"  {network:30s} {res['engine']:10s} round {r + 1}: {fmt_time(res['step'])} s, "
                  f"load {res['load']:.2f}, peak {res['peak_mb']:.0f} MB", file=sys.stderr)
    return runs


def main_train(args):
    gemm = run_worker(args, "gemm", "-")
    here = statistics.median(gemm["rates"])
    print(f"# float32 GEMM on conv-like shapes here ({args.threads} thread(s)): "
          f"{', '.join(f'{r:.0f}' for r in gemm['rates'])} GFLOP/s (median {here:.0f}); the reference is "
          f"{GEMM_RATE:.0f} (the 2-core Zen 3 baseline machine); '%100' uses {GEMM_RATE:.0f}, '%here' {here:.0f}")
    rows = [(network, alternate(args, network)) for network in args.networks.split(",")]
    if rows and rows[0][1]["minception"]:
        print("# our threads:", json.dumps(rows[0][1]["minception"][0]["threads"]))
        print("# torch:", json.dumps(rows[0][1]["torch"][0]["threads"]))
    head = (f"{'network':30s} {'ours s':>17s} {'torch s':>17s} {'ratio':>6s} {'conv GF':>8s} {'ours GF/s':>9s} "
            f"{'%100':>5s} {'%here':>5s} {'torch GF/s':>10s} {'%100':>5s} {'%here':>5s} {'ours MB (net)':>14s} {'torch MB (net)':>15s} "
            f"{'load':>9s}")
    print(head)
    print("-" * len(head))
    for network, runs in rows:
        ours, theirs = runs["minception"], runs["torch"]
        t_ours = statistics.median(r["step"]["median"] for r in ours)
        t_torch = statistics.median(r["step"]["median"] for r in theirs)
        allo = [t for r in ours for t in r["step"]["all"]]
        allt = [t for r in theirs for t in r["step"]["all"]]
        gf = ours[0]["conv_flops"] / 1e9
        gf_t = theirs[0]["conv_flops"] / 1e9
        note = "" if abs(gf - gf_t) < 1e-6 * gf else f" (torch counts {gf_t:.2f})"
        peak_o = max(r["peak_mb"] for r in ours)
        net_o = max(r["peak_mb"] - r["base_mb"] for r in ours)
        peak_t = max(r["peak_mb"] for r in theirs)
        net_t = max(r["peak_mb"] - r["base_mb"] for r in theirs)
        load = max(r["load"] for r in ours + theirs)
        print(f"{network:30s} {t_ours:6.2f} [{min(allo):.2f}-{max(allo):.2f}] {t_torch:6.2f} [{min(allt):.2f}-"
              f"{max(allt):.2f}] {t_ours / t_torch:6.2f} {gf:8.2f} {gf / t_ours:9.1f} {100 * gf / t_ours / GEMM_RATE:4.0f}% "
              f"{100 * gf / t_ours / here:4.0f}% {gf / t_torch:10.1f} {100 * gf / t_torch / GEMM_RATE:4.0f}% "
              f"{100 * gf / t_torch / here:4.0f}% {peak_o:6.0f} ({net_o:5.0f}) "
              f"{peak_t:7.0f} ({net_t:5.0f}) {load:9.2f}{note}")
    print()
    print(f"{'split (median s), CPU s':30s} {'ours fwd':>9s} {'bwd':>6s} {'upd':>6s} {'cpu':>6s}   {'torch fwd':>9s} "
          f"{'bwd':>6s} {'upd':>6s} {'cpu':>6s} {'cpu ratio':>9s}")
    for network, runs in rows:
        so, st = runs["minception"][0]["split"], runs["torch"][0]["split"]
        co = statistics.median(r["cpu"] for r in runs["minception"])
        ct = statistics.median(r["cpu"] for r in runs["torch"])
        print(f"{network:30s} {so['fwd']:9.3f} {so['bwd']:6.3f} {so['upd']:6.3f} {co:6.2f}   {st['fwd']:9.3f} "
              f"{st['bwd']:6.3f} {st['upd']:6.3f} {ct:6.2f} {co / ct:9.2f}")
    print("(cpu: CPU seconds of the whole process per step, median; with 1 thread per side it is the least "
          "load-sensitive comparison)")


def main_inference(args):
    for network in args.networks.split(","):
        runs = alternate(args, network)
        o, t = runs["minception"], runs["torch"]
        mo = statistics.median(r["step"]["median"] for r in o)
        mt = statistics.median(r["step"]["median"] for r in t)
        print(f"full {network}, eval, batch {args.batch}, {args.size}x{args.size}: ours {mo:.3f} s, "
              f"torch {mt:.3f} s (medians of {args.rounds} round(s)), ratio {mo / mt:.2f}; peak MB ours "
              f"{max(r['peak_mb'] for r in o):.0f} torch {max(r['peak_mb'] for r in t):.0f}; "
              f"load {max(r['load'] for r in o + t):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", default=None,
                        help="default: the four (train); inception_v4,inception_resnet_v2_released (inference)")
    parser.add_argument("--what", choices=("train", "inference"), default="train")
    parser.add_argument("--batch", type=int, default=None, help="default 64 (train), 1 (inference)")
    parser.add_argument("--size", type=int, default=None, help="default 32 (train), 299 (inference)")
    parser.add_argument("--steps", type=int, default=7, help="timed steps per run (>= 5 for the report)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="threads per side (1: CPU-time comparison that a busy machine disturbs least)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate ours/torch this many times")
    parser.add_argument("--quick", action="store_true", help="batch 16, 1 warm-up + 2 timed steps, no waiting")
    parser.add_argument("--wait", type=float, default=120, help="max seconds to wait for a quiet machine")
    parser.add_argument("--max-load", type=float, default=0.15, help="retry runs disturbed above this (cores)")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--loop", choices=("plain", "train_step"), default="plain",
                        help="our step: the plain loop a user writes (default), or loop.train_step as the Trainer runs it")
    parser.add_argument("--system-malloc", action="store_true",
                        help="our side with MINCEPTION_SYSTEM_MALLOC=1 (glibc's malloc defaults)")
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--torch-python", default=default_torch_python(),
                        help="interpreter with PyTorch (default: $MINCEPTION_TORCH_PYTHON, else ~/torchenv/bin/python "
                             "when it exists, else this one)")
    parser.add_argument("--worker", choices=("ours", "torch", "gemm"), help=argparse.SUPPRESS)
    parser.add_argument("--network", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 1 if args.what == "inference" else 64
    if args.size is None:
        args.size = 299 if args.what == "inference" else 32
    if args.networks is None:
        args.networks = ("inception_v4,inception_resnet_v2_released" if args.what == "inference"
                         else ",".join(NETWORKS))
    if args.quick and not args.worker:
        args.batch, args.steps, args.warmup, args.wait, args.retries = min(args.batch, 16), 2, 1, 0, 0
    if args.worker:
        result = {"ours": worker_ours, "torch": worker_torch, "gemm": worker_gemm}[args.worker](args)
        print(json.dumps(result))
        return
    print_header(args)
    (main_inference if args.what == "inference" else main_train)(args)


if __name__ == "__main__":
    main()
