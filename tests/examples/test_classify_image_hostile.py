"""``preprocess`` and ``examples/classify_image.py`` on hostile image files: each ends in ``ImageError`` (the
example: one line on stderr, exit status 2), in bounded memory and time, before any weights are looked for.

Each case runs in a child process with an address-space limit and a time limit, so that a regression (a resize
to 341 x 20,460,000, a decode of 900 megapixels, an open that waits on a FIFO) is one failed test.
"""
import os
import resource
import signal
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from hostile import run_limited
from minception.pretrained.preprocessing import (MAX_ASPECT_RATIO, MAX_PIXELS, ImageError, check_image_size,
                                                 preprocess)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "classify_image.py")
MEMORY_MB = 1024
SECONDS = 60


def _png(width, height, rows=None):
    """An 8-bit grey PNG of ``width`` x ``height`` whose pixels are all 0 (``rows``: how many rows the data
    holds; fewer than ``height`` makes a small file whose header still claims the full size)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\0" * (width + 1)          # each row: filter byte 0, then the pixels
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _jpeg(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8)).save(path, quality=90)


def _make(kind, folder):
    """The hostile file of ``kind`` in ``folder``; returns (path, a fragment of the expected message)."""
    if kind == "bomb":                  # 30000 x 30000: Pillow's own limit (twice MAX_IMAGE_PIXELS) refuses it
        path = folder / "bomb.png"
        path.write_bytes(_png(30000, 30000, rows=16))
        return path, "is too large: 900,000,000 pixels"
    if kind == "large":                 # 10000 x 10000, all of it in a 100 KB file: above our cap, below Pillow's
        path = folder / "large.png"
        path.write_bytes(_png(10000, 10000))
        return path, f"is 10000 x 10000 pixels: more than the {MAX_PIXELS:,} allowed"
    if kind == "truncated":
        path = folder / "truncated.jpg"
        _jpeg(folder / "whole.jpg")
        data = (folder / "whole.jpg").read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return path, "is damaged: OSError: image file is truncated"
    if kind == "zero":                  # a 0 x 0 PNG: Pillow does not recognise it as an image
        path = folder / "zero.png"
        path.write_bytes(_png(0, 0))
        return path, "is not an image"
    if kind == "text":
        path = folder / "notes.jpg"
        path.write_text("not an image at all\n")
        return path, "is not an image"
    if kind == "directory":
        path = folder / "photos.jpg"
        path.mkdir()
        return path, "is a directory, not a regular file"
    if kind == "fifo":                  # Image.open(name) would wait forever for a writer
        path = folder / "pipe.png"
        os.mkfifo(path)
        return path, "is a FIFO (named pipe), not a regular file"
    if kind == "narrow":                # 196 bytes that asked for a 341 x 20,460,000 resize (3.6 GB, then dead)
        path = folder / "narrow.png"
        path.write_bytes(_png(1, 60000))
        assert len(path.read_bytes()) < 250
        return path, f"is 1 x 60000 pixels: the longer side may be at most {MAX_ASPECT_RATIO} times the shorter"
    if kind == "missing":
        return folder / "absent.jpg", "cannot open image"
    raise AssertionError(kind)


KINDS = ["bomb", "large", "truncated", "zero", "text", "directory", "fifo", "narrow", "missing"]


@pytest.mark.parametrize("kind", KINDS)
def test_preprocess_refuses_a_hostile_image_in_bounded_memory(kind, tmp_path):
    if kind == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("this system has no FIFOs (os.mkfifo)")
    path, expected = _make(kind, tmp_path)
    result = run_limited("import os\nfrom minception.pretrained import preprocess\n"
                         "preprocess(os.environ['HOSTILE_PATH'])\n",
                         memory_mb=MEMORY_MB, seconds=SECONDS, env={"HOSTILE_PATH": str(path)})
    assert (result.outcome, result.error_type) == ("raised", "ImageError"), result.report()
    assert expected in result.message and str(path.name) in result.message, result.message
    assert "\n" not in result.message


def _limit_memory():
    size = MEMORY_MB << 20
    resource.setrlimit(resource.RLIMIT_AS, (size, size))
    os.setsid()


@pytest.mark.parametrize("kind", ["bomb", "truncated", "text", "directory", "narrow", "missing"])
def test_the_example_says_what_is_wrong_with_the_image_in_one_line(kind, tmp_path):
    """Exit status 2 and one line naming the image, before the weights are looked for (the weights file given
    is absent: the old order said only that)."""
    path, expected = _make(kind, tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, SCRIPT, str(path), "--weights", str(tmp_path / "absent.safetensors"),
                             "--no-download"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_limit_memory)
    try:
        out, err = proc.communicate(timeout=SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {SECONDS} s\n{err[-3000:]}")
    assert proc.returncode == 2, f"exit status {proc.returncode}\n{out}\n{err[-3000:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and path.name in lines[0], err[-3000:]


def test_images_given_in_memory_are_checked_too():
    """A PIL image or an array skips the file checks, not the size checks: the resize stays bounded."""
    with pytest.raises(ImageError, match="1 x 60000 pixels: the longer side may be at most 50 times"):
        preprocess(Image.new("L", (1, 60000)))
    with pytest.raises(ImageError, match="0 x 5 pixels: it has no pixels"):
        preprocess(np.zeros((5, 0, 3), np.uint8))
    check_image_size(MAX_ASPECT_RATIO, 1)                          # the limits themselves are allowed
    check_image_size(9459, 9459)                                   # 89.47 megapixels, just under the cap
    with pytest.raises(ImageError, match="more than the 89,478,485 allowed"):
        check_image_size(9460, 9460)
    assert preprocess(Image.new("RGB", (1, MAX_ASPECT_RATIO), (255, 0, 0))).shape == (1, 3, 299, 299)
