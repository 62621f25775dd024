"""The in-memory image set that every reader returns: uint8 NCHW images, int64 labels, class names."""
from dataclasses import dataclass

import numpy as np


@dataclass
class ImageSet:
    """A labelled set of images held in memory.

    Attributes:
        images: uint8 array (N, 3, H, W), RGB channel planes (NCHW, the engine's layout; CIFAR's own byte
            order, so reading it is a reshape). Values 0..255.
        labels: int64 array (N,), each in ``range(len(class_names))``.
        class_names: tuple of str, ``class_names[label]`` names a class.

    Shape:
        images: (N, 3, H, W) uint8; labels: (N,) int64.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"ImageSet: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"ImageSet: labels must have shape ({self.images.shape[0]},), got {self.labels.shape}")
        self.labels = self.labels.astype(np.int64, copy=False)
        self.class_names = tuple(self.class_names)

    def __len__(self):
        return len(self.labels)

    @property
    def num_classes(self):
        return len(self.class_names)

    def subset(self, index):
        """A new ImageSet with the items ``index`` selects (a slice, an int array or a boolean mask)."""
        return ImageSet(self.images[index], self.labels[index], self.class_names)

    def balanced_subset(self, per_class, seed=0):
        """``per_class`` random items of every class (fewer if a class has fewer), in a seeded random order."""
        rng = np.random.default_rng(seed)
        picks = [rng.permutation(np.flatnonzero(self.labels == c))[:per_class] for c in range(self.num_classes)]
        return self.subset(rng.permutation(np.concatenate(picks)))

    def __repr__(self):
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return (f"ImageSet({len(self)} images {self.images.shape[1:]}, {self.num_classes} classes, "
                f"{counts.min()}..{counts.max()} per class)")
