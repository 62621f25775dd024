"""Data: CIFAR-10 and Fashion-MNIST (read or download), a synthetic offline stand-in, batch transforms and the
DataLoader.

Typical use::

    try:
        train, test = data.load_cifar10()              # data_dir=..., or $MINCEPTION_DATA
    except data.DatasetUnavailable as e:
        print(f"CIFAR-10 unavailable ({e}); training on the synthetic shapes set instead")
        train, test = data.make_synthetic(5000, 1000, seed=0)
    loader = data.DataLoader(train, batch_size=64, shuffle=True, drop_last=True,
                             transform=data.standard_augmentation(padding=4), seed=0)
    for x, y in loader:       # x: float32 (64, 3, 32, 32), y: int64 (64,)
        ...

Or by name (what the examples' ``--dataset`` does)::

    train, test, description, mean, std = data.load_dataset("fashion-mnist")   # or "cifar10", "synthetic"

All image sets are ``ImageSet(images uint8 (N, 3, H, W), labels int64 (N,), class_names)``.
"""
from .cifar10 import (ChecksumError, CorruptDataset, DatasetError, DatasetUnavailable, load_cifar10,
                      read_cifar10)
from .by_name import DATASETS, LoadedData, load_dataset
from .dataset import ImageSet
from .fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist, read_fashion_mnist
from .idx import read_idx, write_idx
from .loader import DataLoader
from .synthetic import make_synthetic
from .transforms import (CIFAR10_MEAN, CIFAR10_STD, Compose, RandomCrop, RandomFlip, channel_stats, normalize,
                         random_crop, random_flip, standard_augmentation)

__all__ = ["ImageSet", "load_cifar10", "read_cifar10", "DatasetError", "DatasetUnavailable", "ChecksumError",
           "CorruptDataset", "make_synthetic", "DataLoader", "CIFAR10_MEAN", "CIFAR10_STD", "normalize",
           "channel_stats", "random_crop", "random_flip", "RandomCrop", "RandomFlip", "Compose",
           "standard_augmentation", "load_fashion_mnist", "read_fashion_mnist", "FASHION_MNIST_MEAN",
           "FASHION_MNIST_STD", "read_idx", "write_idx", "load_dataset", "LoadedData", "DATASETS"]
