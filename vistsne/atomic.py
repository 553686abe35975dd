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


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a unique temporary path in ``path``'s folder, then rename it onto ``path``.

    The temporary file is removed when ``write`` raises (or is interrupted).
    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
