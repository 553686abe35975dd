"""6. Overhead: ``embed_many`` against openTSNE called directly with identical parameters.

One process per size; per repetition the two alternate which goes first. The
direct run is openTSNE's step-by-step API with exactly what vistsne resolves
for its defaults: scikit-learn PCA to the same dims with the same seed,
``PerplexityBasedNN`` with the same kNN method, perplexity, seed and
``n_jobs``, the same PCA initialisation, ``TSNEEmbedding`` with the same
gradient method, theta and seed, then ``optimize`` twice (250 iterations at
exaggeration 12, momentum 0.5; 750 at 1, momentum 0.8; the same learning
rate). What vistsne adds is its checks, a copy of P, the KL check every 50
iterations (early stop), and the map metrics (10-NN accuracy of features and
map, trustworthiness), reported separately. Target <= 1.05 x.
"""

from __future__ import annotations

from .common import fmt_stat, ratios, run_child, say, stats
from .setup_data import Context

TARGET = 1.05


def run(ctx: Context) -> dict:
    mode = ctx.mode
    rows = []
    for n in mode.overhead_sizes:
        res = run_child("overhead", {**ctx.xy(n), "reps": mode.reps, "n_jobs": ctx.n_jobs,
                                     "n_iter": mode.n_iter}).result
        tsne_only = [v - m for v, m in zip(res["vistsne"], res["vistsne_metrics"])]
        row = {"n": n, "resolved": res["resolved"], "vistsne_seconds": stats(res["vistsne"]),
               "vistsne_metrics_seconds": stats(res["vistsne_metrics"]), "direct_seconds": stats(res["direct"]),
               "ratio": ratios(res["vistsne"], res["direct"]),
               "ratio_without_metrics": ratios(tsne_only, res["direct"]),
               "acc_vistsne": stats(res["acc_vistsne"]), "acc_direct": stats(res["acc_direct"]),
               "n_iter_run": stats(res["n_iter_run"]), "target": TARGET}
        row["met"] = bool(row["ratio"]["median"] <= TARGET)
        row["met_without_metrics"] = bool(row["ratio_without_metrics"]["median"] <= TARGET)
        say(f"overhead N={n}: vistsne {fmt_stat(row['vistsne_seconds'], 1, 's')} (metrics "
            f"{fmt_stat(row['vistsne_metrics_seconds'], 1, 's')}), openTSNE {fmt_stat(row['direct_seconds'], 1, 's')}; "
            f"ratio {fmt_stat(row['ratio'], 3)}, without metrics {fmt_stat(row['ratio_without_metrics'], 3)}")
        rows.append(row)
    return {"rows": rows, "target": TARGET}
