"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a torn one.

The recipe: write the new contents to a temporary file beside the destination, flush it and ``fsync`` it, then
rename it over the destination with ``os.replace`` (atomic on POSIX and Windows within one file system), and
``fsync`` the folder so that the rename itself survives a power cut. If anything fails before the rename, the
temporary file is removed and the destination is untouched.

A process killed between creating the temporary file and renaming it (SIGKILL, a power cut) cannot remove it:
such files are named ``<destination name>.<random>.tmp``, and ``remove_stale_temp_files`` clears them the next
time a run opens the folder.
"""
import os
import secrets

TEMP_SUFFIX = ".tmp"


def _fsync_folder(folder):
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp_file(path):
    """Create ``<path>.<random>.tmp`` exclusively and return ``(fd, name)``.

    ``os.open(..., 0o666)`` lets the process's umask decide the permissions, as for any new file (``mkstemp``
    would make it 0600, and fixing that needs ``os.umask``, a process-wide setting).
    """
    while True:
        tmp = f"{path}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it to ``path`` atomically.

    The temporary file is flushed and fsync-ed before the rename; if ``write`` (or anything else) fails, the
    temporary file is removed and ``path`` is left as it was. Returns ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _create_temp_file(path)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        # a full disk or a read-only folder: the error of a write or an fsync names no file, so name the one
        # that was being written (the destination; it is unchanged)
        raise _naming(e, path) from None
    finally:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass
    _fsync_folder(folder)
    return path


def _naming(error, path):
    """``error`` (an OSError) naming ``path`` when it names no file or the temporary one (same class and errno)."""
    named = error.filename
    if error.errno is None or (named is not None and not str(named).endswith(TEMP_SUFFIX)):
        return error
    return type(error)(error.errno, error.strerror, path)


def remove_stale_temp_files(folder, names):
    """Delete the temporary files that interrupted ``atomic_write`` calls left for ``folder/<name>``.

    Only files named ``<name>.<anything>.tmp`` for the given ``names`` are touched; call it when no other
    process writes those files (a run opening its own folder). Returns the paths removed.
    """
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        for name in names:
            middle = entry[len(name) + 1:-len(TEMP_SUFFIX)]      # the random part of <name>.<random>.tmp
            if entry.startswith(name + ".") and entry.endswith(TEMP_SUFFIX) and middle:
                path = os.path.join(folder, entry)
                if os.path.isfile(path):
                    os.remove(path)
                    removed.append(path)
                break
    return removed
