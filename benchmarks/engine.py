"""1. The t-SNE engine: vistsne against scikit-learn's TSNE, on the same cached features.

Four runs per size and repetition, interleaved, each in its own process (so
that each one's peak memory is its own; the clock runs around the fit only):

* ``sklearn_ref``: the reference tool's call, ``TSNE(n_components=2,
  perplexity=30, early_exaggeration=12, learning_rate=200, max_iter=1000,
  n_iter_without_progress=300, init='random')`` (``max_iter`` is today's name
  of its ``n_iter``; it sets no ``n_jobs``, so scikit-learn's defaults apply);
* ``vistsne_ref``: vistsne with the same settings as ``vistsne run`` passes
  them: learning rate 800 in openTSNE units (scikit-learn's 200 x 4, the same
  step size), init random, everything else vistsne's (PCA to 50 dimensions,
  gradient method by N, exact kNN graph over all dimensions up to the budget of
  ``EXACT_KNN_BUDGET``, ``n_jobs`` as the bench's ``--threads``);
* ``sklearn_default``: ``TSNE(n_components=2)``: PCA init, learning rate auto;
* ``vistsne_default``: ``EmbedParams()``: PCA init, learning rate auto
  (max(200, N/12) in openTSNE units = scikit-learn's auto), method auto;
* ``vistsne_ref_pca50``: ``vistsne_ref`` with ``pca_dims=50``: the features cut
  to 50 principal components before the kNN graph, as openTSNE's documentation
  advises; it shows what that reduction does to time and accuracy (the reason
  ``pca_dims="auto"`` keeps every dimension while an exact search fits).

scikit-learn's runs get ``random_state`` = the repetition, vistsne's ``seed``
the same. Accuracy is the 10-NN accuracy of the map (``knn_accuracy``, 5-fold).
vistsne's seconds include everything ``embed_many`` does, its map metrics too.
"""

from __future__ import annotations

from .common import fmt_stat, ratios, run_child, say, stats
from .setup_data import Context

SKLEARN_REF = dict(n_components=2, perplexity=30.0, early_exaggeration=12.0, learning_rate=200.0,
                   max_iter=1000, n_iter_without_progress=300, init="random")
VISTSNE_REF = dict(perplexity=30.0, n_iter=1000, early_exaggeration=12.0, learning_rate=800.0,
                   init="random", n_iter_without_progress=300)
#: Accuracy counts as held when vistsne's median map accuracy is below
#: scikit-learn's by no more than the seed-to-seed range of either (max - min
#: over the repetitions), and never less than this.
ACC_TOLERANCE = 0.005


def run(ctx: Context) -> dict:
    mode = ctx.mode
    rows = []
    for n in mode.engine_sizes:
        skip_sklearn = n in mode.sklearn_skip
        xy = ctx.xy(n)

        def job(engine, params, label):
            def f(r):
                p = dict(params)
                if engine == "sklearn":
                    p["random_state"] = r
                else:
                    p["seed"] = r
                res = run_child("tsne", {**xy, "engine": engine, "params": p, "n_jobs": ctx.n_jobs})
                out = res.result
                say(f"engine N={n} rep {r + 1}/{mode.reps} {label}: {out['seconds']:.1f}s, "
                    f"10-NN acc {out['knn_acc']:.3f}, peak RSS {res.maxrss_mb:.0f} MB")
                return {**out, "process_maxrss_mb": res.maxrss_mb}
            return f

        it = mode.n_iter
        jobs = {}
        if not skip_sklearn:
            jobs["sklearn_ref"] = job("sklearn", {**SKLEARN_REF, "max_iter": it}, "scikit-learn (reference settings)")
        jobs["vistsne_ref"] = job("vistsne", {**VISTSNE_REF, "n_iter": it}, "vistsne (reference settings)")
        if not skip_sklearn:
            jobs["sklearn_default"] = job("sklearn", dict(n_components=2, max_iter=it), "scikit-learn (defaults)")
        jobs["vistsne_default"] = job("vistsne", {"n_iter": it}, "vistsne (defaults)")
        jobs["vistsne_ref_pca50"] = job("vistsne", {**VISTSNE_REF, "n_iter": it, "pca_dims": 50},
                                        "vistsne (reference settings, PCA to 50 dims)")
        runs = {k: [] for k in jobs}
        for r in range(mode.reps):
            for k, fn in jobs.items():
                runs[k].append(fn(r))

        row = {"n": n, "sklearn_skipped": skip_sklearn, "runs": runs}
        for k, rs in runs.items():
            row[k] = {"seconds": stats([x["seconds"] for x in rs]),
                      "knn_acc": stats([x["knn_acc"] for x in rs]),
                      "maxrss_mb": stats([x["maxrss_mb"] for x in rs]),
                      "n_iter_run": stats([x.get("n_iter_run") for x in rs])}
            if k.startswith("vistsne"):
                row[k]["method"] = rs[0]["resolved"]["method"]
                row[k]["learning_rate_opentsne"] = rs[0]["resolved"]["learning_rate"]
                row[k]["pca_dims"] = rs[0]["resolved"]["pca_dims"]
                row[k]["knn_method"] = rs[0]["resolved"]["knn_method"]
                row[k]["metrics_seconds"] = stats([x["metrics_seconds"] for x in rs])
        if not skip_sklearn:
            sec = {k: [x["seconds"] for x in rs] for k, rs in runs.items()}
            row["ratio_ref"] = ratios(sec["vistsne_ref"], sec["sklearn_ref"])
            row["ratio_default"] = ratios(sec["vistsne_default"], sec["sklearn_default"])
            row["ratio_vistsne_default_vs_reference"] = ratios(sec["vistsne_default"], sec["sklearn_ref"])
            row["ratio_ref_pca50"] = ratios(sec["vistsne_ref_pca50"], sec["sklearn_ref"])
            def tol(a, b):
                acc_a, acc_b = row[a]["knn_acc"], row[b]["knn_acc"]
                return max(ACC_TOLERANCE, acc_a["max"] - acc_a["min"], acc_b["max"] - acc_b["min"])

            d_ref = row["vistsne_ref"]["knn_acc"]["median"] - row["sklearn_ref"]["knn_acc"]["median"]
            d_def = row["vistsne_default"]["knn_acc"]["median"] - row["sklearn_default"]["knn_acc"]["median"]
            row["acc_delta_ref"], row["acc_tol_ref"] = d_ref, tol("vistsne_ref", "sklearn_ref")
            row["acc_delta_default"], row["acc_tol_default"] = d_def, tol("vistsne_default", "sklearn_default")
            row["accuracy_held_ref"] = bool(d_ref >= -row["acc_tol_ref"])
            row["accuracy_held_default"] = bool(d_def >= -row["acc_tol_default"])
            row["accuracy_held"] = row["accuracy_held_ref"] and row["accuracy_held_default"]
            d_np = row["vistsne_ref_pca50"]["knn_acc"]["median"] - row["sklearn_ref"]["knn_acc"]["median"]
            row["acc_delta_ref_pca50"], row["acc_tol_ref_pca50"] = d_np, tol("vistsne_ref_pca50", "sklearn_ref")
            row["accuracy_held_ref_pca50"] = bool(d_np >= -row["acc_tol_ref_pca50"])
            say(f"engine N={n}: vistsne/scikit-learn time {fmt_stat(row['ratio_ref'], 3)} (reference settings), "
                f"{fmt_stat(row['ratio_default'], 3)} (defaults); accuracy delta {d_ref:+.3f} / {d_def:+.3f}")
        rows.append(row)
    return {"rows": rows, "settings": {
        "sklearn_ref": {**SKLEARN_REF, "max_iter": mode.n_iter}, "vistsne_ref": {**VISTSNE_REF, "n_iter": mode.n_iter},
        "sklearn_default": {"n_components": 2, "max_iter": mode.n_iter},
        "vistsne_ref_pca50": {**VISTSNE_REF, "n_iter": mode.n_iter, "pca_dims": 50},
        "vistsne_default": f"EmbedParams(n_iter={mode.n_iter}) (pca init, learning rate auto, method auto, "
                           "pca_dims auto)",
        "n_jobs_vistsne": ctx.n_jobs, "n_jobs_sklearn": "not set (the reference sets none)",
        "acc_tolerance": ACC_TOLERANCE}}
