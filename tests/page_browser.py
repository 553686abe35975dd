"""Headless Chromium for the interactive page: what the browser tests and
``benchmarks/scale_page.py`` share.

Chromium is driven by Playwright's Python package (``pip install
playwright``, a test dependency), launched on the system binary (Debian's
``/usr/bin/chromium``, or ``VISTSNE_CHROMIUM``): no browser download
(``playwright install`` is never needed).

- :class:`Browser`, :class:`Tab`: one Chromium, a page in its own context
  with its requests and errors recorded; ``Tab`` waits until the page says
  it is ready and times that (:attr:`Tab.load_s`).
- :data:`FIND_TIPS`: JS that finds bokeh's tooltips (inside shadow roots).
- :func:`hover_ms`: a real mouse move onto a point, timed in the page from
  the pointer event to a shown tooltip whose image has been decoded.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np

CHROMIUM = os.environ.get("VISTSNE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEW_W, VIEW_H = 1200, 1000
SHOTS = os.environ.get("VISTSNE_SHOTS")  # a folder: the tests save their screenshots there

#: JS: the page is ready (its script ran, bokeh has drawn and is idle)
READY = ("window.vistsnePage !== undefined && window.vistsnePage.ready"
         " && (window.Bokeh === undefined || (Bokeh.documents.length > 0"
         " && Bokeh.documents[0].is_idle))")


def chromium_problem() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium); "
                "set VISTSNE_CHROMIUM to use another binary")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[test]')"
    return None


class Browser:
    """One headless Chromium (Playwright on the system binary)."""

    def __init__(self, binary: str = CHROMIUM):
        from playwright.sync_api import sync_playwright
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=binary, args=FLAGS,
                                                    headless=True)
        except Exception:
            self._pw.stop()
            raise

    def open(self, url: str, timeout_s: float = 60.0) -> "Tab":
        return Tab(self.browser, url, timeout_s)

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._pw.stop()


class Tab:
    """A page in its own context, with its requests and errors recorded.

    ``load_s``: seconds from the navigation's start to the page being ready
    (:data:`READY`), as the page's own clock counts them (``performance.now()``
    at ready; its origin is the navigation's start).
    """

    def __init__(self, browser, url: str, timeout_s: float = 60.0):
        self.context = browser.new_context(viewport={"width": VIEW_W, "height": VIEW_H},
                                           device_scale_factor=1, accept_downloads=True)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(f"exception: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" else None)
        t0 = time.perf_counter()
        self.page.goto(url, timeout=timeout_s * 1000)
        self.page.wait_for_function(READY, timeout=timeout_s * 1000, polling=20)
        self.wall_s = time.perf_counter() - t0
        self.load_s = self.page.evaluate("performance.now()") / 1000

    def eval(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def wait_for(self, expression: str, timeout: float = 30.0):
        return self.page.wait_for_function(expression, timeout=timeout * 1000).json_value()

    def screenshot(self, name: str | None = None) -> np.ndarray:
        from PIL import Image
        data = self.page.screenshot()
        if SHOTS and name:
            os.makedirs(SHOTS, exist_ok=True)
            with open(os.path.join(SHOTS, f"{name}.png"), "wb") as f:
                f.write(data)
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=float) / 255

    def settle(self, ms: int = 300) -> None:
        self.page.wait_for_timeout(ms)

    def close(self) -> None:
        self.context.close()


# JS: the bokeh tooltips (inside shadow roots) that show our template
FIND_TIPS = """(() => {
  const out = [];
  const walk = (n) => {
    if (!n) return;
    if (n.classList && n.classList.contains('vt-tip')) {
      const img = n.querySelector('img');
      out.push({text: n.textContent, src: img ? img.getAttribute('src') : null,
                shown: n.getClientRects().length > 0,
                decoded: !!(img && img.complete && img.naturalWidth > 0)});
    }
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of (n.children || [])) walk(c);
  };
  walk(document.body);
  return out;
})()"""

# JS: the screen position (page coordinates) of point i of bokeh map k
POINT_XY = """([k, i]) => {
  const v = [...Bokeh.index].find(v => v.model.name === 'map' + k);
  const r = v.canvas_view.el.getBoundingClientRect(), f = v.frame;
  const d = vistsnePage.group().source.data;
  return {x: r.left + f.x_scale.compute(d['x' + k][i]), y: r.top + f.y_scale.compute(d['y' + k][i]),
          x0: r.left + f.bbox.left, y0: r.top + f.bbox.top,
          x1: r.left + f.bbox.right, y1: r.top + f.bbox.bottom};
}"""

# JS: arm a watcher: the time from the next pointer move to a shown tooltip
# with its image decoded (or with no image: a row without a thumbnail);
# window.__vtHover = {ms, text, src} once it is seen
_ARM = """(() => {
  window.__vtHover = null;
  let t0 = null;
  const find = () => { const t = %s; return t.find(x => x.shown && (!x.src || x.decoded)) || null; };
  const onMove = (ev) => { if (t0 === null) t0 = ev.timeStamp; };
  document.addEventListener('pointermove', onMove, {capture: true});
  const tick = () => {
    const hit = t0 === null ? null : find();
    if (hit) {
      window.__vtHover = {ms: performance.now() - t0, text: hit.text, src: hit.src};
      document.removeEventListener('pointermove', onMove, {capture: true});
    } else setTimeout(tick, 2);
  };
  tick();
})()""" % FIND_TIPS.strip()


def hover_ms(tab: Tab, x: float, y: float, timeout_s: float = 10.0) -> dict:
    """Move the mouse (away, then) onto (x, y): ``{"ms", "text", "src"}`` of
    the first tooltip shown with its image decoded (``src`` empty or None: a
    tooltip without one), ``ms`` from the pointer event to that moment,
    measured in the page."""
    tab.page.mouse.move(2, 2)
    tab.page.wait_for_function(f"!({FIND_TIPS}).some(t => t.shown)", timeout=timeout_s * 1000)
    tab.eval(_ARM)
    tab.page.mouse.move(x, y)
    return tab.page.wait_for_function("window.__vtHover", timeout=timeout_s * 1000,
                                      polling=20).json_value()


def measure_page(tab: Tab, points: list[int], k: int = 0) -> dict:
    """Hover each of ``points`` of map ``k``: the latencies and the tooltips."""
    hovers = []
    for i in points:
        xy = tab.eval(POINT_XY, [k, int(i)])
        hovers.append({"point": int(i), **hover_ms(tab, xy["x"], xy["y"])})
    tab.page.mouse.move(2, 2)
    ms = sorted(h["ms"] for h in hovers)
    return {"hover_ms": ms, "hover_ms_median": float(np.median(ms)), "hover_ms_max": float(ms[-1]),
            "hovers": hovers}


# ------------------------------------------------------------------ a big page of real images

def digit_images(m: int, side: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``m`` distinct (m, side, side, 3) uint8 images of scikit-learn's digits
    and their labels: the 1,797 originals upscaled (bilinear), then random
    originals shifted by up to 3 px and dimmed by a random gain."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    base = np.stack([np.asarray(Image.fromarray(np.uint8(np.clip(im * (255 / 16), 0, 255)))
                                .resize((side, side), Image.BILINEAR)) for im in d.images])
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(base), m)
    first = min(m, len(base))
    src[:first] = np.arange(first)
    shift = rng.integers(-3, 4, (m, 2))
    shift[:first] = 0
    gain = np.uint16(np.round(rng.uniform(0.55, 1.0, m) * 256))
    gain[:first] = 256
    out = np.empty((m, side, side, 3), dtype=np.uint8)
    for start in range(0, m, 8192):
        sl = slice(start, min(m, start + 8192))
        grey = base[src[sl]].copy()
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                pick = np.flatnonzero((shift[sl, 0] == dy) & (shift[sl, 1] == dx))
                if len(pick) and (dy or dx):
                    grey[pick] = np.roll(grey[pick], (dy, dx), axis=(1, 2))
        grey = ((grey.astype(np.uint16) * gain[sl, None, None]) >> 8).astype(np.uint8)
        out[sl] = grey[..., None]
    return out, d.target[src].astype(np.int64)


def digit_map(n: int, distinct: int | None = None, seed: int = 0, stage: str = "neck"):
    """A ``MapData`` of ``n`` rows of real digit images (:func:`digit_images`;
    ``distinct`` of them, repeated, when given: the page is as big, but
    building it encodes fewer thumbnails), on the coordinates of a Gaussian
    mixture (3 blobs per class), with paths; row ``n - 1`` sits alone in the
    top-right corner."""
    from vistsne.render import MapData

    m = n if distinct is None else min(n, distinct)
    imgs, labels = digit_images(m, seed=seed)
    rows = np.arange(n) % m
    labels = labels[rows]
    rng = np.random.default_rng(seed + 1)
    centers = rng.normal(0, 12, (10, 3, 2))
    coords = (centers[labels, rng.integers(0, 3, n)] + rng.normal(0, 1.6, (n, 2))).astype(np.float32)
    coords[n - 1] = coords.max(axis=0) + 6
    paths = [f"digits/{c}/{i:07d}.png" for i, c in enumerate(labels.tolist())]
    return MapData(f"digits{n}", coords, labels, [str(i) for i in range(10)], np.arange(n),
                   imgs[rows] if m < n else imgs, f"digits | {n:,} points", info={"stage": stage},
                   paths=paths)


def page_figures(tab: Tab, points: list[int]) -> dict:
    """What the scale test and the bench report of a loaded page: load
    seconds, the number of points its map holds, the backend, the hovers."""
    out = {"load_s": tab.load_s,
           "points": tab.eval("vistsnePage.group().source.data.x0.length"),
           "backend": tab.eval("vistsnePage.backend || null"),
           "note": tab.eval("(() => { const e = document.querySelector('#vt-map-0 .vt-thumb-note');"
                            " return e ? e.textContent : null; })()"),
           "errors": list(tab.errors)}
    out.update(measure_page(tab, points))
    return out
