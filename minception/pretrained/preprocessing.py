"""Inception preprocessing as timm applies it for the ``tf_in1k`` Inception checkpoints, with Pillow and NumPy.

The network sees a 299x299 RGB image with pixels in [-1, 1]. timm's evaluation transform
(``timm.data.transforms_imagenet_eval`` with the checkpoint's ``pretrained_cfg``) gets there in four steps::

    1. resize   the shorter side to  scale = floor(299 / crop_pct)   (341 for Inception-v4, crop_pct 0.875;
                                                                      333 for Inception-ResNet-v2, crop_pct 0.8975)
                the longer side to   int(scale * long / short)        (aspect ratio kept, truncated)
                with Pillow's bicubic filter (Pillow antialiases when it shrinks)
    2. crop     the centre 299x299: top = round((H - 299) / 2), left = round((W - 299) / 2)
                (Python's round: halves go to the even neighbour)
    3. scale    uint8 -> float32, divided by 255                       -> [0, 1]
    4. normalise (x - 0.5) / 0.5                                       -> [-1, 1]

and lays the result out as NCHW. Steps 1-2 are torchvision's ``Resize(int)`` and ``CenterCrop`` on a PIL image,
which call the same Pillow functions as here, so the same Pillow version gives the same bytes.

TF-slim's own evaluation pipeline (``inception_preprocessing.preprocess_for_eval``) differs slightly: it crops the
central 87.5% first and then resizes bilinearly to 299. The checkpoints score about the same either way; timm's is
reproduced here because the goal is to match timm's logits exactly.

    from minception.pretrained import preprocess
    x = preprocess("cat.jpg", "inception_v4")          # float32 (1, 3, 299, 299)
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["preprocess", "inception_preprocess", "resize_shorter_side", "center_crop", "to_normalized_array"]

_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST", "lanczos": "LANCZOS"}


def _pil():
    from PIL import Image
    return Image


def _open_rgb(image):
    """A path, a PIL image or an (H, W, 3) uint8 array -> an RGB PIL image."""
    Image = _pil()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"preprocess: an array image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return Image.fromarray(image, "RGB")
    if not isinstance(image, Image.Image):
        with Image.open(image) as f:
            image = f.convert("RGB")         # loads the pixels before the file closes
    return image if image.mode == "RGB" else image.convert("RGB")


def resize_shorter_side(image, size, interpolation="bicubic"):
    """Resize so that the shorter side is ``size``, keeping the aspect ratio (torchvision's ``Resize(int)`` rule).

    The longer side becomes ``int(size * long / short)`` (truncated). An image already of that size is returned as is.

    Args:
        image: PIL image, W x H.
        size: target length of the shorter side.
        interpolation: "bicubic", "bilinear", "nearest" or "lanczos".
    Returns:
        PIL image.
    """
    if interpolation not in _FILTERS:
        raise ValueError(f"resize_shorter_side: interpolation must be one of {sorted(_FILTERS)}, got {interpolation!r}")
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return image
    Image = _pil()
    resampling = getattr(Image, "Resampling", Image)          # Pillow >= 9.1 has the enum; older keeps the names
    return image.resize((new_w, new_h), getattr(resampling, _FILTERS[interpolation]))


def center_crop(image, size):
    """Cut the central ``size x size`` square (torchvision's ``CenterCrop`` offsets, Python ``round``).

    Args:
        image: PIL image at least ``size`` on each side.
    Returns:
        PIL image, size x size.
    """
    w, h = image.size
    if w < size or h < size:
        raise ValueError(f"center_crop: image {w}x{h} is smaller than the {size}x{size} crop")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def to_normalized_array(image, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """RGB PIL image (W x H) -> float32 ``(3, H, W)`` array ``(pixel / 255 - mean) / std``, in float32 throughout
    (the same rounding as torchvision's ``ToTensor`` + ``Normalize``)."""
    x = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = np.ascontiguousarray(x.transpose(2, 0, 1))
    m = np.asarray(mean, np.float32).reshape(3, 1, 1)
    s = np.asarray(std, np.float32).reshape(3, 1, 1)
    return (x - m) / s


def inception_preprocess(image, input_size=299, crop_pct=0.875, interpolation="bicubic",
                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """Resize, centre-crop and normalise one image for an Inception network.

    Args:
        image: a file path, a PIL image (any mode; converted to RGB) or an ``(H, W, 3)`` uint8 array.
        input_size: side of the square crop.
        crop_pct: the crop keeps this fraction of the resized shorter side; the resize target is
            ``math.floor(input_size / crop_pct)``. Must be in (0, 1].
        interpolation: resize filter.
        mean, std: per-channel normalisation of [0, 1] pixels.
    Returns:
        float32 array, Shape: ``(1, 3, input_size, input_size)``.
    """
    if not 0 < crop_pct <= 1:
        raise ValueError(f"inception_preprocess: crop_pct must be in (0, 1], got {crop_pct}")
    img = _open_rgb(image)
    scale = math.floor(input_size / crop_pct)
    img = resize_shorter_side(img, scale, interpolation)
    img = center_crop(img, input_size)
    return to_normalized_array(img, mean, std)[None]


def preprocess(image, model="inception_v4"):
    """Preprocess ``image`` exactly as timm does for the named published checkpoint.

    Args:
        image: path, PIL image or (H, W, 3) uint8 array.
        model: ``"inception_v4"`` (crop 0.875) or ``"inception_resnet_v2"`` (crop 0.8975).
    Returns:
        float32 array, Shape: ``(1, 3, 299, 299)``, values in [-1, 1].
    """
    from .catalog import get_info

    info = get_info(model)
    return inception_preprocess(image, info.input_size, info.crop_pct, info.interpolation, info.mean, info.std)
