"""The interactive HTML page in headless Chromium (Debian's /usr/bin/chromium).

Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``, file descriptors 3 and 4), so the test needs no
PyPI package and no browser download, and opens no port. The page is loaded
from ``file://``; the test also records every request the page makes and
checks that none leaves the machine.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from PIL import Image

from vistsne.render import PALETTE, MapData, render_html, thumbnail_data_uris
from vistsne.render.html import thumbnail_side

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("VISTSNE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEW_W, VIEW_H = 1200, 1000


class DevTools:
    """A headless Chromium and one page, over the DevTools protocol on a pipe."""

    def __init__(self, binary: str):
        import fcntl
        self.profile = tempfile.mkdtemp(prefix="vistsne-chromium-")
        child_in, self._w = os.pipe()    # we write commands, Chromium reads fd 3
        self._r, child_out = os.pipe()   # Chromium writes fd 4, we read replies
        # move the child's ends above 4 so that dup2 onto 3 and 4 cannot clobber them
        hi_in = fcntl.fcntl(child_in, fcntl.F_DUPFD, 10)
        hi_out = fcntl.fcntl(child_out, fcntl.F_DUPFD, 10)
        os.close(child_in)
        os.close(child_out)

        def to_fds_3_4():
            os.dup2(hi_in, 3)
            os.dup2(hi_out, 4)

        try:
            self.proc = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                 f"--window-size={VIEW_W},{VIEW_H}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(3, 4), preexec_fn=to_fds_3_4)
        finally:
            os.close(hi_in)
            os.close(hi_out)
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        self.events: list[dict] = []

    # -- protocol
    def send(self, method: str, params: dict | None = None, *, browser: bool = False,
             timeout: float = 30.0) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline, method)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _next(self, deadline: float, method: str) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer {method}")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit {self.proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\0", 1)
        return json.loads(line)

    # -- page helpers
    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, browser=True)
        self.session = attached["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": VIEW_W, "height": VIEW_H, "deviceScaleFactor": 1, "mobile": False})
        self.send("Network.enable")
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})

    def eval(self, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}"[:2000])
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page never satisfied: {expression}")

    def mouse(self, kind: str, x: float, y: float, **extra) -> None:
        self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra})

    def screenshot(self) -> np.ndarray:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            return np.asarray(im.convert("RGB"), dtype=float) / 255

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


# ------------------------------------------------------------------ fixtures

SPECIAL = 0           # the isolated point the tests hover
SPECIAL_INDEX = 4242  # its dataset index
SPECIAL_CLASS = 2


def _maps() -> list[MapData]:
    rng = np.random.default_rng(0)
    n, k = 400, 4
    labels = np.arange(n) % k
    labels[SPECIAL] = SPECIAL_CLASS
    names = [f"digit {i}" for i in range(k)]
    index = np.arange(n) + 10
    index[SPECIAL] = SPECIAL_INDEX
    thumbs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    out = []
    for dim in (2, 3):
        centers = np.random.default_rng(7).normal(0, 4, (k, dim))
        coords = (centers[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32)
        coords[SPECIAL] = 40.0  # far from everything: the (1, 1[, 1]) corner once normalised
        out.append(MapData(f"toy_{dim}d", coords, labels, names, index, thumbs,
                           f"toy | {dim}-D map", info={"metrics": {"knn_acc": 0.9}}))
    return out


@pytest.fixture(scope="module")
def browser():
    if sys.platform == "win32":
        pytest.skip("the DevTools pipe needs POSIX file descriptors")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium not found at {CHROMIUM} "
                    "(Debian: apt-get install chromium chromium-driver); "
                    "set VISTSNE_CHROMIUM to use another binary")
    b = DevTools(CHROMIUM)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    maps = _maps()
    path = render_html(maps, tmp_path_factory.mktemp("html") / "maps.html", progress=False)
    browser.open(path.resolve().as_uri())
    browser.wait_for("document.readyState === 'complete' && window.Bokeh !== undefined"
                     " && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
                     " && window.vistsne3d !== undefined && window.vistsne3d.length === 1")
    side = thumbnail_side(maps[0].n)
    expected_uri = thumbnail_data_uris(maps[0].thumbnails[SPECIAL:SPECIAL + 1], side)[0]
    return browser, maps, expected_uri


# JS: the bokeh tooltips (inside shadow roots) that show our template
FIND_TIPS = """(() => {
  const out = [];
  const walk = (n) => {
    if (!n) return;
    if (n.classList && n.classList.contains('vt-tip')) {
      const img = n.querySelector('img');
      out.push({text: n.textContent, src: img ? img.getAttribute('src') : null,
                shown: n.getClientRects().length > 0});
    }
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of (n.children || [])) walk(c);
  };
  walk(document.body);
  return out;
})()"""

PLOT_GEOMETRY = """(() => {
  const v = [...Bokeh.index].find(v => v.model.name === 'map0');
  v.el.scrollIntoView({block: 'center'});
  const r = v.canvas_view.el.getBoundingClientRect();
  const f = v.frame;
  return {left: r.left, top: r.top,
          x0: r.left + f.bbox.left, y0: r.top + f.bbox.top,
          x1: r.left + f.bbox.right, y1: r.top + f.bbox.bottom,
          px: r.left + f.x_scale.compute(1.0), py: r.top + f.y_scale.compute(1.0)};
})()"""


def _colour_pixels(img: np.ndarray, box, color: str, tol: float = 0.06) -> int:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    region = img[max(y0, 0):y1, max(x0, 0):x1]
    return int((np.abs(region - rgb).max(axis=-1) < tol).sum())


def test_bokeh_map_renders_and_hover_shows_thumbnail(page):
    b, maps, expected_uri = page
    g = b.eval(PLOT_GEOMETRY)
    time.sleep(0.3)  # let the scroll settle before the screenshot
    g = b.eval(PLOT_GEOMETRY)
    shot = b.screenshot()
    box = (g["x0"], g["y0"], g["x1"], g["y1"])
    # the plot is drawn: every class colour appears in the frame
    for cls in range(4):
        assert _colour_pixels(shot, box, PALETTE[cls]) > 30, f"class {cls} not drawn"
    px, py = int(round(g["px"])), int(round(g["py"]))
    assert np.abs(shot[py, px] - np.array([int(PALETTE[SPECIAL_CLASS][i:i + 2], 16)
                                          for i in (1, 3, 5)]) / 255).max() < 0.1

    assert not any(t["shown"] and t["src"] for t in b.eval(FIND_TIPS))
    b.mouse("mouseMoved", g["px"], g["py"])
    tips = b.wait_for(f"(() => {{ const t = {FIND_TIPS}.filter(t => t.shown && t.src); "
                      "return t.length ? t : null; })()", timeout=10)
    assert any(t["src"] == expected_uri for t in tips), [t["src"][:40] for t in tips]
    assert expected_uri.startswith("data:image/")
    mine = next(t for t in tips if t["src"] == expected_uri)
    assert f"dataset index {SPECIAL_INDEX}" in mine["text"]
    assert f"digit {SPECIAL_CLASS}" in mine["text"]
    b.mouse("mouseMoved", 5, 5)


def test_3d_viewer_rotates_hovers_and_hides(page):
    b, maps, expected_uri = page
    b.eval("window.vistsne3d[0].root.scrollIntoView({block: 'center'})")
    time.sleep(0.3)
    rect = b.eval("(() => { const r = window.vistsne3d[0].root.querySelector('canvas')"
                  ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
    shot = b.screenshot()
    for cls in range(4):
        assert _colour_pixels(shot, rect, PALETTE[cls], tol=0.12) > 20, f"class {cls} not drawn"

    tip_state = ("(() => { const t = window.vistsne3d[0].root.querySelector('.vt3d-tip'); "
                 "const img = t.querySelector('img'); return {hidden: t.hidden, "
                 "text: t.textContent, src: img ? img.getAttribute('src') : null}; })()")
    pos = b.eval(f"window.vistsne3d[0].screenPos({SPECIAL})")
    b.mouse("mouseMoved", pos["x"], pos["y"])
    tip = b.wait_for(f"(() => {{ const s = {tip_state}; return s.hidden ? null : s; }})()",
                     timeout=10)
    assert tip["src"] == expected_uri
    assert f"dataset index {SPECIAL_INDEX}" in tip["text"]

    # drag to rotate: the point moves on screen, and hovering it still works
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    b.mouse("mousePressed", cx, cy, button="left", buttons=1, clickCount=1)
    for step in range(1, 6):
        b.mouse("mouseMoved", cx + 20 * step, cy + 8 * step, button="left", buttons=1)
    b.mouse("mouseReleased", cx + 100, cy + 40, button="left", buttons=0, clickCount=1)
    time.sleep(0.2)
    moved = b.eval(f"window.vistsne3d[0].screenPos({SPECIAL})")
    assert abs(moved["x"] - pos["x"]) + abs(moved["y"] - pos["y"]) > 10
    b.mouse("mouseMoved", moved["x"], moved["y"])
    tip = b.wait_for(f"(() => {{ const s = {tip_state}; return s.hidden ? null : s; }})()",
                     timeout=10)
    assert tip["src"] == expected_uri

    # a legend click hides the class: no tooltip for its point any more
    b.eval("[...window.vistsne3d[0].root.querySelectorAll('.vt3d-legend .item')]"
           f".find(e => e.textContent === 'digit {SPECIAL_CLASS}').click()")
    b.mouse("mouseMoved", moved["x"] + 1, moved["y"])
    time.sleep(0.2)
    assert b.eval(tip_state)["hidden"] is True


def test_page_makes_no_network_requests_and_no_script_errors(page):
    b, _, _ = page
    errors = [e["params"] for e in b.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"].get("type") == "error")]
    assert not errors, str(errors)[:2000]
    urls = [e["params"]["request"]["url"] for e in b.events
            if e.get("method") == "Network.requestWillBeSent"]
    assert urls, "no requests recorded at all"
    remote = [u for u in urls if not u.startswith(("file:", "data:", "about:", "blob:"))]
    assert not remote, remote
