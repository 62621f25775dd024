"""Reading a compressed stream with a limit on what it may expand to.

A few kilobytes of deflate or bzip2 can claim gigabytes: a reader that decompresses first and checks later has
already spent the memory. ``read_at_most`` reads a decompressing stream in chunks and stops with the caller's
error as soon as more than ``limit`` bytes come out, so the memory a hostile file can take is ``limit`` (which
the caller derives from the file's own size and what the format can honestly need).
"""

#: bytes read from a decompressing stream at a time
CHUNK = 1 << 20


def read_at_most(stream, limit, what, error):
    """All of ``stream`` (a binary file-like, e.g. ``gzip.GzipFile`` or a zip member) if it holds at most
    ``limit`` bytes; otherwise raise ``error`` naming ``what`` and the limit.

    Returns bytes. Reads at most ``limit + 1`` bytes, however much the stream would give.
    """
    parts, total = [], 0
    while True:
        part = stream.read(min(CHUNK, limit + 1 - total))
        if not part:
            return b"".join(parts)
        parts.append(part)
        total += len(part)
        if total > limit:
            raise error(f"{what} expands to more than {limit:,} bytes, more than a file of its size can hold: "
                        f"refused (a damaged file or a decompression bomb)")
