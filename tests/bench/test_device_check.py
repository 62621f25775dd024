"""bench/device_check.py without a GPU: its arguments, its time budget, its CPU-scaling step at one thread, the
clear line (not a crash) when CuPy or PyTorch is missing, and the host side of its training-step and
training-example steps run on the CPU.

CuPy and PyTorch are made unimportable for the subprocesses (a folder of stand-in modules that raise ImportError
goes first on PYTHONPATH), so these tests behave the same on a GPU machine."""
import json
import os
import subprocess
import sys

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
    assert device_check.STEP_NAMES == ["env", "pytest-gpu", "parity", "gradcheck", "bench-conv", "bench-pool-bn",
                                       "train-step", "train-example", "cpu-scaling"]
    assert sum(t for _, t, _ in device_check.STEPS) <= device_check.DEFAULT_BUDGET <= 480
    gpu_free = [name for name, _, needs_gpu in device_check.STEPS if not needs_gpu]
    assert gpu_free == ["env", "cpu-scaling"]


@pytest.mark.parametrize("args, message", [
    (["--only", "env,warp-drive"], "unknown step(s) warp-drive; the steps are env, pytest-gpu"),
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
