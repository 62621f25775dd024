"""Fetch a published checkpoint from the Hugging Face hub (standard library only) and check it.

    from minception.pretrained import download_weights, where_to_get
    path = download_weights("inception_v4")        # ~/.cache/minception/inception_v4.tf_in1k.safetensors
    print(where_to_get("inception_v4"))            # one line: the URL and where to put the file

The bytes go to a temporary ``<dest>.<random>.part.safetensors`` beside ``dest``, which becomes ``dest`` only after
every check passes; on any failure (or Ctrl-C) it is deleted, so ``dest`` never holds a partial or unverified file.
The checks, in order:

1. Transfer. The server must send exactly the ``Content-Length`` it announced and at most the size the catalog
   lists (a broken or endless transfer stops there).
2. SHA-256. The bytes must hash to the value pinned in the catalog (``catalog.PRETRAINED``), or to the ``sha256=``
   the caller passes. A hash sent by the same server would prove nothing, so none is taken from it; with no
   expected hash at all the download is refused.
3. Structure. Every key and shape must be those of the published checkpoint (the manifest shipped with the
   package), and every value finite.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request

from ..files.regular import open_regular
from .catalog import get_info
from .timm_weights import verify_checkpoint

__all__ = ["download_weights", "default_weights_path", "where_to_get", "DownloadError", "sha256_of"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


class DownloadError(RuntimeError):
    """The weights could not be fetched (no network, HTTP error, broken transfer) or failed verification."""


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
    check = f"; its SHA-256 must be {info.sha256}" if info.sha256 else ""
    return (f"weights for {model_name} not found{why}: download {info.url} (model card: {info.page}) "
            f"and save it as {dest} (or pass the file's path){check}")


def sha256_of(path, chunk=1 << 20) -> str:
    """Hex SHA-256 of a file. Only a regular file is read (``open_regular``): a FIFO or ``/dev/zero`` would never
    end. Raises ``DownloadError`` naming the path otherwise."""
    h = hashlib.sha256()
    with open_regular(path, "file", DownloadError) as (f, _):
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _expected_sha256(info, sha256):
    expected = (sha256 or info.sha256 or "").lower()
    if not expected:
        raise DownloadError(f"no SHA-256 is pinned for {info.hub_id}, and a file that cannot be verified is not "
                            f"downloaded: pass the expected hash, download_weights(..., sha256='<64 hex digits>'), "
                            f"taken from {info.page}/blob/main/{info.filename} (\"Git LFS Details\")")
    if not _HEX64.fullmatch(expected):
        raise DownloadError(f"sha256 must be 64 hex digits, got {expected!r}")
    return expected


def _fetch(url, out, timeout, max_bytes, progress, label):
    """Copy the body at ``url`` into the open file ``out``; returns its SHA-256 (hex). Raises ``DownloadError``."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            total = int(announced) if announced is not None and announced.strip().isdigit() else None
            if total is not None and max_bytes is not None and total > max_bytes:
                raise DownloadError(f"{url}: the server announces {total} bytes, more than the {max_bytes} the "
                                    f"published file has; refusing it")
            done = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                done += len(block)
                if max_bytes is not None and done > max_bytes:
                    raise DownloadError(f"{url}: the server sends more than the {max_bytes} bytes the published "
                                        f"file has; refusing it")
                out.write(block)
                h.update(block)
                if progress:
                    of = f" of {total / 1e6:.0f}" if total else ""
                    print(f"\rdownloading {label}: {done / 1e6:.0f}{of} MB", end="", file=sys.stderr)
            if progress:
                print(file=sys.stderr)
            if total is not None and done != total:
                raise DownloadError(f"{url}: the transfer broke off after {done} of {total} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        # URLError/HTTPError, timeouts, resets, IncompleteRead and other malformed responses, a full disk
        reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
        raise DownloadError(f"download failed: {reason}") from None
    return h.hexdigest()


def download_weights(model_name, dest=None, sha256=None, url=None, timeout=30.0, progress=True) -> str:
    """Download the published timm checkpoint for ``model_name`` to ``dest`` and verify it.

    Args:
        model_name: ``"inception_v4"`` or ``"inception_resnet_v2"``.
        dest: target file (default ``default_weights_path(model_name)``); its folder is created.
        sha256: expected hex digest; default: the one pinned in the catalog.
        url: where to fetch from (default: the hub's ``resolve`` URL); a mirror, or a ``file://`` URL in tests.
        timeout: seconds for connecting and for each read.
        progress: print a progress line to stderr.
    Returns:
        ``dest``, which now holds the verified file.
    Raises:
        DownloadError: no expected hash, no network, an HTTP error, a broken or oversized transfer, a checksum
            mismatch or a structurally wrong file. The temporary file is removed; ``dest`` is left as it was.
    """
    info = get_info(model_name)
    expected = _expected_sha256(info, sha256)
    dest = os.fspath(dest or default_weights_path(model_name))
    url = url or info.url
    folder = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, part = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".part" + os.path.splitext(dest)[1],
                                    dir=folder)      # keeps the extension: the reader is chosen by it
    except OSError as e:
        raise DownloadError(f"cannot download {url}: cannot write to {folder}: {e}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, timeout, info.max_bytes, progress, info.hub_id)
        if digest != expected:
            raise DownloadError(f"{url}: SHA-256 {digest} does not match the expected {expected}; file discarded")
        try:
            verify_checkpoint(part, model_name)
        except Exception as e:           # WeightsError, or anything a damaged file provokes: the file is not used
            raise DownloadError(f"{url}: downloaded file failed the structural check: {e}") from None
        os.replace(part, dest)
        part = None
    finally:
        if part is not None:
            _remove(part)
    if progress:
        print(f"saved {dest}: SHA-256 {digest} as published; all keys and shapes as published", file=sys.stderr)
    return dest


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
