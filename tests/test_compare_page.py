"""The comparison page in headless Chromium: the slider moves the points, hover still shows an image."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from .test_compare import _data

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the browser, its flags and the tooltip finder of the page tests
from .test_render_browser import CHROMIUM, FIND_TIPS, FLAGS  # noqa: E402

# JS: the screen position of point i in map 0, and its data coordinates now
POINT = """(i) => {
  const find = (vs) => {
    for (const v of vs) {
      if (v.model.name === 'map0') return v;
      const kids = v.child_views ? [...v.child_views] : [];
      const hit = find(kids);
      if (hit) return hit;
    }
    return null;
  };
  const v = find([...Bokeh.index]);
  const r = v.canvas_view.el.getBoundingClientRect();
  const f = v.frame;
  const d = Bokeh.documents[0].get_model_by_name('src0').data;
  return {x: d.x[i], y: d.y[i], px: r.left + f.x_scale.compute(d.x[i]), py: r.top + f.y_scale.compute(d.y[i])};
}"""


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    if sys.platform == "win32" or not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium not found at {CHROMIUM}; set VISTSNE_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright's Python package is not installed (pip install playwright)")
    from vistsne.render.compare_page import write_compare_page

    data = _data()
    path = write_compare_page(data, tmp_path_factory.mktemp("page") / "compare.html")
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.vistsneCompare && window.vistsneCompare.ready && window.Bokeh"
                           " && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle", timeout=60_000)
    try:
        yield page, data, errors, requests
    finally:
        browser.close()
        pw.stop()


def _hover_image(page, i: int) -> str:
    pos = page.evaluate(POINT, i)
    page.mouse.move(5, 5)
    page.wait_for_timeout(100)
    page.mouse.move(pos["px"], pos["py"])
    tips = page.wait_for_function(f"(() => {{ const t = {FIND_TIPS}.filter(t => t.shown && t.src); "
                                  "return t.length ? t : null; })()", timeout=10_000).json_value()
    return tips[0]["src"], tips[0]["text"]


def test_slider_moves_the_points_and_hover_still_shows_an_image(tab):
    page, data, errors, requests = tab
    i = 7
    last = data.coords["pre_logits"][-1][i]
    before = page.evaluate(POINT, i)
    assert before["x"] == pytest.approx(last[0]) and before["y"] == pytest.approx(last[1])
    src, text = _hover_image(page, i)
    assert src.startswith("data:image/png;base64,") and "dataset index 14" in text

    page.evaluate("Bokeh.documents[0].get_model_by_name('step').value = 0")
    page.wait_for_function("window.vistsneCompare.step === 0 && !window.vistsneCompare.moving", timeout=10_000)
    after = page.evaluate(POINT, i)
    first = data.coords["pre_logits"][0][i]
    assert after["x"] == pytest.approx(first[0]) and after["y"] == pytest.approx(first[1])
    assert np.hypot(after["px"] - before["px"], after["py"] - before["py"]) > 1  # it moved on screen
    assert "epoch_1" in page.evaluate("Bokeh.documents[0].get_model_by_name('step-title').text")
    src2, text2 = _hover_image(page, i)
    assert src2 == src and "dataset index 14" in text2
    assert not errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
