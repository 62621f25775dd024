"""One entry point for the data sets the examples train on, chosen by name::

    train, test, description, mean, std = data.load_dataset("fashion-mnist")

``mean`` and ``std`` are what ``DataLoader(..., mean=mean, std=std)`` needs to normalise the images: the
published statistics of CIFAR-10 and Fashion-MNIST, and for the synthetic set the statistics of the images
just drawn.
"""
from typing import NamedTuple

from .cifar10 import load_cifar10
from .dataset import ImageSet
from .fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist
from .synthetic import make_synthetic
from .transforms import CIFAR10_MEAN, CIFAR10_STD, channel_stats

DATASETS = ("cifar10", "fashion-mnist", "synthetic")


class LoadedData(NamedTuple):
    """What ``load_dataset`` returns (a tuple: ``train, test, description, mean, std = ...``)."""

    train: ImageSet
    test: ImageSet
    description: str        # e.g. "Fashion-MNIST", for logs and plot titles
    mean: tuple             # per-channel mean, 0..1 units
    std: tuple              # per-channel standard deviation, 0..1 units


def load_dataset(name, data_dir=None, download_missing=True, timeout=30.0, progress=True,
                 synthetic_sizes=(10000, 2000), synthetic_seed=12345):
    """Load the data set ``name`` (one of ``DATASETS``). Returns a ``LoadedData``.

    Args:
        name: "cifar10", "fashion-mnist" (both read from ``data_dir`` or downloaded there; see their
            modules) or "synthetic" (the shapes set, drawn now at ``synthetic_sizes = (train, test)`` images
            with ``synthetic_seed``).
        data_dir, download_missing, timeout, progress: passed to ``load_cifar10`` / ``load_fashion_mnist``.

    Raises:
        ValueError: unknown ``name``.
        DatasetError: the real data set is unavailable or corrupt (``DatasetUnavailable``, ``CorruptDataset``).

    Shape:
        train.images, test.images: (N, 3, 32, 32) uint8; mean, std: 3 floats each.
    """
    where = dict(data_dir=data_dir, download_missing=download_missing, timeout=timeout, progress=progress)
    if name == "cifar10":
        train, test = load_cifar10(**where)
        return LoadedData(train, test, "CIFAR-10", CIFAR10_MEAN, CIFAR10_STD)
    if name == "fashion-mnist":
        train, test = load_fashion_mnist(**where)
        return LoadedData(train, test, "Fashion-MNIST (28x28 gray padded to 32x32 RGB)",
                          FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    if name == "synthetic":
        train, test = make_synthetic(synthetic_sizes[0], synthetic_sizes[1], seed=synthetic_seed)
        mean, std = (tuple(float(v) for v in a) for a in channel_stats(train.images))
        return LoadedData(train, test, "synthetic shapes", mean, std)
    raise ValueError(f"load_dataset: unknown data set {name!r}; choose from {', '.join(DATASETS)}")
