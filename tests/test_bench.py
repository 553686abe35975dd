"""The benchmarks run end to end in their tiny mode (N = 200, 1 repetition), so they cannot rot.

Their numbers are not asserted (a tiny run on a shared machine measures
nothing); the files and their structure are. Output goes to a temporary
folder, never over the committed ``benchmarks/results.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

ITEMS = ("cache_hit", "engine", "method", "overhead", "sweep", "retune", "extraction", "profiling", "seams",
         "store_checks", "distributed", "suspects", "compare", "scale_store", "scale_embed", "scale_render",
         "scale_page", "memory")


def _is_stat(d) -> bool:
    return isinstance(d, dict) and {"median", "min", "max", "n", "values"} <= set(d) and d["n"] >= 1


@pytest.mark.slow
def test_bench_tiny_runs_end_to_end(tmp_path):
    out = tmp_path / "out"
    store = tmp_path / "bench_store.zarr"
    committed = ROOT / "benchmarks" / "results.json"
    before = committed.stat().st_mtime_ns if committed.exists() else None
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny", "--out", str(out),
                           "--store", str(store)], capture_output=True, text=True, cwd=str(ROOT), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| # | measurement |" in proc.stdout  # the table is printed

    R = json.loads((out / "results.json").read_text())
    assert R["mode"]["name"] == "tiny" and R["mode"]["reps"] == 1
    for key in ("cpu_model", "cores", "torch_threads"):
        assert key in R["machine"]
    assert R["machine"]["torch_threads"] >= 1
    for pkg in ("python", "vistsne", "torch", "openTSNE", "scikit-learn", "mmpretrain"):
        assert R["versions"].get(pkg)
    res = R["results"]
    assert set(ITEMS) <= set(res)

    (row,) = res["engine"]["rows"]
    assert row["n"] == 200
    for k in ("sklearn_ref", "vistsne_ref", "sklearn_default", "vistsne_default"):
        assert _is_stat(row[k]["seconds"]) and _is_stat(row[k]["knn_acc"]) and _is_stat(row[k]["maxrss_mb"])
    assert _is_stat(row["ratio_ref"]) and isinstance(row["accuracy_held"], bool)
    assert _is_stat(res["retune"]["ratio_warm_over_cold"]) and res["retune"]["warm_store_hit"] is True
    assert [r["key"] for r in res["extraction"]["rows"]] == ["resnet18_32px", "resnet18_32px_bf16", "resnet50_224px"]
    assert _is_stat(res["extraction"]["rows"][1]["speedup_over"]["ratio"])  # bfloat16 over float32, same run
    for r in res["extraction"]["rows"]:
        assert _is_stat(r["ratio"]) and r["profile"]["named_cumulative"]
    assert res["cache_hit"]["all_hits"] is True and res["cache_hit"]["torch_imported"] is False
    assert _is_stat(res["sweep"]["ratio"])
    for part in ("cli", "library_all_cores", "library_one_thread"):
        assert _is_stat(res["sweep"][part]["ratio"])
    assert res["sweep"]["shared_work_per_sweep"]["knn_builds"] == 1
    assert _is_stat(res["overhead"]["rows"][0]["ratio"])
    assert res["memory"]["embed_vistsne_default"]["200"]["median"] > 0
    assert [r["n"] for r in res["method"]["rows"]] == [200] and "suggestion" in res["method"]
    assert res["profiling"]["embed"]["named_cumulative"]
    # 9. before (a git worktree of 7fc1473) / after, whole processes on one store of the working tree
    se = res["seams"]
    assert se["rows"] == 200 and se["before_commit"].startswith("7fc1473")
    assert se["versions"]["before"]["imports"] != se["versions"]["after"]["imports"]
    for part in ("embed_hit", "render"):
        assert _is_stat(se[part]["ratio"]) and _is_stat(se[part]["seconds"]["before"])
    assert se["reads"]["same_bytes"] is True and _is_stat(se["reads"]["ratio_total"])
    # 10. what the store's checks cost
    sc = res["store_checks"]
    assert _is_stat(sc["read_check"]["ratio"]) and isinstance(sc["read_check"]["met"], bool)
    assert sc["cache_hit"]["all_hits"] is True
    for k in ("ratio_after_over_before", "ratio_checks_on_over_off"):
        assert _is_stat(sc["cache_hit"][k])
    assert _is_stat(sc["extraction"]["fraction"]) and _is_stat(sc["extraction"]["codec"]["write_ratio"])
    assert sc["verify_deep"]["mb_per_s"]["median"] > 0
    # 11-13: extraction on ranks, flipped labels found, aligned checkpoints
    di = res["distributed"]
    assert di["rows"] == 200 and di["throughput_2ranks_over_1rank_2threads"] > 0 and isinstance(di["overhead_ok"], bool)
    su = res["suspects"]
    assert su["flipped"] == round(0.05 * su["rows"]) and 0 <= su["precision_at_k_combined"] <= 1
    assert isinstance(su["met"], bool) and su["uses_predictions"] is True
    co = res["compare"]
    assert len(co["entries"]) == len(set(co["entries"])) == 3 and co["rows"] == 200
    assert set(co["methods"]) == {"chain", "chain-ee", "reference", "procrustes"}
    assert all(v["cost_vs_independent"] > 0 for v in co["methods"].values())
    # 14: the scale items, small (the two that need the scale data say so)
    assert "FULL=1" in res["scale_store"]["skipped"] and "FULL=1" in res["scale_embed"]["skipped"]
    assert {r["method"] for r in res["scale_render"]["summary"]} >= {"scatter", "raster-numpy"}
    assert [p["n"] for p in res["scale_page"]["pages"]] == [2000, 3000]
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list", "--porcelain"], capture_output=True,
                               text=True).stdout
    tree = Path(se["versions"]["before"]["imports"]).parents[1]  # <run's temporary folder>/before-7fc1473
    assert f"worktree {tree}\n" not in worktrees and not tree.exists()  # removed when the run ended

    md = (out / "RESULTS.md").read_text()
    assert md.startswith("# vistsne benchmarks (tiny run")
    assert "## Summary" in md and "## Where the time goes (cProfile)" in md
    assert "## 9. Seams" in md and "## 10. Store checks" in md
    assert "| 14 | Scale, static figure of 2,000 points" in md
    assert "| 11 | Extraction on ranks" in md and "| 12 | Suspects" in md and "| 13 | Compare" in md
    assert (committed.stat().st_mtime_ns if committed.exists() else None) == before  # never overwritten
    # the files name no folder of this checkout: paths inside it are written relative to it
    assert str(ROOT) + "/" not in (out / "results.json").read_text() and str(ROOT) + "/" not in md


def test_results_name_paths_inside_the_checkout_relative_to_it():
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.run import repo_relative
    finally:
        sys.path.remove(str(ROOT))
    R = {"a": [f"{ROOT}/benchmarks/bench_store.zarr", {"cmd": f"vistsne x {ROOT}/configs/c.py"}], "n": 3,
         "outside": "/elsewhere/file"}
    assert repo_relative(R) == {"a": ["benchmarks/bench_store.zarr", {"cmd": "vistsne x configs/c.py"}], "n": 3,
                                "outside": "/elsewhere/file"}
