"""Opening an untrusted path: only a regular file, checked on the file that was opened, never on the name.

A name checked first and opened second can change in between, and ``os.stat`` of a FIFO, a device or a
directory says little: ``/dev/zero`` has size 0 and never ends, and merely opening a FIFO for reading waits
until someone writes to it. So every reader opens the path once, without waiting (``O_NONBLOCK``), asks the
opened file what it is (``fstat``), and refuses anything but a regular file before reading a byte:

    with open_regular(path, "weights file", WeightsError) as (f, size):
        ...                 # f: a binary file object; size: its length in bytes, from the opened file

The error names the path and what it found ("a FIFO", "a directory", ...), as the caller's own error class, so
that a reader still raises only the library's errors.
"""
import contextlib
import os
import stat

_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def kind_of(mode):
    """What a file of ``st_mode`` ``mode`` is, in words ("a regular file", "a directory", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@contextlib.contextmanager
def open_regular(path, what, error):
    """Open ``path`` for binary reading if it is a regular file; yield ``(file, size in bytes)``.

    Args:
        path: str or path-like.
        what: what the file is to the caller, for the message ("weights file", "CIFAR-10 batch").
        error: the exception class to raise (the caller's own, e.g. ``WeightsError``), called with one message.

    Raises ``error`` when the path cannot be opened (missing, no permission, a loop of links) or is not a regular
    file; never blocks on a FIFO.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise error(f"cannot open {what} {os.fspath(path)!r}: {e.strerror or e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {os.fspath(path)!r} is {kind_of(info.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)               # a regular file: ordinary reads from here on
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f, info.st_size
