"""The interactive page at scale: build time, file size, headless load and hover latency.

``python benchmarks/scale_page.py [--n 100000] [--reps 2] [--no-before]``
prints one JSON document. For each N (default 20,000, 100,000 and 250,000,
the last past ``PAGE_THUMBS_MAX``) a fresh child process (this file with
``--child``) makes a map of N real digit images (``tests/page_browser.py:
digit_map``: scikit-learn's digits at 32 px, shifted and dimmed into N
distinct images; a 2-D Gaussian mixture for coordinates, 3 blobs per class;
making it is not timed) and writes its page with ``render_html``
(``build_s``, ``peak_rss_mb`` of that child). Then headless Chromium
(Playwright on the system binary, the browser tests' own helpers) opens the
page ``reps`` times, each in a fresh context: ``load_s`` is the page's own
clock (``performance.now()``) from the navigation's start to the page being
ready (its script ran, bokeh drew and is idle); ``hover_ms`` times a real
mouse move onto 3 points (the lone corner point, the first, the middle one),
from the pointer event to a shown tooltip whose image is decoded.

Baseline, same run: the page as it was before the scale work (``BEFORE_REV``:
its ``html.py`` and ``html_assets.py`` over today's other modules, in a copy
of the package) at the largest N within the cap; ``ratios`` are after /
before. ``run(ctx)`` gives the same document for ``make bench`` (tiny: 2,000
points and a 3,000-point page past a cap lowered to 1,000 thumbnails, no
baseline; quick: 20,000; otherwise the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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

DEFAULT_SIZES = (20_000, 100_000, 250_000)
#: the last commit before the page's scale work (the baseline's html.py and html_assets.py)
BEFORE_REV = "4317932"
DATA = ("real images: scikit-learn's digits at 32 px, shifted (up to 3 px) and dimmed into N distinct "
        "images (tests/page_browser.py:digit_images); coordinates a 2-D Gaussian mixture, 3 blobs per class")


def child(spec: dict) -> dict:
    """In a fresh process: make the map (untimed), write its page (timed)."""
    if spec.get("code_root"):
        sys.path.insert(0, spec["code_root"])
    from tests.page_browser import digit_map
    from vistsne.render import render_html

    t0 = time.perf_counter()
    m = digit_map(spec["n"])
    data_s = time.perf_counter() - t0
    import vistsne.render.html as page
    kwargs = {"max_thumbnails": spec["max_thumbnails"]} if spec.get("max_thumbnails") else {}
    t0 = time.perf_counter()
    out = render_html([m], spec["out"], progress=False, **kwargs)
    build_s = time.perf_counter() - t0
    return {"build_s": build_s, "data_s": data_s, "mb": out.stat().st_size / 1e6,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "vistsne": str(Path(page.__file__).resolve())}


def _build(n: int, out: Path, code_root: Path | None = None, max_thumbnails: int | None = None) -> dict:
    spec = {"n": n, "out": str(out), "code_root": str(code_root) if code_root else None,
            "max_thumbnails": max_thumbnails}
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=3600)
    if res.returncode:
        raise RuntimeError(f"building the page of {n} points failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def before_code(tmp: Path) -> Path | None:
    """A copy of today's package with the page modules of :data:`BEFORE_REV` (None without git)."""
    root = tmp / "before"
    shutil.copytree(ROOT / "vistsne", root / "vistsne", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("vistsne/render/html.py", "vistsne/render/html_assets.py"):
        res = subprocess.run(["git", "show", f"{BEFORE_REV}:{rel}"], cwd=str(ROOT), capture_output=True,
                             text=True)
        if res.returncode:
            return None
        (root / rel).write_text(res.stdout, encoding="utf-8")
    return root


def _stats(values) -> dict:
    vals = sorted(float(v) for v in values)
    mid = len(vals) // 2
    median = vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2
    return {"median": round(median, 3), "min": round(vals[0], 3), "max": round(vals[-1], 3),
            "n": len(vals), "values": [round(v, 3) for v in vals]}


def measure_page(browser, path: Path, n: int, reps: int) -> dict:
    from tests.page_browser import page_figures

    loads, first = [], None
    for r in range(reps):
        tab = browser.open(path.resolve().as_uri(), timeout_s=300)
        try:
            if r == 0:
                first = page_figures(tab, [n - 1, 0, n // 2])
                loads.append(first["load_s"])
            else:
                loads.append(tab.load_s)
        finally:
            tab.close()
    return {"load_s": _stats(loads), "hover_ms": _stats(first["hover_ms"]),
            "points_drawn": first["points"], "backend": first["backend"], "note": first["note"],
            "hovers_with_image": sum(bool(h["src"]) for h in first["hovers"]),
            "hovers": len(first["hovers"]),
            "errors": first["errors"][:5]}


def measure_all(sizes, work: Path, reps: int = 2, before: bool = True,
                max_thumbnails: int | None = None) -> dict:
    from tests.page_browser import Browser, chromium_problem
    from vistsne.render.html import PAGE_THUMBS_MAX

    cap = max_thumbnails or PAGE_THUMBS_MAX
    problem = chromium_problem()
    doc = {"data": DATA, "thumbs_max": cap, "reps": reps, "pages": [], "before": None, "ratios": None,
           "browser": problem or "headless Chromium (Playwright on the system binary), 1200x1000"}
    browser = None if problem else Browser()
    try:
        for n in sizes:
            out = work / f"page_{n}.html"
            print(f"scale_page: building the page of {n:,} points", file=sys.stderr, flush=True)
            row = {"n": n, "version": "after", **_build(n, out, max_thumbnails=max_thumbnails)}
            row["thumbnails"] = min(n, cap)
            if browser is not None:
                row.update(measure_page(browser, out, n, reps))
            out.unlink()
            doc["pages"].append(row)
        base_n = max((n for n in sizes if n <= cap), default=None)
        code = before_code(work) if before and base_n else None
        if code is not None:
            out = work / f"before_{base_n}.html"
            print(f"scale_page: building the baseline page of {base_n:,} points ({BEFORE_REV})",
                  file=sys.stderr, flush=True)
            row = {"n": base_n, "version": f"before ({BEFORE_REV})", **_build(base_n, out, code)}
            if browser is not None:
                row.update(measure_page(browser, out, base_n, reps))
            out.unlink()
            doc["before"] = row
            after = next(r for r in doc["pages"] if r["n"] == base_n)
            doc["ratios"] = {"n": base_n, "build_s": round(after["build_s"] / row["build_s"], 3),
                             "mb": round(after["mb"] / row["mb"], 3)}
            if browser is not None:
                doc["ratios"]["load_s"] = round(after["load_s"]["median"] / row["load_s"]["median"], 3)
                doc["ratios"]["hover_ms"] = round(after["hover_ms"]["median"] / row["hover_ms"]["median"], 3)
    finally:
        if browser is not None:
            browser.close()
    return doc


def run(ctx) -> dict:
    """The benchmark item (sizes from ``ctx.mode``, see the module's doc); pages under ``ctx.work``."""
    name = getattr(getattr(ctx, "mode", None), "name", "default")
    work = getattr(ctx, "work", None)
    with tempfile.TemporaryDirectory(prefix="scale-page-", dir=work) as tmp:
        if name == "tiny":
            return measure_all([2000, 3000], Path(tmp), reps=1, before=False, max_thumbnails=2000)
        if name.startswith("quick"):
            return measure_all([20_000], Path(tmp), reps=1)
        return measure_all(list(DEFAULT_SIZES), Path(tmp), reps=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", action="append", type=lambda s: int(s.replace(",", "").replace("_", "")),
                    help="page size (points); repeat for several (default 20,000, 100,000 and 250,000)")
    ap.add_argument("--reps", type=int, default=2, help="page loads per size, each in a fresh context")
    ap.add_argument("--no-before", action="store_true", help="skip the baseline page (BEFORE_REV)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    with tempfile.TemporaryDirectory(prefix="scale-page-") as tmp:
        doc = measure_all(args.n or list(DEFAULT_SIZES), Path(tmp), args.reps, not args.no_before)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
