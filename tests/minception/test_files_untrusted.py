"""The three building blocks every reader of untrusted files uses: only regular files, bounded decompression,
error messages that cannot fail."""
import gzip
import io
import os

import pytest

from minception.files.bounded import read_at_most
from minception.files.regular import open_regular
from minception.files.shorten import shorten


class Refused(Exception):
    pass


def test_only_a_regular_file_is_opened(tmp_path):
    regular = tmp_path / "w.npz"
    regular.write_bytes(b"abc")
    with open_regular(regular, "weights file", Refused) as (f, size):
        assert size == 3 and f.read() == b"abc"
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    cases = [(fifo, "a FIFO"), (tmp_path, "a directory"), ("/dev/zero", "a character device"),
             (tmp_path / "missing.npz", "No such file")]
    for path, said in cases:
        with pytest.raises(Refused, match=said) as info:          # a FIFO without a writer: no wait
            with open_regular(path, "weights file", Refused):
                pass
        assert str(path) in str(info.value) and "weights file" in str(info.value)


def test_a_symlink_is_judged_by_what_it_points_to(tmp_path):
    link = tmp_path / "batch"
    os.symlink("/dev/zero", link)
    with pytest.raises(Refused, match="character device"):
        with open_regular(link, "CIFAR-10 batch", Refused):
            pass


def test_decompression_stops_past_the_limit():
    bomb = gzip.compress(b"\0" * 5_000_000)
    with pytest.raises(Refused, match="more than 1,000,000 bytes"):
        read_at_most(gzip.GzipFile(fileobj=io.BytesIO(bomb)), 1_000_000, "images.gz", Refused)
    assert read_at_most(gzip.GzipFile(fileobj=io.BytesIO(bomb)), 5_000_000, "images.gz", Refused) == b"\0" * 5_000_000


def test_shorten_never_fails_and_stays_short():
    deep = []
    for _ in range(100_000):
        deep = [deep]

    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    for value, expected in [(10 ** 5000, "an integer of about 5,001 digits"), ("x" * 10 ** 6, "..."),
                            (deep, "[[[[...]]]]"), (b"\1" * 10 ** 6, "..."), (Broken(), "<Broken instance"), (42, "42")]:
        text = shorten(value)
        assert expected in text and len(text) < 100
