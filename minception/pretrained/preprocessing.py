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

An image file is untrusted input, and its size is what costs memory: a 196-byte PNG can claim to be 1 x 60000
pixels (which step 1 would resize to 341 x 20,460,000), and a 1 MB one 30000 x 30000. So a path is opened as a
regular file only (``open_regular``), its header is read first (Pillow's ``Image.open`` decodes nothing yet), and
the size is checked before a pixel is decoded: no side of 0, at most ``MAX_PIXELS`` pixels, and the longer side
at most ``MAX_ASPECT_RATIO`` times the shorter (which bounds the resize). Reading a path then takes at most
about 7 bytes per pixel (the decoded image, at most 4 a pixel, and its RGB copy; 630 MB at the cap) plus the
resized image (at most 17 MB). Anything that goes wrong with the file (missing, not a regular file, not an image,
truncated, damaged) is an ``ImageError`` naming the path, in one line.
"""
from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np

from minception.files.regular import open_regular
from minception.files.shorten import shorten

__all__ = ["preprocess", "inception_preprocess", "resize_shorter_side", "center_crop", "to_normalized_array",
           "ImageError", "check_image_size", "MAX_PIXELS", "MAX_ASPECT_RATIO"]

_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST", "lanczos": "LANCZOS"}

#: the most pixels an image may have: Pillow's own default ``Image.MAX_IMAGE_PIXELS`` (above it Pillow warns of a
#: decompression bomb), checked here whatever the process set that to (nothing here changes Pillow's setting).
MAX_PIXELS = 89_478_485
#: the longer side may be at most this many times the shorter: the resize makes the shorter side 341 (or 333), so
#: the resized image is at most 341 x 17,050 pixels (17 MB). Panoramas reach about 12:1.
MAX_ASPECT_RATIO = 50


class ImageError(ValueError):
    """An image that cannot be used: not a regular file, not an image, damaged, empty, too large or too narrow."""


def _pil():
    from PIL import Image
    return Image


def check_image_size(width, height, what="image"):
    """Raise ``ImageError`` unless a ``width`` x ``height`` image can be preprocessed in bounded memory: both sides
    at least 1, at most ``MAX_PIXELS`` pixels, the longer side at most ``MAX_ASPECT_RATIO`` times the shorter."""
    if width < 1 or height < 1:
        raise ImageError(f"{what} is {width} x {height} pixels: it has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{what} is {width} x {height} pixels: more than the {MAX_PIXELS:,} allowed")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"{what} is {width} x {height} pixels: the longer side may be at most "
                         f"{MAX_ASPECT_RATIO} times the shorter")


def _read_image(path):
    """The image file at ``path`` as an RGB PIL image, its size checked before its pixels are decoded."""
    with open_regular(path, "image", ImageError) as (f, _):
        return _decode(f, f"image {shorten(os.fspath(path), 200)}")


def _decode(f, what):
    """The image in the binary file ``f`` as an RGB PIL image (``what`` names it in errors)."""
    Image = _pil()
    try:
        with warnings.catch_warnings():               # Pillow's bomb warning: refused below, saying the limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(f)
    except Image.DecompressionBombError as e:         # Pillow's own limit (twice Image.MAX_IMAGE_PIXELS)
        found = re.findall(r"\d+", str(e))[:2]       # "Image size (N pixels) exceeds limit of M pixels"
        said = (f"{int(found[0]):,} pixels, more than the {int(found[1]):,} Pillow allows" if len(found) == 2
                else _said(e))
        raise ImageError(f"{what} is too large: {said}") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{what} is not an image (not in any format Pillow reads)") from None
    except Exception as e:                            # noqa: BLE001 -- Pillow's plugins raise many kinds
        raise ImageError(f"{what} is not an image Pillow can read: {_said(e)}") from None
    with image:
        check_image_size(*image.size, what=what)
        try:
            return image.convert("RGB")               # decodes the pixels (a copy: the file closes after this)
        except Exception as e:                        # noqa: BLE001 -- truncated or damaged data, in any plugin
            raise ImageError(f"{what} is damaged: {_said(e)}") from None


def _said(error):
    """``Type: message`` of an exception, one line of at most about 100 characters."""
    try:
        text = " ".join(str(error).split())
    except Exception:                                 # noqa: BLE001
        text = ""
    text = text if len(text) <= 100 else text[:97] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _open_rgb(image):
    """A path, a PIL image or an (H, W, 3) uint8 array -> an RGB PIL image."""
    Image = _pil()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"preprocess: an array image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        check_image_size(image.shape[1], image.shape[0], "the array image")
        return Image.fromarray(image, "RGB")
    if hasattr(image, "read"):                        # an open binary file, as Image.open takes
        return _decode(image, "the image file")
    if not isinstance(image, Image.Image):
        return _read_image(image)
    check_image_size(*image.size)
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
    check_image_size(w, h)                    # bounds the resized image: at most size x (MAX_ASPECT_RATIO * size)
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
