"""What is known about the two published checkpoints: where they live, how their inputs must be prepared, which keys
and shapes they hold.

The paper's authors released TF-slim checkpoints (``inception_v4_2016_09_09``, ``inception_resnet_v2_2016_08_30``).
timm converted them to PyTorch layout (NCHW, OIHW convolution kernels, the background class dropped: 1000 classes)
and distributes them on the Hugging Face hub as ``model.safetensors``:

    https://huggingface.co/timm/inception_v4.tf_in1k/resolve/main/model.safetensors          (~171 MB)
    https://huggingface.co/timm/inception_resnet_v2.tf_in1k/resolve/main/model.safetensors   (~224 MB)

The preprocessing numbers are timm's ``pretrained_cfg`` for these two tags (``timm/models/inception_v4.py`` and
``inception_resnet_v2.py``): input 299x299, bicubic resize, centre-crop fraction 0.875 / 0.8975, mean = std = 0.5
(pixels scaled to [-1, 1]). timm's ImageNet accuracies for these weights were measured with exactly that pipeline.

Each file's SHA-256 is pinned here, as the hub publishes it (the Git LFS object id shown under "Git LFS Details" on
``https://huggingface.co/<hub_id>/blob/main/model.safetensors``), with the size the hub lists (in MB, rounded).
The downloader accepts a file only if its bytes hash to the pinned value, never to a hash the server sends along
with the file; every loaded file is also checked key by key and shape by shape against the manifest.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class PretrainedInfo:
    """One published checkpoint.

    Attributes:
        model: the minception builder name (``models.<model>(variant="released")``).
        hub_id: the Hugging Face repository (``timm/<arch>.<tag>``).
        filename: the weights file inside that repository.
        input_size: side of the square network input.
        crop_pct: fraction of the resized image kept by the centre crop (resize shorter side to
            ``floor(input_size / crop_pct)`` first).
        interpolation: Pillow resampling filter used for the resize.
        mean, std: per-channel normalisation of pixels in [0, 1]: ``(x - mean) / std``.
        num_classes: logits produced (timm dropped TF-slim's background class 0).
        manifest: file (next to this module) listing every key and shape of the checkpoint.
        sha256: the file's published SHA-256 (hex). None: unknown, and the downloader refuses to fetch the file
            unless the caller passes the expected hash.
        size_mb: the file's size as the hub lists it, in MB (10**6 bytes), rounded; a download stops when the
            server sends more than that (see ``max_bytes``).
    """
    model: str
    hub_id: str
    crop_pct: float
    filename: str = "model.safetensors"
    input_size: int = 299
    interpolation: str = "bicubic"
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    num_classes: int = 1000
    sha256: str | None = None
    size_mb: int | None = None
    manifest: str = field(default="")

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hub_id}/resolve/main/{self.filename}"

    @property
    def max_bytes(self) -> int | None:
        """The most bytes a download may bring: the listed size rounded up (None when no size is listed)."""
        return None if self.size_mb is None else int((self.size_mb + 0.5) * 10 ** 6)

    @property
    def page(self) -> str:
        return f"https://huggingface.co/{self.hub_id}"

    @property
    def default_filename(self) -> str:
        """A descriptive local name: ``inception_v4.tf_in1k.safetensors``."""
        return self.hub_id.split("/", 1)[1] + os.path.splitext(self.filename)[1]

    def expected_shapes(self) -> dict:
        """key -> shape tuple for every tensor of the checkpoint (``num_batches_tracked`` left out)."""
        return read_manifest(os.path.join(HERE, self.manifest))


PRETRAINED = {
    # The manifests' tensors take 170,971,936 and 223,616,032 bytes; the num_batches_tracked counters and the JSON
    # header make up the rest of the listed sizes.
    "inception_v4": PretrainedInfo(
        model="inception_v4", hub_id="timm/inception_v4.tf_in1k", crop_pct=0.875,
        sha256="a756a086851c8d5a8de135ec15c76b90ea56cb5aef450e3299107e659e725bb1", size_mb=171,
        manifest="timm_inception_v4_keys.txt"),
    "inception_resnet_v2": PretrainedInfo(
        model="inception_resnet_v2", hub_id="timm/inception_resnet_v2.tf_in1k", crop_pct=0.8975,
        sha256="dbea26b13a5fc8351919fed6a94222c0577ce324b2765fd081a798f837ca9d72", size_mb=224,
        manifest="timm_inception_resnet_v2_keys.txt"),
}


def get_info(model: str) -> PretrainedInfo:
    """The ``PretrainedInfo`` of ``"inception_v4"`` or ``"inception_resnet_v2"``."""
    try:
        return PRETRAINED[model]
    except KeyError:
        raise ValueError(f"no published checkpoint for model {model!r}; known: {sorted(PRETRAINED)}") from None


def read_manifest(path) -> dict:
    """Parse a ``key<TAB>comma-separated shape`` file (``#`` lines are comments) into key -> shape tuple."""
    shapes = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            key, shape = line.split("\t")
            shapes[key] = tuple(int(d) for d in shape.split(",")) if shape else ()
    return shapes
