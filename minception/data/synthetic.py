"""A small synthetic 10-class image set drawn with Pillow, so that training runs without CIFAR-10 (offline).

Each class is a shape: disc, square, triangle, ring, plus, x-cross, stripes, checkerboard, star, dots. Every image
gets random position, size, rotation (within what keeps classes apart: a plus turned by 45 degrees would be an
x-cross, so those two turn by at most 15 degrees), foreground colour, a two-colour gradient background, and
Gaussian pixel noise. Colour therefore says nothing about the class; only shape does. A small convnet learns
it well above chance within an epoch or two, but not perfectly at once: shapes are 7 to 13 pixels in radius
on a 32x32 image, rotated, and noise and low-contrast colour draws blur their edges.

Shapes are drawn at twice the size and averaged down (a box filter), which anti-aliases edges.
Deterministic: the same arguments give the same bytes. The train and test sets come from separate random
streams, so the test set does not depend on ``n_train``.
"""
import math

import numpy as np

from .dataset import ImageSet

CLASS_NAMES = ("disc", "square", "triangle", "ring", "plus", "x_cross", "stripes", "checkerboard", "star", "dots")


def make_synthetic(n_train=5000, n_test=1000, seed=0, image_size=32, noise=12.0):
    """Build ``(train, test)`` ImageSets with the same structure as ``load_cifar10``'s.

    Classes are balanced: every class has ``n // 10`` or ``n // 10 + 1`` images, in a seeded random order.

    Args:
        n_train, n_test: number of images in each set.
        seed: the whole set is a function of it.
        image_size: height and width (32 like CIFAR-10).
        noise: standard deviation of the Gaussian pixel noise, in 0..255 units.

    Shape:
        images: (N, 3, image_size, image_size) uint8; labels: (N,) int64 in 0..9.
    """
    sets = []
    for split, n in enumerate((n_train, n_test)):
        rng = np.random.default_rng([seed, split])
        labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)
        sets.append(ImageSet(render(labels, rng, image_size, noise), labels, CLASS_NAMES))
    return tuple(sets)


def render(labels, rng, image_size=32, noise=12.0):
    """Draw one image per label. Returns uint8 (N, 3, image_size, image_size)."""
    from PIL import Image, ImageDraw

    s = 2 * image_size                                   # supersampled canvas
    out = np.empty((len(labels), image_size, image_size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        fg, bg0, bg1 = _colours(rng)
        img = Image.fromarray(_gradient(s, bg0, bg1, rng.uniform(0, 2 * math.pi)))
        draw = ImageDraw.Draw(img)
        size = rng.uniform(0.22, 0.42) * s               # "radius" of the shape
        margin = size * 0.8
        cx, cy = rng.uniform(margin, s - margin, size=2)
        _SHAPES[label](draw, rng, cx, cy, size, tuple(int(c) for c in fg))
        small = np.asarray(img.resize((image_size, image_size), Image.BOX), dtype=np.float32)
        small += rng.normal(0.0, noise, size=small.shape).astype(np.float32)
        out[i] = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _colours(rng):
    """A foreground colour and two background colours, all at least a visible distance from the foreground."""
    fg = rng.integers(0, 256, size=3)
    while True:
        bg = rng.integers(0, 256, size=(2, 3))
        if np.all(np.linalg.norm(bg - fg, axis=1) > 120):
            return fg, bg[0], bg[1]


def _gradient(s, c0, c1, angle):
    """(s, s, 3) uint8: a linear blend from colour c0 to c1 along direction ``angle``."""
    t = np.linspace(-1.0, 1.0, s)
    proj = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    w = ((proj - proj.min()) / (proj.max() - proj.min()))[..., None]
    return ((1 - w) * c0 + w * c1).astype(np.uint8)


def _rect(cx, cy, w, h, angle):
    """Corners of a w x h rectangle centred on (cx, cy), turned by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in
            ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def _disc(draw, rng, cx, cy, r, fg):
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)


def _square(draw, rng, cx, cy, r, fg):
    draw.polygon(_rect(cx, cy, 1.6 * r, 1.6 * r, rng.uniform(0, math.pi / 2)), fill=fg)


def _triangle(draw, rng, cx, cy, r, fg):
    a = rng.uniform(0, 2 * math.pi)
    draw.polygon([(cx + r * math.cos(a + k * 2 * math.pi / 3), cy + r * math.sin(a + k * 2 * math.pi / 3))
                  for k in range(3)], fill=fg)


def _ring(draw, rng, cx, cy, r, fg):
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fg, width=max(2, int(r * rng.uniform(0.25, 0.4))))


def _cross(draw, cx, cy, r, fg, angle, thickness):
    draw.polygon(_rect(cx, cy, 2 * r, thickness, angle), fill=fg)
    draw.polygon(_rect(cx, cy, thickness, 2 * r, angle), fill=fg)


def _plus(draw, rng, cx, cy, r, fg):
    _cross(draw, cx, cy, r, fg, rng.uniform(-math.pi / 12, math.pi / 12), r * rng.uniform(0.35, 0.55))


def _x_cross(draw, rng, cx, cy, r, fg):
    _cross(draw, cx, cy, r, fg, math.pi / 4 + rng.uniform(-math.pi / 12, math.pi / 12), r * rng.uniform(0.35, 0.55))


def _stripes(draw, rng, cx, cy, r, fg):
    k = int(rng.integers(3, 5))                          # number of stripes
    angle = rng.uniform(-math.pi / 8, math.pi / 8)
    pitch = 2 * r / k
    for j in range(k):
        off = (j - (k - 1) / 2) * pitch                  # offset across the stripes
        draw.polygon(_rect(cx - off * math.sin(angle), cy + off * math.cos(angle), 2 * r, pitch / 2, angle),
                     fill=fg)


def _checkerboard(draw, rng, cx, cy, r, fg):
    k = int(rng.integers(3, 5))
    angle = rng.uniform(0, math.pi / 2)
    cell = 2 * r / k
    c, s = math.cos(angle), math.sin(angle)
    for u in range(k):
        for v in range(k):
            if (u + v) % 2:
                continue
            x, y = (u - (k - 1) / 2) * cell, (v - (k - 1) / 2) * cell
            draw.polygon(_rect(cx + x * c - y * s, cy + x * s + y * c, cell, cell, angle), fill=fg)


def _star(draw, rng, cx, cy, r, fg):
    a = rng.uniform(0, 2 * math.pi)
    pts = []
    for k in range(10):
        rad = r if k % 2 == 0 else r * 0.42
        pts.append((cx + rad * math.cos(a + k * math.pi / 5), cy + rad * math.sin(a + k * math.pi / 5)))
    draw.polygon(pts, fill=fg)


def _dots(draw, rng, cx, cy, r, fg):
    for _ in range(int(rng.integers(4, 8))):
        dx, dy = rng.uniform(-r, r, size=2)
        d = r * rng.uniform(0.15, 0.25)
        draw.ellipse([cx + dx - d, cy + dy - d, cx + dx + d, cy + dy + d], fill=fg)


_SHAPES = (_disc, _square, _triangle, _ring, _plus, _x_cross, _stripes, _checkerboard, _star, _dots)
