"""``vistsne store compact``: an entry's parts merged into few, every row kept once with its bytes,
and a compact killed with SIGKILL at any step leaving a store that verifies and reads every row once.

Real stores written through the library (no model); the kills are real: a child process runs the
compact and sends itself SIGKILL at its N-th rename or array write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from vistsne.store import Store
from vistsne.store.compact import WORK_DIR, compact_entry

from .conftest import ROOT, run_cli
from .test_store_reads import KEY, add_part, make_entry

DIMS = {"s": 16, "h": 8}


def _store(path: str, parts: int = 9, rows: int = 70) -> tuple[Store, np.ndarray]:
    st = make_entry(path, stages=DIMS)
    rng = np.random.default_rng(3)
    order = rng.permutation(parts * rows)
    for i in range(parts):
        idx = order[i * rows:(i + 1) * rows]
        st.write_part(KEY, idx, (idx % 3).astype(np.int32),
                      np.broadcast_to((idx % 251).astype(np.uint8)[:, None, None, None], (rows, 8, 8, 3)).copy(),
                      {s: rng.standard_normal((rows, d)).astype(np.float32) for s, d in DIMS.items()},
                      {"pred_top5": np.tile(idx[:, None] % 7, (1, 5)).astype(np.int64)})
    add_part(st, np.array([5, 6]), DIMS)  # other arrays (48 px thumbnails, no extras): merged apart, or kept
    return st, np.sort(order)


def _everything(path: str) -> dict:
    st = Store(path, mode="r")
    rows = np.array(sorted(st.present(KEY, [])))
    out = {"rows": rows}
    for what in ("label", "index"):
        out[what] = st.read_rows(KEY, rows, what=what)
    for s in DIMS:
        out[s] = st.read_rows(KEY, rows, stage=s)
    rich = np.array(sorted(st.present(KEY, ["pred_top5"])))
    out["pred"] = st.read_rows(KEY, rich, what="pred_top5")
    out["rich"] = rich
    return out


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def _committed(path: str) -> int:
    return sum(p.committed for p in Store(path, mode="r").parts(KEY))


def test_compact_keeps_every_row_once_with_the_same_bytes(store_path):
    st, rows = _store(store_path)
    before = _everything(store_path)
    assert _committed(store_path) == 10
    got = compact_entry(st, KEY, rows_per_part=4096)
    assert got["parts_before"] == 10 and got["merged"] == 9 and got["parts_after"] == 2
    after = _everything(store_path)
    _same(before, after)
    assert len(after["rows"]) == len(set(after["rows"].tolist())) == len(rows)
    stored = Store(store_path, mode="r")
    assert sum(p.rows for p in stored.parts(KEY) if p.committed) == len(rows) + 2  # rows 5 and 6 twice
    thumbs = stored.read_rows(KEY, rows[rows > 6], what="thumb")
    assert thumbs.shape[1:] == (8, 8, 3) and np.array_equal(thumbs[:, 0, 0, 0], (rows[rows > 6] % 251))
    proc = run_cli("store", "verify", "--deep", "--store", store_path)
    assert "0 problems" in proc.stdout
    assert os.listdir(os.path.join(store_path, "entries", KEY, WORK_DIR)) == ["zarr.json"]
    # a second compact has nothing left to merge
    assert compact_entry(Store(store_path), KEY, rows_per_part=4096)["merged"] == 0


def test_compact_cli_one_line_and_json(store_path):
    _store(store_path, parts=4, rows=20)
    proc = run_cli("store", "compact", "--entry", KEY[:10], "--store", store_path, "--json")
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc[0]["parts_before"] == 5 and doc[0]["parts_after"] == 2
    proc = run_cli("store", "compact", "--store", store_path)
    assert proc.stdout.strip().splitlines()[-1].startswith("store compact: 1 entry, 2 parts -> 2")


KILLER = r"""
import os, signal, sys
from vistsne.store import Store, arrays
from vistsne.store.compact import compact_entry

path, key, what, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = [0]

def counting(fn):
    def wrapper(*a, **kw):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **kw)
    return wrapper

if what == "rename":
    os.rename = counting(os.rename)
else:
    arrays.write = counting(arrays.write)
compact_entry(Store(path), key, rows_per_part=256)
print("not killed")
"""


SLOW = pytest.mark.slow


@pytest.mark.parametrize("what,n", [pytest.param("write", 3, marks=SLOW), pytest.param("rename", 1, marks=SLOW),
                                    ("rename", 2), pytest.param("rename", 5, marks=SLOW),
                                    pytest.param("rename", 9, marks=SLOW)])
def test_compact_killed_with_sigkill_leaves_every_row_readable_once(store_path, what, n):
    _store(store_path)
    before = _everything(store_path)
    proc = subprocess.run([sys.executable, "-c", KILLER, store_path, KEY, what, str(n)], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    after = _everything(store_path)
    _same(before, after)  # every row once (present is a set of indices; the reads are in their order)
    verify = run_cli("store", "verify", "--deep", "--store", store_path, check=False)
    assert verify.returncode == 0 and "0 problems" in verify.stdout, verify.stdout
    # the next compact finishes the work and clears what the killed one left
    got = compact_entry(Store(store_path), KEY, rows_per_part=256)
    _same(before, _everything(store_path))
    assert os.listdir(os.path.join(store_path, "entries", KEY, WORK_DIR)) == ["zarr.json"]
    assert got["parts_after"] < 10
