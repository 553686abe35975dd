"""Reads of rows from many parts: exactly what was written, reading only what is needed.

Real zarr stores in temporary folders, written through the library
(``Store.create_entry`` + ``Store.write_part``); no model. The helpers here
are shared by the other ``test_store_*`` files.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from vistsne.errors import DamagedError, NotFoundError
from vistsne.store import Store

KEY = hashlib.sha256(b"a test entry").hexdigest()
N_DATASET = 30_000


def make_entry(path: str, key: str = KEY, stages: dict | None = None, n_dataset: int = N_DATASET) -> Store:
    """A store with one entry: metadata and dataset labels (i % 3), no rows yet."""
    st = Store(path)
    labels = (np.arange(n_dataset) % 3).astype(np.int32)
    st.create_entry(key, {"class_names": ["a", "b", "c"], "config": "test.py",
                          "stages": dict(stages or {"s": 16})}, labels)
    return st


def feature(index: np.ndarray, dim: int, salt: float = 0.0, dtype=np.float32) -> np.ndarray:
    """Deterministic, nowhere-zero features of dataset rows (``salt`` tells parts apart)."""
    index = np.asarray(index, dtype=np.float64)
    return (1.0 + index[:, None] + np.arange(dim)[None, :] / dim + salt).astype(dtype)


def thumb(index: np.ndarray) -> np.ndarray:
    index = np.asarray(index)
    return np.broadcast_to((1 + index % 250).astype(np.uint8)[:, None, None, None], (len(index), 48, 48, 3)).copy()


def add_part(st: Store, index, dims: dict | None = None, salt: float = 0.0, key: str = KEY,
             dtype=np.float32) -> str:
    index = np.asarray(index, dtype=np.int64)
    dims = dims or {"s": 16}
    return st.write_part(key, index, (index % 3).astype(np.int32), thumb(index),
                         {s: feature(index, d, salt, dtype) for s, d in dims.items()})


def chunk_file(path: str, part: str, array: str, chunk: str, key: str = KEY) -> str:
    return os.path.join(path, "entries", key, "parts", part, *array.split("/"), *chunk.split("/"))


# ------------------------------------------------------------------ tests
def test_read_rows_equal_a_first_part_wins_reference_over_many_parts(store_path):
    rng = np.random.default_rng(7)
    st = make_entry(store_path, stages={"s": 16, "h": 8})
    written = []  # (name, index, salt) in write order == name order
    start = 0
    for i in range(25):
        n = int(rng.integers(40, 900))
        idx = np.arange(start, start + n)
        if i % 5 == 4:  # some rows a second time, in a later part (an overlapping run)
            idx = np.concatenate([idx, rng.choice(start, 30, replace=False)])
        start += n
        rng.shuffle(idx)
        name = add_part(st, idx, {"s": 16, "h": 8}, salt=0.5 * i)
        written.append((name, idx, 0.5 * i))
    assert [w[0] for w in written] == sorted(w[0] for w in written)
    first: dict[int, float] = {}
    for _, idx, salt in written:
        for d in idx.tolist():
            first.setdefault(d, salt)
    have = np.array(sorted(first))
    assert st.present(KEY, ["s", "h"]) == set(have.tolist()) == st.present(KEY, [])

    def expected(sel, dim):
        return np.stack([feature([d], dim, first[int(d)])[0] for d in sel]) if len(sel) else None

    fresh = Store(store_path, mode="r")
    for sel in (have,                                        # every row
                rng.choice(have, 37, replace=False),         # a few, unsorted
                np.sort(rng.choice(have, 3000, replace=False)),
                np.concatenate([have[:5], have[:5]]),         # repeats
                written[3][1][:50],                           # rows of one part
                np.array([have[-1]])):
        for store in (st, fresh):
            got = store.read_rows(KEY, sel, "s")
            np.testing.assert_array_equal(got, expected(sel, 16))
            assert got.dtype == np.float32 and got.shape == (len(sel), 16)
            np.testing.assert_array_equal(store.read_rows(KEY, sel, "h"), expected(sel, 8))
            np.testing.assert_array_equal(store.read_rows(KEY, sel, what="label"), (sel % 3).astype(np.int32))
            np.testing.assert_array_equal(store.read_rows(KEY, sel, what="thumb"), thumb(sel))
    rmap = st.row_map(KEY, "s")
    assert set(rmap) == set(have.tolist())
    names = {w[0]: w for w in written}
    for d in rng.choice(have, 50).tolist():
        part, row = rmap[d]
        assert names[part][1][row] == d and names[part][2] == first[d]
    assert st.read_rows(KEY, np.array([], np.int64), "s").shape == (0,)
    with pytest.raises(NotFoundError, match="lacks 1 of the requested rows for stage s"):
        st.read_rows(KEY, np.array([have[0], N_DATASET - 1]), "s")


def test_float16_stage_reads_as_written(store_path):
    st = make_entry(store_path)
    idx = np.arange(100, 300)
    add_part(st, idx, dtype=np.float16)
    got = st.read_rows(KEY, idx[::-1], "s")
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, feature(idx[::-1], 16, dtype=np.float16))


def test_index_cache_follows_the_set_of_parts(store_path):
    st = make_entry(store_path)
    a = add_part(st, np.arange(0, 100))
    assert len(st.present(KEY, ["s"])) == 100
    assert set(k[1] for k in st._index_cache) == {a}
    other = Store(store_path)  # another writer adds a part: this Store sees it on its next read
    b = add_part(other, np.arange(100, 250))
    assert len(st.present(KEY, ["s"])) == 250
    np.testing.assert_array_equal(st.read_rows(KEY, np.arange(90, 110), "s"), feature(np.arange(90, 110), 16))
    other.remove_part(KEY, a)
    assert st.present(KEY, ["s"]) == set(range(100, 250))
    assert set(k[1] for k in st._index_cache) == {b}  # the gone part's index is forgotten
    with pytest.raises(NotFoundError):
        st.read_rows(KEY, np.arange(0, 10), "s")


def test_only_the_chunks_a_read_needs_are_read(store_path):
    """Rows of a part's first chunk read even when its last chunk is gone; the rows of the gone one do not."""
    st = make_entry(store_path)
    name = add_part(st, np.arange(10_000))  # 4,096 rows a chunk: c/0/0, c/1/0, c/2/0
    os.remove(chunk_file(store_path, name, "feat/s", "c/2/0"))
    np.testing.assert_array_equal(st.read_rows(KEY, np.arange(0, 4096), "s"), feature(np.arange(4096), 16))
    np.testing.assert_array_equal(st.read_rows(KEY, np.array([5, 4100, 8000]), "s"),
                                  feature([5, 4100, 8000], 16))
    with pytest.raises(DamagedError, match="chunk c/2/0 missing"):
        st.read_rows(KEY, np.array([5, 9000]), "s")
