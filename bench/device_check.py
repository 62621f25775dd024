"""The GPU machine check: what a borrowed GPU host should run, in one command, results in one folder.

The command for the next GPU machine (8 minutes of device time; the default steps fit 470 s)::

    python bench/device_check.py /tmp/out            # the default steps: what changed since the last GPU run

Other uses::

    python bench/device_check.py OUT --full          # every step, also those that passed on the last GPU run
    python bench/device_check.py OUT --only parity,pytest-gpu
    python bench/device_check.py OUT --quick         # smaller everything (a smoke run, or CPU-only machines)
    python bench/device_check.py OUT --only env,cpu-profile --threads 1,2
    python bench/device_check.py OUT --skip cpu-scaling

Steps, in this order (``--only`` / ``--skip`` take these names; * = not run by default, as it passed on the
last GPU run, 2026-11-28: ``--full`` or ``--only`` runs it); none stops the ones after it:

    env               GPU name, CUDA driver and runtime, CuPy, NumPy, Numba, Python, PyTorch versions
    pytest-changed    the GPU tests of what changed since the last GPU run (``CHANGED_GPU_TESTS``): the CuPy
                      pooling and conv2d call sites, the batch-norm kernels (ReLU gate, eval ``scale_grad``),
                      the optimizers' tier gating (multi-tensor launches only in the fast tier)
  * pytest-gpu        ``pytest -m gpu tests`` (all GPU tests except the network gradient checks)
  * parity            every op on the GPU against the CPU in float64: the largest output and gradient errors
                      per op (target 1e-10), as a table
  * gradcheck         whole-network float64 directional gradient checks on the GPU, the four networks
    kernels           one training step of Inception-v4 (width 0.25, blocks 2,2,2, batch 64, 32x32): every
                      launch with its op, host and device time: ``kernels.txt`` (per kernel, per op type, per
                      launch kind), ``kernels.json``, ``trace.json`` (chrome://tracing or ui.perfetto.dev);
                      with PyTorch installed, also every kernel as CUPTI sees it (``bench/launch_profile.py``)
    cuda-graph-probe  can a whole training step (``loop.train_step``, ``sync=False``, labels in a static GPU
                      buffer) be captured in a CUDA graph? The first error and where, or the node count, the
                      replay time against the eager step and the loss after 5 replays against 5 eager steps
  * bench-conv        ``bench/conv.py --device cuda``
  * bench-pool-bn     ``bench/pool_bn.py --device cuda``
    train-step        one training step of each scaled network (width 0.25, blocks 2,2,2, batch 64) and of the
                      training example's configuration: minception on CuPy (host labels) against PyTorch CUDA
                      eager on the same architecture (``bench/torch_models.py``), float32, TF32 off on both
                      sides, then on for both
  * train-example     300 steps of ``examples/train_cifar_scaled.py --device cuda`` on the synthetic set: the
                      loss curve and images/s
    cpu-profile       the CPU training step per op type (TimerHook) at 16, 8 and 4 threads (those the host
                      has), with the CPU pool's parallel calls and parts per step
    cpu-scaling       the CPU training step at 16, 8, 4, 2 and 1 threads (those the host has), minception
                      against PyTorch at the same thread counts (``bench/train_step.py``'s workers)

Each step runs in its own subprocess with its own time limit (a crash or a hung GPU loses that step only); its
output goes to ``OUT/<step>.log`` and its results to ``OUT/<step>.json`` (and ``.txt`` tables). At the end
``OUT/summary.txt`` (also printed) and ``OUT/summary.json`` list every step: status (ok, failed, timeout,
skipped), seconds, and a one-line result. The limits add up to less than ``--budget``; a step that overruns
cuts into the later ones' share, and a step left with less than 5 s is skipped, so the whole check always ends
within the budget (8 minutes of device time: 470 s leaves room for starting and copying).

Without CuPy or a GPU the GPU steps are skipped with the reason (which extra to install, or CUDA's message);
without PyTorch the comparisons say "torch not installed" and report minception's side alone.

Compiled CuPy kernels are shared by all steps through one cache folder (``CUPY_CACHE_DIR``, in the system's temp
folder unless already set), so each kernel is compiled once per check.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: (name, planned seconds, needs the GPU, runs by default). The default steps' planned seconds add up to the default
#: budget; ``--full`` adds the others (what passed on the last GPU run) and shrinks every plan to fit.
#: (H200 runs, 2026-11-28: env 7, pytest-gpu 41, parity 3, gradcheck 8, bench-conv 12, bench-pool-bn 7,
#: train-step 55, train-example 29 s; cpu-scaling needs about 150 s for 5 thread counts: as the last step it
#: also gets what the others left unused)
STEPS = [
    ("env", 10, False, True),
    ("pytest-changed", 70, True, True),
    ("pytest-gpu", 80, True, False),
    ("parity", 15, True, False),
    ("gradcheck", 25, True, False),
    ("kernels", 60, True, True),
    ("cuda-graph-probe", 45, True, True),
    ("bench-conv", 20, True, False),
    ("bench-pool-bn", 15, True, False),
    ("train-step", 80, True, True),
    ("train-example", 45, True, False),
    ("cpu-profile", 60, False, True),
    ("cpu-scaling", 145, False, True),
]
STEP_NAMES = [name for name, *_ in STEPS]
DEFAULT_STEPS = [name for name, _, _, default in STEPS if default]
#: The GPU tests of what changed since the last GPU run (2026-11-28), run by ``pytest-changed``: the CuPy
#: pooling and conv2d call sites (and im2col under them), the batch-norm kernels (the fused ReLU gate and the
#: eval-mode ``scale_grad`` kernel), the optimizers' tier gating (multi-tensor launches only in the fast tier,
#: EMA's too), ``to_device``'s 0-d fix (found by the last run, never run on a GPU since), and one small network
#: end to end. ``file::test`` selects every parametrization of that test; ``-m gpu`` keeps the GPU ones.
CHANGED_GPU_TESTS = [
    "tests/ops/test_pool_kernels.py::test_cupy_matches_reference",
    "tests/ops/test_pool_kernels.py::test_cupy_ties_nan_and_int32_argmax",
    "tests/ops/test_pool_kernels.py::test_cupy_backward_is_deterministic",
    "tests/ops/test_pooling.py::test_gpu_matches_cpu_forward_and_backward",
    "tests/ops/test_pooling.py::test_gpu_gradcheck",
    "tests/ops/test_conv2d.py::test_gpu_matches_cpu",
    "tests/ops/test_conv2d.py::test_gpu_gradcheck_float64",
    "tests/ops/test_im2col.py::test_cupy_kernels_match_reference",
    "tests/ops/test_im2col.py::test_cupy_col2im_is_deterministic_in_float64",
    "tests/ops/test_batch_norm.py::test_cupy_kernels_match_reference",
    "tests/ops/test_batch_norm.py::test_gpu_matches_cpu",
    "tests/ops/test_batch_norm.py::test_gpu_fused_relu_matches_reference",
    "tests/ops/test_batch_norm.py::test_gpu_gradcheck",
    "tests/ops/test_kernel_tiers.py::test_both_tiers_on_the_gpu_match_the_cpu",
    "tests/ops/test_kernel_tiers.py::test_gpu_running_statistics_update_matches_the_reference",
    "tests/ops/test_kernel_tiers.py::test_gpu_batch_norm_relu_keeps_nan_and_gates_the_gradient",
    "tests/ops/test_nonfinite_tiers.py::test_on_the_gpu_both_tiers_put_non_finite_values_where_the_cpu_does",
    "tests/ops/test_residual.py::test_gpu_matches_cpu",
    "tests/minception/test_gpu_training.py::test_64_bit_index_variants_agree_with_32_bit",
    "tests/minception/test_gpu_training.py::test_batch_norm_kernels_are_deterministic_and_match_the_reference",
    "tests/minception/test_gpu_training.py::test_batch_norm_kernel_boundary_casts_gy_and_makes_invstd_contiguous",
    "tests/minception/test_optim.py::test_gpu_fused_and_plain_updates_match_cpu",
    "tests/minception/test_optim.py::test_gpu_clip_grad_norm_and_state_dict",
    "tests/minception/test_optim.py::test_gpu_global_norm_kernel_matches_numpy_reference",
    "tests/minception/test_ema.py::test_gpu_ema_swap_and_state_dict",
    "tests/minception/test_ema.py::test_gpu_fused_ema_matches_cpu",
    "tests/autograd/test_backend.py::test_to_device_on_a_gpu_copies_and_does_not_depend_on_the_host_array_afterwards",
    "tests/minception/test_nn_module.py::test_to_cuda_moves_parameters_buffers_and_grads_and_back",
    "tests/minception/test_nn_layers.py::test_a_small_network_gives_the_same_outputs_and_gradients_on_the_gpu",
]
MIN_SECONDS = 5            # a step with less time left than this is skipped
DEFAULT_BUDGET = 470

NETWORKS = ["inception_v4", "inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_released"]
#: the scaled benchmark configuration, and the training example's (examples/train_cifar_scaled.py DEFAULTS).
#: ``recipe`` names our step's ``Recipe`` (``bench/step.py``: "bare", or "scaled", the example's); the other
#: values are what the PyTorch twin's step uses, the same as that recipe's (tests/bench/test_device_check.py)
SCALED = dict(width=0.25, blocks=(2, 2, 2), batch=64, recipe="bare", dropout=0.0, weight_decay=0.0, smoothing=0.0,
              clip=0.0, ema=False)
EXAMPLE = dict(network="inception_resnet_v2", width=0.125, blocks=(1, 1, 1), batch=32, recipe="scaled",
               dropout=0.2, weight_decay=4e-5, smoothing=0.1, clip=2.0, ema=True)


# =============================================================================================  helpers

def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def child_env(extra=None):
    """The environment of every subprocess: the repository importable, one CuPy kernel cache for all steps."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("CUPY_CACHE_DIR", os.path.join(tempfile.gettempdir(), "minception_cupy_kernel_cache"))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_logged(cmd, log_path, timeout, env=None, cwd=ROOT):
    """Run ``cmd`` with stdout and stderr to ``log_path`` (appended), killed with its process group after
    ``timeout`` seconds. Returns ``(returncode or None on timeout, seconds)``."""
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env or child_env(),
                                start_new_session=True)
        try:
            code = proc.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)          # the step and anything it started
            except ProcessLookupError:
                pass
            proc.wait()
            code = None
            log.write(f"\n[device_check] killed after {timeout:.0f} s\n")
    return code, time.perf_counter() - t0


def tail(path, n=3):
    try:
        with open(path) as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def step_limit(planned, now, deadline, later_steps):
    """Seconds a step may take: its planned time, cut so that the later steps keep ``MIN_SECONDS`` each and the
    whole check ends by ``deadline``. Below ``MIN_SECONDS`` the step is skipped (returns 0)."""
    available = deadline - now - MIN_SECONDS * later_steps
    limit = min(planned, available)
    return limit if limit >= MIN_SECONDS else 0


def python_has(module, python=sys.executable, report=None):
    """``(True, version)`` when ``python`` can import ``module``, else ``(False, one-line reason)``. ``report``:
    the statement that prints what to return instead of the version."""
    code = f"import {module}; " + (report or f"print(getattr({module}, '__version__', '?'))")
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, env=child_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{type(e).__name__}: {e}"
    if r.returncode == 0:
        return True, r.stdout.strip()
    last = (r.stderr.strip().splitlines() or ["?"])[-1]
    return False, last


# =============================================================================================  workers
# Each worker runs in its own process: ``device_check.py --worker NAME OUT [options]``. It prints what it does
# and writes OUT/NAME.json; the parent turns that into one summary line.

def worker_env(args):
    sys.path.insert(0, ROOT)
    import numpy as np
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "numpy": np.__version__}
    try:
        import numba
        info["numba"] = numba.__version__
    except ImportError as e:
        info["numba"] = f"not installed ({e})"
    from autograd.backend import gpu_unavailable_reason
    reason = gpu_unavailable_reason()
    info["gpu_available"] = reason is None
    info["gpu_reason"] = reason
    if reason is None:
        import cupy
        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(0)
        info.update({
            "cupy": cupy.__version__, "gpu": props["name"].decode(), "gpus": rt.getDeviceCount(),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "gpu_memory_gib": round(props["totalGlobalMem"] / 2 ** 30, 1),
            "multiprocessors": props["multiProcessorCount"],
            "cuda_driver": rt.driverGetVersion(), "cuda_runtime": rt.runtimeGetVersion(),
        })
    else:
        try:
            import cupy
            info["cupy"] = cupy.__version__
        except Exception as e:                       # noqa: BLE001 (any import failure is the report)
            info["cupy"] = f"not importable ({type(e).__name__}: {e})"
    ok, version = python_has("torch", args.torch_python,
                             "print(torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.is_available())")
    info["torch"] = version if ok else f"not installed ({version})"
    for key, value in info.items():
        print(f"{key}: {value}")
    write_json(os.path.join(args.out, "env.json"), info)


def worker_parity(args):
    """Largest GPU-CPU differences per op case of tests/ops/test_gpu_parity.py, in a table."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))
    import numpy as np
    import cupy
    from test_gpu_parity import CASES, TOL, run
    rows = []
    for case in CASES:
        try:
            y_c, g_c, gy = run(case, np)
            y_g, g_g, _ = run(case, cupy, gy)
            errs = [_max_error(y_g, y_c)] + [_max_error(a, b) for a, b in zip(g_g, g_c) if b is not None]
            worst = max(errs)
            rows.append({"op": case.name, "output": errs[0], "gradients": max(errs[1:], default=0.0),
                         "ok": bool(worst <= TOL["rtol"])})
        except Exception as e:                       # noqa: BLE001 (one broken op must not hide the others)
            rows.append({"op": case.name, "error": f"{type(e).__name__}: {e}"[:300], "ok": False})
        r = rows[-1]
        print(f"{r['op']:28s} " + (f"output {r['output']:.2e}  gradients {r['gradients']:.2e}  "
                                    f"{'ok' if r['ok'] else 'ABOVE 1e-10'}" if "error" not in r else r["error"]),
              flush=True)
    write_json(os.path.join(args.out, "parity.json"), rows)
    with open(os.path.join(args.out, "parity.txt"), "w") as f:
        f.write("| op | max output error | max gradient error | within 1e-10 |\n|---|---|---|---|\n")
        for r in rows:
            if "error" in r:
                f.write(f"| {r['op']} | {r['error']} | | no |\n")
            else:
                f.write(f"| {r['op']} | {r['output']:.2e} | {r['gradients']:.2e} | {'yes' if r['ok'] else 'NO'} |\n")


def _max_error(a, b):
    """max |a - b| / max(1, |b|) elementwise: relative for large values, absolute near zero."""
    import numpy as np
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


# ----------------------------------------------------------------------------------------- training step
def _configs(quick):
    """The training-step configurations: the four scaled networks, then the training example's."""
    scaled = dict(SCALED, batch=16) if quick else SCALED
    configs = [dict(scaled, name=n, network=n) for n in NETWORKS]
    configs.append(dict(EXAMPLE, name="example (" + EXAMPLE["network"] + ")"))
    if quick:
        configs = [dict(c, width=0.0625, blocks=(1, 1, 1), batch=min(c["batch"], 8)) for c in configs]
    return configs


def _time_steps(step, sync, warmup, steps):
    """First step (with kernel compilation), then ``warmup`` more, then ``steps`` timed steps: per-step times
    (synchronised after each) and the pipelined time per step (``steps`` in a row, one synchronisation)."""
    t0 = time.perf_counter()
    losses = [step()]
    sync()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        losses.append(step())
    sync()
    single = []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        sync()
        single.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(steps):
        losses.append(step())
    issued = (time.perf_counter() - t0) / steps
    sync()
    pipelined = (time.perf_counter() - t0) / steps
    # host_ms: the host's time to issue one step's work (no waiting); when it is close to pipelined_ms, the GPU
    # waits for the host (Python and launch overhead), not the other way round.
    return {"first_s": first, "step_ms": 1e3 * statistics.median(single), "min_ms": 1e3 * min(single),
            "max_ms": 1e3 * max(single), "pipelined_ms": 1e3 * pipelined, "host_ms": 1e3 * issued}, losses


def _gpu_busy(step, sync, top=15):
    """GPU kernel time and kernel count of one call of ``step``, read by PyTorch's profiler (CUPTI sees every
    kernel of the process, CuPy's too). Beside the wall time per step this says how much of a step the GPU
    computes and how much it waits for the host. {} when PyTorch or its profiler is unavailable. ``top``: how
    many kernels to list, the most frequent first (None: all, as (count, total ms, name))."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return {}
    try:
        sync()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            sync()
        busy_us, kernels, names = 0.0, 0, []
        for e in prof.key_averages():
            t = getattr(e, "self_device_time_total", None)
            if t is None:
                t = getattr(e, "self_cuda_time_total", 0)
            if t:
                busy_us += t
                kernels += e.count
                names.append((e.count, round(t / 1e3, 3), str(e.key)[:80]))
        names.sort(reverse=True)          # the most frequent first: where the launches go
        return {"gpu_busy_ms": busy_us / 1e3, "gpu_kernels": kernels, "gpu_top_kernels": names[:top]}
    except Exception as e:                           # noqa: BLE001 (a profiler problem must not lose the timing)
        return {"gpu_busy_error": f"{type(e).__name__}: {e}"[:200]}


def _count_ops(step):
    """(forward ops, backward ops) of one call of ``step``, counted by a function hook (``autograd.hooks``)."""
    from autograd.hooks import FunctionHook

    class Count(FunctionHook):
        forward = backward = 0

        def forward_post(self, fn, inputs, outputs):
            Count.forward += 1

        def backward_post(self, fn, grad_outputs, grad_inputs):
            Count.backward += 1
    with Count():
        step()
    return Count.forward, Count.backward


def worker_train_engine(args):
    """One engine (ours on CuPy, or PyTorch CUDA) over every configuration; TF32 as ``--tf32`` says."""
    results = []
    for cfg in _configs(args.quick)[:args.max_configs]:
        try:
            if args.engine == "ours":
                r = _step_ours(cfg, args)
            else:
                r = _step_torch(cfg, args)
        except Exception as e:                       # noqa: BLE001 (report and go on with the next network)
            r = {"error": f"{type(e).__name__}: {e}"[:400]}
        r.update(config=cfg["name"], engine=args.engine, tf32=args.tf32)
        print(json.dumps(r), flush=True)
        results.append(r)
    write_json(os.path.join(args.out, f"train-step-{args.engine}-tf32{args.tf32}.json"), results)


def _training_setup(cfg, device):
    """The network, optimizer, average of the weights, recipe and batch of configuration ``cfg`` on ``device``
    ("cuda", or "cpu" for the tests), as the benchmarks build them: ``(net, opt, ema, recipe, x, y)``.

    The labels ``y`` stay on the host (NumPy): the loss checks their range where they are and queues their copy
    to the GPU on the stream (``ops/loss.py``). Labels already on the GPU would make that check read the GPU,
    and the host would wait there, mid-step, for every kernel queued so far."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import numpy as np
    from autograd import Tensor
    from autograd.backend import to_device
    from step import bench_recipe, build_minception
    recipe = bench_recipe(cfg["recipe"])       # optimizer, loss, clipping and average of the weights
    net = build_minception(cfg["network"], num_classes=10, width=cfg["width"], blocks=cfg["blocks"],
                           small_input=True, dropout=recipe.dropout).to(device).train()
    opt, ema = recipe.optimizer(net), recipe.ema(net)
    rng = np.random.default_rng(0)
    x = Tensor(to_device(rng.standard_normal((cfg["batch"], 3, 32, 32)).astype(np.float32), device))
    y = rng.integers(0, 10, cfg["batch"])      # host labels
    return net, opt, ema, recipe, x, y


def _device_sync(device):
    """A function that waits until the device has finished its queued work (nothing to wait for on the CPU)."""
    if device == "cuda":
        import cupy
        return cupy.cuda.Device().synchronize
    return lambda: None


def _step_ours(cfg, args):
    """Our training step on ``args.device`` (the check uses "cuda"; "cpu" runs the same code in the tests)."""
    sys.path.insert(0, HERE)
    from step import bench_step
    net, opt, ema, recipe, x, y = _training_setup(cfg, args.device)
    sync = _device_sync(args.device)

    def step():                                 # nothing is read back: the GPU is not waited for
        return bench_step(net, opt, x, y, recipe, ema=ema, sync=False).loss

    timing, losses = _time_steps(step, sync, args.warmup, args.steps)
    timing["forward_ops"], timing["backward_ops"] = _count_ops(step)
    if args.device == "cuda":
        import cupy
        timing.update(_gpu_busy(step, sync))
        timing["gpu_pool_mib"] = cupy.get_default_memory_pool().total_bytes() / 2 ** 20
    timing.update(images_per_s=cfg["batch"] / (timing["pipelined_ms"] / 1e3), params=net.num_parameters(),
                  losses=[float(v) for v in losses[:3]] + [float(losses[-1])], labels="host")
    return timing


def _step_torch(cfg, args):
    sys.path.insert(0, HERE)
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torch_models
    from step import BENCH_LR
    tf32 = args.tf32 == "on"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    net = torch_models.build(cfg["network"], num_classes=10, width=cfg["width"], blocks=cfg["blocks"],
                             small_input=True, dropout=cfg["dropout"]).cuda().train()
    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    opt = torch.optim.RMSprop([{"params": decay, "weight_decay": cfg["weight_decay"]},
                               {"params": no_decay, "weight_decay": 0.0}], lr=BENCH_LR, alpha=0.9, eps=1.0,
                              momentum=0.9)
    averaged = list(net.parameters()) + [b for b in net.buffers() if b.dtype.is_floating_point]
    shadows = [a.detach().clone() for a in averaged] if cfg["ema"] else None
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((cfg["batch"], 3, 32, 32)).astype(np.float32)).cuda()
    y = torch.from_numpy(rng.integers(0, 10, cfg["batch"])).cuda()

    def step():
        loss = F.cross_entropy(net(x), y, label_smoothing=cfg["smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["clip"]:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg["clip"])
        opt.step()
        if shadows is not None:
            with torch.no_grad():
                torch._foreach_lerp_(shadows, [a.detach() for a in averaged], 1.0 - 0.9999)
        return loss.detach()

    torch.cuda.reset_peak_memory_stats()
    timing, losses = _time_steps(step, torch.cuda.synchronize, args.warmup, args.steps)
    timing.update(_gpu_busy(step, torch.cuda.synchronize))
    timing.update(images_per_s=cfg["batch"] / (timing["pipelined_ms"] / 1e3),
                  gpu_peak_mib=torch.cuda.max_memory_allocated() / 2 ** 20,
                  params=sum(p.numel() for p in net.parameters()),
                  losses=[float(v) for v in losses[:3]] + [float(losses[-1])],
                  torch=torch.__version__, cudnn_benchmark=torch.backends.cudnn.benchmark)
    return timing


def worker_train_step(args):
    """Spawns the engines: ours with TF32 off and on (CuPy reads CUPY_TF32 at import), then PyTorch (off, on)."""
    deadline = time.perf_counter() + args.limit
    log = os.path.join(args.out, "train-step.engines.log")
    runs = [("ours", "off"), ("ours", "on"), ("torch", "off"), ("torch", "on")]
    torch_ok, torch_version = python_has("torch", args.torch_python)
    for i, (engine, tf32) in enumerate(runs):
        if engine == "torch" and not torch_ok:
            write_json(os.path.join(args.out, f"train-step-torch-tf32{tf32}.json"),
                       [{"config": c["name"], "engine": "torch", "tf32": tf32,
                         "error": f"torch not installed ({torch_version})"} for c in _configs(args.quick)])
            print(f"torch not installed ({torch_version}): PyTorch side skipped", flush=True)
            continue
        share = (deadline - time.perf_counter()) / (len(runs) - i)
        python = args.torch_python if engine == "torch" else sys.executable
        cmd = [python, os.path.abspath(__file__), "--worker", "train-engine", args.out, "--engine", engine,
               "--tf32", tf32, "--warmup", str(args.warmup), "--steps", str(args.steps)]
        cmd += ["--quick"] if args.quick else []
        code, seconds = run_logged(cmd, log, share, child_env({"CUPY_TF32": "1" if tf32 == "on" else "0"}))
        print(f"{engine} tf32 {tf32}: exit {code} after {seconds:.0f} s", flush=True)
    _train_step_table(args.out, args.quick)


def _train_step_table(out, quick):
    results = {}
    for engine in ("ours", "torch"):
        for tf32 in ("off", "on"):
            for r in read_json(os.path.join(out, f"train-step-{engine}-tf32{tf32}.json")) or []:
                results[(r["config"], engine, tf32)] = r
    lines = ["| configuration | TF32 | ours ms/step | torch ms/step | ours/torch | ours img/s | torch img/s | "
             "ours first step s | host ms/step ours, torch | GPU busy ms/step ours, torch | kernels ours, torch | "
             "ours ops fwd+bwd |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cfg in _configs(quick):
        for tf32 in ("off", "on"):
            o, t = results.get((cfg["name"], "ours", tf32), {}), results.get((cfg["name"], "torch", tf32), {})
            om, tm = o.get("pipelined_ms"), t.get("pipelined_ms")
            cell = lambda r, key, fmt: fmt.format(r[key]) if key in r else (r.get("error", "not run")[:60])  # noqa
            ratio = f"{om / tm:.2f}" if om and tm else "-"
            lines.append(f"| {cfg['name']} | {tf32} | {cell(o, 'pipelined_ms', '{:.1f}')} | "
                         f"{cell(t, 'pipelined_ms', '{:.1f}')} | {ratio} | {cell(o, 'images_per_s', '{:.0f}')} | "
                         f"{cell(t, 'images_per_s', '{:.0f}')} | {cell(o, 'first_s', '{:.1f}')} | "
                         f"{cell(o, 'host_ms', '{:.1f}')}, {cell(t, 'host_ms', '{:.1f}')} | "
                         f"{cell(o, 'gpu_busy_ms', '{:.1f}')}, {cell(t, 'gpu_busy_ms', '{:.1f}')} | "
                         f"{o.get('gpu_kernels', '-')}, {t.get('gpu_kernels', '-')} | "
                         f"{o.get('forward_ops', '-')}+{o.get('backward_ops', '-')} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "train-step.txt"), "w") as f:
        f.write(text)
    print(text)


# ----------------------------------------------------------------------------------------- training example
def worker_train_example(args):
    """300 steps of the example (the trainer reads the loss every 10 steps), then 150 more reading it every step
    (``--check-every 1``): the images/s of both say what a read per step costs on the GPU."""
    steps = 10 if args.quick else 300
    result = {}
    for label, n, extra in (("", steps, []), ("_check_every_1", max(steps // 2, 5), ["--check-every", "1"])):
        run_dir = os.path.join(args.out, "train-example" + label)
        cmd = [sys.executable, os.path.join(ROOT, "examples", "train_cifar_scaled.py"), "--device", args.device,
               "--synthetic", "--no-download", "--max-steps", str(n), "--out", run_dir, "--no-progress",
               "--log-every", "10", "--test-subset", "500", "--checkpoint-every", str(n), *extra]
        if args.quick:
            cmd += ["--width", "0.0625", "--subset", "160", "--test-subset", "100", "--batch-size", "16",
                    "--log-every", "5"]
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=ROOT, env=child_env())
        seconds = time.perf_counter() - t0
        curve = _loss_curve(run_dir)
        speed = statistics.median([p["images_per_s"] for p in curve if p.get("images_per_s")] or [float("nan")])
        if not label:
            result = {"exit": code, "seconds": seconds, "steps": n, "points": len(curve)}
            if curve:
                result.update(first_loss=curve[0]["loss"], last_loss=curve[-1]["loss"], images_per_s=speed)
                with open(os.path.join(args.out, "train-example-loss.txt"), "w") as f:
                    f.write("step loss images_per_s\n")
                    for p in curve:
                        f.write(f"{p.get('step')} {p['loss']:.4f} {p.get('images_per_s', float('nan')):.1f}\n")
            if code != 0:
                break
        else:
            result.update({"exit" + label: code, "images_per_s" + label: speed})
    print(json.dumps(result))
    write_json(os.path.join(args.out, "train-example.json"), result)
    sys.exit(result.get("exit", 1) or result.get("exit_check_every_1", 0))


def _loss_curve(run_dir):
    """Points of the training log: step, loss and images/s, read without assuming more of its format than a
    JSON object per line with a loss."""
    points = []
    try:
        with open(os.path.join(run_dir, "train_log.jsonl")) as f:
            for line in f:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                loss = d.get("loss", d.get("train_loss"))
                if not isinstance(loss, (int, float)):
                    continue
                ips = d.get("images_per_s")
                if ips is None and d.get("seconds") and d.get("images"):
                    ips = d["images"] / d["seconds"]
                points.append({"step": d.get("step"), "loss": float(loss), "images_per_s": ips})
    except OSError:
        pass
    return points


# ----------------------------------------------------------------------------------------- kernels of one step
def _kernels_config(quick):
    """The configuration of the ``kernels`` and ``cuda-graph-probe`` steps: Inception-v4, scaled (width 0.25,
    blocks 2,2,2, batch 64, 32x32) with the benchmark recipe; tiny in ``--quick`` mode."""
    if quick:
        return dict(SCALED, name="inception_v4 (quick)", network="inception_v4", width=0.0625, blocks=(1, 1, 1),
                    batch=8)
    return dict(SCALED, name="inception_v4", network="inception_v4")


def worker_kernels(args):
    """Every launch of one training step, with the op that made it: ``kernels.txt`` (per kernel, per op type,
    per launch kind), ``kernels.json`` and ``trace.json`` (``bench/launch_profile.py``). Where PyTorch with CUDA
    is installed, its profiler (CUPTI) adds the table of *every* kernel, CuPy's internal ones too.

    ``--device cpu`` (the tests) runs the same code with NumPy's functions wrapped and no device times."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import launch_profile
    if args.device == "cuda":
        import cupy as namespace

        def mark():                               # a point in the stream's work, timed by the GPU
            event = namespace.cuda.Event()
            event.record()
            return event
        elapsed_ms = namespace.cuda.get_elapsed_time
        functions = launch_profile.FUNCTIONS
    else:
        import numpy as namespace
        mark = elapsed_ms = None
        functions = ("matmul", "dot", "concatenate", "ascontiguousarray")    # none of them in a Numba kernel
    tracker = launch_profile.OpTracker(mark=mark)
    recorder = launch_profile.LaunchRecorder(namespace, tracker.current, mark=mark, functions=functions)
    recorder.install()                            # before the engine builds its kernels (each on first use)
    recorder.active = False                       # (not while compiling and warming up)
    from step import bench_step
    cfg = _kernels_config(args.quick)
    net, opt, ema, recipe, x, y = _training_setup(cfg, args.device)
    sync = _device_sync(args.device)

    def step(on_phase=None):
        return bench_step(net, opt, x, y, recipe, ema=ema, sync=False, on_phase=on_phase).loss

    timing, _ = _time_steps(step, sync, 1, 3)     # compiles the kernels; the unrecorded step's times
    sync()
    origin_mark, origin = (mark() if mark else None), time.perf_counter()
    recorder.active = True
    with tracker:
        step(on_phase=tracker.on_phase)
    recorder.active = False
    sync()
    recorded_s = time.perf_counter() - origin
    recorder.uninstall()
    launch_profile.resolve_marks(recorder.records, tracker.spans, origin_mark, elapsed_ms)
    title = (f"One training step of {cfg['name']}, width {cfg['width']}, blocks {cfg['blocks']}, batch "
             f"{cfg['batch']}, 32x32, {args.device}: {recorded_s * 1e3:.1f} ms recorded, "
             f"{timing['pipelined_ms']:.1f} ms unrecorded (pipelined)")
    text = launch_profile.report(recorder.records, tracker.spans, title)
    result = {"config": cfg["name"], "device": args.device, "recorded_ms": 1e3 * recorded_s,
              "unrecorded": timing, "launches": len(recorder.records), "ops": len(tracker.spans),
              "kernels": launch_profile.kernel_table(recorder.records),
              "op_types": launch_profile.op_table(recorder.records, tracker.spans),
              "launch_kinds": launch_profile.launch_kind_table(recorder.records),
              "nsys": shutil.which("nsys")}
    if args.device == "cuda":
        cupti = _gpu_busy(step, sync, top=None)   # every kernel, by PyTorch's profiler (CUPTI), when installed
        result["cupti"] = cupti or {"error": "torch (with its profiler) not importable here"}
        if cupti.get("gpu_top_kernels"):
            text += "\nEvery kernel of one unrecorded step (PyTorch's profiler, CUPTI), the most frequent first:\n"
            text += launch_profile.markdown(
                ["kernel", "count", "total ms", "mean us"],
                [[name, count, f"{ms:.3f}", f"{1e3 * ms / count:.1f}"] for count, ms, name in
                 cupti["gpu_top_kernels"]])
    with open(os.path.join(args.out, "kernels.txt"), "w") as f:
        f.write(text)
    write_json(os.path.join(args.out, "kernels.json"), result)
    write_json(os.path.join(args.out, "trace.json"),
               launch_profile.chrome_trace(tracker.spans, recorder.records, origin))
    print(text)


# ----------------------------------------------------------------------------------------- CUDA graph probe
GRAPH_STEPS = 5


def worker_cuda_graph_probe(args):
    """Can one whole training step be captured in a CUDA graph and replayed? Writes cuda-graph-probe.json.

    Every failure is a result, never a crash: the first error of each attempt (type, message, the op that
    was running and the innermost frame of this repository)."""
    result = {"steps": GRAPH_STEPS}
    try:
        _graph_probe(args, result)
    except Exception as e:                           # noqa: BLE001 (the probe reports, it never fails the check)
        result["error"] = describe_error(e)
    print(json.dumps(result, indent=1, default=str))
    write_json(os.path.join(args.out, "cuda-graph-probe.json"), result)


def describe_error(error, current_op=None):
    """``{"type", "message", "op", "where", "innermost", "our_frames"}`` of an exception: where = the innermost
    frame in this repository ("ops/loss.py:87 in softmax_cross_entropy"), innermost = the innermost frame of
    all, our_frames = the last 5 frames in this repository (the calls that led there)."""
    import traceback
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if os.path.abspath(f.filename).startswith(ROOT + os.sep)]
    show = lambda f: f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}" if f else None  # noqa: E731
    return {"type": type(error).__name__, "message": str(error)[:300], "op": current_op,
            "where": show(ours[-1] if ours else None), "innermost": show(frames[-1] if frames else None),
            "our_frames": [show(f) for f in ours[-5:]]}


def _state_arrays(net, opt):
    """Every array a training step changes, in a fixed order: parameters, buffers, optimizer state."""
    arrays = [p.data for p in net.parameters()] + list(net.buffers())
    for state in opt.state.values():
        arrays += list(state.values())
    return [a for a in arrays if hasattr(a, "shape") and hasattr(a, "copy")]     # (arrays only)


def _restore(net, opt, saved):
    """Copy ``saved`` back into the state arrays, in place: a captured graph keeps their addresses."""
    for array, value in zip(_state_arrays(net, opt), saved):
        array[...] = value


def _graph_probe(args, result):
    import cupy
    sys.path.insert(0, HERE)
    import launch_profile
    import ops
    from autograd.backend import to_device
    from step import bench_step
    result["cupy"] = cupy.__version__
    if not hasattr(cupy.cuda.Stream, "begin_capture"):
        result["capture"] = f"not supported: CuPy {cupy.__version__} has no Stream.begin_capture"
        return
    cfg = _kernels_config(args.quick)
    result["config"] = cfg["name"]
    net, opt, ema, recipe, x, y = _training_setup(cfg, "cuda")
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        y_static = to_device(y, "cuda")              # the labels, copied once to a buffer the graph reads

        def step(labels, on_phase=None):
            return bench_step(net, opt, x, labels, recipe, ema=ema, sync=False, on_phase=on_phase).loss
        # Warm-up on the capture stream: kernels compiled, optimizer state made, and CuPy's memory pool (per
        # stream) holds a free block of every size the step asks for, so a capture need not allocate new memory.
        for _ in range(2):
            step(y)
        stream.synchronize()
        saved = [a.copy() for a in _state_arrays(net, opt)]
        t0 = time.perf_counter()
        losses = [step(y) for _ in range(GRAPH_STEPS)]
        stream.synchronize()
        result["eager_ms"] = 1e3 * (time.perf_counter() - t0) / GRAPH_STEPS
        result["eager_loss"] = float(losses[-1])
        _restore(net, opt, saved)
        stream.synchronize()
    attempts = [("train_step as the Trainer runs it", None),
                ("the loss's label check skipped (labels checked once, on the host)", _unchecked_loss)]
    result["attempts"] = []
    for label, loss_patch in attempts:
        attempt = {"attempt": label}
        result["attempts"].append(attempt)
        tracker = launch_profile.OpTracker()
        graph, captured = None, None
        original_loss = ops.softmax_cross_entropy
        try:
            if loss_patch is not None:
                ops.softmax_cross_entropy = loss_patch
            with stream, tracker:
                stream.begin_capture()
                try:
                    captured = step(y_static, on_phase=tracker.on_phase)
                finally:
                    graph = _end_capture(stream, attempt)
        except Exception as e:                       # noqa: BLE001 (a failed capture is the probe's finding)
            attempt["error"] = describe_error(e, tracker.current())
        finally:
            ops.softmax_cross_entropy = original_loss
        if graph is None or "error" in attempt:
            print(f"capture failed ({label}): {attempt.get('error')}", flush=True)
            continue
        attempt["capture"] = "ok"
        attempt["nodes"] = _graph_nodes(graph)
        try:
            _replay(graph, stream, captured, net, opt, saved, result, attempt)
        except Exception as e:                       # noqa: BLE001
            attempt["replay_error"] = describe_error(e)
        break                                        # one captured step is what the probe looks for


def _unchecked_loss(logits, labels, label_smoothing=0.0):
    """``ops.softmax_cross_entropy`` without its range check of the labels, which reads GPU labels (a wait for
    the GPU, which a capture cannot contain); the probe's labels were made in range on the host."""
    from ops.loss import SoftmaxCrossEntropy
    return SoftmaxCrossEntropy(labels, float(label_smoothing))(logits)


def _end_capture(stream, attempt):
    """End the stream's capture if it is still on: the graph, or None (the reason noted in ``attempt``). An
    invalidated capture must be ended too (else the stream stays in capture mode); ending it raises."""
    try:
        capturing = stream.is_capturing() if hasattr(stream, "is_capturing") else True
    except Exception as e:                           # noqa: BLE001 (CuPy raises for an invalidated capture)
        attempt.setdefault("capture_state", f"{type(e).__name__}: {e}"[:300])
        capturing = True
    if not capturing:
        return None
    try:
        return stream.end_capture()
    except Exception as e:                           # noqa: BLE001
        attempt.setdefault("end_capture_error", f"{type(e).__name__}: {e}"[:300])
        return None


def _graph_nodes(graph):
    """The number of nodes of a captured graph (the driver's cuGraphGetNodes), or why it is unknown."""
    try:
        import ctypes
        handle = getattr(graph, "graph", None)
        if not handle:
            return "unknown: this CuPy's Graph exposes no handle"
        count = ctypes.c_size_t(0)
        code = ctypes.CDLL("libcuda.so.1").cuGraphGetNodes(ctypes.c_void_p(int(handle)), None,
                                                            ctypes.byref(count))
        return count.value if code == 0 else f"unknown: cuGraphGetNodes returned {code}"
    except Exception as e:                           # noqa: BLE001
        return f"unknown: {type(e).__name__}: {e}"[:200]


def _replay(graph, stream, captured, net, opt, saved, result, attempt):
    """Replay the graph ``GRAPH_STEPS`` times from the saved weights: time per replay, and the loss of the last
    replay against the last of as many eager steps from the same weights. Everything on the probe's stream
    (a non-blocking stream does not wait for work on the default stream)."""
    with stream:
        _restore(net, opt, saved)
        stream.synchronize()
        if hasattr(graph, "upload"):
            graph.upload(stream)
        t0 = time.perf_counter()
        for _ in range(GRAPH_STEPS):
            graph.launch(stream)
        stream.synchronize()
        attempt["replay_ms"] = 1e3 * (time.perf_counter() - t0) / GRAPH_STEPS
        attempt["graph_loss"] = float(captured)
    attempt["eager_loss"] = result["eager_loss"]
    attempt["loss_difference"] = abs(attempt["graph_loss"] - result["eager_loss"])
    attempt["loss_equal"] = attempt["graph_loss"] == result["eager_loss"]


# ----------------------------------------------------------------------------------------- CPU profile
def worker_cpu_profile(args):
    """The CPU training step per op type (TimerHook) at each thread count, with the CPU pool's parallel calls
    and parts per step: one subprocess per thread count (its BLAS and pool threads set before the imports)."""
    deadline = time.perf_counter() + args.limit
    cores = os.cpu_count() or 1
    threads = [t for t in (args.threads or [16, 8, 4]) if t <= cores] or [min(cores, 4)]
    log = os.path.join(args.out, "cpu-profile.workers.log")
    rows = []
    for i, t in enumerate(threads):
        left = deadline - time.perf_counter()
        share = left / (len(threads) - i)
        if share < MIN_SECONDS:
            rows.append({"threads": t, "error": "skipped: out of time"})
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "cpu-profile-run", args.out, "--threads",
               str(t), "--network", args.network] + (["--quick"] if args.quick else [])
        env = child_env({k: str(t) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                             "MKL_NUM_THREADS")})
        code, seconds = run_logged(cmd, log, share, env)
        row = read_json(os.path.join(args.out, f"cpu-profile-{t}.json"))
        if code != 0 or not row:
            row = {"threads": t, "error": "timeout" if code is None else f"exit {code} (see {log})"}
        rows.append(row)
        print(f"{t} threads: {json.dumps({k: v for k, v in row.items() if k != 'ops'})}", flush=True)
    text = _cpu_profile_text(rows, args)
    print(text)
    with open(os.path.join(args.out, "cpu-profile.txt"), "w") as f:
        f.write(text)
    write_json(os.path.join(args.out, "cpu-profile.json"), {"network": args.network, "rows": rows})


def worker_cpu_profile_run(args):
    """One thread count of ``cpu-profile``: a warm-up step, an unhooked step, then a step with the TimerHook and
    the parallel-call counter. Writes cpu-profile-<threads>.json."""
    sys.path.insert(0, HERE)
    import launch_profile
    from autograd.inspect.timer_hook import TimerHook
    from ops.kernels.cpu.runtime import threads
    from step import bench_step
    (t,) = args.threads
    cfg = dict(SCALED, network=args.network)
    if args.quick:
        cfg.update(width=0.0625, blocks=(1, 1, 1), batch=4)
    net, opt, ema, recipe, x, y = _training_setup(cfg, "cpu")

    def step(on_phase=None):
        return bench_step(net, opt, x, y, recipe, ema=ema, sync=False, on_phase=on_phase)

    step()                                           # warm-up: compiled kernels, buffers, optimizer state
    t0 = time.perf_counter()
    step()
    plain_s = time.perf_counter() - t0
    tracker = launch_profile.OpTracker()
    counter = launch_profile.ParallelCounter(tracker.current).install()
    timer = TimerHook()
    t0 = time.perf_counter()
    with tracker, timer:
        step(on_phase=tracker.on_phase)
    hooked_s = time.perf_counter() - t0
    counter.uninstall()
    row = {"threads": t, "cpu_threads": threads.cpu_threads(), "step_s": plain_s, "hooked_s": hooked_s,
           "inside_ops_s": timer.total_time(), "parallel": counter.summary(), "ops": timer.totals(),
           "table": timer.summary()}
    write_json(os.path.join(args.out, f"cpu-profile-{t}.json"), row)
    print(json.dumps({k: v for k, v in row.items() if k not in ("ops", "table")}, default=str))


def _cpu_profile_text(rows, args):
    lines = [f"CPU training step per op type, {args.network}"
             f"{' (quick: width 0.0625, blocks 1,1,1, batch 4)' if args.quick else ', width 0.25, batch 64'}",
             "| threads | step s | hooked s | inside ops s | parallel calls | threaded | parts |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['threads']} | {r['error']} | | | | | |")
            continue
        p = r["parallel"]
        lines.append(f"| {r['threads']} | {r['step_s']:.3f} | {r['hooked_s']:.3f} | {r['inside_ops_s']:.3f} | "
                     f"{p['calls']} | {p['threaded_calls']} | {p['parts']} |")
    for r in rows:
        if "error" not in r:
            per_op = ", ".join(f"{op} {v['calls']} ({v['parts']})" for op, v in r["parallel"]["by_op"].items())
            lines += ["", f"{r['threads']} threads (TimerHook; wall time per op type):", r["table"]]
            lines += textwrap.wrap("parallel calls (parts) per op: " + per_op, 100)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------- CPU scaling
def worker_cpu_scaling(args):
    """bench/train_step.py's workers at each thread count: ours, then PyTorch (when installed)."""
    deadline = time.perf_counter() + args.limit
    threads = [t for t in (args.threads or [16, 8, 4, 2, 1]) if t <= (os.cpu_count() or 1)] or [1]
    network = args.network
    batch, steps, warmup = (4, 1, 1) if args.quick else (64, 3, 1)
    torch_ok, torch_version = python_has("torch", args.torch_python)
    log = os.path.join(args.out, "cpu-scaling.workers.log")
    runs = [(t, e) for t in threads for e in ("ours", "torch")]
    rows = {t: {"threads": t} for t in threads}
    for i, (t, engine) in enumerate(runs):
        if engine == "torch" and not torch_ok:
            rows[t]["torch"] = f"torch not installed ({torch_version})"
            continue
        left = deadline - time.perf_counter()
        if left < MIN_SECONDS:
            rows[t][engine] = "skipped: out of time"
            continue
        python = args.torch_python if engine == "torch" else sys.executable
        cmd = [python, os.path.join(HERE, "train_step.py"), "--worker", engine, "--network", network,
               "--what", "train", "--batch", str(batch), "--size", "32", "--steps", str(steps),
               "--warmup", str(warmup), "--threads", str(t)]
        env = child_env({k: str(t) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                             "MKL_NUM_THREADS")})
        # Shares by expected cost: fewer threads take longer (a start-up of a few seconds, then steps whose time
        # goes as 1 / threads). Equal shares starved the 1- and 2-thread runs on the first GPU machine.
        weight = lambda tt: 1.0 + 4.0 / tt          # noqa: E731
        share = left * weight(t) / sum(weight(tt) for tt, e in runs[i:] if e == "ours" or torch_ok)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=share, env=env, cwd=ROOT)
            with open(log, "a") as f:
                f.write(f"$ {' '.join(cmd)}\n{r.stdout}\n{r.stderr}\n")
            if r.returncode == 0:
                res = json.loads(r.stdout.strip().splitlines()[-1])
                rows[t][engine] = res["step"]["median"]
                rows[t][engine + "_cpu"] = res.get("cpu")
            else:
                rows[t][engine] = f"failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"
        except subprocess.TimeoutExpired:
            rows[t][engine] = f"timeout after {share:.0f} s"
        print(json.dumps(rows[t]), flush=True)
    table = [f"CPU training step, {network}, width 0.25, blocks 2,2,2, batch {batch}, 32x32, float32 "
             f"(median of {steps} steps after {warmup} warm-up)",
             "| threads | ours s | torch s | ours/torch |", "|---|---|---|---|"]
    for t in threads:
        o, p = rows[t].get("ours"), rows[t].get("torch")
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
        ratio = f"{o / p:.2f}" if isinstance(o, float) and isinstance(p, float) else "-"
        table.append(f"| {t} | {fmt(o)} | {fmt(p)} | {ratio} |")
    text = "\n".join(table) + "\n"
    print(text)
    with open(os.path.join(args.out, "cpu-scaling.txt"), "w") as f:
        f.write(text)
    write_json(os.path.join(args.out, "cpu-scaling.json"), {"network": network, "batch": batch,
                                                            "rows": [rows[t] for t in threads]})


WORKERS = {"env": worker_env, "parity": worker_parity, "train-engine": worker_train_engine,
           "train-step": worker_train_step, "train-example": worker_train_example,
           "kernels": worker_kernels, "cuda-graph-probe": worker_cuda_graph_probe,
           "cpu-profile": worker_cpu_profile, "cpu-profile-run": worker_cpu_profile_run,
           "cpu-scaling": worker_cpu_scaling}


# =============================================================================================  the steps

def pytest_cmd(args, *selection):
    """``pytest -m gpu`` on ``selection``; spread over ``args.pytest_workers`` processes with pytest-xdist where it
    is installed, because a bare machine compiles every CuPy kernel on first use (NVRTC runs on the host's cores)."""
    workers = args.pytest_workers
    if workers is None:
        workers = min(8, (os.cpu_count() or 1) // 2) if python_has("xdist")[0] else 1
    spread = ["-n", str(workers)] if workers > 1 else []
    return [sys.executable, "-m", "pytest", "-m", "gpu", "-v", "-p", "no:cacheprovider", "-o", "addopts=",
            "-rfE", *spread, *selection]


def step_command(name, args, limit):
    """The command line of step ``name`` (run from the repository root)."""
    me = [sys.executable, os.path.abspath(__file__)]
    common = ["--torch-python", args.torch_python] + (["--quick"] if args.quick else [])
    if name == "env":
        return me + ["--worker", "env", args.out] + common
    if name == "pytest-changed":
        return pytest_cmd(args, *CHANGED_GPU_TESTS, f"--junitxml={os.path.join(args.out, 'pytest-changed.xml')}")
    if name == "pytest-gpu":
        return pytest_cmd(args, "tests", "-k", "not directional_gradcheck",
                          f"--junitxml={os.path.join(args.out, 'pytest-gpu.xml')}")
    if name == "parity":
        return me + ["--worker", "parity", args.out] + common
    if name == "gradcheck":
        return pytest_cmd(args, "tests/minception/test_gpu_training.py", "-k", "directional_gradcheck",
                          f"--junitxml={os.path.join(args.out, 'gradcheck.xml')}")
    if name == "bench-conv":
        return [sys.executable, "bench/conv.py", "--device", "cuda", "--no-wait"] + (["--quick"] if args.quick
                                                                                     else ["--reps", "5"])
    if name == "bench-pool-bn":
        return [sys.executable, "bench/pool_bn.py", "--device", "cuda"] + (["--quick"] if args.quick else [])
    if name == "train-step":
        return me + ["--worker", "train-step", args.out, "--limit", f"{limit - 2:.0f}", "--warmup",
                     str(args.warmup), "--steps", str(args.steps)] + common
    if name == "train-example":
        return me + ["--worker", "train-example", args.out, "--device", "cuda"] + common
    if name in ("kernels", "cuda-graph-probe"):
        return me + ["--worker", name, args.out] + common
    if name in ("cpu-profile", "cpu-scaling"):
        threads = args.threads or ([16, 8, 4] if name == "cpu-profile" else [16, 8, 4, 2, 1])
        return me + ["--worker", name, args.out, "--limit", f"{limit - 2:.0f}", "--network",
                     args.network, "--threads", ",".join(map(str, threads))] + common
    raise KeyError(name)


def summarize(name, out, log, code):
    """One line of results for the summary table."""
    if name == "env":
        info = read_json(os.path.join(out, "env.json")) or {}
        if info.get("gpu_available"):
            return (f"{info.get('gpu')} (cc {info.get('compute_capability')}, {info.get('gpu_memory_gib')} GiB), "
                    f"CUDA driver {info.get('cuda_driver')} runtime {info.get('cuda_runtime')}, CuPy "
                    f"{info.get('cupy')}, NumPy {info.get('numpy')}, Numba {info.get('numba')}, torch "
                    f"{info.get('torch')}")
        return (f"no GPU: {info.get('gpu_reason')}; NumPy {info.get('numpy')}, Numba {info.get('numba')}, "
                f"torch {info.get('torch')}")
    if name in ("pytest-changed", "pytest-gpu", "gradcheck"):
        text = open(log).read() if os.path.exists(log) else ""
        m = re.findall(r"=+ (.*? in [\d.]+s.*?) =+", text)
        if m:
            return m[-1]
        counts = {k: len(re.findall(rf" {k.upper()}", text)) for k in ("passed", "failed", "error")}
        return f"(interrupted) so far: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors"
    if name == "parity":
        rows = read_json(os.path.join(out, "parity.json")) or []
        bad = [r["op"] for r in rows if not r.get("ok")]
        worst = max((max(r.get("output", 0), r.get("gradients", 0)) for r in rows if "error" not in r), default=0)
        return f"{len(rows) - len(bad)}/{len(rows)} ops within 1e-10 (worst {worst:.1e})" + (
            f"; above: {', '.join(bad[:8])}" if bad else "")
    if name == "train-step":
        rows = {}
        for engine in ("ours", "torch"):
            for r in read_json(os.path.join(out, f"train-step-{engine}-tf32off.json")) or []:
                rows.setdefault(r["config"], {})[engine] = r.get("pipelined_ms")
        parts = [f"{c.split(' ')[0].replace('inception_', '')}: {v.get('ours') or 0:.0f}/{v.get('torch') or 0:.0f}"
                 for c, v in rows.items()]
        return ("ms/step ours/torch, TF32 off: " + "; ".join(parts)) if parts else tail(log, 1)
    if name == "train-example":
        r = read_json(os.path.join(out, "train-example.json")) or {}
        if "last_loss" in r:
            return (f"{r['steps']} steps in {r['seconds']:.0f} s, loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}, "
                    f"{r['images_per_s']:.0f} images/s (reading the loss every step: "
                    f"{r.get('images_per_s_check_every_1', float('nan')):.0f})")
        return tail(log, 2)
    if name == "kernels":
        r = read_json(os.path.join(out, "kernels.json")) or {}
        if "launches" not in r:
            return tail(log, 2)
        top = ", ".join(f"{k['kernel'][:30]} {k['count']}x" for k in r.get("kernels", [])[:3])
        cupti = r.get("cupti", {})
        every = (f"; CUPTI: {cupti['gpu_kernels']} kernels, {cupti['gpu_busy_ms']:.1f} ms busy"
                 if "gpu_kernels" in cupti else "")
        return (f"{r['launches']} wrapped launches in {r['ops']} ops, {r['recorded_ms']:.0f} ms recorded; "
                f"top: {top}{every}")
    if name == "cuda-graph-probe":
        return _graph_probe_line(read_json(os.path.join(out, "cuda-graph-probe.json")), log)
    if name == "cpu-profile":
        r = read_json(os.path.join(out, "cpu-profile.json")) or {}
        parts = [f"{row['threads']}t {row['error']}" if "error" in row else
                 f"{row['threads']}t {row['step_s']:.2f}s, {row['parallel']['calls']} parallel calls "
                 f"({row['parallel']['parts']} parts)" for row in r.get("rows", [])]
        return "; ".join(parts) if parts else tail(log, 1)
    if name == "cpu-scaling":
        r = read_json(os.path.join(out, "cpu-scaling.json")) or {}
        parts = []
        for row in r.get("rows", []):
            o, t = row.get("ours"), row.get("torch")
            fmt = lambda v: f"{v:.2f}s" if isinstance(v, float) else str(v).split(" (")[0]  # noqa: E731
            parts.append(f"{row['threads']}t {fmt(o)}/{fmt(t)}")
        return ("ours/torch: " + "; ".join(parts)) if parts else tail(log, 1)
    return tail(log, 2)


def _graph_probe_line(r, log):
    """The summary line of the CUDA graph probe: the captured attempt's replay, or each attempt's first error."""
    if not r:
        return tail(log, 2)
    if "capture" in r or "error" in r:
        return r.get("capture") or _error_line(r["error"])
    lines = []
    for a in r.get("attempts", []):
        if a.get("capture") == "ok" and "replay_ms" in a:
            same = "equal" if a["loss_equal"] else f"differs by {a['loss_difference']:.2e}"
            lines.append(f"captured ({a['attempt'][:40]}): {a['nodes']} nodes, replay {a['replay_ms']:.1f} ms "
                         f"vs eager {r['eager_ms']:.1f} ms, loss after {r['steps']} {same}")
        elif a.get("capture") == "ok":
            lines.append(f"captured, replay failed: {_error_line(a.get('replay_error', {}))}")
        else:
            lines.append(f"failed: {_error_line(a.get('error') or {'message': a.get('end_capture_error')})}")
    return "; ".join(lines) or tail(log, 2)


def _error_line(e):
    where = f" at {e['where']}" if e.get("where") else ""
    op = f" (op {e['op']})" if e.get("op") else ""
    return f"{e.get('type', 'error')}: {str(e.get('message'))[:120]}{where}{op}"


def selected_steps(args):
    """The steps to run, in ``STEPS`` order: ``--only``'s, else all with ``--full``, else the default ones;
    less ``--skip``'s."""
    wanted = args.only or (STEP_NAMES if args.full else DEFAULT_STEPS)
    return [s for s in STEPS if s[0] in wanted and s[0] not in args.skip]


def run_check(args):
    os.makedirs(args.out, exist_ok=True)
    selected = selected_steps(args)
    start = time.perf_counter()
    deadline = start + args.budget
    results = []
    gpu_reason, gpu_known = None, False
    print(f"device_check: {len(selected)} steps, budget {args.budget:.0f} s, results in {args.out}", flush=True)
    for i, (name, planned, needs_gpu, _) in enumerate(selected):
        log = os.path.join(args.out, f"{name}.log")
        if os.path.exists(log):
            os.remove(log)
        now = time.perf_counter()
        planned_s = max(planned * args.time_scale, 2 * MIN_SECONDS)
        if i == len(selected) - 1:
            planned_s = deadline - now               # the last step also gets what the others left unused
        limit = step_limit(planned_s, now, deadline, len(selected) - i - 1)
        if needs_gpu and not gpu_known:
            gpu_reason, gpu_known = _probe_gpu(), True
        if needs_gpu and gpu_reason:
            status, seconds, line = "skipped", 0.0, f"no GPU: {gpu_reason.split('. ')[0]}"
        elif limit == 0:
            status, seconds, line = "skipped", 0.0, "out of time budget"
        else:
            print(f"[{time.perf_counter() - start:5.0f} s] {name} (limit {limit:.0f} s)", flush=True)
            code, seconds = run_logged(step_command(name, args, limit), log, limit)
            status = "timeout" if code is None else ("ok" if code == 0 else f"failed ({code})")
            try:
                line = summarize(name, args.out, log, code)
            except Exception as e:                   # noqa: BLE001 (the summary must not end the check)
                line = f"(no summary: {type(e).__name__}: {e})"
            info = read_json(os.path.join(args.out, "env.json")) if name == "env" else None
            if info:                                 # else the first GPU step probes for itself
                gpu_reason, gpu_known = (None if info.get("gpu_available") else info.get("gpu_reason")), True
        results.append({"step": name, "status": status, "seconds": round(seconds, 1), "result": line})
        print(f"    {name}: {status}, {seconds:.0f} s: {line}", flush=True)
    total = time.perf_counter() - start
    write_json(os.path.join(args.out, "summary.json"), {"seconds": total, "budget": args.budget,
                                                       "steps": results})
    table = _summary_table(results, total, args)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(table)
    print("\n" + table)
    return 0


def _probe_gpu():
    """The reason the GPU cannot be used (None when it can), asked in a subprocess (CUDA stays out of here)."""
    code = ("import sys; sys.path.insert(0, %r); from autograd.backend import gpu_unavailable_reason; "
            "print(gpu_unavailable_reason() or '')" % ROOT)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env=child_env())
    except subprocess.TimeoutExpired:
        return "probing the GPU timed out"
    if r.returncode != 0:
        return (r.stderr.strip().splitlines() or ["probing the GPU failed"])[-1]
    return r.stdout.strip() or None


def _summary_table(results, total, args):
    lines = [f"device_check summary ({time.strftime('%Y-%m-%d %H:%M')}, {total:.0f} s of {args.budget:.0f} s"
             f"{', quick' if args.quick else ''})",
             f"{'step':16s} {'status':11s} {'s':>5s}  result", "-" * 100]
    for r in results:
        lines.append(f"{r['step']:16s} {r['status']:11s} {r['seconds']:5.0f}  {r['result']}")
    return "\n".join(lines) + "\n"


# =============================================================================================  arguments

def parse_steps(text):
    names = [s for s in (text or "").split(",") if s]
    unknown = [s for s in names if s not in STEP_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown step(s) {', '.join(unknown)}; the steps are "
                                         f"{', '.join(STEP_NAMES)}")
    return names


def parse_threads(text):
    try:
        threads = [int(v) for v in text.split(",") if v]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"--threads takes positive integers separated by commas, got {text!r}")
    return threads


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(textwrap.wrap("steps: " + ", ".join(STEP_NAMES), 98) +
                                                  textwrap.wrap("default: " + ", ".join(DEFAULT_STEPS), 98)) +
                                "\n\nnext GPU machine: python bench/device_check.py /tmp/out")
    p.add_argument("out", help="folder for every result (created; earlier results of the same steps replaced)")
    p.add_argument("--only", type=parse_steps, default=[], metavar="A,B", help="run only these steps")
    p.add_argument("--full", action="store_true",
                   help="every step, also those that passed on the last GPU run (" +
                        ", ".join(n for n in STEP_NAMES if n not in DEFAULT_STEPS) + ")")
    p.add_argument("--skip", type=parse_steps, default=[], metavar="A,B", help="leave these steps out")
    p.add_argument("--quick", action="store_true", help="small networks, batches and step counts (a smoke run)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help=f"seconds for the whole check "
                   f"(default {DEFAULT_BUDGET}: 8 minutes of device time less start-up and copying)")
    p.add_argument("--time-scale", type=float, default=None,
                   help="multiply every step's planned time (default: budget / the planned total)")
    p.add_argument("--threads", type=parse_threads, default=None,
                   help="CPU thread counts of cpu-profile and cpu-scaling (defaults 16,8,4 and 16,8,4,2,1; "
                        "those above the host's cores are left out)")
    p.add_argument("--network", default="inception_resnet_v2", choices=NETWORKS,
                   help="network of cpu-profile and cpu-scaling")
    p.add_argument("--warmup", type=int, default=3, help="train-step: warm-up steps after the first")
    p.add_argument("--steps", type=int, default=10, help="train-step: timed steps")
    p.add_argument("--pytest-workers", type=int, default=None,
                   help="pytest processes of the pytest steps (default: up to 8 where pytest-xdist is installed)")
    p.add_argument("--torch-python", default=sys.executable, help="interpreter of the PyTorch side")
    # internal: the workers
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--limit", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--engine", choices=("ours", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--tf32", choices=("off", "on"), default="off", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    p.add_argument("--max-configs", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    if args.worker:
        os.makedirs(args.out, exist_ok=True)
        WORKERS[args.worker](args)
        return 0
    if args.quick:
        args.warmup, args.steps = min(args.warmup, 1), min(args.steps, 2)
    if args.time_scale is None:
        planned = sum(t for _, t, _, _ in selected_steps(args))
        args.time_scale = max(args.budget, 1.0) / max(planned, 1) if planned > args.budget else 1.0
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
