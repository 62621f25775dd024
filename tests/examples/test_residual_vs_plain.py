"""CI smoke test of the depth sweep, ``examples/residual_vs_plain.py``: tiny networks, a few steps, in-process,
on small Fashion-MNIST IDX files written here (and the synthetic set for the estimate). The sweep itself (about
2 hours) is not run here."""
import contextlib
import io
import json
import os

import numpy as np
import pytest

from minception import data
from minception.data import fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "residual_vs_plain.py")
NETWORKS = ["inception_v4", "inception_resnet_v2", "inception_resnet_v2_scale1"]
# 3 steps of 8 images, evaluated at steps 2 and 3 on 8 test images, networks of about 20k parameters
TINY = ["--steps", "3", "--eval-every", "2", "--width", "0.04", "--batch-size", "8", "--subset", "8",
        "--test-subset", "8", "--no-download"]


@pytest.fixture(scope="module")
def sweep(script_loader):
    module = script_loader(SCRIPT, "residual_vs_plain")
    module.PROBE_STEPS = 1          # time 1 step (after the warm-up one) for the estimate, not 3: CI time
    return module


def _run(sweep, *args):
    """``main(args)`` in-process; returns (exit code, everything printed)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = sweep.main([str(a) for a in args])
    return code, buf.getvalue()


def table_rows(markdown):
    """{(depth, network): [cells]} of the results table in results.md."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[1] in NETWORKS:
            rows[(cells[0], cells[1])] = cells
    return rows


def write_small_fashion_mnist(folder, n_train=16, n_test=8):
    """The four IDX files (training set gzipped, test set raw) with random 28x28 images."""
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for images, labels, n in (("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", n_train),
                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test)):
        data.write_idx(os.path.join(folder, images), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        data.write_idx(os.path.join(folder, labels), (np.arange(n) % 10).astype(np.uint8))


SWEEP = ["--dataset", "fashion-mnist", "--depths", "1,1,1", "1,2,1", "--seeds", "2", *TINY]


@pytest.fixture(scope="module")
def sweep_run(sweep, tmp_path_factory):
    """The sweep at two depths with two seeds on small Fashion-MNIST files (12 runs of 3 steps)."""
    root = tmp_path_factory.mktemp("sweep")
    write_small_fashion_mnist(root / "fm")
    hidden = fashion_mnist.SYSTEM_DIRS
    fashion_mnist.SYSTEM_DIRS = ()                  # never the system's copy
    try:
        code, text = _run(sweep, *SWEEP, "--data-dir", root / "fm", "--out", root / "out")
    finally:
        fashion_mnist.SYSTEM_DIRS = hidden
    assert code == 0, text
    return root, text


def test_sweep_writes_the_table_the_plot_and_every_run(sweep_run):
    root, text = sweep_run
    out = root / "out"
    assert "data: Fashion-MNIST" in text and "8 training and 8 test images" in text
    assert "expected run time: about" in text and "12 runs of 3 steps" in text
    assert "depth 1x2x1: inception_v4" in text and " s/step" in text
    md = (out / "results.md").read_text()
    assert "Fashion-MNIST" in md and "--depths 1,1,1 1,2,1" in md                     # data and command line
    rows = table_rows(md)
    assert set(rows) == {(d, n) for d in ("1,1,1", "1,2,1") for n in NETWORKS}
    for cells in rows.values():
        per_seed = cells[3].split("(")[1].rstrip(")").split(" / ")
        assert len(per_seed) == 2 and all(0 <= float(a) <= 100 for a in per_seed)       # one accuracy per seed
        assert cells[4].endswith("%") and float(cells[7]) > 0                            # target, s/step
    png = (out / "accuracy_vs_steps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    blob = json.loads((out / "results.json").read_text())
    assert len(blob["runs"]) == 12 and blob["settings"]["steps"] == 3
    for r in blob["runs"]:
        assert [c[0] for c in r["curve"]] == [2, 3] and r["status"] == "completed" and r["median_step_s"] > 0
    assert len(os.listdir(out / "runs")) == 12
    one = json.loads((out / "runs" / "1x2x1_inception_v4_seed1.json").read_text())
    assert len(one["step_s"]) == 3 and one["seed"] == 1 and one["blocks"] == [1, 2, 1]


def test_seeds_are_runs_of_their_own_and_the_networks_differ(sweep_run):
    root, _ = sweep_run
    runs = json.loads((root / "out" / "results.json").read_text())["runs"]
    by = {(r["depth"], r["network"], r["seed"]): r for r in runs}
    params = {n: by[("1x2x1", n, 0)]["params"] for n in NETWORKS}
    assert params["inception_v4"] != params["inception_resnet_v2"] == params["inception_resnet_v2_scale1"]
    assert by[("1x1x1", "inception_v4", 0)]["curve"][-1][3] != by[("1x1x1", "inception_v4", 1)]["curve"][-1][3]
    # same seed, same weights and data: the two Inception-ResNet-v2 differ only by the residual scale
    assert by[("1x1x1", "inception_resnet_v2", 0)]["curve"] != by[("1x1x1", "inception_resnet_v2_scale1", 0)]["curve"]


def test_a_second_call_trains_only_the_missing_runs(sweep, sweep_run, monkeypatch):
    root, _ = sweep_run
    out, copy = root / "out", root / "copy"
    os.makedirs(copy / "runs")
    for name in os.listdir(out / "runs"):
        (copy / "runs" / name).write_bytes((out / "runs" / name).read_bytes())
    os.remove(copy / "runs" / "1x2x1_inception_resnet_v2_seed1.json")
    trained = []
    real = sweep.train_one

    def counting(network, blocks, seed, *args, **kwargs):
        trained.append((network, blocks, seed))
        return real(network, blocks, seed, *args, **kwargs)

    monkeypatch.setattr(sweep, "train_one", counting)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    code, text = _run(sweep, *SWEEP, "--data-dir", root / "fm", "--out", copy)
    assert code == 0, text
    assert "11 runs were done before" in text
    # one timing probe (seed 0) and the one missing run
    assert trained == [("inception_resnet_v2", (1, 2, 1), 0), ("inception_resnet_v2", (1, 2, 1), 1)]
    assert table_rows((copy / "results.md").read_text()).keys() == table_rows((out / "results.md").read_text()).keys()
    # a saved run made with other settings is not reused
    path = copy / "runs" / "1x1x1_inception_v4_seed0.json"
    saved = json.loads(path.read_text())
    assert sweep.load_run(path, saved["key"]) == saved
    assert sweep.load_run(path, dict(saved["key"], lr=0.01)) is None
    (copy / "runs" / "broken.json").write_text("{not json")
    assert sweep.load_run(copy / "runs" / "broken.json", saved["key"]) is None


def test_estimate_only_trains_nothing(sweep, tmp_path):
    code, text = _run(sweep, "--dataset", "synthetic", "--depths", "1,1,1", "--seeds", "3", "--out", tmp_path / "o",
                      "--estimate-only", *TINY)
    assert code == 0, text
    assert "data: synthetic shapes" in text
    assert "expected run time: about" in text and "for 9 runs" in text
    assert not (tmp_path / "o" / "results.md").exists()


@pytest.mark.parametrize("args, message", [
    (["--depths", "1,1"], "three non-negative integers"),
    (["--depths", "1,1,1", "1,1,1"], "listed twice"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--target", "1.5"], "--target"),
    (["--subset", "4"], "smaller than one batch"),
])
def test_bad_arguments_exit_2(sweep, tmp_path, args, message):
    code, text = _run(sweep, "--dataset", "synthetic", "--out", tmp_path, *TINY, *args)
    assert code == 2 and message in text


def test_unavailable_data_set_exits_2(sweep, tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    code, text = _run(sweep, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "none", "--out", tmp_path, *TINY)
    assert code == 2 and "fashion-mnist is unavailable" in text and "downloading is off" in text


def test_table_targets_steps_and_diverged_runs(sweep):
    """The report's arithmetic on made-up curves: per-depth target, first evaluation reaching it, means."""
    def run(network, seed, accs, status="completed"):
        curve = [[50 * (i + 1), a, 5.0 * (i + 1), 1.0] for i, a in enumerate(accs)]
        return {"depth": "1x1x1", "network": network, "seed": seed, "status": status, "params": 1234,
                "step_s": [0.1] * (50 * len(accs)), "curve": curve}

    results = [run("inception_v4", 0, [0.5, 0.8, 0.9]), run("inception_v4", 1, [0.6, 0.85, 0.95]),
               run("inception_resnet_v2", 0, [0.3, 0.5, 0.8]), run("inception_resnet_v2", 1, [0.2, 0.4, 0.6]),
               run("inception_resnet_v2_scale1", 0, [0.4, 0.7, 0.9]),
               run("inception_resnet_v2_scale1", 1, [0.3], status="diverged")]
    targets = sweep.targets_per_depth(results, [(1, 1, 1)], None)
    assert targets == {"1x1x1": pytest.approx(0.54)}                     # 90% of the lowest final (0.6)
    rows = table_rows(sweep.results_table(results, [(1, 1, 1)], targets))
    assert rows[("1,1,1", "inception_v4")][3:7] == ["92.5% (90.0 / 95.0)", "54.0%", "75 (100 / 50)", "7.5"]
    assert rows[("1,1,1", "inception_resnet_v2")][5:7] == ["150 (150 / 150)", "15"]
    scale1 = rows[("1,1,1", "inception_resnet_v2_scale1")]
    assert scale1[3] == "90.0% (90.0 / diverged at step 51)" and scale1[5] == "100 (1/2 reached) (100 / -)"
    fixed = sweep.targets_per_depth(results, [(1, 1, 1)], 0.93)
    rows = table_rows(sweep.results_table(results, [(1, 1, 1)], fixed))
    assert rows[("1,1,1", "inception_v4")][5] == "150 (1/2 reached) (not reached / 150)"
    assert rows[("1,1,1", "inception_resnet_v2")][5:7] == ["not reached (not reached / not reached)", "-"]
