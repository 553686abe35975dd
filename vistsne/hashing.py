"""Content hashes for cache keys: sha256 over canonical JSON and file bytes.

Keys never hash pickles or source code. File hashes are cached by
(absolute path, size, mtime) in a small JSON file, so a 1 GB checkpoint is
hashed once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from .atomic import atomic_write_text

SCHEMA_VERSION = 1


def _plain(obj: Any) -> Any:
    """Turn tuples, numpy scalars, Paths and mappings into plain JSON values."""
    if isinstance(obj, dict) or hasattr(obj, "items") and callable(obj.items):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return repr(obj)
        return obj
    if hasattr(obj, "tolist") and getattr(obj, "ndim", 0):  # numpy arrays (before .item: size > 1)
        return _plain(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _plain(obj.item())
    if hasattr(obj, "tolist"):
        return _plain(obj.tolist())
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        # classes and functions in python-style configs: their import path is stable across processes
        return f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    text = repr(obj)
    if " at 0x" in text or " object at " in text:
        raise TypeError(f"cannot hash {type(obj).__name__} for a cache key: its repr ({text[:60]}) "
                        "differs between processes")
    return text


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value, the same text."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def cache_dir() -> Path:
    root = os.environ.get("VISTSNE_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vistsne"


def _hash_file_bytes(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """sha256 of a file's bytes, cached by (path, size, mtime_ns)."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = cache_dir() / "file-hashes.json"
    cache: dict[str, str] = {}
    if use_cache:
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}
        if stamp in cache:
            return cache[stamp]
    digest = _hash_file_bytes(path)
    if use_cache:
        # drop stale stamps of the same path, then replace the file atomically
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[stamp] = digest
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(cache))
        except OSError:
            pass  # a read-only cache folder only costs speed
    return digest


def _folder_lines(root: str, rel_dir: str) -> tuple[list[str], list[str]]:
    """One folder of :func:`tree_fingerprint`: its files' lines (sorted by name) and its sub-folders."""
    folder = root if rel_dir == "." else os.path.join(root, rel_dir)
    files, dirs = [], []
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return [], []
    for e in entries:
        try:
            is_dir = e.is_dir()  # follows links, as os.walk lists them (it does not descend into them)
        except OSError:
            is_dir = False
        (dirs if is_dir else files).append(e)
    lines = []
    for e in sorted(files, key=lambda e: e.name):
        try:
            st = os.stat(e.path)
        except OSError:
            continue
        lines.append(f"{rel_dir}/{e.name}|{st.st_size}|{st.st_mtime_ns}\n")
    subs = [d.name for d in sorted(dirs, key=lambda e: e.name)
                             if not d.is_symlink()]  # os.walk does not follow links to folders
    return lines, subs


def tree_fingerprint(roots: Iterable[str | os.PathLike], counts: dict | None = None,
                     suffixes: tuple[str, ...] = ()) -> str:
    """A cheap fingerprint of local files: relative names, sizes and mtimes.

    No file content is read. A root that is a file contributes itself; a
    missing root contributes "missing". The text hashed is what a top-down
    ``os.walk`` in sorted order gives, one line per file; the folders are
    listed and their files stat-ed by a few threads (``stat`` waits on the
    file system, not on Python), which is what makes a 50,000-file tree take
    a fraction of a second. ``counts``, if given, receives for each root's
    first-level folder the number of its files (at any depth) whose name ends
    in one of ``suffixes`` (lower case), e.g. the images of each class folder.
    """
    from concurrent.futures import ThreadPoolExecutor

    h = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for root in sorted({str(Path(r)) for r in roots}):
            rp = Path(root)
            h.update(f"root:{Path(root).name}\n".encode())
            if rp.is_file():
                st = rp.stat()
                h.update(f"file|{st.st_size}|{st.st_mtime_ns}\n".encode())
                continue
            if not rp.is_dir():
                h.update(b"missing\n")
                continue
            # breadth-first listing in parallel, then the lines in os.walk's (pre-order) order
            found: dict[str, tuple[list[str], list[str]]] = {}
            level = ["."]
            while level:
                results = list(pool.map(lambda rel: _folder_lines(root, rel), level))
                nxt = []
                for rel, res in zip(level, results):
                    found[rel] = res
                    nxt += [name if rel == "." else os.path.join(rel, name) for name in res[1]]
                level = nxt
            out: list[str] = []
            stack = ["."]
            while stack:
                rel = stack.pop()
                lines, subs = found[rel]
                out += lines
                stack += [name if rel == "." else os.path.join(rel, name) for name in reversed(subs)]
                if counts is not None and rel != ".":
                    top = rel.split(os.sep, 1)[0]
                    counts[top] = counts.get(top, 0) + sum(
                        1 for line in lines if line[:line.rindex("|", 0, line.rindex("|"))].lower().endswith(suffixes))
            h.update("".join(out).encode())
    return h.hexdigest()
