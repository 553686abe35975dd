"""The store reads of an embed, timed inside one process of either version of vistsne.

    PYTHONPATH=TREE python benchmarks/seams_reads.py STORE ENTRY STAGE ROWS.npy OUT.json REPS

Run by item 9 (:mod:`benchmarks.seams`) with ``PYTHONPATH`` (and cwd) at the
tree of the version measured, so that it imports that version's
``vistsne.store``; it uses only what both versions have: ``Store(path,
mode="r")``, ``present`` and ``read_rows``. Each repetition opens a fresh
Store, then does what ``vistsne embed`` does before it looks for its map:
the rows present for the stage, the selected rows' features, their labels.
Imports and one untimed round come first. The output holds the seconds of
each step and a sha256 of the rows read (both versions must read the same
bytes from the same store).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # never let a bench module shadow a library module


def main(argv: list[str]) -> dict:
    store, entry, stage, rows_npy, out_path = argv[:5]
    reps = int(argv[5])
    import numpy as np
    import zarr  # noqa: F401  (imports are not what is measured)

    import vistsne
    from vistsne.store import Store

    idx = np.load(rows_npy)
    res: dict = {"vistsne": vistsne.__file__, "open": [], "present": [], "features": [], "labels": [],
                 "total": []}
    X = y = None
    for r in range(reps + 1):  # round 0 warms up and is dropped
        t0 = time.perf_counter()
        st = Store(store, mode="r")
        t1 = time.perf_counter()
        have = st.present(entry, [stage])
        t2 = time.perf_counter()
        X = st.read_rows(entry, idx, stage)
        t3 = time.perf_counter()
        y = st.read_rows(entry, idx, what="label")
        t4 = time.perf_counter()
        if len(have) < len(idx) or X.shape[0] != len(idx) or y.shape[0] != len(idx):
            raise SystemExit(f"short read: {len(have)} present, {X.shape} features, {y.shape} labels")
        if r:
            for k, v in (("open", t1 - t0), ("present", t2 - t1), ("features", t3 - t2), ("labels", t4 - t3),
                         ("total", t4 - t0)):
                res[k].append(v)
    h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    res.update(sha256=h.hexdigest(), rows=int(len(idx)), dim=int(X.shape[1]), dtype=str(X.dtype))
    Path(out_path).write_text(json.dumps(res))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
