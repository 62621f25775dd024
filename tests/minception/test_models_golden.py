"""Fixed-seed outputs of the five networks: a change in what any network computes changes its logits.

``tests/data/golden_logits.npz`` holds the logits of tiny float64 versions of Inception-v4 (paper and released),
Inception-ResNet-v1 and Inception-ResNet-v2 (paper and released) on two fixed images, in evaluation and in
training mode, written by ``tests/data/make_golden.py`` (which builds and fills the networks; see its docstring).
A refactoring, a new kernel, another kernel tier or ``model.fuse()`` must reproduce them to float64 rounding
(rtol 1e-8). If a network is *meant* to change, rerun the script and say why in the commit.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


def load_script():
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = load_script()


@pytest.fixture(scope="module")
def golden():
    with np.load(make_golden.GOLDEN) as archive:
        return dict(archive)


def test_the_archive_holds_every_network_and_mode(golden):
    assert sorted(golden) == sorted(f"{n}/{m}" for n in make_golden.NETWORKS for m in ("eval", "train"))
    assert all(v.shape == (2, make_golden.NUM_CLASSES) and v.dtype == np.float64 for v in golden.values())


@pytest.mark.parametrize("fused", [False, True], ids=["as-built", "fused"])
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", list(make_golden.NETWORKS))
def test_logits_match_the_stored_ones(golden, name, mode, fused):
    logits = make_golden.logits(name, training=(mode == "train"), fused=fused)
    np.testing.assert_allclose(logits, golden[f"{name}/{mode}"], rtol=1e-8, atol=1e-10,
                               err_msg=f"{name} ({mode}{', fused' if fused else ''})")
