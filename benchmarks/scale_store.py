"""The store at scale (issue 16, point 4): reads of a million rows, and a cache hit on 50,000 images.

``python benchmarks/scale_store.py`` prints one JSON document; ``run(ctx)`` returns it (for
``benchmarks/run.py``). Everything is built once under ``benchmarks/.cache/`` and reused:

- ``store_scale_parts1000.zarr``: 1,000 parts x 1,000 rows of 512-d float32 (random normal, plus
  the part number), 16 px thumbnails, written with ``Store.write_part`` (about 1.5 GB; a minute).
  (a) ``read_rows`` of all 1,000,000 rows, fresh Store each time, in a fresh process of the
  version before this change (``BEFORE``, a git worktree) and of the working tree, interleaved;
  (b) the same rows after ``vistsne store compact`` of a copy of that store (8 parts of 131,072
  rows), working tree only.
- ``store_scale_tree/tree50k``: 10 class folders x 5,000 PNGs of 8 x 8 px, and
  ``store_scale_store50k.zarr``: its entry, extracted once with the demo config (ResNet-18 for
  CIFAR, random init, at the images' own 8 px: about 8 minutes on 2 loaded cores) and
  ``--thumb-size 48`` (the size that entry was made with). Then ``vistsne extract`` of the same
  command, whole processes: the version before this change, the working tree without its key memo
  (a fresh cache folder: it parses the config, as before) and with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
PYTHON = sys.executable
BEFORE = "4317932"  # the commit before the store-at-scale change
KEY = "k" * 64
PARTS, ROWS, DIM = 1000, 1000, 512
TREE = CACHE / "store_scale_tree" / "tree50k"
TREE_STORE = CACHE / "store_scale_store50k.zarr"
CONFIG = "configs/digits_resnet18.py"

READ = r"""
import json, sys, time, resource
import numpy as np
from vistsne.store import Store
t = time.perf_counter()
st = Store(sys.argv[1], mode="r")
x = st.read_rows(sys.argv[2], np.arange(int(sys.argv[3])), stage="s")
s = time.perf_counter() - t
print(json.dumps({"seconds": s, "shape": list(x.shape), "sum": float(x[::997].sum(dtype=np.float64)),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def say(msg: str) -> None:
    print(f"[scale_store] {msg}", file=sys.stderr, flush=True)


def _build_parts(path: Path) -> None:
    import numpy as np

    from vistsne.store import Store

    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    st = Store(str(tmp))
    st.create_entry(KEY, {"class_names": [str(i) for i in range(10)], "stages": {"s": DIM}},
                    np.zeros(PARTS * ROWS, np.int32))
    block = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    for p in range(PARTS):
        idx = np.arange(p * ROWS, (p + 1) * ROWS)
        st.write_part(KEY, idx, (idx % 10).astype(np.int32), np.zeros((ROWS, 16, 16, 3), np.uint8), {"s": block + p})
        if p % 100 == 0:
            say(f"writing the 1,000-part store: part {p}")
    os.rename(tmp, path)


def _build_tree(root: Path, n: int = 50_000, classes: int = 10, size: int = 8) -> None:
    import numpy as np
    from PIL import Image

    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = tmp / f"class{c:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n // classes):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            a[..., c % 3] = 40 * (c % 6)
            Image.fromarray(a).save(d / f"{i:05d}.png")
    os.rename(tmp, root)


def _worktree(work: Path) -> Path:
    path = work / f"before-{BEFORE}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), BEFORE], check=True,
                   capture_output=True)
    return path


def _env(tree: Path, cache: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    if cache is not None:
        env["VISTSNE_CACHE_DIR"] = str(cache)
    return env


def _read(tree: Path, store: Path, n: int) -> dict:
    out = subprocess.run([PYTHON, "-c", READ, str(store), KEY, str(n)], env=_env(tree), cwd=str(tree),
                         capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise RuntimeError(out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _extract(tree: Path, cache: Path) -> dict:
    """The cache-hit command, as a whole process (the version before stores 48 px with no flag for it)."""
    argv = [PYTHON, "-m", "vistsne", "extract", str(ROOT / CONFIG), "--images", str(TREE), "--max-num-class", "all",
            "--max-num-samples", "all", *(["--thumb-size", "48"] if tree == ROOT else []),
            "--store", str(TREE_STORE), "--json"]
    t = time.perf_counter()
    out = subprocess.run(argv, env=_env(tree, cache), cwd=str(tree), capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(out.stderr[-800:])
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "cached": doc["cached"], "entry": doc["entry"]}


def _med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def run(ctx=None, reps: int = 3) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    parts_store = CACHE / "store_scale_parts1000.zarr"
    if not parts_store.exists():
        _build_parts(parts_store)
    compacted = CACHE / "store_scale_compacted.zarr"
    if not compacted.exists():
        say("compacting a copy of the 1,000-part store")
        tmp = compacted.with_name(compacted.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(parts_store, tmp)
        t = time.perf_counter()
        subprocess.run([PYTHON, "-m", "vistsne", "store", "compact", "--store", str(tmp)], cwd=str(ROOT), check=True,
                       capture_output=True)
        (tmp / "compact_seconds.txt").write_text(f"{time.perf_counter() - t:.1f}\n")
        os.rename(tmp, compacted)
    if not TREE.exists():
        say("writing the 50,000-image tree")
        _build_tree(TREE)
    work = Path(tempfile.mkdtemp(prefix="scale-store-", dir=getattr(ctx, "work", None)))
    before = _worktree(work)
    try:
        if not TREE_STORE.exists():
            say("extracting the 50,000 images once (about 8 minutes on 2 cores)")
        first = _extract(ROOT, work / "cache-first")
        reads = {"before": [], "after": [], "after_compact": []}
        n = PARTS * ROWS
        for r in range(reps):
            say(f"reads of {n:,} rows, round {r + 1}/{reps}")
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for v in order:
                reads[v].append(_read(before if v == "before" else ROOT, parts_store, n))
            reads["after_compact"].append(_read(ROOT, compacted, n))
        sums = {round(x["sum"], 3) for v in reads.values() for x in v}
        if len(sums) != 1:
            raise RuntimeError(f"the reads differ: {sums}")
        hits = {"before": [], "after_no_memo": [], "after": []}
        for r in range(reps):
            say(f"cache hits on 50,000 images, round {r + 1}/{reps}")
            hits["before"].append(_extract(before, work / f"cache-before-{r}"))
            hits["after_no_memo"].append(_extract(ROOT, work / f"cache-fresh-{r}"))
            hits["after"].append(_extract(ROOT, work / "cache-first"))  # the memo of the first run
        if not all(h["cached"] for v in hits.values() for h in v):
            raise RuntimeError("a cache-hit run was not a cache hit")
        rs = {v: {"seconds_median": _med([x["seconds"] for x in xs]), "seconds": [x["seconds"] for x in xs],
                  "maxrss_mb_median": _med([x["maxrss_mb"] for x in xs])} for v, xs in reads.items()}
        hs = {v: {"wall_s_median": _med([x["wall_s"] for x in xs]), "wall_s": [x["wall_s"] for x in xs]}
              for v, xs in hits.items()}
        return {
            "read": {"rows": n, "dim": DIM, "dtype": "float32", "parts": PARTS, "parts_after_compact":
                     len([p for p in os.listdir(compacted / "entries" / KEY / "parts") if p != "zarr.json"]),
                     "compact_seconds": float((compacted / "compact_seconds.txt").read_text()),
                     **rs, "ratio_after_before": rs["after"]["seconds_median"] / rs["before"]["seconds_median"],
                     "ratio_compact_before": rs["after_compact"]["seconds_median"] / rs["before"]["seconds_median"]},
            "cache_hit": {"images": 50_000, "image_px": 8, "config": CONFIG, "checkpoint": None,
                          "first_run": first, **hs,
                          "ratio_after_before": hs["after"]["wall_s_median"] / hs["before"]["wall_s_median"]},
            "before_commit": BEFORE, "reps": reps, "load_average": os.getloadavg(),
        }
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(json.dumps(run(None, reps), indent=1))
