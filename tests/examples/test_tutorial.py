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
    assert "dL/d(output)" in out and "dL/d(inputs)" in out          # a step-by-step trace was printed


def test_tutorial_stage_1_trace_is_exact(tutorial, capsys):
    tutorial.main(["--stage", "1"])
    out = capsys.readouterr().out
    trace_rows = [ln.split() for ln in out.splitlines() if ln[:4].strip().isdigit() and len(ln.split()) > 2]
    assert [row[1] for row in trace_rows] == ["Sum", "Add", "Mul", "Mul"]
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
    assert "dL/d(output)" in out and "norm, by where it goes" in out
    png = (tmp_path / "gradient_flow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "per layer:" in (tmp_path / "gradient_flow.txt").read_text()


def test_tutorial_main_runs_inside_a_jupyter_kernel(tutorial, monkeypatch, tmp_path):
    """A kernel's command line is its own (``-f kernel.json``): ``main()`` reads no arguments unless given them."""
    monkeypatch.setattr("sys.argv", ["ipykernel_launcher.py", "-f", str(tmp_path / "kernel-1.json")])
    ran = []
    for number, name in enumerate(["stage_1_tensor", "stage_2_function", "stage_3_linear", "stage_4_im2col",
                                   "stage_5_conv_bn_relu"], start=1):
        monkeypatch.setattr(tutorial, name, lambda number=number: ran.append(number))
    monkeypatch.setattr(tutorial, "stage_6_inception_block", lambda out: ran.append(6))
    assert tutorial.main() == 0
    assert ran == [1, 2, 3, 4, 5, 6]
    ran.clear()
    assert tutorial.main(["--stage", "3"]) == 0 and ran == [3]


def test_tutorial_passes_the_graphviz_hint_through_whole(tutorial, monkeypatch, capsys, tmp_path):
    """Without Graphviz, stage 6 prints the library's whole message: how to install it and the command to run."""
    monkeypatch.setenv("PATH", str(tmp_path))                     # no 'dot' here
    assert tutorial.main(["--stage", "6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("inception_a_ops", "inception_a_branches"):
        dot, svg = tmp_path / f"{name}.dot", tmp_path / f"{name}.svg"
        assert f"graph as DOT text: {dot}" in out
        assert f"cannot render {svg}: the Graphviz program 'dot' is not installed" in out
        assert "apt install graphviz" in out and f"'dot -Tsvg {dot} -o {svg}'" in out
