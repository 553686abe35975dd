"""4. Cache hit: ``vistsne extract`` on a complete entry, as a whole process.

The command is the one that made the bench entry, so the entry holds every
row it asks for: the process should parse the config, hash the checkpoint
(a cached digest), find the rows in the store and exit, without importing
torch. The wall time is measured from outside (target <= 2 s); one more run
of the same command inside ``python -c``-style wrapper (``child.job_import_check``)
lists which heavy modules the process imported.
"""

from __future__ import annotations

from .common import DEMO_CONFIG, fmt_stat, run_child, run_process, say, stats, vistsne_cmd
from .setup_data import Context

TARGET_S = 2.0


def run(ctx: Context) -> dict:
    mode = ctx.mode
    argv = ["-q", "extract", DEMO_CONFIG, "--checkpoint", ctx.checkpoint, "--cfg-options", ctx.expand_option(),
            "--max-num-class", "10", "--max-num-samples", str(mode.max_n // 10), "--store", ctx.store]
    walls, hit = [], []
    for r in range(max(3, mode.reps)):
        res = run_process(vistsne_cmd(*argv))
        walls.append(res.wall)
        hit.append("cache hit" in res.stdout)
        say(f"cache hit rep {r + 1}: {res.wall:.2f}s ({'hit' if hit[-1] else 'NOT a hit'}): {res.stdout.strip()}")
    check = run_child("import_check", {"argv": argv}).result
    out = {"seconds": stats(walls), "all_hits": all(hit), "target_s": TARGET_S,
           "imported_in_process": check["imported"], "torch_imported": check["imported"]["torch"],
           "command": "vistsne " + " ".join(argv)}
    out["met"] = bool(out["seconds"]["median"] <= TARGET_S and not out["torch_imported"] and out["all_hits"])
    say(f"cache hit: {fmt_stat(out['seconds'], 2, 's')}; torch imported: {out['torch_imported']}")
    return out
