"""Static figures at any N: the scatter against the density image, numpy against datashader.

``python benchmarks/scale_render.py [--n 20000,100000,1000000] [--reps 1]``
prints one JSON document. Each measurement is a fresh child process (this
file with ``--child``): it makes a synthetic map (not timed), then draws and
writes the static PNG of one map (``build_map_figure`` + ``save_figure``,
``--legend`` on) twice: ``cold_s`` is the first draw, what one ``vistsne
render`` pays (for datashader, its numba compilation), ``warm_s`` the second.
``peak_rss_mb`` is the child's own peak resident memory
(``resource.getrusage``), ``data_rss_mb`` its resident memory once the map
is made, before drawing, so ``peak - data`` is what the drawing adds.

Methods: ``scatter`` (today's path: one matplotlib ``scatter``, rasterised
by Agg), ``raster-numpy`` (:mod:`vistsne.render.raster`, the path past
``RASTER_MIN_POINTS``) and ``raster-datashader`` (the same figure, its image
made by datashader 0.19.1: ``Canvas.points`` with ``count_cat`` over the
map's distinct colours and ``tf.shade(how="log")``). datashader is not a
dependency of vistsne: it is measured where it imports (``pip install
datashader==0.19.1``, or ``--datashader-site DIR`` with a ``pip install
--target DIR``); otherwise its rows say why they are missing.

The map is synthetic (there is no map of a million rows in the bench store):
a Gaussian mixture of 1,000 classes with Pareto-distributed sizes and
spreads, seeded, 2-D. ``run(ctx)`` gives the same document for ``make bench``
(sizes from the mode: tiny 2,000; quick 20,000; otherwise 20,000, 100,000
and 1,000,000).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # never let a bench module shadow a library module
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("scatter", "raster-numpy", "raster-datashader")
DEFAULT_SIZES = (20_000, 100_000, 1_000_000)
CLASSES = 1000
#: the scatter is skipped past this many points (it takes seconds per 100,000)
SCATTER_MAX = 2_000_000
DATA = ("synthetic: a 2-D Gaussian mixture of {k:,} classes (Pareto class sizes and spreads, "
        "seed 0); no map of this size exists in the bench store")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def synthetic_map(n: int, k: int = CLASSES, seed: int = 0):
    """A MapData of ``n`` points in ``k`` Gaussian classes."""
    import numpy as np

    from vistsne.render import MapData
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 2)) * np.sqrt(k) * 0.6
    weight = rng.pareto(1.5, k) + 1.0
    labels = rng.choice(k, size=n, p=weight / weight.sum()).astype(np.int64)
    spread = rng.uniform(0.3, 1.5, k)
    coords = (centres[labels] + rng.normal(size=(n, 2)) * spread[labels, None]).astype(np.float32)
    return MapData("synthetic", coords, labels, [f"class {i}" for i in range(k)],
                   np.arange(n), None, f"synthetic map | {n:,} points | {k:,} classes")


def datashader_image(xy, fc, extent, shape, spread=0):
    """The density image made by datashader: counts per distinct colour
    (``count_cat``), shaded with the colours on a log scale (categorical
    fields only)."""
    import numpy as np
    import pandas as pd
    import datashader as ds
    import datashader.transfer_functions as tf
    if fc.kind == "continuous":
        raise ValueError("the datashader backend of this benchmark draws categorical fields only")
    table = list(dict.fromkeys(fc.table))            # the distinct colours, in order
    slot = {c: i for i, c in enumerate(table)}
    colour_of = np.array([slot[c] for c in fc.table], dtype=np.int64)[fc.index]
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1],
                       "c": pd.Categorical.from_codes(colour_of, categories=table)})
    h, w = shape
    canvas = ds.Canvas(plot_width=int(w), plot_height=int(h), x_range=tuple(extent[:2]),
                       y_range=tuple(extent[2:]))
    agg = canvas.points(df, "x", "y", ds.count_cat("c"))
    img = tf.shade(agg, color_key=table, how="log", min_alpha=128)
    if spread:
        img = tf.spread(img, px=int(spread), shape="square")
    rgba = np.ascontiguousarray(np.asarray(img.data, dtype=np.uint32)).view(np.uint8)
    return rgba.reshape(int(h), int(w), 4)  # row 0 = the lowest y, as origin="lower" wants


def child(spec: dict) -> dict:
    """One measurement, in this (fresh) process."""
    import numpy as np  # noqa: F401  (imported before the clock, like matplotlib below)

    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: F401

    from vistsne.render import RenderParams, build_map_figure
    from vistsne.render import raster
    from vistsne.render.static import save_figure
    method, n = spec["method"], int(spec["n"])
    out = Path(spec["out"])
    if method == "raster-datashader":
        if spec.get("datashader_site"):
            sys.path.insert(0, spec["datashader_site"])
        try:
            import datashader
        except ImportError as e:
            return {"skipped": f"datashader does not import ({e}); pip install datashader==0.19.1"}
        raster.IMAGE_BACKENDS["datashader"] = datashader_image
        raster.RASTER_BACKEND = "datashader"
        version = datashader.__version__
    else:
        version = None
    raster.RASTER_MIN_POINTS = 10 ** 12 if method == "scatter" else 0
    m = synthetic_map(n)
    data_rss = _rss_mb()
    params = RenderParams(legend=True)
    times = []
    for rep in range(2):
        t0 = time.perf_counter()
        fig = build_map_figure(m, params)
        path = save_figure(fig, out / f"{method}-{n}-{rep}.png", "png", params.dpi)
        times.append(time.perf_counter() - t0)
        del fig
    res = {"cold_s": round(times[0], 3), "warm_s": round(times[1], 3),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
           "data_rss_mb": round(data_rss, 1), "png_bytes": path.stat().st_size}
    if version:
        res["datashader"] = version
    return res


def measure(method: str, n: int, out: Path, datashader_site: str | None = None,
            timeout: float = 900) -> dict:
    spec = {"method": method, "n": n, "out": str(out), "datashader_site": datashader_site}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                               json.dumps(spec)], capture_output=True, text=True, timeout=timeout,
                              cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"n": n, "method": method, "skipped": f"did not finish in {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"n": n, "method": method, "error": " | ".join(tail)}
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"n": n, "method": method, **doc, "process_s": round(time.perf_counter() - t0, 2)}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure_all(sizes, out: Path, reps: int = 1, datashader_site: str | None = None,
                methods=METHODS) -> dict:
    from vistsne.render import raster
    rows = []
    for n in sizes:
        for rep in range(reps):
            for method in methods:
                if method == "scatter" and n > SCATTER_MAX:
                    rows.append({"n": n, "method": method, "rep": rep,
                                 "skipped": f"scatter not run past {SCATTER_MAX:,} points"})
                    continue
                row = measure(method, n, out, datashader_site)
                row["rep"] = rep
                rows.append(row)
                what = row.get("skipped") or row.get("error") or \
                    f"cold {row['cold_s']:.2f} s, warm {row['warm_s']:.2f} s, peak {row['peak_rss_mb']:.0f} MB"
                _say(f"scale_render: {method:17s} N={n:>9,}: {what}")
    return {"item": "scale_render", "data": DATA.format(k=CLASSES),
            "what": "draw and write one static PNG map (build_map_figure + save_figure, legend on, "
                    "dpi 100) in a fresh process; cold = first draw, warm = second",
            "raster_min_points": raster.RASTER_MIN_POINTS, "sizes": list(sizes),
            "cores": os.cpu_count(), "loadavg": list(os.getloadavg()), "rows": rows,
            "summary": summarise(rows)}


def summarise(rows) -> list[dict]:
    """Median cold seconds and peak MB per (N, method), and each raster's speed-up over the scatter."""
    import statistics
    out = []
    keys = sorted({(r["n"], r["method"]) for r in rows}, key=lambda k: (k[0], METHODS.index(k[1])))
    for n, method in keys:
        got = [r for r in rows if r["n"] == n and r["method"] == method and "cold_s" in r]
        if not got:
            continue
        out.append({"n": n, "method": method,
                    "cold_s": round(statistics.median(r["cold_s"] for r in got), 2),
                    "warm_s": round(statistics.median(r["warm_s"] for r in got), 2),
                    "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in got)),
                    "draw_rss_mb": round(statistics.median(r["peak_rss_mb"] - r["data_rss_mb"]
                                                           for r in got))})
    # the scatter's cold time over each raster's, paired per repetition (same N, same round)
    cold = {(r["n"], r["method"], r.get("rep", 0)): r["cold_s"] for r in rows if "cold_s" in r}
    for s in out:
        pairs = [cold[(n, "scatter", rep)] / t for (n, method, rep), t in cold.items()
                 if n == s["n"] and method == s["method"] != "scatter" and (n, "scatter", rep) in cold]
        if pairs:
            s["speedup_vs_scatter"] = round(statistics.median(pairs), 2)
    return out


def run(ctx) -> dict:
    """The benchmark item: sizes from ``ctx.mode`` (tiny: 2,000; quick: 20,000;
    otherwise :data:`DEFAULT_SIZES`); PNGs go to a folder under ``ctx.work``."""
    name = getattr(getattr(ctx, "mode", None), "name", "default")
    sizes = [2000] if name == "tiny" else [20_000] if name.startswith("quick") else list(DEFAULT_SIZES)
    reps = 1
    work = getattr(ctx, "work", None)
    with tempfile.TemporaryDirectory(prefix="scale-render-", dir=work) as tmp:
        return measure_all(sizes, Path(tmp), reps, os.environ.get("VISTSNE_BENCH_DATASHADER_SITE"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default=",".join(map(str, DEFAULT_SIZES)),
                    help="map sizes, comma-separated (default %(default)s)")
    ap.add_argument("--reps", type=int, default=1, help="fresh processes per size and method")
    ap.add_argument("--methods", default=",".join(METHODS), help="any of " + ", ".join(METHODS))
    ap.add_argument("--datashader-site", default=os.environ.get("VISTSNE_BENCH_DATASHADER_SITE"),
                    help="a folder to import datashader from (pip install --target)")
    ap.add_argument("--out", help="keep the PNGs in this folder (default: a temporary one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    sizes = [int(s.replace("_", "")) for s in args.n.split(",") if s.strip()]
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad:
        print(f"scale_render: unknown method {bad[0]!r}; choose from {', '.join(METHODS)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        doc = measure_all(sizes, out, args.reps, args.datashader_site, methods)
    else:
        with tempfile.TemporaryDirectory(prefix="scale-render-") as tmp:
            doc = measure_all(sizes, Path(tmp), args.reps, args.datashader_site, methods)
    print(json.dumps(doc, indent=1))
    done = [r for r in doc["rows"] if "cold_s" in r]
    _say(f"scale_render: {len(done)} draws ({len(sizes)} size(s), {len(methods)} method(s), "
         f"{args.reps} rep(s)) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
