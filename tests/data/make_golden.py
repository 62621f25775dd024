"""Write ``golden_logits.npz``: fixed outputs of the five networks, for ``tests/minception/test_models_golden.py``.

    python3 tests/data/make_golden.py        # from the repository root; rerun only when the networks are
                                              # meant to compute something new, and say why in the commit

Each network is built tiny (width 1/16, one block of each kind; the released Inception-ResNet-v2 also a scaled
Block8 before the last one), with 32x32 geometry, in float64. Its parameters and batch-norm statistics are then
overwritten in ``state_dict`` order from NumPy's legacy ``RandomState`` (whose stream NumPy keeps fixed across
versions), so the numbers depend on neither ``nn.init`` nor the order modules are built in, only on the state-dict
keys and what the network computes. Two images of 16x16 go through it in evaluation mode (batch norm with the
running statistics) and in training mode (the batch's statistics; dropout is 0). Stored: the logits, 2 x 5 per
network and mode, a few hundred bytes in all.
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograd import Tensor, no_grad  # noqa: E402
from minception import models  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden_logits.npz"
NUM_CLASSES = 5
NETWORKS = {
    "inception_v4": lambda: models.inception_v4(**tiny()),
    "inception_v4_released": lambda: models.inception_v4(variant="released", **tiny()),
    "inception_resnet_v1": lambda: models.inception_resnet_v1(**tiny()),
    "inception_resnet_v2": lambda: models.inception_resnet_v2(**tiny()),
    "inception_resnet_v2_released": lambda: models.inception_resnet_v2(variant="released", **tiny(blocks=(1, 1, 2))),
}


def tiny(blocks=(1, 1, 1)):
    return dict(num_classes=NUM_CLASSES, width=0.0625, blocks=blocks, small_input=True, dropout=0.0)


def fill(model, seed=0):
    """Overwrite every parameter and buffer, in state-dict order: conv and linear weights N(0, 2/fan_in) (He), biases
    U(-0.2, 0.2), batch-norm gammas U(0.5, 1.5), betas U(-0.2, 0.2), running means U(-0.2, 0.2), running
    variances U(0.5, 1.5)."""
    rng = np.random.RandomState(seed)
    values = {}
    for key, array in model.state_dict().items():
        if key.endswith("num_batches_tracked") or key.endswith("rng_state"):
            value = array                       # counters and dropout's random state draw nothing from the stream
        elif key.endswith("running_var") or key.endswith("bn.weight"):
            value = rng.uniform(0.5, 1.5, array.shape)
        elif array.ndim >= 2:
            value = rng.standard_normal(array.shape) * np.sqrt(2.0 / np.prod(array.shape[1:]))
        else:
            value = rng.uniform(-0.2, 0.2, array.shape)
        values[key] = value
    model.load_state_dict(values)
    return model


def images(seed=1):
    return np.random.RandomState(seed).standard_normal((2, 3, 16, 16))


def logits(name, training, fused=False):
    """The network ``name``'s logits on ``images()``, shape (2, NUM_CLASSES), float64 (``fused``: after
    ``model.fuse()``, which must not change them beyond float rounding)."""
    model = fill(NETWORKS[name]().to(dtype=np.float64)).train(training)
    if fused:
        model.fuse()
    with no_grad():
        return model(Tensor(images())).data


def main():
    golden = {f"{name}/{mode}": logits(name, mode == "train") for name in NETWORKS for mode in ("eval", "train")}
    np.savez(GOLDEN, **golden)
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(golden)} arrays, {GOLDEN.stat().st_size} bytes")


if __name__ == "__main__":
    main()
