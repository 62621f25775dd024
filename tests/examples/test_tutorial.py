"""CI runs of the tutorial (``examples/tutorial.py``) and of ``examples/inspect_gradients.py --quick``, so that
neither can rot. Both run in-process (the script's ``main``) and their printed output is checked."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tutorial():
    return load("tutorial")


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_tutorial_engine_stages(tutorial, stage, capsys, tmp_path):
    assert tutorial.main(["--stage", str(stage), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Stage {stage}:" in out
    assert "gradcheck" in out and "match central differences" in out
    assert "grad in  norm" in out                                   # a step-by-step trace was printed


def test_tutorial_stage_1_trace_is_exact(tutorial, capsys):
    tutorial.main(["--stage", "1"])
    out = capsys.readouterr().out
    trace_lines = [ln for ln in out.splitlines() if "| grad in" in ln]
    assert [ln.split()[1] for ln in trace_lines] == ["Sum", "Add", "Mul", "Mul"]
    assert "x.grad = [6. 2. 7.]" in out


@pytest.mark.slow
def test_tutorial_network_stages(tutorial, capsys, tmp_path):
    assert tutorial.main(["--stage", "5", "--out", str(tmp_path)]) == 0
    assert tutorial.main(["--stage", "6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "gradcheck of ConvBNReLU" in out and "im2col column buffers" in out
    assert "gradcheck of the whole block" in out
    assert "anomaly mode caught it" in out and "branch2.1" in out
    assert (tmp_path / "inception_a_branches.dot").read_text().startswith("digraph")


@pytest.mark.slow
def test_inspect_gradients_quick(capsys, tmp_path):
    example = load("inspect_gradients")
    assert example.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "how much gradient reaches the input side" in out
    for name in ("Inception-v4, initial", "Inception-ResNet-v2, initial", "Inception-v4, step 2",
                 "Inception-ResNet-v2, step 2"):
        assert name in out
    assert "gradcheck whole block ok" in out
    assert "| grad in  norm" in out
    png = (tmp_path / "gradient_flow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "per layer:" in (tmp_path / "gradient_flow.txt").read_text()
