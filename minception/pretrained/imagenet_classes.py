"""The 1000 ImageNet-1k classes, in the index order of the standard label set (the one timm and the converted
Inception checkpoints use: WordNet ids sorted, ``n01440764`` = 0 ... ``n15075141`` = 999).

``imagenet_classes.txt`` (next to this file) holds one line per class: ``<WordNet id><TAB><WordNet lemmas>``, e.g.
``n02123045<TAB>tabby, tabby cat``. It was generated from timm's ``timm/data/_info/imagenet_synsets.txt`` and
``imagenet_synset_to_lemma.txt`` (Apache-2.0), the lists timm itself uses to name these classes.

    from minception.pretrained import imagenet_classes
    imagenet_classes.class_name(207)          # 'golden retriever'
    imagenet_classes.class_name(281)          # 'tabby, tabby cat'
    imagenet_classes.short_name(281)          # 'tabby'
"""
from __future__ import annotations

import functools
import os

__all__ = ["class_names", "class_name", "short_name", "synsets", "NUM_CLASSES"]

NUM_CLASSES = 1000
_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")


@functools.lru_cache(maxsize=1)
def _table():
    rows = []
    with open(_PATH, encoding="utf-8") as f:
        for line in f:
            wnid, lemmas = line.rstrip("\n").split("\t")
            rows.append((wnid, lemmas))
    if len(rows) != NUM_CLASSES:
        raise RuntimeError(f"{_PATH} has {len(rows)} classes, expected {NUM_CLASSES} (damaged installation?)")
    return tuple(rows)


def class_names() -> list:
    """All 1000 names (the full WordNet lemma list of each class), index order."""
    return [lemmas for _, lemmas in _table()]


def synsets() -> list:
    """All 1000 WordNet ids (``n01440764`` ...), index order."""
    return [wnid for wnid, _ in _table()]


def _check(index):
    if not 0 <= int(index) < NUM_CLASSES:
        raise IndexError(f"ImageNet class index must be in [0, {NUM_CLASSES}), got {index}")
    return int(index)


def class_name(index) -> str:
    """The full name of class ``index``, e.g. ``'tench, Tinca tinca'``.

    Unique except for ``'crane'`` (134, the bird n02012849; 517, the machine n03126707): use ``synsets()`` to tell them
    apart.
    """
    return _table()[_check(index)][1]


def short_name(index) -> str:
    """The first lemma only, e.g. ``'tench'``. Not unique: 638 and 639 are both 'maillot'."""
    return class_name(index).split(", ")[0]
