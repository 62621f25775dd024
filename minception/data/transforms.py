"""Batch transforms for NCHW image batches: random crop with padding, horizontal flip, per-channel normalisation.

Each random transform takes the whole batch and a ``numpy.random.Generator`` and draws all its random numbers
for the batch at once, so a batch costs a few array operations, not a Python loop over images, and the same
generator state gives the same result. Augmentation works on the uint8 images (zero padding is then black, as
in the usual CIFAR recipe); ``normalize`` turns them into float32 afterwards.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: CIFAR-10 training-set per-channel mean and standard deviation (RGB, pixel values scaled to 0..1)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _check_batch(name, images):
    if images.ndim != 4:
        raise ValueError(f"{name}: expected a batch (N, C, H, W), got shape {images.shape}")


def random_crop(images, padding, rng, fill=0):
    """Pad each image by ``padding`` on every side, then cut a random window of the original size.

    Equivalent to, for each image n: ``pad(images[n])[:, oy:oy+H, ox:ox+W]`` with ``oy, ox`` uniform in
    ``0..2*padding``. Vectorised: a strided view lists every window position, and one fancy index picks each
    image's window.

    Args:
        images: (N, C, H, W) array (any dtype).
        padding: pixels added on each side (4 for CIFAR).
        rng: numpy Generator.
        fill: value of the padded border.

    Shape:
        images: (N, C, H, W) -> (N, C, H, W).
    """
    _check_batch("random_crop", images)
    if padding < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {padding}")
    n, _, h, w = images.shape
    offsets = rng.integers(0, 2 * padding + 1, size=(2, n))
    if padding == 0:
        return images.copy()
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))        # (N, C, 2p+1, 2p+1, H, W), a view
    return windows[np.arange(n), :, offsets[0], offsets[1]]             # (N, C, H, W), a copy


def random_flip(images, rng, p=0.5):
    """Mirror each image left-right with probability ``p``.

    Shape:
        images: (N, C, H, W) -> (N, C, H, W).
    """
    _check_batch("random_flip", images)
    flip = rng.random(images.shape[0]) < p
    out = images.copy()
    out[flip] = images[flip, :, :, ::-1]
    return out


def normalize(images, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """uint8 images -> float32 ``(images / 255 - mean) / std`` per channel (mean and std in 0..1 units).

    ``mean=None, std=None`` only scales to 0..1.

    Shape:
        images: (N, C, H, W) uint8 -> (N, C, H, W) float32; mean, std: (C,).
    """
    _check_batch("normalize", images)
    c = images.shape[1]
    mean = np.zeros(c) if mean is None else np.asarray(mean, dtype=np.float64)
    std = np.ones(c) if std is None else np.asarray(std, dtype=np.float64)
    if mean.shape != (c,) or std.shape != (c,):
        raise ValueError(f"normalize: mean and std must have shape ({c},) for {c} channels, got "
                         f"{mean.shape} and {std.shape}")
    if np.any(std <= 0):
        raise ValueError(f"normalize: std must be > 0, got {std}")
    # one multiply-add: x * (1 / (255 std)) - mean / std
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(1, c, 1, 1)
    shift = (-mean / std).astype(np.float32).reshape(1, c, 1, 1)
    out = images.astype(np.float32)
    out *= scale
    out += shift
    return out


def channel_stats(images, chunk=5000):
    """Per-channel mean and standard deviation of uint8 images, in 0..1 units (for ``normalize``).

    Sums the values and their squares as exact integers (squares of uint8 fit in uint16, sums in uint64),
    a chunk of images at a time, so there is no rounding and no float copy of the whole set.

    Shape:
        images: (N, C, H, W) uint8 -> mean (C,), std (C,) float64.
    """
    _check_batch("channel_stats", images)
    if images.dtype != np.uint8:
        raise ValueError(f"channel_stats: expected uint8 images, got {images.dtype}")
    total = np.zeros(images.shape[1], np.uint64)
    total_sq = np.zeros(images.shape[1], np.uint64)
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk]
        total += x.sum(axis=(0, 2, 3), dtype=np.uint64)
        sq = x.astype(np.uint16)
        sq *= sq
        total_sq += sq.sum(axis=(0, 2, 3), dtype=np.uint64)
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    return mean / 255.0, np.sqrt(var) / 255.0


class RandomCrop:
    """``random_crop`` as a callable ``(images, rng) -> images``."""

    def __init__(self, padding=4, fill=0):
        self.padding, self.fill = padding, fill

    def __call__(self, images, rng):
        return random_crop(images, self.padding, rng, self.fill)

    def __repr__(self):
        return f"RandomCrop(padding={self.padding}, fill={self.fill})"


class RandomFlip:
    """``random_flip`` as a callable ``(images, rng) -> images``."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, images, rng):
        return random_flip(images, rng, self.p)

    def __repr__(self):
        return f"RandomFlip(p={self.p})"


class Compose:
    """Apply transforms ``(images, rng) -> images`` in order, with the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng):
        for t in self.transforms:
            images = t(images, rng)
        return images

    def __repr__(self):
        return f"Compose({self.transforms!r})"


def standard_augmentation(padding=4, flip=True):
    """The usual CIFAR training augmentation: random crop with ``padding``, then a random horizontal flip."""
    return Compose([RandomCrop(padding)] + ([RandomFlip()] if flip else []))
