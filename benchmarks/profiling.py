"""Where the time goes: cProfile of embed_many, and of a whole cold ``vistsne run``.

(The extract profile comes with :mod:`benchmarks.extraction`.) The numbers are
cumulative seconds of named functions inside one profiled run; cProfile slows
Python-heavy code, so they are shares, not timings.
"""

from __future__ import annotations

import math
import pstats
import shutil
import tempfile

from .common import DEMO_CONFIG, PYTHON, run_child, run_process, say
from .profstats import profile_summary
from .setup_data import Context

EMBED_TARGETS = {
    "whole embed_many": ("vistsne/embed/tsne.py", "_run_all"),
    "preprocess (PCA, when resolved)": ("vistsne/embed/tsne.py", "preprocess"),
    "kNN graph (exact or Annoy)": ("vistsne/embed/tsne.py", "knn_graph"),
    "affinities (from the graph)": ("vistsne/embed/tsne.py", "_affinities"),
    "initialisation": ("vistsne/embed/tsne.py", "_initial_positions"),
    "optimisation, both phases": ("vistsne/embed/tsne.py", "_optimize"),
    "feature-space 10-NN accuracy (once)": ("vistsne/embed/tsne.py", "_feature_accuracy"),
    "trustworthiness, feature-space half (once)": ("vistsne/embed/metrics.py", "trust_reference"),
    "map metrics (map 10-NN acc + trustworthiness)": ("vistsne/embed/metrics.py", "map_metrics"),
}

RUN_TARGETS = {
    "whole run()": ("vistsne/run.py", "run"),
    "imports (all, cumulative)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    "load config": ("vistsne/extract/config.py", "load_config"),
    "extract (inference)": ("vistsne/extract/entry.py", "extract_entry"),
    "extract: build dataset": ("vistsne/extract/model.py", "build_dataset"),
    "extract: forward, every stage": ("vistsne/extract/model.py", "__call__"),
    "embed (t-SNE + metrics)": ("vistsne/embed/entry.py", "embed_entry"),
    "render (png)": ("vistsne/render/static.py", "render_map"),
}


def run(ctx: Context) -> dict:
    mode = ctx.mode
    out = {}
    n = mode.profile_n
    res = run_child("profile_embed", {**ctx.xy(n), "n_jobs": ctx.n_jobs, "n_iter": mode.n_iter,
                                      "targets": EMBED_TARGETS}).result
    out["embed"] = res
    say(f"profile embed N={n}: {res['wall_seconds']:.1f}s under cProfile")
    if mode.profile_cold_run:
        n = mode.retune_n
        tmp = tempfile.mkdtemp(prefix="prof-run-", dir=ctx.work)
        prof = f"{tmp}/run.prof"
        cmd = [PYTHON, "-m", "cProfile", "-o", prof, "-m", "vistsne", "-q", "run", DEMO_CONFIG,
               "--checkpoint", ctx.checkpoint, "--cfg-options", ctx.expand_option(int(math.ceil(1.3 * n))),
               "--max-num-class", "10", "--max-num-samples", str(n // 10), "--store", f"{tmp}/store.zarr",
               "--work-dir", f"{tmp}/out", "--n-iter", str(mode.n_iter)]
        r = run_process(cmd)
        out["cold_run"] = {"n": n, "wall_seconds": r.wall, **profile_summary(pstats.Stats(prof), RUN_TARGETS)}
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"profile cold run N={n}: {r.wall:.1f}s under cProfile")
    return out
