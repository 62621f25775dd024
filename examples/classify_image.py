"""Classify a photo with the authors' released Inception-v4 or Inception-ResNet-v2 weights, run by minception.

    python examples/classify_image.py PHOTO [--model inception_v4|inception_resnet_v2] [--weights FILE]

The weights are timm's conversion of the TF-slim checkpoints (``timm/inception_v4.tf_in1k``,
``timm/inception_resnet_v2.tf_in1k`` on the Hugging Face hub, ``model.safetensors``). Without ``--weights`` the
file is looked for in ``~/.cache/minception/`` (or ``$MINCEPTION_CACHE``). A missing file is downloaded when the
network allows it and checked (SHA-256 against the value pinned in ``minception/pretrained/catalog.py``, every key
and shape); otherwise the script prints, in one line, where to get it. ``--no-download`` never touches the network.
A file already in the cache is checked against the same SHA-256 on every run (about a second); a file given with
``--weights`` is used as it is, after the key and shape check.

PHOTO may be omitted: the script then uses ``grace_hopper.jpg``, a sample photo shipped with matplotlib. The photo
is read first, in bounded memory (``minception/pretrained/preprocessing.py`` says how): a file that is not an
image, or a damaged, empty, huge or extremely narrow one, is one line on stderr and exit status 2.

Output: the top-5 ImageNet classes (index, probability, name), one a line, e.g. ``652  0.xxxx  military uniform``.
"""
import argparse
import os
import sys
import time

import numpy as np

from autograd import Tensor, no_grad
from minception import models
from minception.pretrained import (DownloadError, ImageError, WeightsError, default_weights_path, download_weights,
                                   get_info, imagenet_classes, load_timm_weights, preprocess, where_to_get)
from minception.pretrained.download import sha256_of

BUILDERS = {"inception_v4": models.inception_v4, "inception_resnet_v2": models.inception_resnet_v2}


def softmax(logits):
    """(N, C) -> (N, C) probabilities, computed in float64 for stable small values."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sample_photo():
    import matplotlib.cbook
    return matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def resolve_weights(model_name, weights, allow_download):
    """The path of an existing weights file, downloading it if needed and allowed; None (after printing where to
    get it) if there is none."""
    path = weights or default_weights_path(model_name)
    if os.path.exists(path):
        if weights is None and not _is_published_file(model_name, path):
            return None
        return path
    if allow_download:
        try:
            return download_weights(model_name, dest=path)
        except DownloadError as e:
            print(where_to_get(model_name, path, reason=e), file=sys.stderr)
            return None
    print(where_to_get(model_name, path), file=sys.stderr)
    return None


def _is_published_file(model_name, path):
    """True when the file in the cache is the published one (SHA-256 as pinned in the catalog). The cache is where
    downloads go, checked; a file found there that differs was put there by hand, or damaged: say so and stop,
    rather than load it silently. (A file given with --weights is the user's choice and is used as it is.)"""
    expected = get_info(model_name).sha256
    digest = sha256_of(path)
    if expected and digest != expected:
        print(f"{path} is not the published {model_name} file (SHA-256 {digest}, published {expected}): delete it "
              f"to download it again, or pass it with --weights to use it anyway", file=sys.stderr)
        return False
    return True


def classify(model, x, topk=5):
    """Run ``model`` in eval mode on ``x: (1, 3, H, W)``; returns the top-k ``(index, probability)`` pairs."""
    model.eval()
    with no_grad():
        logits = model(Tensor(x)).data
    probs = softmax(np.asarray(logits))[0]
    order = np.argsort(-probs, kind="stable")[:topk]
    return [(int(i), float(probs[i])) for i in order]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", nargs="?", help="image file (default: matplotlib's grace_hopper.jpg)")
    parser.add_argument("--model", choices=sorted(BUILDERS), default="inception_v4")
    parser.add_argument("--weights", help="timm .safetensors (or .npz) file; default: the cache path, downloaded "
                                          "there if missing")
    parser.add_argument("--no-download", action="store_true", help="never use the network")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--width", type=float, default=1.0,
                        help="network width (the published weights need 1.0; other widths load your own files)")
    args = parser.parse_args(argv)

    photo = args.photo or sample_photo()
    try:                                 # the image first: a file that is not one costs no weights download
        x = preprocess(photo, args.model)
    except ImageError as e:              # missing, not a file, not an image, damaged, too large: one line
        print(e, file=sys.stderr)
        return 2
    path = resolve_weights(args.model, args.weights, not args.no_download)
    if path is None:
        return 2

    model = BUILDERS[args.model](variant="released", width=args.width)
    try:
        load_timm_weights(model, path)
    except WeightsError as e:            # a damaged file, or one for another network: one line, not a traceback
        print(f"cannot use the weights: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    top = classify(model, x, args.topk)
    seconds = time.perf_counter() - start

    print(f"{args.model} ({os.path.basename(path)}) on {os.path.basename(photo)}, forward {seconds:.2f} s")
    for index, p in top:
        print(f"{index:4d}  {p:.4f}  {imagenet_classes.class_name(index)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
