"""8. The negative-gradient method: Barnes-Hut against FFT interpolation by N.

Per N, one process builds the affinities and the PCA initialisation once and
then runs vistsne's own optimiser (``vistsne.embed.tsne._optimize``, both
phases, 1000 iterations, vistsne's defaults) with ``method="bh"`` and with
``method="fft"``, alternating which goes first. Only the gradient differs, so
the times compare the methods alone. The suggested ``METHOD_SWITCH_N`` is the
N where FFT becomes faster, interpolated on log N between the two measured
sizes around the crossing (and FFT must stay faster at every larger size).
"""

from __future__ import annotations

import math

from .common import fmt_stat, ratios, run_child, say, stats
from .setup_data import Context


def suggest_switch(rows: list[dict]) -> dict:
    """The crossing of t_fft / t_bh = 1 on log N, from the medians of the paired ratios."""
    pts = sorted((r["n"], r["ratio_fft_over_bh"]["median"]) for r in rows
                 if r["ratio_fft_over_bh"]["median"] is not None)
    if not pts:
        return {"n": None, "why": "no sizes measured"}
    if all(q < 1 for _, q in pts):
        return {"n": None, "below": pts[0][0],
                "why": f"FFT was faster at every measured size (from N={pts[0][0]}); the switch is at or below it"}
    if pts[-1][1] >= 1:
        return {"n": None, "above": pts[-1][0],
                "why": f"Barnes-Hut was faster up to the largest measured size N={pts[-1][0]}"}
    # the last size where BH still wins; FFT wins from the next size on
    last_bh = max(i for i, (_, q) in enumerate(pts) if q >= 1)
    (n1, q1), (n2, q2) = pts[last_bh], pts[last_bh + 1]
    t = math.log(q1) / (math.log(q1) - math.log(q2))
    n_star = math.exp(math.log(n1) + t * (math.log(n2) - math.log(n1)))
    step = 500 if n_star < 10000 else 1000
    rounded = int(max(step, round(n_star / step) * step))
    return {"n": rounded, "interpolated": n_star, "between": [n1, n2], "ratios": [q1, q2],
            "why": f"t_fft/t_bh = {q1:.2f} at N={n1} and {q2:.2f} at N={n2}; the crossing on log N is "
                   f"N~{n_star:.0f}, rounded to {rounded}"}


def run(ctx: Context) -> dict:
    mode = ctx.mode
    rows = []
    for n in mode.method_sizes:
        res = run_child("method", {**ctx.xy(n), "reps": mode.reps, "n_jobs": ctx.n_jobs,
                                   "n_iter": mode.n_iter}).result
        row = {"n": n, "learning_rate": res["learning_rate"]}
        for m in ("bh", "fft"):
            row[m] = {"seconds": stats(res[m]["seconds"]), "knn_acc": stats(res[m]["knn_acc"]),
                      "kl": stats(res[m]["kl"]), "n_iter_run": stats(res[m]["n_iter_run"])}
        row["ratio_fft_over_bh"] = ratios(res["fft"]["seconds"], res["bh"]["seconds"])
        say(f"method N={n}: Barnes-Hut {fmt_stat(row['bh']['seconds'], 1, 's')}, "
            f"FFT {fmt_stat(row['fft']['seconds'], 1, 's')}, FFT/BH {fmt_stat(row['ratio_fft_over_bh'], 2)}")
        rows.append(row)
    from vistsne.embed.params import METHOD_SWITCH_N

    sug = suggest_switch(rows)
    sug["why"] += f"; with n_jobs={ctx.n_jobs}"
    sug["n_jobs"] = ctx.n_jobs
    say(f"method: suggested METHOD_SWITCH_N = {sug.get('n')} ({sug['why']}); current {METHOD_SWITCH_N}")
    return {"rows": rows, "suggestion": sug, "current_method_switch_n": METHOD_SWITCH_N,
            "settings": f"vistsne defaults (pca init, learning rate auto, perplexity 30, {mode.n_iter} iterations), "
                        f"n_jobs {ctx.n_jobs}, the same affinities and initialisation for both methods"}
