"""Published weights for the released networks: read timm's checkpoints with NumPy, preprocess images as timm does,
name the 1000 ImageNet classes.

    from minception import models
    from minception.pretrained import load_timm_weights, preprocess, imagenet_classes
    model = load_timm_weights(models.inception_v4(variant="released"), "inception_v4.tf_in1k.safetensors").eval()
    x = preprocess("photo.jpg", "inception_v4")                  # float32 (1, 3, 299, 299) in [-1, 1]

Files: ``safetensors.py`` (the file format), ``timm_weights.py`` (key/shape checks and loading), ``preprocessing.py``,
``torch_pickle.py`` (torch.save files without torch), ``imagenet_classes.py`` (+ ``imagenet_classes.txt``), ``catalog.py`` (URLs, crop fractions, key manifests
``timm_*_keys.txt``), ``download.py`` (fetch from the Hugging Face hub and verify).
"""
from . import imagenet_classes
from .catalog import PRETRAINED, PretrainedInfo, get_info
from .download import DownloadError, default_weights_path, download_weights, where_to_get
from .preprocessing import ImageError, inception_preprocess, preprocess
from .safetensors import load_file as load_safetensors, save_file as save_safetensors
from .timm_weights import WeightsError, check_keys, load_timm_weights, read_weights, verify_checkpoint

__all__ = ["load_timm_weights", "read_weights", "check_keys", "verify_checkpoint", "WeightsError",
           "preprocess", "inception_preprocess", "ImageError", "imagenet_classes", "PRETRAINED", "PretrainedInfo",
           "get_info",
           "download_weights", "default_weights_path", "where_to_get", "DownloadError",
           "load_safetensors", "save_safetensors"]
