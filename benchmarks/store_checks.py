"""What the store's integrity checks cost (issue 14).

(a) Reading every row of a 20,000 x 512 float32 stage from 20 parts, with the
    completeness check (each chunk a read needs is checked to exist before
    zarr reads it) and without (``Store.check_chunks = False``); the ratio is
    the check's cost (target <= 1.05). Both sides read through a fresh
    Store (no cached part indices), interleaved A B A B.
(b) ``vistsne store verify --deep`` throughput in MB/s (stored bytes read and
    checksummed per second) on ~``size_mb`` MB of features (default 1 GB) in
    20 parts, right after writing them (the page cache holds them).

``python -m benchmarks.store_checks [--size-mb 1000] [--reps 5]`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np


def _stat(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def _fill(store, key: str, rows: int, dim: int, parts: int, seed: int = 0) -> None:
    """``parts`` parts of random features. Thumbnails are 1x1 here, so that the bytes are features."""
    rng = np.random.default_rng(seed)
    per = rows // parts
    for i in range(parts):
        idx = np.arange(i * per, (i + 1) * per if i < parts - 1 else rows, dtype=np.int64)
        store.write_part(key, idx, np.zeros(len(idx), np.int32), np.zeros((len(idx), 1, 1, 3), np.uint8),
                         {"s": rng.standard_normal((len(idx), dim), dtype=np.float32)})


def _entry(store, key: str, n: int, dim: int) -> None:
    store.create_entry(key, {"class_names": ["a"], "config": "bench", "stages": {"s": dim}}, np.zeros(n, np.int32))


def read_check_cost(rows: int = 20_000, dim: int = 512, parts: int = 20, reps: int = 5) -> dict:
    from vistsne.store import Store

    key = "b" * 64
    with tempfile.TemporaryDirectory(prefix="vistsne-bench-") as tmp:
        st = Store(f"{tmp}/store.zarr")
        _entry(st, key, rows, dim)
        _fill(st, key, rows, dim, parts)
        idx = np.arange(rows)
        ref = Store(f"{tmp}/store.zarr", mode="r").read_rows(key, idx, "s")
        on, off = [], []
        for _ in range(reps + 1):  # the first pair warms the page cache and is dropped
            for check, out in ((True, on), (False, off)):
                s = Store(f"{tmp}/store.zarr", mode="r")
                s.check_chunks = check
                t0 = time.perf_counter()
                got = s.read_rows(key, idx, "s")
                out.append(time.perf_counter() - t0)
                assert got.shape == ref.shape and np.array_equal(got, ref)
        on, off = on[1:], off[1:]
        # the check alone: a stat of every chunk file the read needs (what Store.read_rows does first)
        from vistsne.store import arrays

        s = Store(f"{tmp}/store.zarr", mode="r")
        feats = [a for a, _ in s._part_arrays(key, [(p, "feat/s") for p in s.parts(key)])]
        keys = [k for a in feats for k in arrays.chunk_keys(a)]
        check = []
        for _ in range(reps):
            t0 = time.perf_counter()
            assert all(x is not None for x in s._chunks.sizes(keys))
            check.append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(on, off)]
    return {"rows": rows, "dim": dim, "parts": parts, "chunks": len(keys), "with_check_s": _stat(on),
            "without_check_s": _stat(off), "ratio": _stat(ratios), "check_alone_s": _stat(check),
            "check_share": statistics.median(check) / statistics.median(on), "target": 1.05,
            "met": statistics.median(ratios) <= 1.05}


def deep_verify_throughput(size_mb: float = 1000.0, dim: int = 512, parts: int = 20, reps: int = 1) -> dict:
    from vistsne.store import Store
    from vistsne.store.verify import verify_store

    key = "c" * 64
    rows = max(parts, int(size_mb * 1e6 / (dim * 4)))
    with tempfile.TemporaryDirectory(prefix="vistsne-bench-") as tmp:
        st = Store(f"{tmp}/store.zarr")
        _entry(st, key, rows, dim)
        t0 = time.perf_counter()
        _fill(st, key, rows, dim, parts, seed=1)
        write_s = time.perf_counter() - t0
        runs = []
        for _ in range(reps):
            rep = verify_store(Store(f"{tmp}/store.zarr", mode="r"), deep=True)
            assert not rep.problems, rep.problems
            runs.append((rep.seconds, rep.bytes, rep.mb_per_s))
    return {"rows": rows, "dim": dim, "parts": parts, "stored_mb": runs[0][1] / 1e6,
            "seconds": _stat([r[0] for r in runs]), "mb_per_s": _stat([r[2] for r in runs]),
            "write_mb_per_s": runs[0][1] / 1e6 / write_s,
            "note": "stored bytes read and crc32c-checked per second (verify --deep), page cache warm"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", type=float, default=1000.0, help="Features to deep-verify, in MB (default 1 GB).")
    p.add_argument("--reps", type=int, default=5, help="Repetitions of the read comparison.")
    p.add_argument("--verify-reps", type=int, default=1, help="Repetitions of the deep verify.")
    args = p.parse_args(argv)
    out = {"read_check": read_check_cost(reps=args.reps),
           "verify_deep": deep_verify_throughput(args.size_mb, reps=args.verify_reps)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
