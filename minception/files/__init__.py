"""Files the library writes and reads back: atomic writes, and ``.npz`` archives read without trusting them.

``atomic_write`` is how every file of a run (checkpoints, weights, logs, settings) reaches the disk: a crash at
any moment leaves the old file or the new one, never half of one. ``read_npz`` / ``write_npz`` are the ``.npz``
format of ``Module.save`` and of checkpoints; ``read_npz`` checks every size and type against the file before it
allocates anything, so a damaged or hostile file gives ``NpzError`` and nothing worse.
"""
from .atomic import atomic_write, remove_stale_temp_files
from .npz import NpzError, read_npz, write_npz

__all__ = ["atomic_write", "remove_stale_temp_files", "NpzError", "read_npz", "write_npz"]
