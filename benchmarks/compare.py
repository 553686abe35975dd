"""Bench of `vistsne compare`'s alignment: stability, quality and cost (prints one JSON document).

    python benchmarks/compare.py --store STORE --entry K1 --entry K2 ... [--rows N] [--n-iter 1000]

The entries (in sequence order; the last is the reference) are read from the
store over the rows they share (matched by sample id, as compare does); every
map is computed here on arrays, nothing is written to the store.

- stability: mean displacement (over the reference map's spread) between the
  aligned maps of two identical entries (the reference's features twice, the
  second map from another seed), and between neighbouring entries;
- quality: each aligned map's 10-NN accuracy and trustworthiness minus those
  of an independent map of the same entry (the same params);
- cost: seconds of the aligned maps of all entries over those of independent maps.

Methods: chain (start from the neighbour's aligned layout, normal phase only:
n_iter - early_exaggeration_iter iterations), chain-ee (the same start, the
full schedule with early exaggeration), reference (start from the reference,
normal phase only), procrustes (independent maps, fitted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    out = measure(parse(argv))
    print(json.dumps(out, indent=1))
    return out


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--entry", action="append", required=True)
    ap.add_argument("--stage", default="pre_logits")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--n-iter", type=int, default=1000)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--methods", default="chain,chain-ee,reference,procrustes")
    return ap.parse_args(argv)


def measure(a: argparse.Namespace) -> dict:
    """Every method over the entries ``a.entry`` (see the module docs)."""

    from vistsne.embed import EmbedParams
    from vistsne.embed.align import embed_from, procrustes
    from vistsne.embed.compare import displacement
    from vistsne.embed.compare_entry import shared_rows
    from vistsne.embed.entry import thread_limited
    from vistsne.embed.tsne import embed_many
    from vistsne.selection import RowSelection
    from vistsne.store import Store

    st = Store(a.store, mode="r")
    keys = [st.resolve_entry(e) for e in a.entry]
    n = len(keys)
    names = st.entry_meta(keys[0])["class_names"]
    sel = RowSelection(max_num_class=None, max_num_samples=max(1, a.rows // len(names))).validate()
    idxs, _, labels = shared_rows(st, keys, a.stage, sel, n - 1, len(names), [k[:12] for k in keys])
    X = [st.read_rows(k, i, a.stage).astype(np.float32) for k, i in zip(keys, idxs)]
    p = EmbedParams(n_iter=a.n_iter).validate()
    restart = replace(p, n_iter=p.n_iter - p.early_exaggeration_iter, early_exaggeration_iter=0)

    def indep(x, seed=0):
        t0 = time.perf_counter()
        (r,) = list(thread_limited(embed_many(x, labels, [replace(p, seed=seed)], n_jobs=a.n_jobs,
                                              progress=False), a.n_jobs))
        return r, time.perf_counter() - t0

    ind = [indep(x) for x in X]
    t_ind = sum(t for _, t in ind)
    ref = ind[-1][0]
    out = {"rows": int(len(labels)), "entries": [k[:12] for k in keys], "n_iter": p.n_iter,
           "independent_seconds": round(t_ind, 2),
           "independent": [{k: round(v, 4) for k, v in r.metrics.items()} for r, _ in ind], "methods": {}}
    for method in a.methods.split(","):
        t0 = time.perf_counter()
        maps: list = [None] * n
        maps[-1] = ref.coords
        metrics = [None] * n
        metrics[-1] = ref.metrics
        for i in range(n - 2, -1, -1):
            if method == "procrustes":
                r = ind[i][0]
                maps[i] = procrustes(r.coords, ref.coords)[0]
                metrics[i] = r.metrics
                continue
            start = maps[i + 1] if method.startswith("chain") else ref.coords
            q = p if method == "chain-ee" else restart
            r = embed_from(X[i], labels, replace(q, align="chain", align_from="x"), start, n_jobs=a.n_jobs)
            maps[i] = procrustes(r.coords, ref.coords)[0]
            metrics[i] = r.metrics
        seconds = time.perf_counter() - t0 + ind[-1][1]  # the reference map is part of every method
        if method == "procrustes":
            seconds = t_ind + (time.perf_counter() - t0)
        # two identical entries: the reference's features again, started from the reference (seed 1)
        if method == "procrustes":
            twin = procrustes(indep(X[-1], seed=1)[0].coords, ref.coords)[0]
        else:
            q = p if method == "chain-ee" else restart
            twin = procrustes(embed_from(X[-1], labels, replace(q, align="chain", align_from="x", seed=1),
                                         ref.coords, n_jobs=a.n_jobs).coords, ref.coords)[0]
        out["methods"][method] = {
            "seconds": round(seconds, 2), "cost_vs_independent": round(seconds / t_ind, 3),
            "identical_displacement": round(displacement(twin, ref.coords), 4),
            "neighbour_displacement": [round(displacement(maps[i], maps[i + 1]), 4) for i in range(n - 1)],
            "quality_delta": [{"knn_acc_map": round(m["knn_acc_map"] - r.metrics["knn_acc_map"], 4),
                               "trustworthiness": round(m["trustworthiness"] - r.metrics["trustworthiness"], 4)}
                              for m, (r, _) in zip(metrics, ind)],
        }
    return out


#: checkpoints compared by the bench runner's item (the target is stated for 5)
CHECKPOINTS = 5
#: the tiny run (the test suite's smoke run of every item): 3, the fewest with a neighbour on each side
TINY_CHECKPOINTS = 3
COST_TARGET = 1.1


def run(ctx) -> dict:
    """The bench runner's item: the demo trained with snapshots, 5 checkpoints at N = 2,000 (tiny: 3 at 200).

    The checkpoints are one training run of the demo config saved 5 times along its schedule
    (``benchmarks/.cache/compare/``, made once); each is extracted into the bench store over the
    same rows (a cache hit after the first run), then every method is measured on them.
    """
    import subprocess

    from benchmarks.common import BENCH_DIR, PYTHON, ROOT, run_child, say

    tiny = ctx.mode.name == "tiny"
    n = 200 if tiny else 2000
    folder = (ctx.work if tiny else BENCH_DIR / ".cache") / "compare"
    count = TINY_CHECKPOINTS if tiny else CHECKPOINTS
    say(f"compare: {count} checkpoints of one demo training run (made once), N={n}")
    series = run_child("checkpoint_series", {"path": str(folder / "digits_resnet18.pth"),
                                              "snapshots": count - 1, "max_iters": count if tiny else None},
                       timeout=3600).result["paths"]
    keys = []
    for ck in series:
        proc = subprocess.run([PYTHON, "-m", "vistsne", "-q", "extract", str(ROOT / "configs" / "digits_resnet18.py"),
                               "--checkpoint", ck, "--store", ctx.store, "--device", "cpu", "--max-num-class", "10",
                               "--max-num-samples", str(n // 10), "--cfg-options", ctx.expand_option(),
                               "--json"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if proc.returncode:
            raise RuntimeError(f"extract {ck} failed: {proc.stderr[-2000:]}")
        keys.append(json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])["entry"])
    args = ["--store", ctx.store, "--rows", str(n), "--n-iter", str(ctx.mode.n_iter), "--n-jobs", str(ctx.n_jobs)]
    for k in keys:
        args += ["--entry", k]
    out = measure(parse(args))
    out.update({"item": "compare", "checkpoints": [Path(c).name for c in series], "cost_target": COST_TARGET,
                "default_method": "procrustes"})
    out["met"] = out["methods"]["procrustes"]["cost_vs_independent"] <= COST_TARGET
    return out


if __name__ == "__main__":
    main()
