"""Fetch a published checkpoint from the Hugging Face hub (standard library only) and check it.

    from minception.pretrained import download_weights, where_to_get
    path = download_weights("inception_v4")        # ~/.cache/minception/inception_v4.tf_in1k.safetensors
    print(where_to_get("inception_v4"))            # one line: the URL and where to put the file

Checks, in order:
1. SHA-256. The hub stores weights with Git LFS; its answer to a HEAD request on the ``resolve`` URL (before the
   redirect to the CDN) carries the file's SHA-256 in ``X-Linked-Etag``. When the hub sends it (or the caller passes
   ``sha256=``), the downloaded bytes must hash to it. When neither is available the check is skipped, and a note says so.
2. Structure. Every key and shape of the file must be those of the published checkpoint (the manifest shipped with
   the package), and every value finite.
The file is written to ``<name>.part.safetensors`` and renamed only after both checks pass.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request

from .catalog import get_info
from .timm_weights import verify_checkpoint

__all__ = ["download_weights", "default_weights_path", "where_to_get", "DownloadError", "sha256_of"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


class DownloadError(RuntimeError):
    """The weights could not be fetched (no network, HTTP error) or failed verification."""


def default_weights_path(model_name) -> str:
    """``$MINCEPTION_CACHE`` (default ``~/.cache/minception``) / ``<arch>.tf_in1k.safetensors``."""
    root = os.environ.get("MINCEPTION_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minception")
    return os.path.join(root, get_info(model_name).default_filename)


def where_to_get(model_name, dest=None, reason=None) -> str:
    """One line telling a person where to get the weights file by hand and where to put it.

    ``reason``: why it is needed (e.g. the download error), inserted after "not found".
    """
    info = get_info(model_name)
    dest = dest or default_weights_path(model_name)
    why = f" ({reason})" if reason else ""
    return (f"weights for {model_name} not found{why}: download {info.url} (model card: {info.page}) "
            f"and save it as {dest} (or pass the file's path)")


def sha256_of(path, chunk=1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _published_sha256(url, timeout):
    """The SHA-256 the server publishes for ``url`` (hub: ``X-Linked-Etag`` on the un-redirected HEAD), or None."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        headers = urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout).headers
    except urllib.error.HTTPError as e:          # a refused redirect (302) arrives as an HTTPError with headers
        headers = e.headers
    except (urllib.error.URLError, OSError):
        return None
    for name in ("X-Linked-Etag", "ETag"):
        value = (headers.get(name) or "").strip()
        value = value[2:] if value.startswith("W/") else value
        value = value.strip('"').lower()
        if _HEX64.fullmatch(value):
            return value
    return None


def download_weights(model_name, dest=None, sha256=None, url=None, timeout=30.0, progress=True) -> str:
    """Download the published timm checkpoint for ``model_name`` to ``dest`` and verify it.

    Args:
        model_name: ``"inception_v4"`` or ``"inception_resnet_v2"``.
        dest: target file (default ``default_weights_path(model_name)``); its folder is created.
        sha256: expected hex digest; default: the catalog's, else the one the hub publishes in its headers.
        url: where to fetch from (default: the hub's ``resolve`` URL); a mirror, or a ``file://`` URL in tests.
        timeout: seconds for connecting and for each read.
        progress: print a progress line to stderr.
    Returns:
        ``dest``.
    Raises:
        DownloadError: no network, an HTTP error, a checksum mismatch or a structurally wrong file (the partial
            file is removed).
    """
    info = get_info(model_name)
    dest = os.fspath(dest or default_weights_path(model_name))
    url = url or info.url
    expected = (sha256 or info.sha256 or _published_sha256(url, timeout) or "").lower() or None
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    root, ext = os.path.splitext(dest)
    part = f"{root}.part{ext}"                   # keeps the extension: the reader is chosen by it
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    of = f" of {total / 1e6:.0f}" if total else ""
                    print(f"\rdownloading {info.hub_id}: {done / 1e6:.0f}{of} MB", end="", file=sys.stderr)
        if progress:
            print(file=sys.stderr)
    except (urllib.error.URLError, OSError) as e:
        _remove(part)
        reason = getattr(e, "reason", e)
        raise DownloadError(f"download failed: {reason}") from None

    digest = h.hexdigest()
    if expected is not None and digest != expected:
        _remove(part)
        raise DownloadError(f"{url}: SHA-256 {digest} does not match the published {expected}; file discarded")
    try:
        verify_checkpoint(part, model_name)
    except Exception as e:
        _remove(part)
        raise DownloadError(f"{url}: downloaded file failed the structural check: {e}") from None
    os.replace(part, dest)
    if progress:
        how = f"SHA-256 {digest} matches the hub's" if expected else f"SHA-256 {digest} (no published checksum seen)"
        print(f"saved {dest}: {how}; all keys and shapes as published", file=sys.stderr)
    return dest


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
