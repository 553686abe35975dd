"""Content hashes for cache keys: the file-hash cache, the tree fingerprint, canonical JSON.

Real files in temporary folders; modification times are set with ``os.utime``
so that "touched" and "not touched" do not depend on the file system's clock
resolution.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vistsne.hashing import canonical_json, file_sha256, sha256_json, tree_fingerprint

T0 = 1_700_000_000 * 10**9  # a fixed mtime (ns) for files whose stamp must not change


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private hash cache folder, so that no other test's stamps are in the file."""
    d = tmp_path / "hash-cache"
    monkeypatch.setenv("VISTSNE_CACHE_DIR", str(d))
    return d


def _cache(cache_dir: Path) -> dict:
    return json.loads((cache_dir / "file-hashes.json").read_text())


def _write(path: Path, data: bytes, mtime_ns: int = T0) -> Path:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- file_sha256 and its cache -------------------------------------------------------

def test_file_hash_is_the_sha256_of_the_bytes_and_is_cached_by_stamp(tmp_path, cache_dir):
    f = _write(tmp_path / "ckpt.pth", b"weights-v1")
    assert file_sha256(f) == _sha(b"weights-v1")
    stamp = f"{f.resolve()}|{len(b'weights-v1')}|{T0}"
    assert _cache(cache_dir) == {stamp: _sha(b"weights-v1")}
    # Other bytes behind the same (path, size, mtime) stamp: the cache answers, the file is not read.
    # This is what makes the cache a cache (and why size and mtime must be part of the stamp).
    _write(f, b"weights-v2")
    assert file_sha256(f) == _sha(b"weights-v1")
    assert file_sha256(f, use_cache=False) == _sha(b"weights-v2")


def test_file_hash_cache_is_invalidated_by_a_new_mtime(tmp_path, cache_dir):
    f = _write(tmp_path / "ckpt.pth", b"weights-v1")
    assert file_sha256(f) == _sha(b"weights-v1")
    _write(f, b"weights-v2", mtime_ns=T0 + 10**9)  # same size, one second later
    assert file_sha256(f) == _sha(b"weights-v2")


def test_file_hash_cache_is_invalidated_by_a_new_size(tmp_path, cache_dir):
    f = _write(tmp_path / "ckpt.pth", b"weights-v1")
    assert file_sha256(f) == _sha(b"weights-v1")
    _write(f, b"weights-v1 and more", mtime_ns=T0)  # same mtime, other size
    assert file_sha256(f) == _sha(b"weights-v1 and more")


def test_a_stale_stamp_of_the_same_path_is_dropped(tmp_path, cache_dir):
    f = _write(tmp_path / "ckpt.pth", b"weights-v1")
    other = _write(tmp_path / "ckpt.pth.bak", b"other")  # shares the path as a prefix
    file_sha256(f)
    file_sha256(other)
    assert len(_cache(cache_dir)) == 2
    _write(f, b"weights-v2", mtime_ns=T0 + 10**9)
    file_sha256(f)
    cache = _cache(cache_dir)
    mine = {k: v for k, v in cache.items() if k.startswith(f"{f.resolve()}|")}
    assert mine == {f"{f.resolve()}|{len(b'weights-v2')}|{T0 + 10**9}": _sha(b"weights-v2")}
    # the other file's stamp is kept: a path that only starts with this one is another path
    assert cache[f"{other.resolve()}|{len(b'other')}|{T0}"] == _sha(b"other")
    assert len(cache) == 2


def test_file_hash_is_keyed_by_the_resolved_path(tmp_path, cache_dir, monkeypatch):
    f = _write(tmp_path / "ckpt.pth", b"weights")
    monkeypatch.chdir(tmp_path)
    assert file_sha256("ckpt.pth") == file_sha256(f) == _sha(b"weights")
    assert list(_cache(cache_dir)) == [f"{f.resolve()}|7|{T0}"]


def test_an_unreadable_cache_file_is_rebuilt(tmp_path, cache_dir):
    cache_dir.mkdir()
    (cache_dir / "file-hashes.json").write_text("{not json")
    f = _write(tmp_path / "ckpt.pth", b"weights")
    assert file_sha256(f) == _sha(b"weights")
    assert _cache(cache_dir) == {f"{f.resolve()}|7|{T0}": _sha(b"weights")}


# --- tree_fingerprint ------------------------------------------------------------------

def _tree(root: Path) -> Path:
    for rel, data in {"cat/001.png": b"c1", "cat/002.png": b"c22", "dog/001.png": b"d1",
                      "dog/sub/x.png": b"x"}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        _write(p, data)
    return root


def test_fingerprint_is_stable_when_nothing_changes(tmp_path):
    root = _tree(tmp_path / "images")
    fp = tree_fingerprint([root])
    assert len(fp) == 64 and fp == tree_fingerprint([root]) == tree_fingerprint([str(root)])
    for p in root.rglob("*.png"):  # reading files changes nothing
        p.read_bytes()
    assert tree_fingerprint([root]) == fp
    # names, sizes and mtimes only: the same tree copied elsewhere (same root name) is the same data
    copy = shutil.copytree(root, tmp_path / "elsewhere" / "images", copy_function=shutil.copy2)
    assert tree_fingerprint([copy]) == fp
    # a duplicated root and the order of roots do not matter
    other = _tree(tmp_path / "more")
    assert tree_fingerprint([root, other]) == tree_fingerprint([other, root, root])


@pytest.mark.parametrize("change", ["add", "remove", "rename", "rename_dir", "touch", "resize"])
def test_fingerprint_changes_with_every_change_of_the_tree(tmp_path, change):
    root = _tree(tmp_path / "images")
    before = tree_fingerprint([root])
    if change == "add":
        _write(root / "dog" / "002.png", b"d2")
    elif change == "remove":
        (root / "cat" / "002.png").unlink()
    elif change == "rename":
        (root / "cat" / "002.png").rename(root / "cat" / "003.png")
    elif change == "rename_dir":
        (root / "dog").rename(root / "wolf")
    elif change == "touch":  # same bytes, same size, a new mtime
        os.utime(root / "cat" / "001.png", ns=(T0 + 10**9, T0 + 10**9))
    elif change == "resize":  # same mtime, other size
        _write(root / "cat" / "001.png", b"c1-longer", mtime_ns=T0)
    assert tree_fingerprint([root]) != before


def test_fingerprint_of_a_file_root_and_of_a_missing_root(tmp_path):
    f = _write(tmp_path / "ann.txt", b"0 cat\n")
    fp = tree_fingerprint([f])
    os.utime(f, ns=(T0 + 1, T0 + 1))
    assert tree_fingerprint([f]) != fp
    missing = tree_fingerprint([tmp_path / "nothing"])
    (tmp_path / "nothing").mkdir()
    assert tree_fingerprint([tmp_path / "nothing"]) != missing  # an empty folder is not a missing one
    assert tree_fingerprint([tmp_path / "nothing"]) == tree_fingerprint([tmp_path / "nothing"])


# --- canonical_json ----------------------------------------------------------------------

def test_canonical_json_is_key_order_independent():
    a = {"model": {"type": "ResNet", "depth": 18}, "pool": "avg", "seed": 0}
    b = {"seed": 0, "pool": "avg", "model": {"depth": 18, "type": "ResNet"}}
    assert list(a) != list(b)
    assert canonical_json(a) == canonical_json(b) == (
        '{"model":{"depth":18,"type":"ResNet"},"pool":"avg","seed":0}')
    assert sha256_json(a) == sha256_json(b)
    assert sha256_json(a) == hashlib.sha256(canonical_json(a).encode()).hexdigest()


def test_canonical_json_plain_values_and_differences():
    assert canonical_json({"t": (1, 2), "n": np.int64(3), "f": np.float32(0.5), "p": Path("/x/y"),
                           "inf": float("inf")}) == (
        '{"f":0.5,"inf":"inf","n":3,"p":"/x/y","t":[1,2]}')
    assert canonical_json({1: "a"}) == canonical_json({"1": "a"})
    assert sha256_json({"depth": 18}) != sha256_json({"depth": 50})
    assert sha256_json({"depth": 18}) != sha256_json({"Depth": 18})
    assert sha256_json([1, 2]) != sha256_json([2, 1])  # lists keep their order


def test_canonical_json_of_numpy_arrays_and_scalars():
    import numpy as np

    from vistsne.hashing import canonical_json

    assert canonical_json({"a": np.arange(3), "b": np.float32(0.5), "c": np.array([[1, 2]])}) == \
        '{"a":[0,1,2],"b":0.5,"c":[[1,2]]}'
