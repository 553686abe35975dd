"""Summaries of cProfile statistics: cumulative seconds of named functions, top own time.

Shared by :mod:`benchmarks.child` (profiles taken inside a job) and
:mod:`benchmarks.profiling` (profiles written by ``python -m cProfile``).
"""

from __future__ import annotations

from pathlib import Path


def profile_summary(st, targets: dict) -> dict:
    """``st``: a ``pstats.Stats``; ``targets``: ``{label: (file path ending, function name)}``.

    Returns the whole run's seconds, each target's cumulative seconds (the
    largest over functions of that name in matching files) and the twelve
    functions with the most own time.
    """
    total = max((v[3] for v in st.stats.values()), default=0.0)
    named = {}
    for label, (file_end, func) in targets.items():
        cum = 0.0
        for (fname, _line, fn), (_cc, _nc, _tt, ct, _callers) in st.stats.items():
            if fn == func and fname.replace("\\", "/").endswith(file_end):
                cum = max(cum, ct)
        named[label] = cum
    top = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    return {"total_seconds": total, "named_cumulative": named,
            "top_own_time": [{"function": f"{Path(k[0]).name}:{k[1]}:{k[2]}", "own_s": v[2], "cum_s": v[3],
                              "calls": v[1]} for k, v in top]}
