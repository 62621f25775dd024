"""``examples/train_cifar_scaled.py --dataset``: Fashion-MNIST from small IDX files written here, its fallback to
the synthetic set when absent or corrupt, and ``--dataset synthetic``. Tiny networks, in-process."""
import json
import os

import numpy as np
import pytest
from example_main import run_main as _run

from minception import data
from minception.data import fashion_mnist
from minception.train import read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_cifar_scaled.py")
TINY = ["--width", "0.04", "--blocks", "1,1,1", "--batch-size", "8", "--subset", "16", "--test-subset", "8",
        "--epochs", "1", "--no-progress", "--no-download", "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def example(script_loader):
    return script_loader(SCRIPT, "train_cifar_scaled_datasets")


@pytest.fixture(autouse=True)
def no_system_copy(monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    monkeypatch.delenv("MINCEPTION_DATA", raising=False)


def write_small_fashion_mnist(folder, n_train=16, n_test=8):
    """Class c is an image whose rows c*2..c*2+5 are bright: learnable, so accuracy means something."""
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c:2 * c + 6] = 220
        data.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images)
        data.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels)


def test_fashion_mnist_trains_from_data_dir(example, tmp_path):
    write_small_fashion_mnist(tmp_path / "fm")
    code, text = _run(example, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "fm", "--out",
                      tmp_path / "run", *TINY)
    assert code == 0, text
    assert "data: Fashion-MNIST (28x28 gray padded to 32x32 RGB), 16 training and 8 test images" in text
    assert "synthetic" not in text
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"] == "fashion-mnist"
    recs = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(recs) == 1 and np.isfinite(recs[0]["train_loss"])


def test_missing_or_corrupt_fashion_mnist_in_a_named_folder_is_an_error(example, tmp_path):
    """A --data-dir the user named that holds no readable Fashion-MNIST stops the run (exit 2, one line naming the
    folder and the file at fault); it never falls back to the synthetic set silently."""
    code, text = _run(example, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "none", "--out",
                      tmp_path / "a", *TINY)
    assert code == 2, text
    assert "Fashion-MNIST not found" in text and "named explicitly" in text
    assert "Training on the synthetic" not in text and not (tmp_path / "a").exists()
    write_small_fashion_mnist(tmp_path / "bad")
    (tmp_path / "bad" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip")
    code, text = _run(example, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "bad", "--out",
                      tmp_path / "b", *TINY)
    assert code == 2, text
    assert "fashion-mnist could not be read" in text and "t10k-labels-idx1-ubyte.gz" in text


def test_dataset_synthetic_and_bad_choice(example, tmp_path):
    write_small_fashion_mnist(tmp_path / "fm")
    code, text = _run(example, "--dataset", "synthetic", "--data-dir", tmp_path / "fm", "--out", tmp_path / "s",
                      *TINY)
    assert code == 0 and "data: synthetic shapes" in text and "Training on the synthetic" not in text
    with pytest.raises(SystemExit) as info:
        _run(example, "--dataset", "mnist")
    assert info.value.code == 2
