"""``vistsne store compact``: an entry's many small parts merged into few, atomically.

Extraction commits a part every 1,024 rows (or 20 s), so a million rows are a
thousand parts, and every read opens each of them: at 1,000 parts of 1,000
rows (512-d float32) a read of all 1,000,000 rows spent about twice the time of
the same rows in one part (``benchmarks/scale_store.py``). Compact merges runs of
consecutive committed parts of the same arrays (stages, extras, thumbnails)
into parts of up to ``rows_per_part`` rows (chunks of 4,096 rows), with the
same bytes; a merged part keeps its first part's time stamp, so that reads,
which prefer the first part by name, pick the same bytes for every row.

Atomic at every instant, on a local store: a merged part is written and
committed under ``entries/<key>/.compact/`` (which no reader lists), then
moved into ``parts/`` with one ``rename``; only then is each old part moved
out of ``parts/`` (one ``rename`` each) and deleted. A compact killed at any
point leaves ``parts/`` holding only committed parts whose rows cover every
row; a row held by both a merged and an old part is read once (from
the first by name; both hold the same bytes). What a killed compact leaves
in ``.compact/`` is removed by the next compact of the entry. Checksums are
written anew (crc32c per chunk) and recorded as every part's are, so
``vistsne store verify`` checks merged parts as any other.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Callable

import numpy as np

from ..errors import StoreError
from . import writers

WORK_DIR = ".compact"
#: rows per merged part: 32 chunks of 4,096 rows; ~270 MB per 512-d float32 stage held while merging
ROWS_PER_PART = 131_072


def _signature(p) -> tuple:
    return (tuple(sorted(p.stages.items())), tuple(sorted((k, tuple(v)) for k, v in p.extras.items())),
            p.has_thumbs)


def _batches(parts: list, rows_per_part: int) -> list[list]:
    """Runs of consecutive committed parts (in name order, the order reads prefer them in) with the
    same arrays, up to ``rows_per_part`` rows a run, 2 or more parts each. A part of other arrays, or
    one already as large, ends a run: a merged part then sorts (it keeps its first part's stamp)
    exactly where its parts did, and every read picks the same bytes as before."""
    out, cur, rows, sig = [], [], 0, None
    for p in parts:
        if cur and (_signature(p) != sig or rows + p.rows > rows_per_part):
            out.append(cur)
            cur, rows = [], 0
        if p.rows >= rows_per_part:
            continue
        cur.append(p)
        rows += p.rows
        sig = _signature(p)
    out.append(cur)
    return [b for b in out if len(b) > 1]


def _clean_work(store, key: str) -> int:
    """Remove what earlier compacts of ``key`` left in the work folder (unless a live writer owns it)."""
    work = os.path.join(store.path, "entries", key, WORK_DIR)
    if not os.path.isdir(work):
        return 0
    live = any(writers.alive(w) for w in store.writers(key).values())
    if live:
        return 0
    n = 0
    for name in os.listdir(work):
        if name == "zarr.json":
            continue
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)
        n += 1
    return n


def compact_entry(store, key: str, rows_per_part: int = ROWS_PER_PART,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Merge the entry's small committed parts; ``{"entry", "parts_before", "parts_after", "merged",
    "rows"}``. ``progress(done, total)`` is called after each merged part."""
    import zarr

    if not store.local:
        raise StoreError(f"store compact works on local stores; {store.path} is not one",
                         "copy the store to a local folder, compact it there, and copy it back")
    if store.readonly:
        raise StoreError(f"store {store.path} was opened read-only", "open it with mode='a' to compact")
    every = store.parts(key)
    committed = [p for p in every if p.committed and not p.damaged]
    batches = _batches(committed, rows_per_part)
    base = os.path.join(store.path, "entries", key)
    _clean_work(store, key)  # before this compact registers as a writer
    with store.writing(key):
        work = zarr.open_group(os.path.join(base, WORK_DIR), mode="a")
        for i, batch in enumerate(batches):
            name = _merge(store, key, batch, work)
            os.rename(os.path.join(base, WORK_DIR, name), os.path.join(base, "parts", name))  # it counts now
            trash = os.path.join(base, WORK_DIR, f"old-{uuid.uuid4().hex[:8]}")
            os.makedirs(trash)
            for p in batch:  # out of parts/ in one rename each: no half-deleted part is ever listed
                os.rename(os.path.join(base, "parts", p.name), os.path.join(trash, p.name))
                store._forget_part(key, p.name)
            shutil.rmtree(trash, ignore_errors=True)
            if progress is not None:
                progress(i + 1, len(batches))
    after = [p for p in store.parts(key) if p.committed]
    return {"entry": key, "parts_before": len(committed), "parts_after": len(after),
            "merged": sum(len(b) for b in batches), "rows": int(sum(p.rows for p in after))}


def _merge(store, key: str, batch: list, work) -> str:
    """One committed part in ``work`` with the rows of ``batch`` (each dataset index once, the first
    part by name winning, as reads pick them), its bytes read through the checksummed reads."""
    first = batch[0]
    names = ["index", "label", *(["thumb"] if first.has_thumbs else []),
             *(f"feat/{s}" for s in first.stages), *first.extras]
    got = store._read_plans(key, [(p, a, None) for p in batch for a in names])
    cols = {a: [got[i * len(names) + j] for i in range(len(batch))] for j, a in enumerate(names)}
    for a, blocks in cols.items():
        if len({b.dtype for b in blocks}) > 1 or len({b.shape[1:] for b in blocks}) > 1:
            raise StoreError(f"entry {key[:12]}: parts hold {a} in different types or shapes",
                             "run `vistsne store verify`; compact merges only parts of the same arrays")
    index = np.concatenate(cols["index"]).astype(np.int64, copy=False)
    _, keep = np.unique(index, return_index=True)
    keep.sort()
    whole = len(keep) == len(index)

    def col(a):
        v = np.concatenate(cols.pop(a))
        return v if whole else v[keep]

    return store._write_part_into(work, col("index"), col("label"), col("thumb") if first.has_thumbs else None,
                                  {s: col(f"feat/{s}") for s in first.stages}, {e: col(e) for e in first.extras},
                                  stamp=first.name.split("-", 1)[0])
