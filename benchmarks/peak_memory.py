"""Peak memory of an embed's phases before the optimisation, at large N: the working tree against
an earlier commit, in the same run.

``python benchmarks/peak_memory.py [--n 1000000] [--before 7e9966f] [--n-jobs 2]`` prints one JSON
document.

Each tree runs ``embed_many`` (vistsne's defaults: PCA to 50 dims, hnswlib past the exact budget,
perplexity 30, k = 90) in a child process of its own with 2 iterations, so the child's peak RSS
(``VmHWM``) is that of the PCA, the kNN graph, the feature accuracy and the affinities: the phases
where the peak of a large embed lies (the optimisation of 1,000,000 rows holds about 4 GB; see the
README's "Scale as measured"). The rows are synthetic, for memory only: N rows of 512 dims, a
mixture of 10 classes in 16 dimensions mapped into 512 with a little noise (``data``), the same
for both trees; what an embed holds depends on N, the width, k and how often two rows are each
other's neighbours (the symmetric affinities hold 2 N k entries at most, N k at least). The
"before" tree is a git worktree of ``--before``, as ``benchmarks/scale_embed.py`` does it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # never let a bench module shadow a library module
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.scale_embed import CACHE, _child, say, worktree  # noqa: E402

#: the commit before the lean affinities (the "before" of the pair)
BEFORE = "7e9966f"
DIMS = 512
LATENT = 16
CLASSES = 10
ROWS_AT_ONCE = 65536


def data(n: int, dest: Path) -> Path:
    """``n`` synthetic rows (``.npz`` with ``X`` float32 n x 512 and ``y``), made once, seed 0."""
    import numpy as np

    path = dest / f"peak_memory_{n}.npz"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLASSES, LATENT)).astype(np.float32) * 3
    lift = (rng.standard_normal((LATENT, DIMS)) / np.sqrt(LATENT)).astype(np.float32)
    y = rng.integers(0, CLASSES, n)
    X = np.empty((n, DIMS), dtype=np.float32)
    for s in range(0, n, ROWS_AT_ONCE):
        m = min(ROWS_AT_ONCE, n - s)
        z = centres[y[s:s + m]] + rng.standard_normal((m, LATENT), dtype=np.float32)
        X[s:s + m] = z @ lift + 0.05 * rng.standard_normal((m, DIMS), dtype=np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, X=X, y=y)
    tmp.replace(path)
    return path


def measure(n: int, before: str, n_jobs: int) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = data(n, CACHE)
    say(f"data: {n} rows x {DIMS} in {time.perf_counter() - t0:.0f}s ({path.name})")
    args = {"data": str(path), "n_jobs": n_jobs, "n_iter": 2}
    doc: dict = {"n": n, "dims": DIMS, "n_jobs": n_jobs, "before_commit": before}
    with tempfile.TemporaryDirectory(prefix="peak-memory-", dir=CACHE) as tmp, worktree(Path(tmp), before) as tree:
        for name, env in (("before", {"VISTSNE_BENCH_TREE": str(tree)}), ("after", None)):
            say(f"embed phases ({name}) at N={n}")
            doc[name] = _child("embed", args, env=env, timeout=3 * 3600)
    b, a = doc["before"].get("peak_rss_mb"), doc["after"].get("peak_rss_mb")
    doc["ratio_after_before"] = a / b if a and b else None
    return doc


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--n-jobs", type=int, default=2)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    doc = measure(a.n, a.before, a.n_jobs)
    doc["seconds"] = time.perf_counter() - t0
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
