"""Attribute updates that several writers can make at once without losing each other's keys.

zarr rewrites a node's whole ``zarr.json`` on every attribute change, from the
copy it read when the node was opened. Two writers that each add a stage to
``stages`` would keep only the last one. Here an update re-reads the
attributes right before writing, merges the change into them (dicts key by
key, ``notes`` as a union) and writes the result; on a local folder the
re-read and write run under an exclusive lock file (``<store>/.vistsne/locks``),
which makes the merge exact. Stores behind URLs have no locks: the re-read
narrows the window but cannot close it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Iterator

#: List attributes whose values are merged as a union (in order) instead of replaced.
UNION_LISTS = frozenset({"notes"})
#: The folder (inside a local store) that holds lock files; not a zarr node.
LOCK_DIR = ".vistsne"


def merge(old: dict, changes: dict) -> dict:
    """``old`` with ``changes`` merged in: nested dicts key by key, union lists as a union."""
    out = dict(old)
    for k, v in changes.items():
        cur = out.get(k)
        if isinstance(v, dict) and isinstance(cur, dict):
            out[k] = merge(cur, v)
        elif k in UNION_LISTS and isinstance(v, list) and isinstance(cur, list):
            try:
                out[k] = list(dict.fromkeys([*cur, *v]))
            except TypeError:  # unhashable items: keep both in order
                out[k] = [*cur, *(x for x in v if x not in cur)]
        else:
            out[k] = v
    return out


@contextlib.contextmanager
def locked(local_root: str | None, name: str) -> Iterator[None]:
    """An exclusive lock named ``name`` for the store at ``local_root`` (no-op for URL stores)."""
    if local_root is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = os.path.join(local_root, LOCK_DIR, "locks")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(name.encode()).hexdigest()[:24] + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def update(root, local_root: str | None, path: str, changes: dict) -> dict:
    """Merge ``changes`` into the attributes of the group at ``path`` (re-read first); the result."""
    with locked(local_root, path):
        grp = root[path]  # opened now: the attributes as they are on disk
        merged = merge(dict(grp.attrs), changes)
        grp.attrs.put(merged)
        return merged
