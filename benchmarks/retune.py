"""2. Re-tune: a cold ``vistsne run`` against a warm one that changes only the perplexity.

Per repetition: a fresh store; the cold run (inference + t-SNE + render, perplexity
30), then the warm run on that store (features from the store, a new map at
perplexity 40, render). Both are whole ``python -m vistsne run`` processes,
timed from outside (interpreter start and imports included) with their own
peak memory. The data is the demo config over the digits test split expanded
to 1.3 N images, N/10 rows per class, through the demo checkpoint.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile

from .common import DEMO_CONFIG, fmt_stat, ratios, run_process, say, stats, vistsne_cmd
from .setup_data import Context

COLD_PERPLEXITY = 30
WARM_PERPLEXITY = 40


def run(ctx: Context) -> dict:
    mode = ctx.mode
    n = mode.retune_n
    expand = int(math.ceil(1.3 * n))
    cold, warm, cold_rss, warm_rss, rows, hits = [], [], [], [], [], []
    for r in range(mode.reps):
        tmp = tempfile.mkdtemp(prefix="retune-", dir=ctx.work)
        base = ["-q", "run", DEMO_CONFIG, "--checkpoint", ctx.checkpoint,
                "--cfg-options", ctx.expand_option(expand), "--max-num-class", "10",
                "--max-num-samples", str(n // 10), "--store", f"{tmp}/store.zarr", "--work-dir", f"{tmp}/out",
                "--seed", "0", "--n-iter", str(mode.n_iter)]
        c = run_process(vistsne_cmd(*base, "--perplexity", COLD_PERPLEXITY))
        w = run_process(vistsne_cmd(*base, "--perplexity", WARM_PERPLEXITY))
        m = re.search(r"run: (\d+) samples", c.stdout)
        rows.append(int(m.group(1)) if m else None)
        hits.append("cache hit" in w.stdout)
        cold.append(c.wall)
        warm.append(w.wall)
        cold_rss.append(c.maxrss_mb)
        warm_rss.append(w.maxrss_mb)
        say(f"re-tune rep {r + 1}/{mode.reps}: cold {c.wall:.1f}s, warm {w.wall:.1f}s "
            f"({'store hit' if hits[-1] else 'NO store hit'}); {rows[-1]} samples")
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"n": n, "rows": rows, "expand": expand, "warm_store_hit": all(hits),
           "cold_seconds": stats(cold), "warm_seconds": stats(warm), "ratio_warm_over_cold": ratios(warm, cold),
           "cold_maxrss_mb": stats(cold_rss), "warm_maxrss_mb": stats(warm_rss),
           "perplexities": [COLD_PERPLEXITY, WARM_PERPLEXITY]}
    say(f"re-tune N={n}: warm/cold {fmt_stat(out['ratio_warm_over_cold'], 3)}")
    return out
