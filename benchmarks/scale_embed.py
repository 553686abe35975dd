"""Embed at scale: the kNN backend table, embed wall and peak RSS by N, before/after, --subsample.

``python benchmarks/scale_embed.py [--n 100000] [--full] [--store PATH]`` prints one JSON document.

The features are real: the demo config over the digits test split expanded by augmentation to
1.1 million images at 24 x 24 px (``expand=1100000 image_size=24``: 0.89 feature 10-NN accuracy,
against 0.95 at the trained 32 px, for 2.4x the images/s), through the demo checkpoint in
bfloat16, stage ``pre_logits`` (512-d), 100,000 a class, extracted once into
``benchmarks/.cache/scale_store.zarr`` (git-ignored; about 45 min on the 2-core bench machine)::

    vistsne extract configs/digits_resnet18.py --checkpoint work_dirs/demo/digits_resnet18.pth \
        --cfg-options test_dataloader.dataset.expand=1100000 test_dataloader.dataset.image_size=24 \
        --vis-stage pre_logits --max-num-class 10 --max-num-samples 100000 --batch-size 256 \
        --thumb-size 16 --precision bfloat16 --device cpu --store benchmarks/.cache/scale_store.zarr

(the same command resumes an extraction that was stopped; on a CPU without bfloat16 units, AVX512-BF16
or AMX, bfloat16 is emulated, 14 img/s here against 115 in float32: use ``--precision float32``,
about 2.2 hours for the million at 125 img/s, and stop it when it holds enough rows for the sizes
wanted; a prefix of the extraction is close to class-balanced, about 10% a class, and a later run
of the same command goes on from there; where the million must be built in one sitting, the same
command at ``image_size=16`` ran at 275 img/s here, 63 minutes for the million). A size N is a
class-balanced sample of N of the rows of the store's largest entry (every size up to what it
holds; larger sizes are reported as missing). Each measurement runs in a child process of its
own (this file with ``--child``), whose peak RSS is the child's own ``VmHWM``:

* ``embed``: ``embed_many`` of the working tree at each N (70,000, 100,000; 250,000 and
  1,000,000 with ``--full``): wall and peak RSS, the map's metrics, each phase's seconds.
* ``subsample``: ``--subsample`` (``--subsample-n``: 20,000; 100,000 with ``--full``) plus
  transform at the largest N: wall, peak RSS, the subsample's and the placed rows' 10-NN accuracy.
* ``backends``: the kNN graph (k = 90, perplexity 30) of the N rows (the largest held; with
  ``--full`` 100,000 too) after the pipeline's PCA to 50 dims (float32), by openTSNE's Annoy,
  hnswlib, faiss-cpu (``IndexHNSWFlat``) and pynndescent (the last two only when importable, e.g.
  from ``VISTSNE_BENCH_EXTRA_PATH``; they are not vistsne dependencies): seconds, peak RSS,
  recall@90 against the exact graph on 2,000 query rows; and the 10-NN accuracy of a t-SNE map
  (vistsne's default iterations) of a ``--sample``-row sample (20,000) built on each backend's graph beside the
  map of the exact graph.
* ``before_after``: the embed at 70,000 (or the largest N held) by the commit this work started
  from (a git worktree, as ``benchmarks/seams.py`` does) and by the working tree.

Each step's result is kept in ``benchmarks/.cache/scale_embed_steps.json`` under the code
measured (git's tree hashes of vistsne/ and this file), the entry and its rows (:class:`Steps`):
a run that stops resumes where it stopped, so the hours of a full run may be spread over
several; a tree with uncommitted changes there keeps nothing.

``run(ctx)`` runs it from ``make bench`` with the bench context (its ``n_jobs``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # never let a bench module shadow a library module
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if os.environ.get("VISTSNE_BENCH_TREE"):
    sys.path.insert(0, os.environ["VISTSNE_BENCH_TREE"])

CACHE = ROOT / "benchmarks" / ".cache"
STORE = CACHE / "scale_store.zarr"
STAGE = "pre_logits"
#: the commit this work started from (issue 16's embed part): the "before" of the before/after pair
BEFORE_COMMIT = "4317932"
K = 90
PCA_DIMS = 50
RECALL_QUERIES = 2000
SIZES = (70_000, 100_000)
FULL_SIZES = (250_000, 1_000_000)
#: each step's result, for a later run at the same commit (see :class:`Steps`); git-ignored with the cache
STEPS = CACHE / "scale_embed_steps.json"


#: iterations of every map: vistsne's default (``EmbedParams.n_iter``; ``--n-iter`` sets another)
N_ITER = 750


def _ee(n_iter: int) -> int:
    """The early-exaggeration phase: the default 250 from 750 iterations on, a third of fewer."""
    return 250 if n_iter >= 750 else max(1, n_iter // 3)


# ------------------------------------------------------------------ children
def _load(path: str):
    import numpy as np

    d = np.load(path)
    return d["X"], d["y"]


def _pca(X):
    from vistsne.embed.tsne import preprocess

    return preprocess(X, PCA_DIMS, 0)


def _graph(backend: str, Xp, n_jobs: int):
    """(indices N x K int64, distances) of ``backend``'s graph of ``Xp``."""
    import numpy as np

    if backend in ("exact", "hnsw", "annoy"):
        from vistsne.embed.neighbors import KnnIndex

        return KnnIndex(Xp, backend, n_jobs=n_jobs, seed=0).graph(K)
    extra = os.environ.get("VISTSNE_BENCH_EXTRA_PATH")
    if extra and extra not in sys.path:
        sys.path.append(extra)
    if backend == "faiss":
        import faiss

        faiss.omp_set_num_threads(n_jobs)
        index = faiss.IndexHNSWFlat(Xp.shape[1], 16)
        index.hnsw.efConstruction = 200
        index.add(np.ascontiguousarray(Xp, dtype=np.float32))
        index.hnsw.efSearch = 2 * (K + 1)
        d, i = index.search(np.ascontiguousarray(Xp, dtype=np.float32), K + 1)
        return i[:, 1:].astype(np.int64), np.sqrt(np.maximum(d[:, 1:], 0))
    if backend == "pynndescent":
        import pynndescent

        index = pynndescent.NNDescent(Xp, n_neighbors=K + 1, random_state=0, n_jobs=n_jobs)
        i, d = index.neighbor_graph
        return i[:, 1:].astype(np.int64), d[:, 1:]
    raise ValueError(backend)


def job_graph(args: dict) -> dict:
    """One backend's graph of the N rows (after PCA): seconds, recall@K on the query rows."""
    import numpy as np

    X, _ = _load(args["data"])
    Xp = _pca(X)
    del X
    try:
        if args["backend"] in ("faiss", "pynndescent"):
            _graph(args["backend"], Xp[:200], 1)  # import (and pynndescent's JIT compile) kept out of the clock
    except ImportError as e:
        return {"backend": args["backend"], "error": f"not installed ({e})"}
    t0 = time.perf_counter()
    idx, _ = _graph(args["backend"], Xp, args["n_jobs"])
    seconds = time.perf_counter() - t0
    exact = np.load(args["exact"])
    q = np.load(args["queries"])
    recall = float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(idx[q], exact)]) / K)
    return {"backend": args["backend"], "n": int(len(Xp)), "seconds": seconds, "recall_at_k": recall}


def job_exact_queries(args: dict) -> dict:
    """The exact K nearest rows (after PCA) of the query rows among all rows."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    X, _ = _load(args["data"])
    Xp = _pca(X)
    q = np.sort(np.random.default_rng(0).choice(len(Xp), min(RECALL_QUERIES, len(Xp)), replace=False))
    _, idx = NearestNeighbors(n_neighbors=K + 1).fit(Xp).kneighbors(Xp[q])
    own = idx == q[:, None]
    own[~own.any(axis=1), -1] = True
    np.save(args["exact"], idx[~own].reshape(len(q), K))
    np.save(args["queries"], q)
    return {}


def job_map(args: dict) -> dict:
    """A t-SNE map of the sample on ``backend``'s graph, with the library's own affinities and optimiser."""
    import numpy as np

    from vistsne.embed import tsne
    from vistsne.embed.metrics import graph_knn_accuracy
    from vistsne.embed.params import EmbedParams, resolve

    X, y = _load(args["data"])
    try:
        if args["backend"] in ("faiss", "pynndescent"):
            _graph(args["backend"], _pca(X[:200]), 1)
    except ImportError as e:
        return {"backend": args["backend"], "error": f"not installed ({e})"}
    t0 = time.perf_counter()
    Xp = _pca(X)
    idx, dist = _graph(args["backend"], Xp, args["n_jobs"])
    p = EmbedParams(n_iter=args["n_iter"], early_exaggeration_iter=_ee(args["n_iter"])).validate()
    r = {**resolve(p, len(Xp), Xp.shape[1]), "pca_dims": PCA_DIMS}
    P = tsne._affinities(idx, np.asarray(dist, dtype=np.float64), p.perplexity, K, args["n_jobs"])
    init = tsne._initial_positions("pca", Xp, None, 2, 0)
    coords, kl, _ = tsne._optimize(init, P, p, r, args["n_jobs"], tsne._NullBar(), False, own=True)
    return {"backend": args["backend"], "n": int(len(Xp)), "seconds": time.perf_counter() - t0,
            "knn_acc_map": float(graph_knn_accuracy(coords, y)), "kl": kl}


def job_embed(args: dict) -> dict:
    """``embed_many`` (of whichever vistsne this child imports) over the N rows, one default map."""
    import numpy as np

    import vistsne
    from vistsne.embed.params import EmbedParams
    from vistsne.embed.tsne import embed_many

    X, y = _load(args["data"])
    X = np.ascontiguousarray(X)
    fields = {"n_iter": args["n_iter"], "early_exaggeration_iter": _ee(args["n_iter"])}
    if args.get("subsample"):
        fields["subsample"] = args["subsample"]
    t0 = time.perf_counter()
    res = next(iter(embed_many(X, y, [EmbedParams(**fields)], n_jobs=args["n_jobs"], progress=True)))
    return {"n": int(len(X)), "seconds": time.perf_counter() - t0, "metrics": res.metrics,
            "resolved": res.resolved, "n_iter_run": res.n_iter_run, "vistsne": vistsne.__file__}


JOBS = {"graph": job_graph, "exact_queries": job_exact_queries, "map": job_map, "embed": job_embed}


def _child_main(spec_path: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    spec = json.loads(Path(spec_path).read_text())
    out = JOBS[spec["job"]](spec["args"])
    from benchmarks.common import peak_rss_mb

    out["child_maxrss_mb"] = peak_rss_mb()
    Path(spec["out"]).write_text(json.dumps(out))


# ------------------------------------------------------------------ parent
def say(msg: str) -> None:
    print(f"[scale_embed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _child(job: str, args: dict, *, env: dict | None = None, timeout: float = 3600) -> dict:
    from benchmarks.common import run_process

    with tempfile.TemporaryDirectory(prefix="scale-embed-") as tmp:
        spec = Path(tmp) / "job.json"
        out = Path(tmp) / "out.json"
        spec.write_text(json.dumps({"job": job, "args": args, "out": str(out)}))
        res = run_process([sys.executable, str(Path(__file__).resolve()), "--child", str(spec)], env=env,
                          timeout=timeout, check=False)
        if res.returncode != 0 or not out.exists():
            tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-5:])
            return {"error": f"exit {res.returncode}: {tail}", "wall_s": res.wall, "peak_rss_mb": res.maxrss_mb}
        doc = json.loads(out.read_text())
        doc["wall_s"] = res.wall
        # the library's own phase lines ("kNN graph ... done in 12.3s"): where the time went
        phases = [ln.strip() for ln in (res.stderr or "").replace("\r", "\n").splitlines() if ": done in " in ln]
        if phases:
            doc["phases"] = phases
        doc["peak_rss_mb"] = doc.pop("child_maxrss_mb")  # the child's own VmHWM (see _maxrss_mb)
        return doc


def features(store: Path, sizes: list[int], dest: Path) -> dict[int, str]:
    """Class-balanced samples of the store's ``pre_logits`` rows at each size it can give (``.npz``)."""
    import numpy as np

    from vistsne.embed.tsne import balanced_subsample
    from vistsne.store import Store

    st = Store(str(store), mode="r")
    # a store of several extractions (70,000 rows, then 250,000): the one holding the most rows
    held = {key: st.present(key, [STAGE]) for key in st.entry_keys()}
    entry = max(held, key=lambda key: len(held[key]))
    present = np.array(sorted(held[entry]), dtype=np.int64)
    labels = st.read_rows(entry, present, what="label")
    out = {}
    for n in sorted(set(sizes)):
        if n > len(present):
            continue
        path = dest / f"scale_{entry[:12]}_{len(present)}_{n}.npz"
        if not path.exists():
            rows = present[balanced_subsample(labels, n)]
            X = st.read_rows(entry, rows, STAGE)
            np.savez(path, X=X, y=st.read_rows(entry, rows, what="label"))
        out[n] = str(path)
    return {"entry": entry, "rows_present": int(len(present)), "paths": out}


@contextlib.contextmanager
def worktree(work: Path, commit: str = BEFORE_COMMIT):
    """A git worktree of ``commit`` under ``work`` (for ``VISTSNE_BENCH_TREE``), removed afterwards."""
    path = work / f"before-{commit}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
                   check=True, capture_output=True, text=True, timeout=300)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                       capture_output=True, timeout=300)


def _head() -> str:
    """What the measured code is: git's tree hashes of ``vistsne/`` and this file at HEAD (so commits
    elsewhere, the README, keep earlier steps), ``+dirty`` with uncommitted changes to either."""
    paths = ("vistsne", "benchmarks/scale_embed.py")
    trees = [subprocess.run(["git", "-C", str(ROOT), "rev-parse", f"HEAD:{p}"], capture_output=True,
                            text=True).stdout.strip()[:12] for p in paths]
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", *paths],
                           capture_output=True, text=True).stdout.strip()
    return "/".join(trees) + ("+dirty" if dirty else "")


class Steps:
    """Each measurement's result, kept in ``path`` (JSON) under a key naming the step, the store's
    entry and rows, and the code (:func:`_head`): a run that stops (killed, out of time) resumes where
    it stopped, and a later run of the same code reuses what is there. Failed steps are not kept. A dirty tree
    keeps nothing (its code cannot be named)."""

    def __init__(self, path: Path | None, tag: str):
        self.path, self.tag = path, tag
        self.keep = path is not None and not tag.endswith("+dirty")
        self.done = json.loads(path.read_text()) if self.keep and path.exists() else {}

    def run(self, name: str, fn):
        key = f"{self.tag} {name}"
        if key in self.done:
            say(f"{name}: kept from an earlier run at this commit")
            return self.done[key]
        out = fn()
        if self.keep and "error" not in out:
            self.done[key] = out
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.done, indent=1))
            os.replace(tmp, self.path)
        return out


def measure(n_max: int, *, full: bool = False, store: Path = STORE, sample: int = 20000, n_iter: int = N_ITER,
            n_jobs: int = 2, subsample_n: int = 20000, backends=("annoy", "hnsw", "faiss", "pynndescent"),
            map_backends=("exact", "annoy", "hnsw", "faiss"), before: bool = True,
            partial: Path | None = None, sizes: list[int] | None = None,
            backend_sizes: list[int] | None = None, steps: Path | None = None) -> dict:
    """Every measurement; ``partial``: a file that holds the document as it grows (each step's result);
    ``steps``: a file that keeps each step's result for a later run at the same commit (:class:`Steps`).

    ``sizes``: the embed sizes (default 70,000 and 100,000; with ``full`` also 250,000 and 1,000,000);
    ``backend_sizes``: the N of the backend table (default: the largest N held up to ``n_max``, and
    100,000 beside it with ``full``). The order puts the embeds first: they are the targets."""
    sizes = [s for s in (sizes or (*SIZES, *(FULL_SIZES if full else ()))) if s <= n_max] or [n_max]
    dest = CACHE / "scale"
    dest.mkdir(parents=True, exist_ok=True)
    feats = features(store, [*sizes, n_max, sample, *(backend_sizes or ()), 100_000], dest)
    held = feats["rows_present"]
    have = {n: p for n, p in feats["paths"].items()}
    n_top = max([n for n in have if n <= n_max], default=None)
    if n_top is None or n_top < n_max:  # the store holds fewer rows: measure at what it holds
        n_top = min(n_max, held)
        have.update(features(store, [n_top], dest)["paths"])
    b_sizes = sorted({n for n in (backend_sizes or ([100_000, n_top] if full else [n_top])) if n in have})
    say(f"features: {held} rows of {STAGE} held; backend table at N={', '.join(map(str, b_sizes))}")
    done = Steps(steps, f"{_head()} {feats['entry'][:12]} {held}")

    def save():
        if partial is not None:
            partial.write_text(json.dumps(doc, indent=1))

    doc: dict = {"store_rows": held, "entry": feats["entry"], "stage": STAGE, "n_jobs": n_jobs, "k": K,
                 "pca_dims": PCA_DIMS, "n_iter": n_iter, "missing_sizes": [s for s in sizes if s > held]}

    with tempfile.TemporaryDirectory(prefix="scale-embed-", dir=CACHE) as tmp:
        tmp = Path(tmp)
        embeds = []
        doc["embed"] = embeds
        for n in [s for s in sizes if s in have] or [n_top]:
            say(f"embed (working tree) at N={n}")
            embeds.append({"n": n, **done.run(f"embed {n} {n_iter}", lambda n=n: _child(
                "embed", {"data": have[n], "n_jobs": n_jobs, "n_iter": n_iter}, timeout=3 * 3600))})
            save()

        if subsample_n < n_top:
            say(f"--subsample {subsample_n} + transform at N={n_top}")
            doc["subsample"] = {"n": n_top, "subsample": subsample_n, **done.run(
                f"subsample {subsample_n} {n_top} {n_iter}", lambda: _child(
                    "embed", {"data": have[n_top], "n_jobs": n_jobs, "n_iter": n_iter, "subsample": subsample_n},
                    timeout=3 * 3600))}
            save()

        maps = []
        if sample in have:
            for b in map_backends:
                say(f"map of the {sample}-row sample on the {b} graph")
                row = done.run(f"map {b} {sample} {n_iter}", lambda b=b: _child(
                    "map", {"data": have[sample], "backend": b, "n_jobs": n_jobs, "n_iter": n_iter}))
                row.setdefault("backend", b)
                maps.append(row)
        exact_acc = next((m.get("knn_acc_map") for m in maps if m["backend"] == "exact"), None)
        tables = []
        doc["backends"] = {"sizes": b_sizes, "tables": tables,
                           "maps": {"n": sample, "rows": maps, "exact_knn_acc_map": exact_acc}}
        for nb in b_sizes:
            q = {"exact": str(tmp / f"exact{nb}.npy"), "queries": str(tmp / f"queries{nb}.npy")}
            table = []
            tables.append({"n": nb, "table": table})
            for b in backends:
                say(f"kNN graph: {b} at N={nb}")

                def graph(b=b, nb=nb, q=q):
                    if not Path(q["exact"]).exists():
                        _child("exact_queries", {"data": have[nb], **q}, timeout=3600)
                    return _child("graph", {"data": have[nb], "backend": b, "n_jobs": n_jobs, **q}, timeout=3600)

                row = done.run(f"graph {b} {nb}", graph)
                row.setdefault("backend", b)
                m = next((m for m in maps if m["backend"] == b), {})
                row["map_knn_acc"] = m.get("knn_acc_map")
                row["map_knn_acc_minus_exact"] = (m["knn_acc_map"] - exact_acc
                                                  if exact_acc is not None and "knn_acc_map" in m else None)
                table.append(row)
                save()

        if before:
            n_ba = 70_000 if 70_000 in have else n_top

            def before_run():
                with worktree(tmp) as tree:
                    return _child("embed", {"data": have[n_ba], "n_jobs": n_jobs, "n_iter": n_iter},
                                  env={"VISTSNE_BENCH_TREE": str(tree)})

            say(f"embed before ({BEFORE_COMMIT}) at N={n_ba}")
            b = done.run(f"before {BEFORE_COMMIT} {n_ba} {n_iter}", before_run)
            a = next((e for e in embeds if e["n"] == n_ba), None) or {"n": n_ba, **done.run(
                f"embed {n_ba} {n_iter}", lambda: _child("embed", {"data": have[n_ba], "n_jobs": n_jobs,
                                                                   "n_iter": n_iter}))}
            doc["before_after"] = {"n": n_ba, "before_commit": BEFORE_COMMIT, "before": b, "after": a,
                                   "ratio_after_before": (a.get("wall_s", 0) / b["wall_s"]
                                                          if b.get("wall_s") and "error" not in b else None)}
    save()
    return doc


def run(ctx) -> dict:
    """The bench item: at the sizes the scale store holds (``FULL=1``: up to 1,000,000)."""
    full = "full" in getattr(ctx.mode, "name", "")
    if not STORE.exists():
        return {"skipped": f"no scale store at {STORE.relative_to(ROOT)}; see benchmarks/scale_embed.py"}
    return measure(1_000_000 if full else 100_000, full=full, n_jobs=getattr(ctx, "n_jobs", 2),
                   subsample_n=100_000 if full else 20_000, steps=STEPS)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--full", action="store_true", help="also 250,000 and 1,000,000 rows (when held)")
    ap.add_argument("--store", default=str(STORE))
    ap.add_argument("--sample", type=int, default=20000)
    ap.add_argument("--n-iter", type=int, default=N_ITER)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--subsample-n", type=int, default=20000)
    ap.add_argument("--backends", default="annoy,hnsw,faiss,pynndescent")
    ap.add_argument("--map-backends", default="exact,annoy,hnsw,faiss")
    ap.add_argument("--no-before", action="store_true")
    ap.add_argument("--partial", default=None, help="a file that holds the document as it grows")
    ap.add_argument("--sizes", default=None, help="comma list of embed sizes (default 70000,100000[,250000,1000000])")
    ap.add_argument("--backend-sizes", default=None, help="comma list of the backend table's N")
    ap.add_argument("--steps", default=str(STEPS), help="file keeping each step's result ('' for none)")
    a = ap.parse_args(argv)
    if a.child:
        _child_main(a.child)
        return
    t0 = time.perf_counter()
    doc = measure(a.n, full=a.full, store=Path(a.store), sample=a.sample, n_iter=a.n_iter, n_jobs=a.n_jobs,
                  subsample_n=a.subsample_n, backends=[b for b in a.backends.split(",") if b],
                  map_backends=[b for b in a.map_backends.split(",") if b], before=not a.no_before,
                  partial=Path(a.partial) if a.partial else None,
                  sizes=[int(x) for x in a.sizes.split(",")] if a.sizes else None,
                  backend_sizes=[int(x) for x in a.backend_sizes.split(",")] if a.backend_sizes else None,
                  steps=Path(a.steps) if a.steps else None)
    doc["seconds"] = time.perf_counter() - t0
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
