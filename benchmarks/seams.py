"""9. Seams: the embed cache hit and the render of a ``seams_n``-row entry, before and after.

Before: 7fc1473, the last commit before the store refactor, where ``embed``
read the whole feature matrix before checking its map cache (to learn the
width its metadata holds), ``Store.read_rows`` read each part's whole array
and ``row_map`` read every part's index again on each call. After: the
working tree (features read only on a cache miss, only the chunks a read
needs, part indices read once per Store), copied when the run first needs
it (:func:`benchmarks.common.after_version`), so that edits made during the
run do not mix in. Both run as whole ``python -m vistsne`` processes, with
``PYTHONPATH`` and cwd at their own tree (a git worktree of 7fc1473 for
before; :func:`benchmarks.common.before_version`), against one store
written by the after version
(:func:`benchmarks.common.seams_store`: the bench entry's ``seams_n`` rows,
every stage, 1,024-row parts, crc32c checksums). The before version reading
it at all shows that it reads arrays with the crc32c codec.

The map is made once by each version (untimed; the after version's engine 3
keys its maps apart from engine 2's, and maps it writes, ``<key>~<attempt>``,
are invisible to the before version), and each version renders its own map
(``--embedding KEY``). Then, interleaved A B / B A with a dropped warm-up round: (a) the
same ``vistsne embed`` command, a complete cache hit; (b) ``vistsne render
--format png`` of that map into a fresh folder. Ratios after / before are
paired per repetition. (c) The reads alone (``benchmarks/seams_reads.py``):
what embed reads before it looks for its map, inside one process of each
version, fresh Store each time, with a check that both read the same bytes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .common import (BENCH_DIR, PYTHON, SEAMS_STAGE, after_version, before_version, cached_flags, fmt_stat,
                     last_json, ratios, run_process, say, seams_store, stats)
from .setup_data import Context


def _reads(ctx: Context, version, store: dict, reps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="seams-reads-", dir=ctx.work) as tmp:
        out = Path(tmp) / "out.json"
        run_process([PYTHON, str(BENCH_DIR / "seams_reads.py"), store["path"], store["entry"], SEAMS_STAGE,
                     store["rows_npy"], str(out), str(reps)], env=version.env(), cwd=version.root)
        return json.loads(out.read_text())


def _map_keys(doc) -> list[str]:
    """The map keys of an embed ``--json`` document (a list of records, or a dict holding them)."""
    if isinstance(doc, dict):
        return [doc["key"]] if "key" in doc and "cached" in doc else [k for v in doc.values()
                                                                      if isinstance(v, (dict, list))
                                                                      for k in _map_keys(v)]
    if isinstance(doc, list):
        return [k for v in doc for k in _map_keys(v)]
    return []


def run(ctx: Context) -> dict:
    mode = ctx.mode
    reps = mode.process_reps or mode.reps
    store = seams_store(ctx)
    versions = {"before": before_version(ctx), "after": after_version(ctx)}
    n = mode.seams_n
    embed_argv = ["embed", "--entry", store["entry"], "--stage", SEAMS_STAGE, "--max-num-class", "10",
                  "--max-num-samples", str(n // 10), "--n-iter", str(mode.n_iter), "--n-jobs", str(ctx.n_jobs),
                  "--store", store["path"], "--json"]
    say(f"seams: the map of {store['rows']} rows ({store['parts']} part(s)), made once by the before version")
    made = versions["before"].run(*embed_argv, timeout=3600)
    made_doc = last_json(made.stdout)
    if cached_flags(made_doc) != [False]:
        raise RuntimeError(f"the seams store should hold no map yet: {made.stdout[-300:]}")
    # a later engine version keys its maps apart (engine 3: the hnswlib graph): then the after version
    # makes its own map once, untimed, and each version's cache hit and render use its own map
    after_doc = last_json(versions["after"].run(*embed_argv, timeout=3600).stdout)
    own = {"before": _map_keys(made_doc), "after": _map_keys(after_doc)}

    def embed_hit(v):
        res = versions[v].run(*embed_argv)
        flags = cached_flags(last_json(res.stdout))
        if flags != [True]:
            raise RuntimeError(f"`vistsne embed` ({v}) was not one cache hit: {res.stdout.strip()[-300:]}")
        return res

    render_root = Path(tempfile.mkdtemp(prefix="seams-render-", dir=ctx.work))

    def render(v, r):
        out = render_root / f"{v}-{r}"
        res = versions[v].run("render", "--entry", store["entry"], "--format", "png", "--out", out,
                              "--store", store["path"], *[a for k in own[v] for a in ("--embedding", k[:16])])
        files = sorted(out.glob("*.png"))
        if len(files) != 1:
            raise RuntimeError(f"`vistsne render` ({v}) wrote {len(files)} PNG files, not 1: {res.stdout[-300:]}")
        return res, files[0]

    walls = {"embed": {"before": [], "after": []}, "render": {"before": [], "after": []}}
    rss = {"embed": {"before": [], "after": []}, "render": {"before": [], "after": []}}
    pngs = {}
    w = mode.warmup
    for r in range(reps + w):  # the first ``w`` rounds warm up (bytecode of the worktree, font and page caches)
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for v in order:
            e = embed_hit(v)
            g, png = render(v, r)
            pngs[v] = png
            if r >= w:
                walls["embed"][v].append(e.wall)
                walls["render"][v].append(g.wall)
                rss["embed"][v].append(e.maxrss_mb)
                rss["render"][v].append(g.maxrss_mb)
        if r >= w:
            say(f"seams rep {r - w + 1}/{reps}: embed hit before {walls['embed']['before'][-1]:.2f}s, after "
                f"{walls['embed']['after'][-1]:.2f}s; render before {walls['render']['before'][-1]:.2f}s, after "
                f"{walls['render']['after'][-1]:.2f}s")
    reads = {"before": [], "after": []}
    for r in range(reps):
        for v in (("before", "after") if r % 2 == 0 else ("after", "before")):
            reads[v].append(_reads(ctx, versions[v], store, 1))
    same_bytes = len({x["sha256"] for v in reads.values() for x in v}) == 1
    for v, ver in versions.items():
        if not all(str(Path(x["vistsne"]).resolve()).startswith(str(Path(ver.root).resolve())) for x in reads[v]):
            raise RuntimeError(f"the reads of the {v} version imported another vistsne: {reads[v][0]['vistsne']}")

    def part(kind: str, command: str) -> dict:
        w, m = walls[kind], rss[kind]
        return {"command": command, "seconds": {v: stats(w[v]) for v in w},
                "maxrss_mb": {v: stats(m[v]) for v in m}, "ratio": ratios(w["after"], w["before"])}

    steps = ("open", "present", "features", "labels", "total")
    read_stats = {v: {k: stats([x[k][0] for x in reads[v]]) for k in steps} for v in reads}
    out = {
        "n": n, "rows": store["rows"], "parts": store["parts"], "part_rows": store["part_rows"],
        "stages": store["stages"], "store_mb": store["bytes"] / 1e6, "stage": SEAMS_STAGE,
        "map": {"made_by": "before", "seconds": made.wall, "records": made_doc},
        "embed_hit": part("embed", "vistsne " + " ".join(embed_argv).replace(store["path"], "STORE")),
        "render": part("render", f"vistsne render --entry {store['entry'][:12]} --format png --out DIR "
                                 f"--store STORE"),
        "render_png_bytes": {v: p.stat().st_size for v, p in pngs.items()},
        "reads": {**read_stats, "ratio_total": ratios([x["total"][0] for x in reads["after"]],
                                                      [x["total"][0] for x in reads["before"]]),
                  "same_bytes": same_bytes, "dim": reads["after"][0]["dim"]},
        "before_reads_checksummed_store": same_bytes,
        "versions": {v: {"label": ver.label, "imports": ver.imported} for v, ver in versions.items()},
        "before_commit": ctx.shared.get("before_commit"),
        "after_snapshot": ctx.shared.get("after_snapshot"),
    }
    if not same_bytes:
        raise RuntimeError("the two versions read different bytes from the same store")
    say(f"seams: embed cache hit after/before {fmt_stat(out['embed_hit']['ratio'], 3)}, render after/before "
        f"{fmt_stat(out['render']['ratio'], 3)}, reads after/before {fmt_stat(out['reads']['ratio_total'], 3)}")
    return out
