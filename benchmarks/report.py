"""results.json -> RESULTS.md: a summary table with targets, then one table per measurement."""

from __future__ import annotations

from .common import fmt_stat


def _n(n: int) -> str:
    return f"{n:,}"


def _status(met: bool | None) -> str:
    if met is None:
        return "—"
    return "met" if met else "**MISSED**"


def _acc_status(delta: float, tol: float) -> str:
    if delta >= -tol:
        return f"met (Δacc {delta:+.3f}, seed range {tol:.3f})"
    return f"**MISSED: lower accuracy** (Δacc {delta:+.3f}, beyond the seed range {tol:.3f})"


def _psi(load: dict) -> str:
    p = (load or {}).get("cpu_pressure")
    return "n/a" if not p else f"{p['some_avg60']:.0f}%"


def _mb(s: dict | None) -> str:
    return fmt_stat(s, 0, " MB")


def summary_rows(R: dict) -> list[list[str]]:
    """``[#, measurement, result, target, status]`` rows."""
    res = R["results"]
    rows = []
    reps = R["mode"]["reps"]
    eng = res.get("engine")
    if eng:
        for r in eng["rows"]:
            if r["sklearn_skipped"]:
                rows.append(["1", f"t-SNE engine, N={_n(r['n'])}",
                             f"vistsne {fmt_stat(r['vistsne_ref']['seconds'], 1, ' s')} (scikit-learn not run at "
                             "this size)", "no lower accuracy", "—"])
                continue
            rows.append([
                "1", f"t-SNE engine, N={_n(r['n'])}: vistsne / scikit-learn time, reference settings",
                f"{fmt_stat(r['ratio_ref'], 3)} ({fmt_stat(r['vistsne_ref']['seconds'], 1, ' s')} vs "
                f"{fmt_stat(r['sklearn_ref']['seconds'], 1, ' s')}); 10-NN acc "
                f"{r['vistsne_ref']['knn_acc']['median']:.3f} vs {r['sklearn_ref']['knn_acc']['median']:.3f}",
                "no lower accuracy", _acc_status(r["acc_delta_ref"], r["acc_tol_ref"])])
            rows.append([
                "1", f"t-SNE engine, N={_n(r['n'])}: both with their defaults",
                f"{fmt_stat(r['ratio_default'], 3)} ({fmt_stat(r['vistsne_default']['seconds'], 1, ' s')} vs "
                f"{fmt_stat(r['sklearn_default']['seconds'], 1, ' s')}); 10-NN acc "
                f"{r['vistsne_default']['knn_acc']['median']:.3f} vs "
                f"{r['sklearn_default']['knn_acc']['median']:.3f}",
                "no lower accuracy", _acc_status(r["acc_delta_default"], r["acc_tol_default"])])
            if "ratio_ref_pca50" in r:
                rows.append([
                    "1", f"t-SNE engine, N={_n(r['n'])}: reference settings, vistsne with PCA to 50 dims "
                         "(`--pca-dims 50`, shown for the choice of `auto`; not a target)",
                    f"{fmt_stat(r['ratio_ref_pca50'], 3)} ({fmt_stat(r['vistsne_ref_pca50']['seconds'], 1, ' s')} vs "
                    f"{fmt_stat(r['sklearn_ref']['seconds'], 1, ' s')}); 10-NN acc "
                    f"{r['vistsne_ref_pca50']['knn_acc']['median']:.3f} vs {r['sklearn_ref']['knn_acc']['median']:.3f}",
                    "(reported)", f"Δacc {r['acc_delta_ref_pca50']:+.3f} (seed range {r['acc_tol_ref_pca50']:.3f})"])
    rt = res.get("retune")
    if rt:
        rows.append(["2", f"Re-tune, N={_n(rt['n'])}: warm / cold `vistsne run` (perplexity only)",
                     f"{fmt_stat(rt['ratio_warm_over_cold'], 3)} ({fmt_stat(rt['warm_seconds'], 1, ' s')} vs "
                     f"{fmt_stat(rt['cold_seconds'], 1, ' s')})" + ("" if rt["warm_store_hit"] else
                                                                     "; the warm run was NOT a store hit"),
                     "(reported)", "met" if rt["warm_store_hit"] else "**MISSED: no store hit**"])
    ex = res.get("extraction")
    if ex:
        for r in ex["rows"]:
            more = f" ({r['reps']} repetitions)" if r.get("reps", reps) != reps else ""
            rows.append(["3", f"Extraction, {r['model']}, {_n(r['rows'])} images: vistsne / bare-loop images/s{more}",
                         f"{fmt_stat(r['ratio'], 3)} ({fmt_stat(r['vistsne_ips'], 1)} vs "
                         f"{fmt_stat(r['bare_ips'], 1)} img/s)"
                         + (f"; {fmt_stat(r['speedup_over']['ratio'], 2)}x the images/s of float32"
                            if r.get("speedup_over") else ""), f">= {r['target']}", _status(r["met"])])
    ch = res.get("cache_hit")
    if ch:
        rows.append(["4", "Cache hit: `vistsne extract` on a complete entry, whole process",
                     f"{fmt_stat(ch['seconds'], 2, ' s')}; torch imported: "
                     f"{'yes' if ch['torch_imported'] else 'no'}", f"<= {ch['target_s']:.0f} s, no torch",
                     _status(ch["met"])])
    sw = res.get("sweep")
    if sw:
        rows.append(["5", f"Sweep, N={_n(sw['n'])}: {len(sw['perplexities'])} perplexities in one "
                          "`vistsne embed` process / separate processes, all cores", f"{fmt_stat(sw['ratio'], 3)} ({fmt_stat(sw['one_call_seconds'], 1, ' s')}"
                                            f" vs {fmt_stat(sw['separate_seconds'], 1, ' s')})",
                     f"<= {sw['target']}", _status(sw["met"])])
    ov = res.get("overhead")
    if ov:
        for r in ov["rows"]:
            rows.append(["6", f"Overhead, N={_n(r['n'])}: `embed_many` / direct openTSNE",
                         f"{fmt_stat(r['ratio'], 3)} ({fmt_stat(r['vistsne_seconds'], 1, ' s')} vs "
                         f"{fmt_stat(r['direct_seconds'], 1, ' s')}); without vistsne's map metrics "
                         f"{fmt_stat(r['ratio_without_metrics'], 3)}", f"<= {r['target']}", _status(r["met"])])
    mem = res.get("memory")
    if mem:
        parts = [f"N={_n(int(n))}: {_mb(v)}" for n, v in mem["embed_vistsne_default"].items()]
        rows.append(["7", "Memory: peak RSS of embed (vistsne defaults, whole process)", "; ".join(parts),
                     "(reported)", "—"])
        parts = [f"{k}: {_mb(v)}" for k, v in mem["extract"].items()]
        rows.append(["7", "Memory: peak RSS of extract (process, incl. torch)", "; ".join(parts), "(reported)", "—"])
    me = res.get("method")
    if me:
        sug = me["suggestion"]
        rows.append(["8", "Gradient method: N where FFT overtakes Barnes-Hut",
                     f"suggested {sug.get('n') if sug.get('n') else 'n/a'} ({sug['why']}); "
                     f"METHOD_SWITCH_N in the code: {me['current_method_switch_n']}", "(sets METHOD_SWITCH_N)",
                     "—"])
    rows += seams_rows(R)
    rows += store_check_rows(R)
    rows += feature_rows(R)
    rows += scale_rows(R)
    return rows


def _skipped(name: str, item: dict | None) -> list[list[str]]:
    return [["14", f"{name}: not measured", item["skipped"], "—", "—"]] if item and "skipped" in item else []


def scale_rows(R: dict) -> list[list[str]]:
    """Rows of item 14 (the scale items of issue 16, with ``--full``)."""
    res, rows = R["results"], []
    st = res.get("scale_store")
    rows += _skipped("Scale, store", st)
    if st and "read" in st:
        rd, ch = st["read"], st["cache_hit"]
        rows.append(["14", f"Scale, store: read of {_n(rd['rows'])} x {rd['dim']} float32 from {_parts(rd['parts'])}, "
                           f"fresh process; after / before ({st['before_commit']}); compacted to {rd['parts_after_compact']}",
                     f"{rd['after']['seconds_median']:.1f} s vs {rd['before']['seconds_median']:.1f} s "
                     f"({rd['ratio_after_before']:.2f}x); compacted {rd['after_compact']['seconds_median']:.1f} s; peak "
                     f"{rd['after']['maxrss_mb_median']:,.0f} MB", "seconds, not minutes", _status(
                         rd["after"]["seconds_median"] < 60)])
        rows.append(["14", f"Scale, store: `vistsne extract` cache hit on {_n(ch['images'])} images, whole process",
                     f"{ch['after']['wall_s_median']:.2f} s (before {ch['before']['wall_s_median']:.2f} s)", "<= 2 s",
                     _status(ch["after"]["wall_s_median"] <= 2.0)])
    sr = res.get("scale_render")
    rows += _skipped("Scale, static figures", sr)
    if sr and "summary" in sr:
        big = max(r["n"] for r in sr["summary"])
        got = {r["method"]: r for r in sr["summary"] if r["n"] == big}
        raster = got.get("raster-numpy") or next(iter(got.values()))
        rows.append(["14", f"Scale, static figure of {_n(big)} points (PNG, fresh process; {sr['data']})",
                     "; ".join(f"{m} {r['cold_s']:.1f} s, {r['peak_rss_mb']:,} MB" for m, r in got.items()),
                     "< 60 s", _status(raster["cold_s"] < 60)])
    sp = res.get("scale_page")
    rows += _skipped("Scale, page", sp)
    if sp and sp.get("pages"):
        for pg in sp["pages"]:
            load = pg.get("load_s", {}).get("median")
            hover = pg.get("hover_ms", {}).get("median")
            ok = None if load is None or pg["n"] > sp["thumbs_max"] else (load <= 10 and hover <= 200)
            rows.append(["14", f"Scale, page of {_n(pg['n'])} points ({_n(pg['thumbnails'])} thumbnails): MB, "
                               "headless load, hover",
                         f"{pg['mb']:.1f} MB, load {load if load is not None else 'n/a'} s, hover "
                         f"{hover if hover is not None else 'n/a'} ms", "load <= 10 s, hover <= 200 ms "
                                                                         "(up to 100,000)", _status(ok)])
    se = res.get("scale_embed")
    rows += _skipped("Scale, embed", se)
    if se and "embed" in se:
        rows += scale_embed_rows(se)
    return rows


#: issue 16's embed targets: (most rows, seconds, peak RSS MB or None)
EMBED_TARGETS = {70_000: (120, None), 1_000_000: (1800, 8192)}


def scale_embed_rows(se: dict) -> list[list[str]]:
    """Rows of scale_embed: the embeds by N, the subsample, the backend tables, before/after."""
    rows = []
    for e in se["embed"]:
        if "error" in e:
            rows.append(["14", f"Scale, embed of {_n(e['n'])} rows: failed", e["error"][-200:], "—", "MISSED"])
            continue
        m = e.get("metrics", {})
        tgt = EMBED_TARGETS.get(e["n"])
        ok = None if tgt is None else (e["wall_s"] <= tgt[0] and (tgt[1] is None or e["peak_rss_mb"] <= tgt[1]))
        rows.append(["14", f"Scale, embed of {_n(e['n'])} x 512 real rows ({se['n_iter']} iterations, "
                           f"{e.get('resolved', {}).get('knn_method', '?')} kNN, {se['n_jobs']} cores): wall, peak RSS, "
                           "map 10-NN accuracy",
                     f"{e['wall_s']:.0f} s, {e['peak_rss_mb']:,.0f} MB, {m.get('knn_acc_map', float('nan')):.3f}",
                     "—" if tgt is None else f"<= {tgt[0]} s" + (f", <= {tgt[1]:,} MB" if tgt[1] else ""),
                     _status(ok)])
    sub = se.get("subsample")
    if sub and "wall_s" in sub:
        m = sub.get("metrics", {})
        rows.append(["14", f"Scale, `--subsample {_n(sub['subsample'])}` + transform over {_n(sub['n'])} rows: wall, "
                           "peak RSS, 10-NN accuracy subsample / placed",
                     f"{sub['wall_s']:.0f} s, {sub['peak_rss_mb']:,.0f} MB, {m.get('knn_acc_subsample', float('nan')):.3f}"
                     f" / {m.get('knn_acc_placed', float('nan')):.3f}", "(reported)", "—"])
    bk = se.get("backends") or {}
    for t in bk.get("tables", []):
        cells = []
        for r in t["table"]:
            if "error" in r:
                cells.append(f"{r['backend']} {r['error'][:40]}")
            else:
                d = r.get("map_knn_acc_minus_exact")
                cells.append(f"{r['backend']} {r['seconds']:.0f} s, {r['peak_rss_mb']:,.0f} MB, recall "
                             f"{r['recall_at_k']:.3f}" + ("" if d is None else f", map {d:+.3f}"))
        worst = [abs(r["map_knn_acc_minus_exact"]) for r in t["table"] if r.get("map_knn_acc_minus_exact") is not None
                 and r["backend"] == "hnsw"]
        rows.append(["14", f"Scale, kNN graph of {_n(t['n'])} rows (k = {se['k']}, PCA {se['pca_dims']}): seconds, peak "
                           "RSS, recall@k; map 10-NN accuracy on a 20,000 sample minus the exact graph's",
                     "; ".join(cells), "hnsw map within 0.01", _status(bool(worst) and worst[0] <= 0.01)
                     if worst else "—"])
    ba = se.get("before_after")
    if ba and ba.get("ratio_after_before"):
        rows.append(["14", f"Scale, embed of {_n(ba['n'])} rows: wall after / before ({ba['before_commit']})",
                     f"{ba['ratio_after_before']:.2f} ({ba['after']['wall_s']:.0f} s vs {ba['before']['wall_s']:.0f} s)",
                     "(reported)", "—"])
    return rows


def feature_rows(R: dict) -> list[list[str]]:
    """Rows of items 11 (distributed), 12 (suspects) and 13 (compare)."""
    res, rows = R["results"], []
    di = res.get("distributed")
    if di:
        med = di["median"]
        rows.append(["11", f"Extraction on ranks, {_n(di['rows'])} images, {di['cores']} cores: images/s of 2 ranks "
                           "x 1 thread / 1 rank x 2 threads (torchrun, gloo)",
                     f"{di['throughput_2ranks_over_1rank_2threads']:.3f} ({med['ranks_2x1']['images_per_s']:.1f} vs "
                     f"{med['launcher_1x2']['images_per_s']:.1f} img/s, median of {di['reps']})", "(reported)", "—"])
        rows.append(["11", "Extraction on ranks: wall time of `torchrun --nproc_per_node 1 ... --launcher pytorch` / "
                           "plain `vistsne extract` (startup, rendezvous, model, inference, store)",
                     f"{di['launcher_overhead_wall']:.3f} ({med['launcher_1x2']['wall_s']:.1f} vs "
                     f"{med['single']['wall_s']:.1f} s)", f"<= {di['overhead_target']}", _status(di["overhead_ok"])])
    su = res.get("suspects")
    if su:
        rows.append(["12", f"Suspects: {su['flipped']} of {_n(su['rows'])} digits' labels flipped on purpose, "
                           f"`vistsne suspects` on pre_logits ({su['checkpoint']}): precision at k = {su['flipped']}, "
                           "neighbour score / combined score",
                     f"{su['precision_at_k_neighbours']:.3f} / {su['precision_at_k_combined']:.3f}",
                     f">= {su['target']}", _status(su["met"])])
    co = res.get("compare")
    if co:
        m = co["methods"]
        cost = ", ".join(f"{k} {v['cost_vs_independent']:.2f}x" for k, v in m.items())
        stab = ", ".join(f"{k} {v['identical_displacement']:.3f}" for k, v in m.items())
        rows.append(["13", f"Compare: {len(co['entries'])} checkpoints at N={_n(co['rows'])}, seconds of the aligned "
                           "maps / of independent embeds (default: procrustes)", cost, f"<= {co['cost_target']}",
                     _status(co["met"])])
        rows.append(["13", "Compare: displacement between the aligned maps of two identical entries (over the "
                           "reference's spread)", stab, "(reported)", "—"])
        worst = ", ".join(f"{k} {max(abs(d['knn_acc_map']) for d in v['quality_delta']):.3f}" for k, v in m.items())
        rows.append(["13", "Compare: largest |10-NN map accuracy of an aligned map - an independent map's|", worst,
                     "<= 0.01 (chain, reference)", "—"])
    return rows


def _reps_note(part: dict, reps: int) -> str:
    n = (part or {}).get("n")
    return f" ({n} repetitions)" if n and n != reps else ""


def _parts(n: int) -> str:
    return f"{n} part" + ("" if n == 1 else "s")


def _vs(part: dict, unit: str = " s", digits: int = 2) -> str:
    """``after s vs before s`` of a before/after part."""
    return f"{fmt_stat(part['after'], digits, unit)} vs {fmt_stat(part['before'], digits, unit)}"


def seams_rows(R: dict) -> list[list[str]]:
    """Rows of item 9 (seams): embed cache hit and render, after / before."""
    se = R["results"].get("seams")
    if not se:
        return []
    reps = R["mode"]["reps"]
    eh, rd = se["embed_hit"], se["render"]
    n, parts = _n(se["rows"]), se["parts"]
    return [
        ["9", f"Seams, {n}-row entry ({_parts(parts)}): `vistsne embed` complete cache hit, whole process, after / "
              f"before ({se['before_commit'][:7] if se.get('before_commit') else '7fc1473'})"
              + _reps_note(eh["ratio"], reps),
         f"{fmt_stat(eh['ratio'], 3)} ({_vs(eh['seconds'])}); peak RSS {_vs(eh['maxrss_mb'], ' MB', 0)}",
         "(reported)", "—"],
        ["9", f"Seams, {n}-row entry: `vistsne render --format png` of its map, whole process, after / before"
              + _reps_note(rd["ratio"], reps),
         f"{fmt_stat(rd['ratio'], 3)} ({_vs(rd['seconds'])})", "(reported)", "—"],
    ]


def store_check_rows(R: dict) -> list[list[str]]:
    """Rows of item 10 (store_checks): what the checksums and completeness checks cost."""
    sc = R["results"].get("store_checks")
    if not sc:
        return []
    reps = R["mode"]["reps"]
    rc, ch, ex, vd = sc["read_check"], sc["cache_hit"], sc["extraction"], sc["verify_deep"]
    wp, cd = ex["write_part"], ex["codec"]
    rows = [
        ["10", f"Store checks: read of {_n(rc['rows'])} x {rc['dim']} float32 from {_parts(rc['parts'])}, with / "
               "without the completeness check" + _reps_note(rc["ratio"], reps),
         f"{fmt_stat(rc['ratio'], 3)} ({fmt_stat(rc['with_check_s'], 3, ' s')} vs "
         f"{fmt_stat(rc['without_check_s'], 3, ' s')}); the check alone {rc['check_share']:.4f} of the read",
         f"<= {rc['target']}", _status(rc["met"])],
        ["10", f"Store checks: `vistsne extract` cache hit ({_n(ch['rows'])} rows, {_parts(ch['parts'])}), whole "
               "process: the completeness check's share" + _reps_note(ch["check_share"], reps),
         f"{fmt_stat(ch['check_share'], 4)} ({fmt_stat(ch['check_seconds'], 4, ' s')} of "
         f"{fmt_stat(ch['seconds']['checks_on'], 2, ' s')}); process check on / off "
         f"{fmt_stat(ch['ratio_checks_on_over_off'], 3)}; after / before (7fc1473) "
         f"{fmt_stat(ch['ratio_after_over_before'], 3)} ({fmt_stat(ch['seconds']['after'], 2, ' s')} vs "
         f"{fmt_stat(ch['seconds']['before'], 2, ' s')})", f"<= {ch['target']}", _status(ch["met"])],
        ["10", f"Store checks: extraction of {_n(ex['images'])} images: the checks' extra `write_part` time "
               "(crc32c, every chunk written, size records) / extraction time",
         f"{fmt_stat(ex['fraction'], 4)} (extra {fmt_stat(wp['extra_seconds'], 3, ' s')} per {_n(wp['rows'])}-row part, "
         f"`write_part` with / without {fmt_stat(wp['ratio'], 3)}; extraction {fmt_stat(ex['extract_seconds'], 1, ' s')}"
         f"); crc32c alone {fmt_stat(cd['crc_fraction_of_extraction'], 4)}",
         f"<= {ex['target']}", _status(ex["met"])],
        ["10", f"Store checks: `vistsne store verify --deep` of {vd['feature_mb']:,.0f} MB of features "
               f"({vd['stored_mb']:,.0f} MB stored), page cache warm",
         f"{fmt_stat(vd['mb_per_s'], 0, ' MB/s')} ({fmt_stat(vd['seconds'], 2, ' s')}; whole process "
         f"{fmt_stat(vd['process_seconds'], 2, ' s')})", "(reported)", "—"],
    ]
    return rows


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def summary_table(R: dict) -> str:
    return _table(["#", "measurement", f"result: median [min–max] of {R['mode']['reps']}", "target", "status"],
                  summary_rows(R))


def _profile_lines(named: dict, total: float | None = None) -> list[str]:
    out = []
    for label, sec in named.items():
        share = f" ({100 * sec / total:.0f}%)" if total else ""
        out.append(f"  - {label}: {sec:.2f} s{share}")
    return out


def render(R: dict) -> str:
    res = R["results"]
    m = R["machine"]
    v = R["versions"]
    L = [f"# vistsne benchmarks ({R['mode']['name']} run, {R['date']})", ""]
    merged = R.get("merged_with")
    if merged:
        redone = ", ".join(k for k, v in res.items() if isinstance(v, dict) and v.get("run", {}).get("argv") == R["argv"])
        L.append(f"Measurements {redone} from `benchmarks/run.py {R['argv']}` ({R['date']}, "
                 f"{R['elapsed_s'] / 60:.1f} min), merged into the run `benchmarks/run.py {merged['argv']}` of "
                 f"{merged['date']} ({merged['elapsed_s'] / 60:.1f} min), which made the others; each item's "
                 "`run` in results.json says which.")
        L.append("")
    L.append(f"Produced by `benchmarks/run.py {R['argv']}` in {R['elapsed_s'] / 60:.1f} min. "
             f"Machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), torch threads "
             f"{m['torch_threads']} by default ({m.get('torch_threads_in_bench')} in the bench), {m['memory_gb']} GB. The machine is shared: load average "
             f"{m['load_start']['loadavg']} at the start and {m['load_end']['loadavg']} at the end, CPU pressure "
             f"(PSI, % of time a task waited for a core, avg60) {_psi(m['load_start'])} and {_psi(m['load_end'])}; "
             "absolute seconds drift, so every figure is a ratio against a baseline measured in the same run, "
             "repetitions interleaved and paired. Each measurement's load is in results.json (`load`).")
    L.append("")
    md = R["mode"]
    L.append(f"Threads: t-SNE `n_jobs={md.get('n_jobs')}`" + (f", child thread limits {md['thread_env']}"
             if md.get("thread_env") else " (scikit-learn, BLAS and torch at their defaults: all cores)")
             + f"; t-SNE iterations: {md.get('n_iter')}; repetitions: {md['reps']}."
             + (" One thread because on this shared 2-core machine two threads ran 5-25x slower whenever another "
                "process held a core (a 1.5 s t-SNE took 12-40 s), which no ratio survives; one thread slows in "
                "proportion. `vistsne run` has no thread option: its t-SNE always uses os.cpu_count() threads "
                "(items 2 and the cold-run profile)." if md.get("n_jobs") == 1 else ""))
    L.append("")
    L.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None) + ".")
    L.append("")
    ck = R.get("data", {})
    meta = ck.get("checkpoint_meta") or {}
    acc = f", test accuracy {meta['test_accuracy']}" if meta.get("test_accuracy") is not None else ""
    L.append(f"Data: the digits test split expanded by deterministic augmentation "
             f"(`test_dataloader.dataset.expand={ck.get('expand')}`), through {ck.get('checkpoint_kind')} "
             f"`{ck.get('checkpoint_source') or ck.get('checkpoint')}` (sha256 {str(ck.get('checkpoint_sha256'))[:12]}"
             f"{acc}; the run used a snapshot of it throughout); bench entry `{str(ck.get('entry'))[:12]}` in `{ck.get('store')}` "
             f"({ck.get('rows')} rows of stage `{ck.get('stage')}`, {ck.get('dim')}-d); N = N/10 rows per class.")
    L.append("")
    L.append("## Summary")
    L.append("")
    L.append(summary_table(R))
    L.append("")

    eng = res.get("engine")
    if eng:
        L.append("## 1. t-SNE engine: vistsne against scikit-learn's TSNE")
        L.append("")
        s = eng["settings"]
        L.append("Reference settings: scikit-learn `TSNE(" + ", ".join(f"{k}={val!r}" for k, val in s["sklearn_ref"].items())
                 + ")` (the reference tool's call; `max_iter` is today's name of its `n_iter`; no `n_jobs`, as the "
                 "reference), against vistsne `EmbedParams(" + ", ".join(f"{k}={val!r}" for k, val in s["vistsne_ref"].items())
                 + f")` with `n_jobs={s['n_jobs_vistsne']}`: the learning rate is in openTSNE units, 800 = "
                 "scikit-learn's 200 (the same step size; `vistsne run` converts the same way); vistsne resolves "
                 "`pca_dims` auto (every dimension while an exact kNN search fits its budget), builds an exact kNN "
                 "graph and picks the gradient method by N. Defaults: scikit-learn `TSNE(n_components=2)` "
                 "(PCA init, learning rate auto) against vistsne `EmbedParams()` (PCA init, learning rate auto = "
                 "max(200, N/12) in openTSNE units, the same as scikit-learn's auto). \"PCA 50\": vistsne with the "
                 "reference settings and `pca_dims=50`: the reduction openTSNE's documentation advises, shown "
                 "for what it costs. Seeds = the repetition. "
                 "Seconds: the fit alone, in its own process; vistsne's include its map metrics. Accuracy: 5-fold "
                 "10-NN accuracy of the map (`knn_accuracy`); held if vistsne's median is below scikit-learn's by "
                 "no more than the seed-to-seed range (max - min over the repetitions) of either, and at least "
                 f"{s['acc_tolerance']}.")
        L.append("")
        head = ["N", "scikit-learn ref (s)", "vistsne ref (s)", "ratio ref", "acc sk / vt (ref)",
                "scikit-learn defaults (s)", "vistsne defaults (s)", "ratio defaults", "acc sk / vt (defaults)",
                "vistsne defaults / scikit-learn ref", "vistsne ref, PCA 50 (s)", "ratio", "acc",
                "vistsne method", "vistsne metrics (s)"]
        rows = []
        for r in eng["rows"]:
            np_ = r.get("vistsne_ref_pca50")
            if r["sklearn_skipped"]:
                rows.append([_n(r["n"]), "not run", fmt_stat(r["vistsne_ref"]["seconds"], 1), "—",
                             f"— / {r['vistsne_ref']['knn_acc']['median']:.3f}", "not run",
                             fmt_stat(r["vistsne_default"]["seconds"], 1), "—",
                             f"— / {r['vistsne_default']['knn_acc']['median']:.3f}", "—",
                             fmt_stat(np_["seconds"], 1) if np_ else "—", "—",
                             f"{np_['knn_acc']['median']:.3f}" if np_ else "—",
                             r["vistsne_default"]["method"], fmt_stat(r["vistsne_default"]["metrics_seconds"], 1)])
                continue
            rows.append([_n(r["n"]), fmt_stat(r["sklearn_ref"]["seconds"], 1), fmt_stat(r["vistsne_ref"]["seconds"], 1),
                         fmt_stat(r["ratio_ref"], 3),
                         f"{r['sklearn_ref']['knn_acc']['median']:.3f} / {r['vistsne_ref']['knn_acc']['median']:.3f}",
                         fmt_stat(r["sklearn_default"]["seconds"], 1), fmt_stat(r["vistsne_default"]["seconds"], 1),
                         fmt_stat(r["ratio_default"], 3),
                         f"{r['sklearn_default']['knn_acc']['median']:.3f} / "
                         f"{r['vistsne_default']['knn_acc']['median']:.3f}",
                         fmt_stat(r["ratio_vistsne_default_vs_reference"], 3),
                         fmt_stat(np_["seconds"], 1) if np_ else "—",
                         fmt_stat(r.get("ratio_ref_pca50"), 3) if np_ else "—",
                         f"{np_['knn_acc']['median']:.3f}" if np_ else "—",
                         r["vistsne_default"]["method"], fmt_stat(r["vistsne_default"]["metrics_seconds"], 1)])
        L.append(_table(head, rows))
        L.append("")

    rt = res.get("retune")
    if rt:
        L.append("## 2. Re-tune: cold against warm `vistsne run`")
        L.append("")
        L.append(f"`python -m vistsne run configs/digits_resnet18.py --checkpoint ... --max-num-class 10 "
                 f"--max-num-samples {rt['n'] // 10}` on digits expanded to {rt['expand']} images ({rt['rows'][0]} "
                 f"samples), whole processes. Cold: a fresh store, perplexity {rt['perplexities'][0]} (inference + "
                 f"t-SNE + render). Warm: the same store, perplexity {rt['perplexities'][1]} (store hit, a new map, "
                 f"render).")
        L.append("")
        L.append(_table(["N", "cold (s)", "warm (s)", "warm / cold", "cold peak RSS", "warm peak RSS", "store hit"],
                        [[_n(rt["n"]), fmt_stat(rt["cold_seconds"], 1), fmt_stat(rt["warm_seconds"], 1),
                          fmt_stat(rt["ratio_warm_over_cold"], 3), _mb(rt["cold_maxrss_mb"]),
                          _mb(rt["warm_maxrss_mb"]), "yes" if rt["warm_store_hit"] else "NO"]]))
        L.append("")

    ex = res.get("extraction")
    if ex:
        L.append("## 3. Extraction: vistsne against the forward-pass ceiling")
        L.append("")
        L.append("vistsne: the library's `extract` into a fresh store (config, dataset, model, checkpoint, "
                 "loading, every stage, thumbnails, store writes), in a process where torch is already imported. "
                 "Bare loop: the same model's `extract_feat` over batches loaded and preprocessed beforehand, one "
                 "untimed warm-up batch. Same process, same batch size, same threads.")
        L.append("")
        L.append(_table(["model", "images", "batch", "loader workers", "vistsne (s)", "vistsne img/s", "bare img/s",
                         "vistsne / bare", "target", "status", "first-batch warm-up (s)", "extract peak RSS"],
                        [[r["model"], _n(r["rows"]), r["batch_size"], r["num_workers"],
                          fmt_stat(r["vistsne_seconds"], 2), fmt_stat(r["vistsne_ips"], 1),
                          fmt_stat(r["bare_ips"], 1), fmt_stat(r["ratio"], 3), f">= {r['target']}",
                          _status(r["met"]), fmt_stat(r.get("first_batch_extra_seconds"), 2),
                          _mb(r["vistsne_maxrss_mb"])] for r in ex["rows"]]))
        L.append("")
        L.append("First-batch warm-up: how much longer the bare loop's first (untimed) batch took than a "
                 "steady-state batch; a fresh process pays it once, inside vistsne's time.")
        L.append("")

    ch = res.get("cache_hit")
    if ch:
        L.append("## 4. Cache hit")
        L.append("")
        imported = ", ".join(f"{k}: {'yes' if val else 'no'}" for k, val in ch["imported_in_process"].items())
        L.append(f"`{ch['command']}` (the command that made the bench entry): {fmt_stat(ch['seconds'], 2, ' s')} "
                 f"per whole process (target <= {ch['target_s']:.0f} s; {_status(ch['met'])}). Imported by the "
                 f"process (checked in-process after the command ran): {imported}.")
        L.append("")

    sw = res.get("sweep")
    if sw:
        L.append("## 5. Sweep sharing")
        L.append("")
        acc = ", ".join(f"{float(k):g}: {val:.3f}" for k, val in sorted(sw["acc_one_call"].items(),
                                                                         key=lambda kv: float(kv[0])))
        L.append(f"Perplexities {', '.join(f'{p:g}' for p in sw['perplexities'])} at N={_n(sw['n'])}, vistsne "
                 f"defaults otherwise, {sw.get('cores', '?')} cores. CLI: one `vistsne embed --perplexity "
                 f"{','.join(f'{p:g}' for p in sw['perplexities'])}` process against four `vistsne embed "
                 "--perplexity P` processes (whole processes, on fresh copies of a store holding just these "
                 "rows, so nothing is cached; `--n-jobs` = cores, the CLI default). Library: one `embed_many` "
                 "call against four in one process, with every core (the sweep runs its maps side by side, "
                 "one thread each; a lone map gets every thread) and with one thread (the shared work alone).")
        L.append("")
        L.append("| comparison | one call (s) | four calls (s) | ratio | target |")
        L.append("|---|---|---|---|---|")
        parts = [("CLI, whole processes, all cores", sw.get("cli"), True),
                 ("library `embed_many`, all cores", sw.get("library_all_cores"), False),
                 ("library `embed_many`, one thread", sw.get("library_one_thread"), False)]
        for label, part, headline in parts:
            if not part:
                continue
            L.append(f"| {label} | {fmt_stat(part['one_call_seconds'], 1)} | {fmt_stat(part['separate_seconds'], 1)} "
                     f"| {fmt_stat(part['ratio'], 3)} | "
                     + (f"<= {sw['target']}: {_status(sw['met'])}" if headline else "(reported)") + " |")
        L.append("")
        L.append(f"Shared per sweep: {sw['shared_work_per_sweep']}. Map 10-NN accuracy by perplexity: {acc}.")
        L.append("")

    ov = res.get("overhead")
    if ov:
        L.append("## 6. Overhead against openTSNE")
        L.append("")
        L.append("vistsne defaults through `embed_many` against openTSNE's step-by-step API with the values vistsne "
                 "resolves (the same PCA, kNN method and seed, perplexity, init, gradient method, theta, learning "
                 "rate, momentum, exaggeration phases, iterations, `n_jobs`). vistsne's seconds include its map "
                 "metrics (10-NN accuracy of features and map, trustworthiness), also shown apart.")
        L.append("")
        L.append(_table(["N", "method", "vistsne (s)", "of which metrics (s)", "openTSNE (s)", "ratio",
                         "ratio without metrics", "acc vistsne / openTSNE", "iterations run", "status"],
                        [[_n(r["n"]), r["resolved"]["method"], fmt_stat(r["vistsne_seconds"], 1),
                          fmt_stat(r["vistsne_metrics_seconds"], 1), fmt_stat(r["direct_seconds"], 1),
                          fmt_stat(r["ratio"], 3), fmt_stat(r["ratio_without_metrics"], 3),
                          f"{r['acc_vistsne']['median']:.3f} / {r['acc_direct']['median']:.3f}",
                          fmt_stat(r["n_iter_run"], 0), _status(r["met"])] for r in ov["rows"]]))
        L.append("")

    mem = res.get("memory")
    if mem:
        L.append("## 7. Peak memory (resident set, whole process)")
        L.append("")
        head = ["N", "vistsne ref settings", "vistsne defaults", "vistsne ref, PCA 50", "scikit-learn ref",
                "scikit-learn defaults"]
        rows = []
        for n in mem["embed_vistsne_default"]:
            rows.append([_n(int(n)), _mb(mem["embed_vistsne_ref"].get(n)), _mb(mem["embed_vistsne_default"].get(n)),
                         _mb(mem.get("embed_vistsne_ref_pca50", {}).get(n)),
                         _mb(mem["embed_sklearn_ref"].get(n)), _mb(mem["embed_sklearn_default"].get(n))])
        L.append(_table(head, rows))
        L.append("")
        L.append("Embed processes hold numpy, scikit-learn, openTSNE and the features (N x 512 float32), no torch; "
                 "vistsne's also compute its map metrics, whose trustworthiness builds dense distance matrices over "
                 "up to 2,000 rows. "
                 "Extract: " + "; ".join(f"{k}: {_mb(val)}" for k, val in mem["extract"].items())
                 + " (the process's peak right after `extract`, torch and mmpretrain included). Whole `vistsne run`: "
                 + "; ".join(f"{k}: {_mb(val)}" for k, val in mem.get("run", {}).items()) + ".")
        L.append("")

    me = res.get("method")
    if me:
        L.append("## 8. Gradient method: Barnes-Hut against FFT")
        L.append("")
        L.append(f"{me['settings']}. Ratio = FFT seconds / Barnes-Hut seconds, paired per repetition.")
        L.append("")
        L.append(_table(["N", "Barnes-Hut (s)", "FFT (s)", "FFT / BH", "acc BH / FFT", "KL BH / FFT"],
                        [[_n(r["n"]), fmt_stat(r["bh"]["seconds"], 1), fmt_stat(r["fft"]["seconds"], 1),
                          fmt_stat(r["ratio_fft_over_bh"], 2),
                          f"{r['bh']['knn_acc']['median']:.3f} / {r['fft']['knn_acc']['median']:.3f}",
                          f"{r['bh']['kl']['median']:.3f} / {r['fft']['kl']['median']:.3f}"] for r in me["rows"]]))
        L.append("")
        sug = me["suggestion"]
        L.append(f"Suggested `METHOD_SWITCH_N`: {sug.get('n') or 'n/a'} — {sug['why']}. In the code now: "
                 f"{me['current_method_switch_n']}.")
        L.append("")

    se = res.get("seams")
    if se:
        L += _seams_section(se)
    sc = res.get("store_checks")
    if sc:
        L += _store_checks_section(sc)

    prof = res.get("profiling", {})
    L.append("## Where the time goes (cProfile)")
    L.append("")
    if ex:
        for r in ex["rows"]:
            p = r.get("profile")
            if not p:
                L.append(f"- `extract`, {r['model']}: not profiled in this mode.")
                continue
            named = p.get("named_cumulative", {})
            total = named.get("whole extract()") or p.get("total_seconds")
            L.append(f"- `extract`, {r['model']}, {_n(r['rows'])} images (one profiled run, "
                     f"{r['profile_run_seconds']:.1f} s; cumulative seconds, shares of the whole call):")
            L += _profile_lines({k: val for k, val in named.items() if k != "whole extract()"}, total)
            top = ", ".join(f"`{t['function']}` {t['own_s']:.2f} s" for t in p.get("top_own_time", [])[:6])
            L.append(f"  - most own time: {top}")
    if prof.get("embed"):
        p = prof["embed"]
        named = p["named_cumulative"]
        total = named.get("whole embed_many")
        L.append(f"- `embed_many`, vistsne defaults, N={_n(p['rows'])} ({p['method']}), one profiled run "
                 f"({p['wall_seconds']:.1f} s):")
        L += _profile_lines({k: val for k, val in named.items() if k != "whole embed_many"}, total)
    if prof.get("cold_run"):
        p = prof["cold_run"]
        named = p["named_cumulative"]
        total = named.get("whole run()") or p["total_seconds"]
        L.append(f"- a cold `vistsne run`, N={_n(p['n'])}, one profiled process ({p['wall_seconds']:.1f} s wall):")
        L += _profile_lines({k: val for k, val in named.items() if k != "whole run()"}, total)
    L.append("")
    notes = R.get("notes") or []
    if notes:
        L.append("## Notes")
        L.append("")
        L += [f"- {n}" for n in notes]
        L.append("")
    return "\n".join(L)


def _seams_section(se: dict) -> list[str]:
    before = (se.get("before_commit") or "7fc1473")[:7]
    af = se.get("after_snapshot") or {}
    L = ["## 9. Seams: embed cache hit and render, before and after", ""]
    L.append(f"Before: commit {before} (embed read the whole feature matrix before looking for its map; "
             "`read_rows` read each part's whole array and `row_map` every part's index on each call). After: "
             "the working tree" + (f" ({af['head']} + {af['uncommitted_files']} uncommitted files under vistsne/, "
                                   f"copied at {af['taken']})" if af else "") + ". Both as whole `python -m vistsne` "
             "processes with `PYTHONPATH` and cwd at their own tree (before: a git worktree), on one store written "
             f"by the after version: {_n(se['rows'])} rows "
             f"of the bench entry, every stage ({', '.join(se['stages'])}), {_parts(se['parts'])} of "
             f"{_n(se['part_rows'])} rows, crc32c checksums, {se['store_mb']:.0f} MB. The map (stage "
             f"`{se['stage']}`) was made once by the before version ({se['map']['seconds']:.0f} s); the after "
             "version reads it as its own (same key). Warm-up round dropped; the two versions alternate.")
    L.append("")
    rows = []
    for label, part in (("`vistsne embed`, complete cache hit", se["embed_hit"]),
                        ("`vistsne render --format png`", se["render"])):
        rows.append([label, fmt_stat(part["seconds"]["before"], 2), fmt_stat(part["seconds"]["after"], 2),
                     fmt_stat(part["ratio"], 3), _mb(part["maxrss_mb"]["before"]), _mb(part["maxrss_mb"]["after"])])
    rd = se["reads"]
    rows.append(["the reads alone, in one process: `present`, features, labels (fresh Store)",
                 fmt_stat(rd["before"]["total"], 3), fmt_stat(rd["after"]["total"], 3), fmt_stat(rd["ratio_total"], 3),
                 "—", "—"])
    L.append(_table(["what", "before (s)", "after (s)", "after / before", "before peak RSS", "after peak RSS"], rows))
    L.append("")
    steps = ", ".join(f"{k} {fmt_stat(rd['before'][k], 3)} -> {fmt_stat(rd['after'][k], 3)} s"
                      for k in ("open", "present", "features", "labels"))
    L.append(f"The reads, step by step (before -> after): {steps}. Both versions read the same bytes "
             f"({'yes' if rd['same_bytes'] else '**NO**'}): the before version reads arrays written with the "
             "crc32c codec.")
    L.append("")
    L.append(f"Embed command: `{se['embed_hit']['command']}`.")
    L.append("")
    return L


def _store_checks_section(sc: dict) -> list[str]:
    rc, ch, ex, vd = sc["read_check"], sc["cache_hit"], sc["extraction"], sc["verify_deep"]
    wp, cd = ex["write_part"], ex["codec"]
    af = sc.get("after") or {}
    L = ["## 10. Store checks: what checksums and completeness checks cost", ""]
    L.append(f"(a) Read of every row of a {_n(rc['rows'])} x {rc['dim']} float32 stage from {_parts(rc['parts'])} "
             f"({rc.get('chunks', '?')} chunks), fresh Store each time, with the completeness check (every chunk "
             "a read needs is checked to exist first) and without (`Store.check_chunks = False`); the crc32c check "
             "runs in zarr's codec on both sides. (b) `vistsne extract` on a complete entry (the store of item 9), "
             "whole processes: before (7fc1473) / after, and in the after version with the check on / off (a "
             "`python -c` wrapper of the CLI that sets `Store.check_chunks`, the same wrapper on both sides; with "
             "the check on it also times every `check_present` call, the check itself). (c) Real extractions of "
             f"the digits demo ({_n(ex['images'])} images, the bench checkpoint) into fresh stores, "
             "`Store.write_part` timed; then `write_part` of one part's arrays (the first part of item 9's store, "
             f"{_n(wp['rows'])} real rows, every stage) into fresh stores, with the checks (crc32c, every chunk "
             "written, size records) and as before (zarr's default zstd, chunks equal to the fill value skipped, "
             "no records), alternating; the extra time per part, scaled to the extraction's rows, over the "
             "extraction's time is the checks' share. The same arrays through zarr directly with and without "
             "the crc32c codec, and without it with empty chunks skipped (zarr's default, as before), give the "
             "checksum's own cost and that of writing every chunk. "
             f"(d) `{vd['command']}` as a whole process on {vd['feature_mb']:,.0f} MB of random float32 features "
             f"in {_parts(vd['parts'])} ({vd['stored_mb']:,.0f} MB stored), right after writing them.")
    L.append("")
    L.append(_table(["measurement", "with checks", "without", "ratio / share", "target", "status"], [
        ["(a) read, completeness check on / off (s)", fmt_stat(rc["with_check_s"], 3),
         fmt_stat(rc["without_check_s"], 3), f"{fmt_stat(rc['ratio'], 3)}; the check alone "
         f"{fmt_stat(rc['check_alone_s'], 4)} s = {rc['check_share']:.4f}", f"<= {rc['target']}",
         _status(rc["met"])],
        ["(b) extract cache hit, check on / off (s)", fmt_stat(ch["seconds"]["checks_on"], 2),
         fmt_stat(ch["seconds"]["checks_off"], 2), f"{fmt_stat(ch['ratio_checks_on_over_off'], 3)}; the check "
         f"itself {fmt_stat(ch['check_seconds'], 4)} s = {fmt_stat(ch['check_share'], 4)}", f"<= {ch['target']}",
         _status(ch["met"])],
        ["(b) extract cache hit, after / before 7fc1473 (s)", fmt_stat(ch["seconds"]["after"], 2),
         fmt_stat(ch["seconds"]["before"], 2), fmt_stat(ch["ratio_after_over_before"], 3), "(reported)", "—"],
        [f"(c) `write_part` of one {_n(wp['rows'])}-row part (s)", fmt_stat(wp["checks"], 4),
         fmt_stat(wp["no_checks"], 4), f"{fmt_stat(wp['ratio'], 3)}; extra {fmt_stat(wp['extra_seconds'], 4)} s",
         "(reported)", "—"],
        [f"(c) extraction of {_n(ex['images'])} images (s), its `write_part` calls", fmt_stat(ex["extract_seconds"], 1),
         "—", f"checks' share {fmt_stat(ex['fraction'], 4)}", f"<= {ex['target']}", _status(ex["met"])],
        ["(c) one part through zarr: write, crc32c / plain (s)", fmt_stat(cd["write_seconds"]["crc32c"], 4),
         fmt_stat(cd["write_seconds"]["plain"], 4), fmt_stat(cd["write_ratio"], 3), "(reported)", "—"],
        ["(c) one part through zarr: write, every chunk / empty chunks skipped, no crc32c (s)",
         fmt_stat(cd["write_seconds"]["plain"], 4), fmt_stat(cd["write_seconds"].get("plain_skip_empty"), 4),
         fmt_stat(cd.get("every_chunk_write_ratio"), 3), "(reported)", "—"],
        ["(c) one part through zarr: write, now (crc32c, every chunk) / before (s)",
         fmt_stat(cd["write_seconds"]["crc32c"], 4), fmt_stat(cd["write_seconds"].get("plain_skip_empty"), 4),
         fmt_stat(cd.get("now_over_before_write_ratio"), 3), "(reported)", "—"],
        ["(c) one part through zarr: read, crc32c / plain (s)", fmt_stat(cd["read_seconds"]["crc32c"], 4),
         fmt_stat(cd["read_seconds"]["plain"], 4), fmt_stat(cd["read_ratio"], 3), "(reported)", "—"],
        ["(d) verify --deep (MB/s)", fmt_stat(vd["mb_per_s"], 0), "—",
         f"{fmt_stat(vd['seconds'], 2)} s; process {fmt_stat(vd['process_seconds'], 2)} s", "(reported)", "—"],
    ]))
    L.append("")
    L.append(f"The extractions: {fmt_stat(ex['parts'], 0)} `write_part` calls of {fmt_stat(ex['rows_per_part'], 0)} "
             f"rows each (extract commits every 1,024 rows or 20 s), `write_part` "
             f"{fmt_stat(ex['write_part_share'], 4)} of the extraction time in all. crc32c alone: "
             f"{fmt_stat(cd['crc_write_seconds_per_part'], 4)} s more per {_n(cd['rows'])}-row part written, "
             f"{fmt_stat(cd['crc_fraction_of_extraction'], 4)} of the extraction. Writing every chunk skips "
             "zarr's comparison of each chunk with the fill value (what it does to leave out empty chunks), "
             "which is why the writes with the checks can be the faster ones. Cache-hit command: "
             f"`{ch['command']}`; the check ran {fmt_stat(ch['check_calls'], 0)} times per process."
             + (f" After version: the working tree at {af.get('head')} with {af.get('uncommitted_files')} "
                f"uncommitted files under vistsne/, copied at {af.get('taken')} (sha256 "
                f"{str(af.get('sha256'))[:12]})." if af else ""))
    L.append("")
    return L
