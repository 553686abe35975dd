"""5. Sweep: a 4-perplexity sweep in one call against four separate calls.

Three comparisons on the same N rows of the bench entry, vistsne's defaults
otherwise, repetitions interleaved (which side goes first alternates):

* **CLI** (the target): ``vistsne embed --perplexity 5,15,30,50`` as one whole
  process against four ``vistsne embed --perplexity P`` processes, on copies
  of a store that holds just these rows (so no map is a cache hit), every
  core (``--n-jobs`` = cores, as the CLI defaults). This is the choice a user
  makes. Timed from outside: interpreter start, imports and store I/O included.
* **library, all cores**: one ``embed_many`` call against four, in one process.
  The sweep runs its maps side by side (one thread each); each separate call
  runs its one map on every thread.
* **library, one thread**: the same with ``n_jobs=1``: the shared work alone
  (preprocessing, kNN graph, initialisation, feature accuracy, the
  feature-space half of the trustworthiness).

Target: CLI sweep <= 0.8 x four CLI runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from .common import (all_threads, fmt_stat, ratios, run_child, run_process, say, stats,
                     thread_env, vistsne_cmd)
from .setup_data import STAGE, Context

TARGET = 0.8


def _library(ctx: Context, n: int, n_jobs: int, env: dict | None) -> dict:
    mode = ctx.mode
    res = run_child("sweep", {**ctx.xy(n), "reps": mode.reps, "n_jobs": n_jobs, "n_iter": mode.n_iter,
                              "perplexities": list(mode.sweep_perplexities)}, env=env).result
    out = {"n_jobs": n_jobs, "one_call_seconds": stats(res["one_call"]),
           "separate_seconds": stats(res["separate"]), "ratio": ratios(res["one_call"], res["separate"]),
           "acc_one_call": res["acc_one_call"][0], "acc_separate": res["acc_separate"][0],
           "shared_work_per_sweep": res["shared_work_per_sweep"]}
    say(f"sweep N={n}, library, n_jobs={n_jobs}: one call {fmt_stat(out['one_call_seconds'], 1, 's')}, "
        f"4 calls {fmt_stat(out['separate_seconds'], 1, 's')}, ratio {fmt_stat(out['ratio'], 3)}")
    return out


def _cli(ctx: Context, n: int, cores: int) -> dict:
    mode = ctx.mode
    tmp = tempfile.mkdtemp(prefix="sweep-", dir=ctx.work)
    small = f"{tmp}/small.zarr"
    run_child("small_store", {"store": ctx.store, "entry": ctx.entry, "stage": STAGE, "n": n, "dest": small})
    perps = [f"{p:g}" for p in mode.sweep_perplexities]

    def cmd(store: str, perplexity: str) -> list[str]:
        return vistsne_cmd("-q", "embed", "--store", store, "--entry", ctx.entry, "--stage", STAGE,
                           "--max-num-class", 10, "--max-num-samples", n // 10, "--n-iter", mode.n_iter,
                           "--n-jobs", cores, "--perplexity", perplexity, "--json")

    env = all_threads()
    one, separate = [], []
    for r in range(mode.reps):
        def run_one():
            store = f"{tmp}/one-{r}.zarr"
            shutil.copytree(small, store)
            one.append(run_process(cmd(store, ",".join(perps)), env=env).wall)
            shutil.rmtree(store, ignore_errors=True)

        def run_separate():
            store = f"{tmp}/sep-{r}.zarr"
            shutil.copytree(small, store)
            separate.append(sum(run_process(cmd(store, p), env=env).wall for p in perps))
            shutil.rmtree(store, ignore_errors=True)

        for fn in ((run_one, run_separate) if r % 2 == 0 else (run_separate, run_one)):
            fn()
        say(f"sweep N={n}, CLI rep {r + 1}/{mode.reps}: one process {one[-1]:.1f}s, four {separate[-1]:.1f}s")
    shutil.rmtree(tmp, ignore_errors=True)
    return {"n_jobs": cores, "one_call_seconds": stats(one), "separate_seconds": stats(separate),
            "ratio": ratios(one, separate)}


def run(ctx: Context) -> dict:
    mode = ctx.mode
    n = mode.sweep_n
    cores = os.cpu_count() or 1
    cli = _cli(ctx, n, cores)
    lib_all = _library(ctx, n, cores, all_threads())
    lib_one = _library(ctx, n, 1, thread_env(1))
    out = {"n": n, "perplexities": list(mode.sweep_perplexities), "cores": cores, "target": TARGET,
           "cli": cli, "library_all_cores": lib_all, "library_one_thread": lib_one,
           # the headline (summary table, target): the CLI comparison
           "ratio": cli["ratio"], "one_call_seconds": cli["one_call_seconds"],
           "separate_seconds": cli["separate_seconds"],
           "acc_one_call": lib_all["acc_one_call"], "acc_separate": lib_all["acc_separate"],
           "shared_work_per_sweep": lib_all["shared_work_per_sweep"]}
    out["met"] = bool(out["ratio"]["median"] <= TARGET)
    say(f"sweep N={n}: CLI one process / four {fmt_stat(cli['ratio'], 3)} (target <= {TARGET}: "
        f"{'met' if out['met'] else 'MISSED'}); library all cores {fmt_stat(lib_all['ratio'], 3)}, "
        f"one thread {fmt_stat(lib_one['ratio'], 3)}")
    return out
