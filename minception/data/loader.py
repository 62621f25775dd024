"""Mini-batches over in-memory images: seeded shuffling, augmentation, normalisation, exact resume.

All randomness is a pure function of ``(seed, epoch, batch index)``: the order of epoch ``e`` comes from a
generator seeded with ``[seed, e]``, the augmentation of batch ``b`` from one seeded with ``[seed, e, b]``.
So the loader's whole state is three integers, and a run restored from a checkpoint taken in the middle of an
epoch sees exactly the batches it would have seen without the interruption.
"""
import numpy as np

from ..files.fit import described
from ..files.shorten import shorten

from .dataset import ImageSet
from .transforms import CIFAR10_MEAN, CIFAR10_STD, normalize


def _same_setting(saved, mine):
    """A saved bool or int setting equals ``mine`` (an int is not a bool, nor a float an int)."""
    is_bool = isinstance(saved, (bool, np.bool_))
    if isinstance(mine, bool):
        return is_bool and bool(saved) == mine
    return not is_bool and isinstance(saved, (int, np.integer)) and int(saved) == mine


class DataLoader:
    """Iterate over ``(x, y)`` batches; one ``for`` loop over the loader is one epoch.

    Args:
        data: an ``ImageSet`` or a pair ``(images uint8 (N, C, H, W), labels (N,))``.
        batch_size: images per batch.
        shuffle: a new random order every epoch (otherwise the stored order).
        drop_last: drop the last batch of an epoch when it is smaller than ``batch_size``.
        transform: ``f(images uint8 (B, C, H, W), rng) -> images`` applied to each batch before normalising,
            e.g. ``transforms.standard_augmentation()`` for training, None for evaluation.
        mean, std: per-channel normalisation in 0..1 units (CIFAR-10's by default; ``transforms.channel_stats``
            computes them for another set); both None only scales to 0..1.
        seed: an int, or a ``numpy.random.Generator`` from which one int is drawn once.
        shard: ``(rank, count)`` for data-parallel training (``distributed.DataParallel.shard``): the epoch's
            order is cut into global batches of ``count * batch_size`` images, and rank ``r`` gets the contiguous
            slice ``r*batch_size .. (r+1)*batch_size`` of each, so the ranks' batches, in rank order, are exactly
            the single-process batch of ``count * batch_size``. Needs ``drop_last`` when ``count > 1`` (equal
            shards). Augmentation is drawn for the whole global batch, then sliced, so it is identical too
            (each rank augments ``count`` times the images it keeps; crops and flips of uint8 are cheap).
            ``len()`` counts global batches. Default ``(0, 1)``: no sharding.

    Yields:
        x: float32 (B, C, H, W), C-contiguous; y: int64 (B,).

    Attributes:
        epoch: the epoch the next batch belongs to. ``len(loader)`` is the number of batches per epoch.

    Shape:
        x: (B, C, H, W) float32; y: (B,) int64, with B = batch_size except maybe the last batch.
    """

    def __init__(self, data, batch_size, shuffle=True, drop_last=False, transform=None,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD, seed=0, shard=(0, 1)):
        if isinstance(data, ImageSet):
            images, labels = data.images, data.labels
        else:
            images, labels = data
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"DataLoader: images must be (N, C, H, W), got shape {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"DataLoader: {images.shape[0]} images but labels of shape {labels.shape}")
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be > 0, got {batch_size}")
        rank, count = (int(v) for v in shard)
        if not 0 <= rank < count:
            raise ValueError(f"DataLoader: shard must be (rank, count) with 0 <= rank < count, got {tuple(shard)}")
        if count > 1 and not drop_last:
            raise ValueError(f"DataLoader: sharding over {count} ranks needs drop_last=True (equal shards)")
        global_batch = batch_size * count
        if images.shape[0] == 0 or (drop_last and images.shape[0] < global_batch):
            raise ValueError(f"DataLoader: {images.shape[0]} images give no batch of {global_batch}"
                             f"{' with drop_last' if drop_last else ''}"
                             f"{f' ({count} shards of {batch_size})' if count > 1 else ''}")
        self.images, self.labels = images, labels.astype(np.int64, copy=False)
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.transform, self.mean, self.std = transform, mean, std
        self.shard_rank, self.shard_count = rank, count
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(2 ** 63))
        self.seed = int(seed)
        self.epoch = 0
        self._batch = 0          # index of the next batch within the epoch

    @property
    def global_batch_size(self):
        """Images per step over all shards: ``batch_size * shard count``."""
        return self.batch_size * self.shard_count

    def __len__(self):
        n, g = self.images.shape[0], self.global_batch_size
        return n // g if self.drop_last else -(-n // g)

    def order(self, epoch):
        """The sample indices of ``epoch`` in the order they are served. Shape: (N,) int64."""
        n = self.images.shape[0]
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def batch(self, epoch, index):
        """Batch ``index`` of ``epoch``, computed from scratch (does not move the loader). Returns ``(x, y)``."""
        if not 0 <= index < len(self):
            raise IndexError(f"DataLoader: batch {index} out of range for {len(self)} batches per epoch")
        g = self.global_batch_size
        idx = self.order(epoch)[index * g:(index + 1) * g]
        return self._make_batch(idx, epoch, index)

    def _make_batch(self, idx, epoch, index):
        """Batch ``index`` of ``epoch`` from the sample indices ``idx`` of its global batch (this shard's rows)."""
        mine = slice(self.shard_rank * self.batch_size, (self.shard_rank + 1) * self.batch_size)
        if self.transform is None:
            idx = idx[mine] if self.shard_count > 1 else idx
            images = self.images[idx]
        else:
            images = self.transform(self.images[idx], np.random.default_rng([self.seed, epoch, index]))
            if self.shard_count > 1:
                images, idx = images[mine], idx[mine]
        x = normalize(images, self.mean, self.std)
        return np.ascontiguousarray(x), self.labels[idx]

    def __iter__(self):
        if self._batch >= len(self):          # a finished epoch whose loop was left early: move on
            self.epoch, self._batch = self.epoch + 1, 0
        order = self.order(self.epoch)
        g = self.global_batch_size
        while self._batch < len(self):
            index = self._batch
            idx = order[index * g:(index + 1) * g]
            batch = self._make_batch(idx, self.epoch, index)
            self._batch = index + 1            # so a state_dict taken now resumes after this batch
            yield batch
        self.epoch, self._batch = self.epoch + 1, 0

    # -- resume --------------------------------------------------------------------------------------------
    def state_dict(self):
        """``{"seed", "epoch", "batch", "num_samples", "batch_size", "shuffle", "drop_last", "shards"}`` (all
        ints/bools).

        ``batch`` is the number of batches of ``epoch`` already served; ``shards`` the shard count (the rank is
        not saved: rank 0's state serves every rank).
        """
        return {"seed": self.seed, "epoch": self.epoch, "batch": self._batch, "num_samples": self.images.shape[0],
                "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last,
                "shards": self.shard_count}

    def load_state_dict(self, d):
        """Continue where ``state_dict()`` was taken. The data and batching settings must be the same."""
        self.apply_state_dict(self.check_state_dict(d))

    def check_state_dict(self, d):
        """The first half of ``load_state_dict``: ``(seed, epoch, batch)`` from ``d``, or a ValueError naming
        the field (a setting that differs from this loader's, a count that is not an int >= 0)."""
        owner = "DataLoader.load_state_dict"
        if not isinstance(d, dict):
            raise ValueError(f"{owner}: expected a dict, got a {described(d)}")
        mine = self.state_dict()
        for key in ("num_samples", "batch_size", "shuffle", "drop_last", "shards"):
            if key in d and not _same_setting(d[key], mine[key]):
                raise ValueError(f"{owner}: the checkpoint has {key}={shorten(d[key])}, this loader "
                                 f"has {mine[key]}; batches would not line up")
        numbers = []
        for key in ("seed", "epoch", "batch"):
            value = d.get(key)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{owner}: {key} must be an int >= 0, got {shorten(value)}")
            numbers.append(int(value))
        if numbers[2] > len(self):
            raise ValueError(f"{owner}: batch {numbers[2]} is past the end of an epoch of {len(self)} batches")
        return tuple(numbers)

    def apply_state_dict(self, checked):
        """The second half of ``load_state_dict``: take ``(seed, epoch, batch)``."""
        self.seed, self.epoch, self._batch = checked

    def __repr__(self):
        shard = f", shard={self.shard_rank}/{self.shard_count}" if self.shard_count > 1 else ""
        return (f"DataLoader({self.images.shape[0]} images, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, transform={self.transform!r}, epoch={self.epoch}{shard})")
