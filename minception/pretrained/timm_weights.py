"""Load timm's converted Inception weights into minception's released models, with NumPy only.

    from minception import models
    from minception.pretrained import load_timm_weights
    model = models.inception_v4(variant="released")            # or inception_resnet_v2(variant="released")
    load_timm_weights(model, "inception_v4.tf_in1k.safetensors")
    model.eval()

The released models name their submodules so that ``model.state_dict()`` has exactly timm's keys
(``features.0.conv.weight``, ``repeat_1.3.conv2d.bias``, ``classif.weight``, ...) with exactly timm's shapes: both
sides are NCHW with ``(out, in, kh, kw)`` kernels and ``(out, in)`` linear weights, so loading is a one-to-one copy
with no transposes. Every key and every shape is checked before anything is copied; a bad file changes nothing.

Accepted files: ``.safetensors`` (what the hub serves), ``.npz`` (e.g. ``np.savez(f, **state_dict)`` from a
NumPy export of the same state dict), and ``.pth``/``.pt``/``.bin`` written by ``torch.save(model.state_dict())``
(read by a restricted unpickler that never imports torch nor runs code from the file). ``num_batches_tracked`` (a BatchNorm counter PyTorch saves) is ignored when the
model has no such buffer and kept as the model has it when the file lacks it; it never affects eval-mode outputs.
"""
from __future__ import annotations

import os

import numpy as np

from ..files.npz import NpzError, read_npz
from . import safetensors as _st

__all__ = ["read_weights", "load_timm_weights", "check_keys", "verify_checkpoint", "WeightsError"]

# state that is not a weight, which timm's files lack: BN's counter and nn.Dropout's random stream
_COUNTER = ("num_batches_tracked", "rng_state")


class WeightsError(ValueError):
    """A weights file that cannot be read, or whose keys or shapes do not match what is expected."""


def read_weights(path) -> dict:
    """Read a weights file into ``{key: numpy array}``.

    Args:
        path: ``.safetensors``, ``.npz``, or a zip-format ``torch.save(state_dict)`` file (``.pth``, ``.pt``,
            ``.bin``; read without torch by ``torch_pickle``).
    Raises:
        FileNotFoundError: no such file.
        WeightsError: an unknown extension, a path that is not a regular file (a FIFO, a device, a directory, a
            socket: refused before a byte is read, never waited on), or a file that is not valid in its format.
            Each reader opens the path once and bounds what it allocates by the file's size (see the readers).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".safetensors":
        try:
            return _st.load_file(path)
        except _st.SafetensorsError as e:
            raise WeightsError(str(e)) from None
    if ext == ".npz":
        try:
            return read_npz(path)      # the checked reader: no pickles, no sizes taken on trust
        except NpzError as e:
            raise WeightsError(str(e)) from None
    if ext in (".pth", ".pt", ".bin"):
        from .torch_pickle import TorchPickleError, load_torch_state_dict
        try:
            return load_torch_state_dict(path)
        except TorchPickleError as e:
            raise WeightsError(str(e)) from None
    raise WeightsError(f"{path}: unknown weights format {ext!r}; expected .safetensors (as the Hugging Face hub "
                       f"serves timm's weights), .npz, or a torch.save state dict (.pth, .pt, .bin)")


def check_keys(expected: dict, state: dict):
    """Compare a state dict against expected shapes.

    Args:
        expected: key -> shape (tuple) that the receiver needs.
        state: key -> array (anything with ``.shape``) that the file holds.
    Returns:
        ``(missing, unexpected, mismatched)``: sorted key lists; ``mismatched`` holds
        ``(key, file_shape, expected_shape)`` tuples. ``num_batches_tracked`` keys count on neither side.
    """
    def counted(keys):
        return {k for k in keys if not k.endswith(_COUNTER)}

    exp, got = counted(expected), counted(state)
    missing = sorted(exp - got)
    unexpected = sorted(got - exp)
    mismatched = sorted((k, tuple(np.shape(state[k])), tuple(expected[k])) for k in exp & got
                        if tuple(np.shape(state[k])) != tuple(expected[k]))
    return missing, unexpected, mismatched


def _report(source, target, missing, unexpected, mismatched, limit=20):
    def listing(items):
        shown = ", ".join(items[:limit])
        return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")

    lines = [f"cannot load {source} into {target}: {len(missing)} missing, {len(unexpected)} unexpected, "
             f"{len(mismatched)} mis-shaped keys"]
    if missing:
        lines.append(f"  missing (the model has them, the file does not): {listing(missing)}")
    if unexpected:
        lines.append(f"  unexpected (the file has them, the model does not): {listing(unexpected)}")
    if mismatched:
        lines.append("  mis-shaped: " + listing([f"{k} file {a} vs model {b}" for k, a, b in mismatched]))
    # The two mistakes people actually make, named:
    if missing and unexpected and len(missing) > len(mismatched):
        lines.append("  hint: timm's weights need the released architecture: build the model with "
                     "variant=\"released\" (and width=1.0, the default blocks).")
    elif mismatched:
        if all(k.rsplit(".", 1)[0] in ("last_linear", "classif") for k, _, _ in mismatched):
            lines.append("  hint: only the classifier differs: timm's ImageNet weights have num_classes=1000.")
        else:
            lines.append("  hint: shapes differ inside the network: was the model built with width=1.0?")
    return "\n".join(lines)


def load_timm_weights(model, path, strict=True):
    """Fill a released minception model with timm's weights (parameters and batch-norm running statistics).

    Args:
        model: ``models.inception_v4(variant="released")`` or ``models.inception_resnet_v2(variant="released")``
            (any ``nn.Module`` whose state-dict keys are timm's works).
        path: a ``.safetensors``, ``.npz`` or ``.pth`` file with timm's keys, or an already loaded ``{key: array}`` dict.
        strict: when False, keys present on one side only are reported, not an error (shapes must still agree).
    Returns:
        the model (for chaining: ``load_timm_weights(m, f).eval()``).
    Raises:
        minception.nn.state.StateDictError (a KeyError and a ValueError): missing, unexpected or mis-shaped keys;
            the message lists all three groups and nothing has been copied.
        FileNotFoundError, WeightsError: the file cannot be found or read.
    """
    from minception.nn.state import StateDictError

    source = "the given state dict" if isinstance(path, dict) else os.fspath(path)
    state = path if isinstance(path, dict) else read_weights(path)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing, unexpected, mismatched = check_keys(expected, state)
    if mismatched or (strict and (missing or unexpected)):
        message = _report(source, type(model).__name__, missing, unexpected, mismatched)
        raise StateDictError(message, missing, unexpected, mismatched)
    # Keys on both sides only: counters the model lacks are dropped, counters the file lacks stay as they are.
    model.load_state_dict({k: np.asarray(v) for k, v in state.items() if k in expected}, strict=False)
    return model


def verify_checkpoint(path, model_name) -> dict:
    """Check a downloaded checkpoint structurally (every key and shape of the published file), without a model.

    Args:
        path: the file.
        model_name: ``"inception_v4"`` or ``"inception_resnet_v2"``.
    Returns:
        the loaded ``{key: array}`` (so the caller need not read 200 MB twice).
    Raises:
        WeightsError: the message lists missing, unexpected and mis-shaped keys.
    """
    from .catalog import get_info

    info = get_info(model_name)
    state = read_weights(path)
    missing, unexpected, mismatched = check_keys(info.expected_shapes(), state)
    if missing or unexpected or mismatched:
        raise WeightsError(_report(os.fspath(path), f"timm's {info.hub_id} layout", missing, unexpected, mismatched))
    bad = [k for k, v in state.items() if not k.endswith(_COUNTER) and not np.all(np.isfinite(v))]
    if bad:
        raise WeightsError(f"{path}: non-finite values in {len(bad)} tensors, e.g. {bad[:5]} (corrupt download?)")
    return state
