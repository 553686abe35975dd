"""5. Sweep sharing: a 4-perplexity sweep in one ``embed_many`` call against 4 calls.

One process, the same features, vistsne's defaults otherwise; per repetition
the one-call sweep and the four separate calls alternate which goes first.
The one call shares the PCA, one kNN graph (for the largest perplexity; the
smaller ones reuse its neighbours), the PCA initialisation and the
feature-space accuracy. Target: one call <= 0.8 x four calls.
"""

from __future__ import annotations

from .common import fmt_stat, ratios, run_child, say, stats
from .setup_data import Context

TARGET = 0.8


def run(ctx: Context) -> dict:
    mode = ctx.mode
    n = mode.sweep_n
    res = run_child("sweep", {**ctx.xy(n), "reps": mode.reps, "n_jobs": ctx.n_jobs, "n_iter": mode.n_iter,
                              "perplexities": list(mode.sweep_perplexities)}).result
    out = {"n": n, "perplexities": list(mode.sweep_perplexities), "one_call_seconds": stats(res["one_call"]),
           "separate_seconds": stats(res["separate"]), "ratio": ratios(res["one_call"], res["separate"]),
           "acc_one_call": res["acc_one_call"][0], "acc_separate": res["acc_separate"][0],
           "shared_work_per_sweep": res["shared_work_per_sweep"], "target": TARGET}
    out["met"] = bool(out["ratio"]["median"] <= TARGET)
    say(f"sweep N={n}: one call {fmt_stat(out['one_call_seconds'], 1, 's')}, 4 calls "
        f"{fmt_stat(out['separate_seconds'], 1, 's')}, ratio {fmt_stat(out['ratio'], 3)} "
        f"(target <= {TARGET}: {'met' if out['met'] else 'MISSED'})")
    return out
