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

In ``make bench`` this is item 10 (:func:`run`): (a) as above, in a child
process, plus

(b) a cache hit, ``vistsne extract`` on a complete entry of ``seams_n`` rows
    (the store of item 9, :func:`benchmarks.common.seams_store`) as a whole
    process: before (7fc1473, no checks) against after (the working tree);
    and, within the working tree, the same command with the completeness
    check against without it (``Store.check_chunks = False`` set by a
    ``python -c`` wrapper of the CLI, the same wrapper on both sides; the
    ratio is the check's cost, target <= 1.05);
(c) what the checks cost extraction: real extractions of the digits demo
    (``extract_r18_n`` images, the demo checkpoint) into fresh stores, with
    ``Store.write_part`` timed; parts written as now (crc32c, every chunk
    written, size records, chunk checks on reads) against as before
    (``child._plain_write``: zarr's default zstd, no crc32c). The extra
    write time over the extraction's time is the fraction (target <= 0.05),
    paired per repetition. One part's arrays (1,024 real rows) written and
    read through zarr directly with and without the crc32c codec, and
    without it with empty chunks skipped (zarr's default, as before), give
    the checksum's own cost and that of writing every chunk;
(d) the throughput of (b) above through the CLI, ``vistsne store verify
    --deep --json`` as a whole process on ``mode.verify_mb`` MB of features
    (1 GB by default), its reported MB/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time

import numpy as np

from .common import (DEMO_CONFIG, SEAMS_STAGE, after_version, before_version, cached_flags, extract_argv, fmt_stat,
                     last_json, ratios, run_child, say, seams_store, stats)


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


def make_verify_store(path: str, size_mb: float, dim: int = 512, parts: int = 20) -> dict:
    """A store at ``path`` with one entry of ~``size_mb`` MB of float32 features (random normal, in parts)."""
    from vistsne.store import Store

    key = "c" * 64
    rows = max(parts, int(size_mb * 1e6 / (dim * 4)))
    st = Store(path)
    _entry(st, key, rows, dim)
    t0 = time.perf_counter()
    _fill(st, key, rows, dim, parts, seed=1)
    write_s = time.perf_counter() - t0
    return {"path": path, "entry": key, "rows": rows, "dim": dim, "parts": parts,
            "feature_mb": rows * dim * 4 / 1e6, "stored_mb": st.size_bytes(key) / 1e6, "write_seconds": write_s}


def deep_verify_throughput(size_mb: float = 1000.0, dim: int = 512, parts: int = 20, reps: int = 1) -> dict:
    from vistsne.store import Store
    from vistsne.store.verify import verify_store

    with tempfile.TemporaryDirectory(prefix="vistsne-bench-") as tmp:
        info = make_verify_store(f"{tmp}/store.zarr", size_mb, dim, parts)
        rows, write_s = info["rows"], info["write_seconds"]
        runs = []
        for _ in range(reps):
            rep = verify_store(Store(f"{tmp}/store.zarr", mode="r"), deep=True)
            assert not rep.problems, rep.problems
            runs.append((rep.seconds, rep.bytes, rep.mb_per_s))
    return {"rows": rows, "dim": dim, "parts": parts, "stored_mb": runs[0][1] / 1e6,
            "seconds": _stat([r[0] for r in runs]), "mb_per_s": _stat([r[2] for r in runs]),
            "write_mb_per_s": runs[0][1] / 1e6 / write_s,
            "note": "stored bytes read and crc32c-checked per second (verify --deep), page cache warm"}


#: The CLI with the completeness check on or off: the same wrapper on both sides of that comparison. With
#: the check on, the wrapper also times every ``arrays.check_present`` call (the check itself) and prints
#: the sum at exit, so that its share of the process is known beyond the noise of whole-process times.
_WRAP = """
import atexit, sys, time
import vistsne.store as S
import vistsne.store.arrays as A
S.Store.check_chunks = {check}
spent = [0.0, 0]
orig = A.check_present
def timed(*a, **k):
    t = time.perf_counter()
    try:
        return orig(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t
        spent[1] += 1
A.check_present = timed
atexit.register(lambda: sys.stderr.write("\\nBENCH_CHECK_SECONDS %.6f %d\\n" % tuple(spent)))
from vistsne.cli import main
main(sys.argv[1:])
"""
READ_TARGET = 1.05
HIT_TARGET = 0.05
EXTRACT_TARGET = 0.05


def _check_seconds(stderr: str) -> tuple[float, int]:
    for line in reversed(stderr.splitlines()):
        if line.startswith("BENCH_CHECK_SECONDS "):
            _, sec, calls = line.split()
            return float(sec), int(calls)
    raise RuntimeError(f"the wrapped CLI did not report its check time: {stderr[-300:]!r}")


def _cache_hits(ctx) -> dict:
    """(b) The cache hit of ``vistsne extract``: before / after, and the check on / off."""
    mode = ctx.mode
    reps = mode.process_reps or mode.reps
    store = seams_store(ctx)
    before, after = before_version(ctx), after_version(ctx)
    argv = extract_argv(ctx, store["path"], mode.seams_n)
    runs = {
        "before": lambda: before.run(*argv, timeout=300),
        "after": lambda: after.run(*argv, timeout=300),
        "checks_on": lambda: after.run(*argv, timeout=300, python_c=_WRAP.format(check=True)),
        "checks_off": lambda: after.run(*argv, timeout=300, python_c=_WRAP.format(check=False)),
    }
    walls = {k: [] for k in runs}
    rss = {k: [] for k in runs}
    hits = {k: [] for k in runs}
    check_s, check_calls, check_share = [], [], []
    names = list(runs)
    w = mode.warmup
    for r in range(reps + w):  # the first ``w`` rounds warm up (bytecode of the worktree, page cache)
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            res = runs[k]()
            flags = cached_flags(last_json(res.stdout))
            if not flags or not all(flags):
                raise RuntimeError(f"`vistsne extract` ({k}) was not a cache hit: {res.stdout.strip()[-300:]}")
            if r >= w:
                walls[k].append(res.wall)
                rss[k].append(res.maxrss_mb)
                hits[k].append(True)
                if k.startswith("checks_"):
                    sec, calls = _check_seconds(res.stderr)
                    if k == "checks_on":
                        check_s.append(sec)
                        check_calls.append(calls)
                        check_share.append(sec / res.wall)
                    elif calls:
                        raise RuntimeError(f"with Store.check_chunks = False the check still ran {calls} times")
        if r >= w:
            say(f"extract cache hit rep {r - w + 1}/{reps}: " + ", ".join(f"{k} {walls[k][-1]:.2f}s" for k in names)
                + f"; the check itself {1000 * check_s[-1]:.1f} ms")
    out = {"command": "vistsne " + " ".join(argv).replace(store["path"], "STORE"), "rows": store["rows"],
           "parts": store["parts"],
           "seconds": {k: stats(v) for k, v in walls.items()}, "maxrss_mb": {k: stats(v) for k, v in rss.items()},
           "all_hits": all(all(v) and len(v) == reps for v in hits.values()),
           "ratio_after_over_before": ratios(walls["after"], walls["before"]),
           "ratio_checks_on_over_off": ratios(walls["checks_on"], walls["checks_off"]),
           "check_seconds": stats(check_s), "check_calls": stats(check_calls), "check_share": stats(check_share),
           "target": HIT_TARGET}
    out["met"] = bool(out["check_share"]["median"] <= HIT_TARGET and out["all_hits"])
    say(f"extract cache hit: after/before {fmt_stat(out['ratio_after_over_before'], 3)}, "
        f"check on/off {fmt_stat(out['ratio_checks_on_over_off'], 3)}; the check itself "
        f"{fmt_stat(out['check_share'], 4)} of the process")
    return out


def _extraction(ctx) -> dict:
    """(c) The checks' share of extraction time."""
    mode = ctx.mode
    after = after_version(ctx)
    n = mode.extract_r18_n
    params = dict(config=DEMO_CONFIG, checkpoint=ctx.checkpoint, cfg_options=[ctx.expand_option(n)],
                  vis_stage="all", max_num_class=10, max_num_samples=10**6, device="cpu")
    runs = []
    for r in range(mode.reps):
        tmp = tempfile.mkdtemp(prefix="extract-checks-", dir=ctx.work)
        got = run_child("extract_checks", {"params": params, "store": f"{tmp}/store.zarr", "checks": True},
                        env=after.child_env()).result
        shutil.rmtree(tmp, ignore_errors=True)
        if not got["crc32c"]:
            raise RuntimeError("the extraction wrote parts without crc32c")
        runs.append(got)
        say(f"extraction rep {r + 1}/{mode.reps}: {got['seconds']:.1f}s, write_part {got['write_part_seconds']:.3f}s "
            f"in {got['write_part_calls']} calls")
    store = seams_store(ctx)
    many = 10 if mode.name != "tiny" else 2
    wp = run_child("write_part_cost", {"store": store["path"], "entry": ctx.entry, "reps": 2 * many,
                                       "tmp": str(ctx.work)}, env=after.child_env()).result
    codec = run_child("codec_cost", {"store": store["path"], "entry": ctx.entry, "reps": many,
                                     "tmp": str(ctx.work)}, env=after.child_env()).result
    extra = stats([a - b for a, b in zip(wp["checks"], wp["no_checks"])])
    cw, pw, sw = codec["crc32c"]["write"], codec["plain"]["write"], codec["plain_skip"]["write"]
    cr, pr = codec["crc32c"]["read"], codec["plain"]["read"]
    crc_extra = stats([a - b for a, b in zip(cw, pw)])
    ext = [x["seconds"] for x in runs]
    calls = [x["write_part_calls"] for x in runs]
    rows_per_part = [x["rows"] / max(1, x["write_part_calls"]) for x in runs]
    # the extra time of the checks on this extraction's parts, scaled by rows (a part of the extraction may
    # hold fewer rows than the measured part: extract also commits every 20 s)
    scale = [x["rows"] / wp["rows"] for x in runs]
    frac = stats([extra["median"] * sc / e for sc, e in zip(scale, ext)])
    out = {"images": runs[0]["rows"], "parts": stats(calls), "rows_per_part": stats(rows_per_part),
           "extract_seconds": stats(ext), "write_part_seconds": stats([x["write_part_seconds"] for x in runs]),
           "write_part_share": stats([x["write_part_seconds"] / x["seconds"] for x in runs]),
           "write_part": {"rows": wp["rows"], "stages": wp["stages"], "checks": stats(wp["checks"]),
                          "no_checks": stats(wp["no_checks"]), "ratio": ratios(wp["checks"], wp["no_checks"]),
                          "extra_seconds": extra},
           "fraction": frac, "target": EXTRACT_TARGET,
           "codec": {"rows": codec["rows"], "arrays": codec["arrays"], "raw_mb": codec["raw_bytes"] / 1e6,
                     "write_seconds": {"crc32c": stats(cw), "plain": stats(pw), "plain_skip_empty": stats(sw)},
                     "every_chunk_write_ratio": ratios(pw, sw), "now_over_before_write_ratio": ratios(cw, sw),
                     "read_seconds": {"crc32c": stats(cr), "plain": stats(pr)},
                     "write_ratio": ratios(cw, pw), "read_ratio": ratios(cr, pr),
                     "crc_write_seconds_per_part": crc_extra,
                     "crc_fraction_of_extraction": stats([crc_extra["median"] * (x["rows"] / codec["rows"])
                                                          / x["seconds"] for x in runs])}}
    out["met"] = bool(frac["median"] <= EXTRACT_TARGET)
    say(f"extraction: the checks' share {fmt_stat(frac, 4)} (target <= {EXTRACT_TARGET}); write_part with/without "
        f"{fmt_stat(out['write_part']['ratio'], 3)}, extra {fmt_stat(extra, 4, ' s')} per {wp['rows']}-row part; "
        f"crc32c alone {fmt_stat(crc_extra, 4, ' s')}; every chunk written / empty ones skipped "
        f"{fmt_stat(out['codec']['every_chunk_write_ratio'], 3)}")
    return out


def _verify(ctx) -> dict:
    """(d) ``vistsne store verify --deep`` on ``verify_mb`` MB of features: MB/s."""
    mode = ctx.mode
    after = after_version(ctx)
    path = str(ctx.work / "verify_store.zarr")
    say(f"verify --deep: writing {mode.verify_mb:.0f} MB of features into {path}")
    info = run_child("verify_store", {"path": path, "size_mb": mode.verify_mb}, env=after.child_env()).result
    runs = []
    for r in range(mode.reps):
        res = after.run("store", "verify", "--deep", "--json", "--store", path, timeout=900)
        doc = last_json(res.stdout)
        if doc.get("problems"):
            raise RuntimeError(f"verify --deep found problems in the bench's own store: {doc['problems'][:3]}")
        runs.append({"wall": res.wall, "seconds": float(doc["seconds"]), "bytes": int(doc["bytes"]),
                     "mb_per_s": float(doc["mb_per_s"]), "maxrss_mb": res.maxrss_mb})
        say(f"verify --deep rep {r + 1}/{mode.reps}: {runs[-1]['mb_per_s']:.0f} MB/s "
            f"({runs[-1]['bytes'] / 1e6:.0f} MB in {runs[-1]['seconds']:.2f}s; process {res.wall:.2f}s)")
    shutil.rmtree(path, ignore_errors=True)
    return {"feature_mb": info["feature_mb"], "stored_mb": info["stored_mb"], "rows": info["rows"],
            "parts": info["parts"], "dim": info["dim"], "write_seconds": info["write_seconds"],
            "bytes_checked": runs[0]["bytes"], "mb_per_s": stats([x["mb_per_s"] for x in runs]),
            "seconds": stats([x["seconds"] for x in runs]), "process_seconds": stats([x["wall"] for x in runs]),
            "process_mb_per_s": stats([x["bytes"] / 1e6 / x["wall"] for x in runs]),
            "maxrss_mb": stats([x["maxrss_mb"] for x in runs]),
            "command": "vistsne store verify --deep --json --store STORE",
            "note": "stored bytes read and crc32c-checked per second, as the CLI reports it; the store was just "
                    "written, so the page cache holds it"}


def run(ctx) -> dict:
    """Item 10 of ``make bench``: (a) read, (b) cache hit, (c) extraction, (d) verify --deep."""
    mode = ctx.mode
    after = after_version(ctx)
    say(f"read check: {mode.checks_read_rows} x 512 in {mode.checks_read_parts} parts, with and without")
    read = run_child("read_check", {"rows": mode.checks_read_rows, "parts": mode.checks_read_parts,
                                    "reps": max(mode.reps, mode.process_reps or 0)}, env=after.child_env()).result
    say(f"read check: with/without {fmt_stat(read['ratio'], 3)} (target <= {READ_TARGET}); the check alone "
        f"{read['check_share']:.4f} of the read")
    out = {"read_check": read, "cache_hit": _cache_hits(ctx), "extraction": _extraction(ctx),
           "verify_deep": _verify(ctx), "stage": SEAMS_STAGE}
    out["before"] = {"commit": ctx.shared.get("before_commit"), "imports": before_version(ctx).imported}
    out["after"] = {**ctx.shared.get("after_snapshot", {}), "imports": after.imported}
    out["met"] = bool(read["met"] and out["cache_hit"]["met"] and out["extraction"]["met"])
    return out


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
