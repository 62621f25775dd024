"""bench/device_check.py without a GPU: its arguments, its time budget, its CPU-scaling step at one thread, the
clear line (not a crash) when CuPy or PyTorch is missing, and the host side of its training-step and
training-example steps run on the CPU.

CuPy and PyTorch are made unimportable for the subprocesses (a folder of stand-in modules that raise ImportError
goes first on PYTHONPATH), so these tests behave the same on a GPU machine."""
import argparse
import json
import os
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "device_check.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))

import device_check  # noqa: E402


@pytest.fixture
def without_gpu_libraries(tmp_path):
    """An environment in which ``import cupy`` and ``import torch`` fail as when they are not installed."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("cupy", "torch"):
        (shims / f"{name}.py").write_text(f"raise ImportError('simulated: no {name} here')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(shims) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_script(args, env=None, timeout=300):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout)


# ---------------------------------------------------------------------------------------------- arguments
def test_steps_follow_the_issue_and_fit_the_budget():
    assert device_check.STEP_NAMES == ["env", "pytest-changed", "pytest-gpu", "parity", "gradcheck", "kernels",
                                       "cuda-graph-probe", "bench-conv", "bench-pool-bn", "train-step",
                                       "train-example", "cpu-profile", "cpu-scaling"]
    default = [s for s in device_check.STEPS if s[0] in device_check.DEFAULT_STEPS]
    assert sum(t for _, t, _, _ in default) == device_check.DEFAULT_BUDGET <= 480
    gpu_free = [name for name, _, needs_gpu, _ in device_check.STEPS if not needs_gpu]
    assert gpu_free == ["env", "cpu-profile", "cpu-scaling"]


def test_default_skips_what_passed_on_the_last_gpu_run_and_full_runs_everything(tmp_path):
    def steps(*argv):
        args = device_check.build_parser().parse_args([str(tmp_path), *argv])
        return [name for name, *_ in device_check.selected_steps(args)]
    assert steps() == ["env", "pytest-changed", "kernels", "cuda-graph-probe", "train-step", "cpu-profile",
                       "cpu-scaling"]
    assert steps("--full") == device_check.STEP_NAMES
    assert steps("--only", "parity,pytest-gpu") == ["pytest-gpu", "parity"]          # in the check's order
    assert steps("--skip", "cpu-scaling") == steps()[:-1]
    assert steps("--full", "--skip", "parity")[:4] == ["env", "pytest-changed", "pytest-gpu", "gradcheck"]


def test_full_check_shrinks_every_plan_to_the_budget(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(device_check, "run_check", lambda args: seen.setdefault("scale", args.time_scale) and 0)
    device_check.main([str(tmp_path), "--full"])
    full = sum(t for _, t, _, _ in device_check.STEPS)
    assert seen["scale"] == pytest.approx(device_check.DEFAULT_BUDGET / full)


def test_changed_gpu_tests_name_existing_gpu_tests():
    """Every entry of the pytest-changed step names a test function of an existing file, and pytest collects
    GPU tests (marker ``gpu``) for each: a renamed test would otherwise drop out of the check unnoticed."""
    for node in device_check.CHANGED_GPU_TESTS:
        path, test = node.split("::")
        assert os.path.isfile(os.path.join(ROOT, path)), node
        assert f"def {test}(" in open(os.path.join(ROOT, path)).read(), node
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-o",
                        "addopts=", "-m", "gpu", *device_check.CHANGED_GPU_TESTS], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    collected = {line.split("[")[0] for line in r.stdout.splitlines() if "::" in line}
    assert collected == set(device_check.CHANGED_GPU_TESTS)
    cmd = device_check.step_command("pytest-changed", device_check.build_parser().parse_args(
        ["/tmp/out", "--pytest-workers", "1"]), 60)
    assert ["-m", "gpu"] in [cmd[i:i + 2] for i in range(len(cmd))]
    assert set(device_check.CHANGED_GPU_TESTS) <= set(cmd)


def test_help_prints_the_command_for_the_next_gpu_machine(capsys):
    with pytest.raises(SystemExit):
        device_check.main(["--help"])
    out = capsys.readouterr().out
    assert "next GPU machine: python bench/device_check.py /tmp/out" in out
    assert "python bench/device_check.py /tmp/out" in device_check.__doc__
    assert max(len(line) for line in out.splitlines() if "inception_resnet_v2_released" not in line) <= 100


@pytest.mark.parametrize("args, message", [
    (["--only", "env,warp-drive"], "unknown step(s) warp-drive; the steps are env, pytest-changed"),
    (["--skip", "gpu"], "unknown step(s) gpu"),
    (["--threads", "4,zero"], "--threads takes positive integers"),
    (["--threads", "0"], "--threads takes positive integers"),
])
def test_bad_arguments_are_refused_with_a_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        device_check.main([str(tmp_path / "out"), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_step_limit_keeps_time_for_the_later_steps_and_skips_when_none_is_left():
    m = device_check.MIN_SECONDS
    assert device_check.step_limit(60, now=0, deadline=470, later_steps=3) == 60
    assert device_check.step_limit(60, now=430, deadline=470, later_steps=3) == 40 - 3 * m
    assert device_check.step_limit(60, now=460, deadline=470, later_steps=3) == 0
    assert device_check.step_limit(60, now=460, deadline=470, later_steps=0) == 10


def test_time_scale_shrinks_the_plan_to_a_smaller_budget(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(device_check, "run_check", lambda args: seen.setdefault("scale", args.time_scale) and 0)
    device_check.main([str(tmp_path), "--budget", "235"])
    assert seen["scale"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------- CPU-only run
def test_cpu_only_run_reports_missing_cupy_and_torch_and_measures_the_cpu(tmp_path, without_gpu_libraries):
    out = tmp_path / "out"
    r = run_script([str(out), "--only", "env,pytest-gpu,train-step,cpu-scaling", "--quick", "--threads", "1",
                    "--network", "inception_resnet_v1"], env=without_gpu_libraries)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (out / "summary.txt").read_text()
    assert summary in r.stdout                                         # printed at the end, too
    rows = {row["step"]: row for row in json.loads((out / "summary.json").read_text())["steps"]}
    assert list(rows) == ["env", "pytest-gpu", "train-step", "cpu-scaling"]
    assert rows["env"]["status"] == "ok"
    assert "no GPU: CuPy is not installed (simulated: no cupy here)" in rows["env"]["result"]
    assert "pip install 'minception[gpu-cuda12]'" in rows["env"]["result"]
    assert "torch not installed" in rows["env"]["result"]
    for step in ("pytest-gpu", "train-step"):
        assert rows[step]["status"] == "skipped"
        assert rows[step]["result"] == "no GPU: CuPy is not installed (simulated: no cupy here)"
    assert rows["cpu-scaling"]["status"] == "ok"
    scaling = json.loads((out / "cpu-scaling.json").read_text())
    (row,) = scaling["rows"]
    assert row["threads"] == 1 and isinstance(row["ours"], float) and row["ours"] > 0
    assert row["torch"].startswith("torch not installed")
    assert "| 1 |" in (out / "cpu-scaling.txt").read_text()
    assert "Traceback" not in r.stdout + r.stderr


def test_train_engine_runs_our_step_on_the_cpu(tmp_path):
    """The training-step worker's own code (model, optimizer, clipping without sync, EMA over the BN buffers)
    on the CPU: the GPU run differs only by the device."""
    r = run_script(["--worker", "train-engine", str(tmp_path), "--engine", "ours", "--device", "cpu", "--quick",
                    "--warmup", "0", "--steps", "1", "--max-configs", "1"])
    assert r.returncode == 0, r.stderr
    (result,) = json.loads((tmp_path / "train-step-ours-tf32off.json").read_text())
    assert "error" not in result, result
    assert result["config"] == "inception_v4" and result["pipelined_ms"] > 0 and result["params"] > 0
    assert 0 < result["host_ms"] <= result["pipelined_ms"]
    assert result["forward_ops"] > 100 and result["backward_ops"] > 100    # counted by a function hook
    assert all(v == v and v > 0 for v in result["losses"])            # finite cross-entropies


def test_example_configuration_step_on_the_cpu(tmp_path, monkeypatch):
    """The training example's configuration (clip, EMA with module=, label smoothing, weight decay) runs."""
    import argparse
    args = argparse.Namespace(device="cpu", warmup=0, steps=1)
    config = dict(device_check._configs(True)[-1])
    assert config["ema"] and config["clip"] and config["smoothing"]
    result = device_check._step_ours(config, args)
    assert result["pipelined_ms"] > 0 and len(result["losses"]) == 4


def test_parity_worker_tabulates_every_case(tmp_path):
    """The parity step's worker, with NumPy standing in for CuPy (so it compares the CPU with itself): every case
    of tests/ops/test_gpu_parity.py gets a row, and the summary line counts them."""
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "cupy.py").write_text("from numpy import *  # noqa\nimport numpy\nndarray = numpy.ndarray\n")
    env = dict(os.environ, PYTHONPATH=str(shims) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "out"
    r = run_script(["--worker", "parity", str(out)], env=env)
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "parity.json").read_text())
    sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))
    from test_gpu_parity import CASES
    assert [row["op"] for row in rows] == [case.name for case in CASES]
    assert all(row["ok"] and row["output"] == 0.0 and row["gradients"] == 0.0 for row in rows)
    line = device_check.summarize("parity", str(out), "", 0)
    assert line == f"{len(CASES)}/{len(CASES)} ops within 1e-10 (worst 0.0e+00)"
    assert "| conv1x1-stride2 | 0.00e+00 | 0.00e+00 | yes |" in (out / "parity.txt").read_text()


# ---------------------------------------------------------------------------------------------- reports
def test_train_step_table_handles_missing_torch(tmp_path):
    out = str(tmp_path)
    configs = device_check._configs(False)
    ours = [{"config": c["name"], "engine": "ours", "tf32": "off", "pipelined_ms": 50.0, "images_per_s": 1280.0,
             "first_s": 9.0} for c in configs]
    device_check.write_json(os.path.join(out, "train-step-ours-tf32off.json"), ours)
    device_check.write_json(os.path.join(out, "train-step-torch-tf32off.json"),
                            [{"config": configs[0]["name"], "engine": "torch", "tf32": "off", "pipelined_ms": 40.0,
                              "images_per_s": 1600.0}] +
                            [{"config": c["name"], "error": "torch not installed (x)"} for c in configs[1:]])
    device_check._train_step_table(out, False)
    table = (tmp_path / "train-step.txt").read_text()
    assert "| inception_v4 | off | 50.0 | 40.0 | 1.25 | 1280 | 1600 | 9.0 |" in table
    assert "| inception_resnet_v1 | off | 50.0 | torch not installed (x) | - |" in table
    assert "| inception_v4 | on | not run | not run | - |" in table
    line = device_check.summarize("train-step", out, os.path.join(out, "none.log"), 0)
    assert line.startswith("ms/step ours/torch, TF32 off: v4: 50/40; resnet_v1: 50/0")


def test_pytest_summary_lines(tmp_path):
    log = tmp_path / "pytest-gpu.log"
    log.write_text("tests/a.py::test_x PASSED\n==== 118 passed, 2 failed, 3 deselected in 71.20s (0:01:11) ====\n")
    assert device_check.summarize("pytest-gpu", str(tmp_path), str(log), 1) == \
        "118 passed, 2 failed, 3 deselected in 71.20s (0:01:11)"
    log.write_text("tests/a.py::test_x PASSED\ntests/a.py::test_y FAILED\ntests/a.py::test_z PASSED\n"
                   "[device_check] killed after 120 s\n")
    assert device_check.summarize("pytest-gpu", str(tmp_path), str(log), None) == \
        "(interrupted) so far: 2 passed, 1 failed, 0 errors"


def test_loss_curve_reads_the_training_log(tmp_path):
    lines = [{"step": 10, "train_loss": 2.3, "images_per_s": 900.0}, {"step": 20, "train_loss": 2.0,
                                                                     "images_per_s": 1000.0}]
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(d) for d in lines) + "\nnot json\n")
    assert device_check._loss_curve(str(tmp_path)) == [{"step": 10, "loss": 2.3, "images_per_s": 900.0},
                                                       {"step": 20, "loss": 2.0, "images_per_s": 1000.0}]
    assert device_check._loss_curve(str(tmp_path / "missing")) == []


def test_train_example_command_is_one_the_example_accepts(tmp_path, monkeypatch, script_loader):
    """The training-example step's command line parses with the example's own parser and passes its checks
    (the run itself is the example's business, tested in tests/examples)."""
    commands = []
    monkeypatch.setattr(device_check.subprocess, "call", lambda cmd, **kw: commands.append(cmd) or 0)
    for quick in (False, True):
        args = device_check.build_parser().parse_args([str(tmp_path), "--worker", "train-example"]
                                                      + (["--quick"] if quick else []))
        with pytest.raises(SystemExit):
            device_check.worker_train_example(args)
    example = script_loader(os.path.join(ROOT, "examples", "train_cifar_scaled.py"), "train_cifar_scaled")
    assert len(commands) == 4          # per run: the default reads, then reading every step
    for cmd, steps, check_every in zip(commands, (300, 150, 10, 5), (None, 1, None, 1)):
        assert cmd[1].endswith(os.path.join("examples", "train_cifar_scaled.py"))
        cfg = example.resolve_config(vars(example.build_parser().parse_args(cmd[2:])))
        example.check_config(cfg)
        assert cfg["device"] == "cuda" and cfg["synthetic"] and cfg["max_steps"] == steps
        assert cfg["check_every"] == check_every


# ---------------------------------------------------------------------------------------------- launch profile
import launch_profile  # noqa: E402


class FakeOp:
    def __init__(self, name):
        self.name = name


def fake_records():
    """Three launches of two kernels in two ops, with device marks that are plain numbers (ms)."""
    return [
        {"kernel": "im2col", "kind": "RawKernel", "op": "Conv2d forward", "host_start": 0.0010, "host_us": 8.0,
         "begin": 1.0, "end": 1.5},
        {"kernel": "im2col", "kind": "RawKernel", "op": "Conv2d backward", "host_start": 0.0030, "host_us": 6.0,
         "begin": 3.0, "end": 3.5},
        {"kernel": "cupy.matmul", "kind": "cupy.matmul", "op": "Conv2d forward", "host_start": 0.0012,
         "host_us": 20.0, "begin": 1.5, "end": 2.5},
    ]


def fake_spans():
    return [{"op": "Conv2d", "phase": "forward", "start": 0.0005, "end": 0.0025, "start_mark": 0.5,
             "end_mark": 2.5},
            {"op": "Conv2d", "phase": "backward", "start": 0.0028, "end": 0.0040, "start_mark": 2.8,
             "end_mark": 4.0}]


def test_kernel_op_and_launch_kind_tables_from_fake_records():
    records, spans = fake_records(), fake_spans()
    launch_profile.resolve_marks(records, spans, origin=0.0, elapsed_ms=lambda a, b: b - a)
    assert "begin" not in records[0] and records[2]["device_ms"] == 1.0 and records[1]["device_start_ms"] == 3.0
    kernels = launch_profile.kernel_table(records)
    # the most device time first (both 1 ms here), then the most launches
    assert [(k["kernel"], k["count"]) for k in kernels] == [("im2col", 2), ("cupy.matmul", 1)]
    assert kernels[0]["device_ms"] == pytest.approx(1.0) and kernels[0]["mean_device_us"] == pytest.approx(500)
    assert kernels[0]["mean_host_us"] == pytest.approx(7.0) and kernels[0]["ops"] == ["Conv2d"]
    ops = {r["op"]: r for r in launch_profile.op_table(records, spans)}
    assert ops["Conv2d forward"]["launches"] == 2 and ops["Conv2d forward"]["calls"] == 1
    assert ops["Conv2d forward"]["device_ms"] == pytest.approx(2.0)
    assert ops["Conv2d forward"]["launch_device_ms"] == pytest.approx(1.5)
    assert ops["Conv2d forward"]["not_wrapped_device_ms"] == pytest.approx(0.5)
    assert ops["Conv2d backward"]["host_ms"] == pytest.approx(1.2)
    kinds = {r["kind"]: r for r in launch_profile.launch_kind_table(records)}
    assert kinds["RawKernel"]["calls"] == 2 and kinds["RawKernel"]["mean_host_us"] == pytest.approx(7.0)
    text = launch_profile.report(records, spans, "title")
    assert "| im2col | RawKernel | 2 | 1.000 | 500.0 | 7.0 | Conv2d |" in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("|")) <= 100


def test_chrome_trace_is_valid_json_with_host_and_device_events():
    records, spans = fake_records(), fake_spans()
    launch_profile.resolve_marks(records, spans, origin=0.0, elapsed_ms=lambda a, b: b - a)
    trace = json.loads(json.dumps(launch_profile.chrome_trace(spans, records, host_origin=0.0)))
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert all({"name", "ts", "dur", "pid", "tid"} <= set(e) for e in complete)
    host_ops = [e for e in complete if e["pid"] == 1 and e["tid"] == 1]
    device = [e for e in complete if e["pid"] == 2]
    assert [e["name"] for e in host_ops] == ["Conv2d", "Conv2d"]
    assert host_ops[0]["ts"] == pytest.approx(500) and host_ops[0]["dur"] == pytest.approx(2000)
    assert [(e["name"], e["ts"], e["dur"]) for e in device] == [("im2col", 1000, 500), ("im2col", 3000, 500),
                                                                ("cupy.matmul", 1500, 1000)]
    assert {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"} == \
        {"host", "device (CUDA events)"}


def test_launch_recorder_wraps_kernel_constructors_and_functions():
    """A stand-in for the cupy namespace: the kernels built after install are timed per call, with the op that
    ran; a function called inside another recorded call is not recorded twice; uninstall puts all back."""
    import types

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name="kernel"):
            self.name = name

        def __call__(self, x):
            return x + 1

    def matmul(a, b):
        return a * b

    def concatenate(items):
        return sum(matmul(i, 1) for i in items)

    ns = types.SimpleNamespace(ElementwiseKernel=ElementwiseKernel, matmul=matmul, concatenate=concatenate,
                               __name__="cupy")
    ticks = iter(range(100))
    tracker = launch_profile.OpTracker(mark=lambda: next(ticks))
    recorder = launch_profile.LaunchRecorder(ns, tracker.current, mark=lambda: next(ticks)).install()
    kernel = ns.ElementwiseKernel("T x", "T y", "y = x + 1", "add_one")
    tracker.forward_pre(FakeOp("Conv2d"), ())
    assert kernel(1) == 2 and ns.matmul(2, 3) == 6
    tracker.forward_post(FakeOp("Conv2d"), (), ())
    tracker.on_phase("forward")
    assert ns.concatenate([1, 2]) == 3                       # its inner matmul calls are not recorded again
    recorder.active = False
    kernel(5)
    assert [(r["kernel"], r["kind"], r["op"]) for r in recorder.records] == [
        ("add_one", "ElementwiseKernel", "Conv2d forward"), ("cupy.matmul", "cupy.matmul", "Conv2d forward"),
        ("cupy.concatenate", "cupy.concatenate", "(no op: backward)")]
    assert all(r["begin"] < r["end"] for r in recorder.records) and kernel.name == "add_one"
    recorder.uninstall()
    assert ns.matmul is matmul and ns.ElementwiseKernel is ElementwiseKernel and ns.concatenate is concatenate


def test_parallel_counter_counts_calls_and_parts_per_op():
    from ops.kernels.cpu.runtime import threads
    from ops.kernels.cpu import conv2d
    counter = launch_profile.ParallelCounter(lambda: "Conv2d forward").install()
    try:
        assert conv2d.parallel_for is not threads.parallel_for or threads.parallel_for.__name__ == "counted"
        with threads.use_threads(2):
            threads.parallel_for(lambda lo, hi: hi - lo, 10)
            threads.parallel_for(lambda lo, hi: hi - lo, 10, parallel=False)
    finally:
        counter.uninstall()
    assert conv2d.parallel_for is threads.parallel_for
    assert counter.summary() == {"calls": 2, "threaded_calls": 1, "parts": 3,
                                 "by_op": {"Conv2d forward": {"calls": 2, "parts": 3}}}


# ---------------------------------------------------------------------------------------------- new steps on the CPU
def test_gpu_steps_skip_cleanly_and_cpu_profile_runs(tmp_path, without_gpu_libraries):
    out = tmp_path / "out"
    r = run_script([str(out), "--quick", "--only", "kernels,cuda-graph-probe,cpu-profile", "--threads", "1,2",
                    "--network", "inception_v4"], env=without_gpu_libraries)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {row["step"]: row for row in json.loads((out / "summary.json").read_text())["steps"]}
    assert list(rows) == ["kernels", "cuda-graph-probe", "cpu-profile"]
    for step in ("kernels", "cuda-graph-probe"):
        assert rows[step]["status"] == "skipped"
        assert rows[step]["result"] == "no GPU: CuPy is not installed (simulated: no cupy here)"
    assert rows["cpu-profile"]["status"] == "ok", (out / "cpu-profile.log").read_text()
    profile = json.loads((out / "cpu-profile.json").read_text())
    assert [row["threads"] for row in profile["rows"]] == [1, 2]
    for row in profile["rows"]:
        assert row["cpu_threads"] == row["threads"] and row["step_s"] > 0
        assert row["parallel"]["calls"] > 0 and row["parallel"]["parts"] >= row["parallel"]["calls"]
        assert row["ops"]["Conv2d"]["calls"] > 0                  # the TimerHook's table
    assert profile["rows"][0]["parallel"]["threaded_calls"] == 0  # one thread: every call ran serially
    assert "| 2 |" in (out / "cpu-profile.txt").read_text()
    assert rows["cpu-profile"]["result"].startswith("1t ")
    assert "Traceback" not in r.stdout + r.stderr


def test_kernels_step_runs_its_pipeline_on_the_cpu(tmp_path):
    """The kernels worker with NumPy standing in for CuPy (no device times): tables, JSON and the trace."""
    r = run_script(["--worker", "kernels", str(tmp_path), "--device", "cpu", "--quick"])
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "kernels.json").read_text())
    assert result["launches"] > 0 and result["ops"] > 100
    assert any(k["kernel"] == "numpy.matmul" and "Conv2d" in k["ops"] for k in result["kernels"])
    assert any(o["op"] == "Conv2d backward" and o["launches"] > 0 for o in result["op_types"])
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert len([e for e in trace["traceEvents"] if e["ph"] == "X"]) == result["launches"] + result["ops"]
    assert "Per launch kind" in (tmp_path / "kernels.txt").read_text()
    line = device_check.summarize("kernels", str(tmp_path), "", 0)
    assert line.startswith(f"{result['launches']} wrapped launches in {result['ops']} ops")


def test_graph_probe_summary_lines():
    ok = {"steps": 5, "eager_ms": 60.0, "attempts": [
        {"attempt": "train_step as the Trainer runs it", "error": {
            "type": "CUDARuntimeError", "message": "cudaErrorStreamCaptureUnsupported", "op": "(no op: forward)",
            "where": "ops/loss.py:87 in softmax_cross_entropy"}},
        {"attempt": "the loss's label check skipped", "capture": "ok", "nodes": 1700, "replay_ms": 9.5,
         "loss_equal": True, "loss_difference": 0.0}]}
    line = device_check._graph_probe_line(ok, "")
    assert line.startswith("failed: CUDARuntimeError: cudaErrorStreamCaptureUnsupported at ops/loss.py:87 in "
                           "softmax_cross_entropy (op (no op: forward)); captured (the loss's label check ")
    assert line.endswith("1700 nodes, replay 9.5 ms vs eager 60.0 ms, loss after 5 equal")
    assert device_check._graph_probe_line({"capture": "not supported: CuPy 9 has no Stream.begin_capture"}, "") \
        == "not supported: CuPy 9 has no Stream.begin_capture"


def test_describe_error_names_the_innermost_frame_of_the_repository():
    try:
        device_check._restore(None, None, [])
    except AttributeError as e:
        d = device_check.describe_error(e, "Conv2d forward")
    assert d["type"] == "AttributeError" and d["op"] == "Conv2d forward"
    assert d["where"].startswith("bench/device_check.py:") and d["where"].endswith("in _state_arrays")


def test_the_benchmark_step_passes_host_labels():
    import numpy as np
    cfg = device_check._configs(True)[0]
    *_, x, y = device_check._training_setup(cfg, "cpu")
    assert type(y) is np.ndarray and y.dtype.kind == "i" and y.shape == (cfg["batch"],)


class FakeStream:
    """CuPy's capture API played on the CPU: a capture records nothing and its graph's replay does nothing;
    ``to_device`` during a capture fails as a pageable copy does on a GPU."""
    capturing = False

    def __init__(self, non_blocking=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def synchronize(self):
        pass

    def begin_capture(self):
        FakeStream.capturing = True

    def is_capturing(self):
        return FakeStream.capturing

    def end_capture(self):
        FakeStream.capturing = False
        return types.SimpleNamespace(launch=lambda stream=None: None, graph=0)


def test_graph_probe_reports_each_attempts_error_and_never_crashes(tmp_path, monkeypatch):
    """The probe's control flow on the CPU, with a stand-in for CuPy's streams: the first attempt fails where
    the step copies to the device during the capture (the error names the op and our frame), the capture is
    ended all the same, and the JSON and summary line say so."""
    import numpy as np
    from autograd import backend
    fake_cupy = types.SimpleNamespace(__version__="fake", cuda=types.SimpleNamespace(Stream=FakeStream))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    setup = device_check._training_setup

    def to_device(array, device):
        if FakeStream.capturing:
            raise RuntimeError("operation not permitted when stream is capturing")
        return np.asarray(array)
    monkeypatch.setattr(backend, "to_device", to_device)
    monkeypatch.setattr(device_check, "_training_setup", lambda cfg, device: setup(cfg, "cpu"))
    import ops.loss
    monkeypatch.setattr(ops.loss, "to_device", to_device)
    args = argparse.Namespace(out=str(tmp_path), quick=True)
    device_check.worker_cuda_graph_probe(args)
    result = json.loads((tmp_path / "cuda-graph-probe.json").read_text())
    assert FakeStream.capturing is False
    first, second = result["attempts"]
    assert first["error"]["message"] == "operation not permitted when stream is capturing"
    assert first["error"]["op"] == "(no op: forward)"                  # the loss: after the forward ops
    assert any(f.startswith("ops/loss.py:") for f in first["error"]["our_frames"])
    assert second["capture"] == "ok" and second["replay_ms"] >= 0 and "loss_equal" in second
    assert result["eager_ms"] > 0 and np.isfinite(result["eager_loss"])
    line = device_check.summarize("cuda-graph-probe", str(tmp_path), "", 0)
    assert line.startswith("failed: RuntimeError: operation not permitted when stream is capturing at ")
    assert "captured (the loss's label check skipped" in line
