"""download_weights against a misbehaving server on 127.0.0.1: every failure is a DownloadError, no temporary file
is left behind, the destination is never written unverified, and only the catalog's pinned SHA-256 (or the
caller's) is trusted, never one the server sends."""
import dataclasses
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from minception.pretrained import catalog, save_safetensors
from minception.pretrained import download as download_mod
from minception.pretrained.download import DownloadError, download_weights


class _Server:
    """A loopback HTTP server answering every GET with ``self.response`` (raw bytes: status line, headers, body)."""

    def __init__(self):
        owner = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests += 1
                self.wfile.write(owner.response)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.response = b""
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/model.safetensors"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def body(tmp_path):
    """A small valid safetensors file's bytes (the structural check is replaced in these tests)."""
    path = tmp_path / "source" / "src.safetensors"
    path.parent.mkdir()
    save_safetensors({"a": np.arange(6, dtype=np.float32)}, path)
    return path.read_bytes()


@pytest.fixture
def no_structure_check(monkeypatch):
    monkeypatch.setattr(download_mod, "verify_checkpoint", lambda path, name: None)


def _pin(monkeypatch, **changes):
    """Replace the catalog entry of inception_v4 by one with ``changes`` (e.g. another sha256 or size)."""
    monkeypatch.setitem(catalog.PRETRAINED, "inception_v4",
                        dataclasses.replace(catalog.PRETRAINED["inception_v4"], **changes))


def _ok(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def _nothing_left(folder):
    return sorted(os.listdir(folder)) == []


def test_the_published_hashes_are_pinned():
    for name in ("inception_v4", "inception_resnet_v2"):
        info = catalog.get_info(name)
        assert len(info.sha256) == 64 and int(info.sha256, 16) >= 0
        assert info.max_bytes > 1e8
    assert catalog.get_info("inception_v4").sha256.startswith("a756a086")
    assert catalog.get_info("inception_resnet_v2").sha256.startswith("dbea26b1")


def test_a_good_transfer_is_saved(server, body, tmp_path, monkeypatch, no_structure_check):
    _pin(monkeypatch, sha256=hashlib.sha256(body).hexdigest())
    server.response = _ok(body)
    dest = tmp_path / "cache" / "w.safetensors"
    assert download_weights("inception_v4", dest, url=server.url, timeout=5, progress=False) == str(dest)
    assert dest.read_bytes() == body and os.listdir(dest.parent) == ["w.safetensors"]


@pytest.mark.parametrize("response, message", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", "IncompleteRead"),   # bad size
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\nonly a few bytes", "IncompleteRead"),  # cut off
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a few bytes", "broke off after 16 of 1000"),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "Not Found"),
    (b"this is not HTTP at all\r\n\r\n", "download failed"),
])
def test_a_broken_transfer_leaves_nothing(server, tmp_path, monkeypatch, response, message):
    _pin(monkeypatch, sha256="0" * 64)
    server.response = response
    dest = tmp_path / "cache" / "w.safetensors"
    with pytest.raises(DownloadError, match=message):
        download_weights("inception_v4", dest, url=server.url, timeout=5, progress=False)
    assert _nothing_left(dest.parent)                      # no w.safetensors, no *.part* file


def test_an_existing_file_survives_a_failed_download(server, tmp_path, monkeypatch):
    _pin(monkeypatch, sha256="0" * 64)
    dest = tmp_path / "w.safetensors"
    dest.write_bytes(b"the previous file")
    server.response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    with pytest.raises(DownloadError):
        download_weights("inception_v4", dest, url=server.url, timeout=5, progress=False)
    assert dest.read_bytes() == b"the previous file" and os.listdir(tmp_path) == ["w.safetensors"]


def test_a_hash_sent_by_the_server_is_not_trusted(server, body, tmp_path, monkeypatch, no_structure_check):
    # The server names the hash of what it sends, as the hub's X-Linked-Etag does; the pinned hash still decides.
    tampered = body[:-1] + b"\x01"
    own_hash = hashlib.sha256(tampered).hexdigest().encode()
    _pin(monkeypatch, sha256=hashlib.sha256(body).hexdigest())
    server.response = _ok(tampered, b'X-Linked-Etag: "%s"\r\nETag: "%s"\r\n' % (own_hash, own_hash))
    dest = tmp_path / "cache" / "w.safetensors"
    with pytest.raises(DownloadError, match="does not match the expected"):
        download_weights("inception_v4", dest, url=server.url, timeout=5, progress=False)
    assert _nothing_left(dest.parent)


def test_without_a_pinned_hash_nothing_is_downloaded(server, body, tmp_path, monkeypatch, no_structure_check):
    _pin(monkeypatch, sha256=None)
    server.response = _ok(body)
    dest = tmp_path / "cache" / "w.safetensors"
    with pytest.raises(DownloadError, match=r"sha256='<64 hex digits>'.*Git LFS Details"):
        download_weights("inception_v4", dest, url=server.url, timeout=5, progress=False)
    assert server.requests == 0 and not dest.exists()
    # The caller's hash is the other way to verify the file.
    download_weights("inception_v4", dest, sha256=hashlib.sha256(body).hexdigest(), url=server.url, timeout=5,
                     progress=False)
    assert dest.read_bytes() == body


@pytest.mark.parametrize("announce", [True, False])
def test_more_bytes_than_the_published_size_are_refused(server, tmp_path, monkeypatch, announce):
    _pin(monkeypatch, size_mb=0)                             # at most 500,000 bytes
    big = b"\0" * 600_000
    server.response = _ok(big) if announce else b"HTTP/1.0 200 OK\r\n\r\n" + big    # HTTP/1.0: ends at close
    with pytest.raises(DownloadError, match="more than the 500000"):
        download_weights("inception_v4", tmp_path / "w.safetensors", url=server.url, timeout=5, progress=False)
    assert _nothing_left(tmp_path)


def test_a_malformed_expected_hash_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="64 hex digits"):
        download_weights("inception_v4", tmp_path / "w.safetensors", sha256="abc", url=(tmp_path / "x").as_uri())
