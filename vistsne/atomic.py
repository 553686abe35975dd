"""Atomic file writes: a unique temporary file beside the target, then a rename.

Every file vistsne writes outside the store (figures, pages, checkpoints,
caches) goes through :func:`atomic_write`, so a reader sees the old file or
the new one, never half of one, and two writers into one folder never share
a temporary name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _read_umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for a moment, for every thread)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: the mode ``open(path, "w")`` gives a new file (mkstemp's own is 0600)
FILE_MODE = 0o666 & ~_read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a unique temporary path in ``path``'s folder, then rename it onto ``path``.

    The temporary file is new for every call, so several writers of one file
    (or one folder) never write into each other's: the last rename wins and
    every reader sees one whole file. The result gets an ordinary file's mode.
    The temporary file is removed when ``write`` raises (or is interrupted).
    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
