"""The interactive HTML page in headless Chromium (Debian's /usr/bin/chromium).

Chromium is driven by Playwright's Python package (``pip install
playwright``, a test dependency), launched on the system binary: no browser
download (``playwright install`` is never needed); see ``page_browser``.
The page is loaded from ``file://``; the tests also record every request the page makes and check
that none leaves the machine. They drive the page as a user would: real
mouse moves, clicks, drags and typing, and read back what the page shows
(screenshots, the DOM, the bokeh data source).
"""

from __future__ import annotations

import csv
import io
import sys

import numpy as np
import pytest

from vistsne.render import PALETTE, MapData, render_html, thumbnail_data_uris
from vistsne.render.colors import class_colors, field_colors
from vistsne.render.html import DIM_ALPHA, thumbnail_side

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the browser, its flags and the tooltip finder: shared with benchmarks/scale_page.py
from .page_browser import (CHROMIUM, FIND_TIPS, FLAGS, SHOTS, VIEW_H, VIEW_W,  # noqa: E402,F401
                           Browser, Tab, chromium_problem)


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


STAGES = ("backbone.3", "neck", "pre_logits")
RICH_N, RICH_K = 300, 5


def _rich_maps() -> list[MapData]:
    """Three stages of the same 300 points with every per-row field, paths
    and each stage's own feature-space neighbours; point 0 is isolated."""
    rng = np.random.default_rng(3)
    n, k = RICH_N, RICH_K
    labels = np.arange(n) % k
    names = ["cat", "dog", "owl", "ant", "bee"]
    index = np.arange(n) * 3 + 7
    thumbs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    pred = labels.copy()
    wrong = rng.random(n) < 0.15
    pred[wrong] = (labels[wrong] + 1) % k
    fields = {"prediction": pred, "correct": pred == labels,
              "confidence": rng.uniform(0.2, 1.0, n).astype(np.float32),
              "suspect": rng.uniform(0.0, 1.0, n)}
    paths = [f"val/{names[c]}/img_{i:04d}.jpg" for i, c in enumerate(labels)]
    out = []
    for s, stage in enumerate(STAGES):
        centers = np.random.default_rng(10 + s).normal(0, 3 + 2 * s, (k, 2))
        coords = centers[labels] + rng.normal(0, 1, (n, 2))
        coords[SPECIAL] = coords.max(axis=0) + 8.0  # the top-right corner, alone
        feats = np.random.default_rng(20 + s).normal(size=(n, 6)) + labels[:, None] * (s + 1)
        d = ((feats[:, None] - feats[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        nb = np.argsort(d, axis=1)[:, :8]
        out.append(MapData(f"rich_{stage}", coords, labels, names, index, thumbs,
                           f"rich | demo.pth | {stage} | perplexity 30, seed 0 | 10-NN acc 0.9",
                           info={"stage": stage, "params": {"perplexity": 30, "seed": 0},
                                 "metrics": {"knn_acc_map": 0.9}},
                           fields=dict(fields), paths=list(paths), neighbors=nb))
    return out


@pytest.fixture(scope="module")
def browser():
    if sys.platform == "win32":
        pytest.skip("the test runs Debian's Chromium")
    problem = chromium_problem()
    if problem:
        pytest.skip(problem)
    b = Browser(CHROMIUM)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    maps = _maps()
    path = render_html(maps, tmp_path_factory.mktemp("html") / "maps.html", progress=False)
    tab = browser.open(path.resolve().as_uri())
    tab.wait_for("window.vistsne3d !== undefined && window.vistsne3d.length === 1")
    side = thumbnail_side(maps[0].n)
    expected_uri = thumbnail_data_uris(maps[0].thumbnails[SPECIAL:SPECIAL + 1], side)[0]
    try:
        yield tab, maps, expected_uri
    finally:
        tab.close()


@pytest.fixture(scope="module")
def rich(browser, tmp_path_factory):
    maps = _rich_maps()
    path = render_html(maps, tmp_path_factory.mktemp("rich") / "rich.html", progress=False)
    tab = browser.open(path.resolve().as_uri())
    try:
        yield tab, maps
    finally:
        tab.close()


# JS: the frame of map k in page coordinates, and the screen position of point i
GEOMETRY = """([k, i]) => {
  const v = [...Bokeh.index].find(v => v.model.name === 'map' + k);
  const r = v.canvas_view.el.getBoundingClientRect();
  const f = v.frame, d = vistsnePage.group().source.data;
  return {left: r.left, top: r.top,
          x0: r.left + f.bbox.left, y0: r.top + f.bbox.top,
          x1: r.left + f.bbox.right, y1: r.top + f.bbox.bottom,
          px: r.left + f.x_scale.compute(d['x' + k][i]),
          py: r.top + f.y_scale.compute(d['y' + k][i]),
          fig_x0: v.el.getBoundingClientRect().left, fig_y0: v.el.getBoundingClientRect().top,
          fig_x1: v.el.getBoundingClientRect().right,
          fig_y1: v.el.getBoundingClientRect().bottom};
}"""

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


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)]) / 255


def _colour_pixels(img: np.ndarray, box, color: str, tol: float = 0.06) -> int:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = img[max(y0, 0):y1, max(x0, 0):x1]
    return int((np.abs(region - _rgb(color)).max(axis=-1) < tol).sum())


def _spot(img: np.ndarray, x: float, y: float, r: int = 1) -> np.ndarray:
    x, y = int(round(x)), int(round(y))
    return img[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3).mean(axis=0)


# ------------------------------------------------------------------ the toy page (as before)

def test_bokeh_map_renders_and_hover_shows_thumbnail(page):
    b, maps, expected_uri = page
    g = b.eval(PLOT_GEOMETRY)
    b.settle()  # let the scroll settle before the screenshot
    g = b.eval(PLOT_GEOMETRY)
    shot = b.screenshot("toy_2d")
    box = (g["x0"], g["y0"], g["x1"], g["y1"])
    # the plot is drawn: every class colour appears in the frame
    for cls in range(4):
        assert _colour_pixels(shot, box, PALETTE[cls]) > 30, f"class {cls} not drawn"
    px, py = int(round(g["px"])), int(round(g["py"]))
    assert np.abs(shot[py, px] - _rgb(PALETTE[SPECIAL_CLASS])).max() < 0.1

    assert not any(t["shown"] and t["src"] for t in b.eval(FIND_TIPS))
    b.page.mouse.move(g["px"], g["py"])
    tips = b.wait_for(f"(() => {{ const t = {FIND_TIPS}.filter(t => t.shown && t.src); "
                      "return t.length ? t : null; })()", timeout=10)
    assert any(t["src"] == expected_uri for t in tips), [t["src"][:40] for t in tips]
    assert expected_uri.startswith("data:image/")
    mine = next(t for t in tips if t["src"] == expected_uri)
    assert f"dataset index {SPECIAL_INDEX}" in mine["text"]
    assert f"digit {SPECIAL_CLASS}" in mine["text"]
    b.page.mouse.move(5, 5)


def test_3d_viewer_rotates_hovers_and_hides(page):
    b, maps, expected_uri = page
    # the two maps have no stage: one at a time, the second picked in the map selector
    assert b.eval("document.querySelector('.vt-variant-box').hidden") is False
    b.page.select_option(".vt-variant", "1")
    b.wait_for("vistsnePage.state().k === 1")
    assert b.eval("document.getElementById('vt-map-0').hidden") is True
    b.eval("window.vistsne3d[0].root.scrollIntoView({block: 'center'})")
    b.settle()
    rect = b.eval("(() => { const r = window.vistsne3d[0].root.querySelector('canvas')"
                  ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
    shot = b.screenshot("toy_3d")
    for cls in range(4):
        assert _colour_pixels(shot, rect, PALETTE[cls], tol=0.12) > 20, f"class {cls} not drawn"

    tip_state = ("(() => { const t = window.vistsne3d[0].root.querySelector('.vt3d-tip'); "
                 "const img = t.querySelector('img'); return {hidden: t.hidden, "
                 "text: t.textContent, src: img ? img.getAttribute('src') : null}; })()")
    pos = b.eval(f"window.vistsne3d[0].screenPos({SPECIAL})")
    b.page.mouse.move(pos["x"], pos["y"])
    tip = b.wait_for(f"(() => {{ const s = {tip_state}; return s.hidden ? null : s; }})()",
                     timeout=10)
    assert tip["src"] == expected_uri
    assert f"dataset index {SPECIAL_INDEX}" in tip["text"]

    # drag to rotate: the point moves on screen, and hovering it still works
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    b.page.mouse.move(cx, cy)
    b.page.mouse.down()
    for step in range(1, 6):
        b.page.mouse.move(cx + 20 * step, cy + 8 * step)
    b.page.mouse.up()
    b.settle(200)
    moved = b.eval(f"window.vistsne3d[0].screenPos({SPECIAL})")
    assert abs(moved["x"] - pos["x"]) + abs(moved["y"] - pos["y"]) > 10
    b.page.mouse.move(moved["x"], moved["y"])
    tip = b.wait_for(f"(() => {{ const s = {tip_state}; return s.hidden ? null : s; }})()",
                     timeout=10)
    assert tip["src"] == expected_uri

    # a legend click hides the class: no tooltip for its point any more
    b.eval("[...window.vistsne3d[0].root.querySelectorAll('.vt3d-legend .item')]"
           f".find(e => e.textContent === 'digit {SPECIAL_CLASS}').click()")
    b.page.mouse.move(moved["x"] + 1, moved["y"])
    b.settle(200)
    assert b.eval(tip_state)["hidden"] is True
    # the page's class list shows it hidden too
    assert b.eval("vistsnePage.state().hidden") == [SPECIAL_CLASS]
    b.page.click(".vt-class-all")
    assert b.eval("vistsnePage.state().hidden") == []
    b.page.select_option(".vt-variant", "0")
    b.wait_for("vistsnePage.state().k === 0")


def test_page_makes_no_network_requests_and_no_script_errors(page, rich):
    for tab in (page[0], rich[0]):
        assert not tab.errors, str(tab.errors)[:2000]
        assert tab.requests, "no requests recorded at all"
        remote = [u for u in tab.requests if not u.startswith(("file:", "data:", "about:", "blob:"))]
        assert not remote, remote


# ------------------------------------------------------------------ the rich page

def test_map_fills_the_first_screen_and_provenance_folds_away(rich):
    b, maps = rich
    assert b.eval("window.scrollY") == 0
    g = b.eval(GEOMETRY, [0, SPECIAL])
    b.screenshot("rich_first_screen")
    # the whole figure (toolbar and legend too) is inside the viewport, and big
    assert 0 <= g["fig_x0"] and g["fig_x1"] <= VIEW_W and 0 <= g["fig_y0"] and g["fig_y1"] <= VIEW_H
    side = g["x1"] - g["x0"]
    assert side == pytest.approx(g["y1"] - g["y0"], abs=1)  # square
    assert side > 0.7 * VIEW_H - 150, side
    # nothing but the bar and the map's one-line title above it
    assert g["fig_y0"] < 110
    # the provenance is folded under the map
    about = b.eval("(() => { const d = document.querySelector('#vt-map-0 details.vt-about'); "
                   "return {open: d.open, top: d.getBoundingClientRect().top, "
                   "text: d.textContent}; })()")
    assert about["open"] is False and about["top"] >= g["y1"]
    assert "params.perplexity" in about["text"] and "metrics.knn_acc_map" in about["text"]
    # one map shown at a time: the other stages' sections are hidden
    assert b.eval("[...document.querySelectorAll('section.vt-map')].map(s => s.hidden)") == \
        [False, True, True]


def _source_colours(b) -> list[str]:
    return b.eval("vistsnePage.group().source.data.color.slice()")


def test_colour_switch_changes_the_points(rich):
    b, maps = rich
    m = maps[0]
    cols = class_colors(m.class_names)
    assert b.eval("[...document.querySelectorAll('.vt-color option')].map(o => o.value)") == \
        ["label", "prediction", "correct", "confidence", "suspect"]
    assert _source_colours(b) == [cols[c] for c in m.labels]
    g = b.eval(GEOMETRY, [0, SPECIAL])
    before = _spot(b.screenshot(), g["px"], g["py"])
    assert np.abs(before - _rgb(cols[m.labels[SPECIAL]])).max() < 0.1
    legend_shown = "Bokeh.documents[0].get_model_by_name('vt-legend-0').visible"
    assert b.eval(legend_shown) is True
    for field in ("confidence", "correct", "suspect", "prediction"):
        b.page.select_option(".vt-color", field)
        b.wait_for(f"vistsnePage.state().field === '{field}'")
        fc = field_colors(field, m.field(field), cols, m.class_names)
        want = [fc.table[i] for i in fc.index]
        assert _source_colours(b) == want, field  # the same colours as the static figures
        assert b.eval(legend_shown) is (field == "prediction" and False)
        key = b.eval("document.querySelector('.vt-key').textContent")
        assert "colour:" in key
        if field == "correct":
            n_wrong = int((~m.field("correct")).sum())
            assert f"correct ({m.n - n_wrong})" in key and f"wrong ({n_wrong})" in key
    # the drawn point changed colour with the field: confidence's viridis colour
    b.page.select_option(".vt-color", "confidence")
    b.wait_for("vistsnePage.state().field === 'confidence'")
    b.settle(400)
    g = b.eval(GEOMETRY, [0, SPECIAL])
    shot = b.screenshot("rich_by_confidence")
    fc = field_colors("confidence", m.field("confidence"), cols)
    after = _spot(shot, g["px"], g["py"])
    assert np.abs(after - _rgb(fc.table[fc.index[SPECIAL]])).max() < 0.1
    assert np.abs(after - before).max() > 0.1
    b.page.select_option(".vt-color", "label")
    b.wait_for("vistsnePage.state().field === 'label'")
    assert b.eval(legend_shown) is True


def test_search_counts_and_highlights(rich):
    b, maps = rich
    m = maps[0]
    b.page.fill(".vt-search", "OWL")  # a class name, any case
    b.wait_for("vistsnePage.state().matches !== null")
    owl = m.labels == m.class_names.index("owl")
    assert b.eval("document.querySelector('.vt-search-count').textContent") == \
        f"{owl.sum()} of {m.n} points match"
    alphas = np.array(b.eval("vistsnePage.group().source.data.alpha.slice()"))
    assert np.allclose(alphas[owl], 1.0) and np.allclose(alphas[~owl], DIM_ALPHA)
    b.screenshot("rich_search")
    # part of a file path
    b.page.fill(".vt-search", "img_001")
    b.wait_for("document.querySelector('.vt-search-count').textContent.startsWith('10 of')")
    alphas = np.array(b.eval("vistsnePage.group().source.data.alpha.slice()"))
    hits = np.array(["img_001" in p for p in m.paths])
    assert np.allclose(alphas[hits], 1.0) and np.allclose(alphas[~hits], DIM_ALPHA)
    b.page.fill(".vt-search", "")
    b.wait_for("vistsnePage.state().matches === null")
    assert b.eval("document.querySelector('.vt-search-count').textContent") == ""
    assert np.allclose(b.eval("vistsnePage.group().source.data.alpha.slice()"), 1.0)


def test_legend_entry_hides_its_class_through_the_class_list(rich):
    b, maps = rich
    m = maps[0]
    owl = m.class_names.index("owl")
    swatch = f"Bokeh.documents[0].get_model_by_name('vt-leg-0-{owl}')"  # entry j: the j-th class here
    assert b.eval(f"{swatch}.visible") is True
    # the legend draws each class's swatch in its colour
    box = b.eval("""(() => { const v = [...Bokeh.index].find(v => v.model.name === 'map0');
      const r = v.canvas_view.el.getBoundingClientRect();
      const l = [...v.renderer_views.values()].find(x => x.model.type === 'Legend').bbox;
      return [r.left + l.left, r.top + l.top, r.left + l.right, r.top + l.bottom]; })()""")
    shot = b.screenshot("rich_legend")
    for c, color in enumerate(class_colors(m.class_names)):
        assert _colour_pixels(shot, box, color, tol=0.1) >= 4, m.class_names[c]
    # a click on a legend entry hides its renderer (bokeh's click policy): the page hides the class
    b.eval(f"{swatch}.visible = false")
    b.wait_for("vistsnePage.state().hidden.length === 1")
    assert b.eval("vistsnePage.state().hidden") == [owl]
    assert b.eval("vistsnePage.group().filter.booleans") == [bool(c != owl) for c in m.labels]
    assert b.eval(f"document.querySelector('.vt-class-list .item[data-c=\"{owl}\"]')"
                  ".classList.contains('off')") is True
    # every point is in one renderer, which stays shown
    assert b.eval("Bokeh.documents[0].get_model_by_name('vt-points-0').visible") is True
    # the class list's "all" shows the class again, and its legend entry
    b.page.click(".vt-class-all")
    b.wait_for("vistsnePage.state().hidden.length === 0")
    assert b.eval(f"{swatch}.visible") is True
    assert b.eval("vistsnePage.group().filter.booleans") is None
    # and a class hidden in the list greys its legend entry
    b.page.click(f".vt-class-list .item[data-c='{owl}']")
    b.wait_for(f"{swatch}.visible === false")
    b.page.click(".vt-class-all")
    b.wait_for(f"{swatch}.visible === true")


def _pin_special(b):
    g = b.eval(GEOMETRY, [b.eval("vistsnePage.state().k"), SPECIAL])
    b.page.mouse.click(g["px"], g["py"])
    b.wait_for(f"vistsnePage.state().pin === {SPECIAL}")


def test_click_pins_a_point_with_its_neighbours(rich):
    b, maps = rich
    m = maps[0]
    assert b.eval("document.querySelector('.vt-pin').hidden") is True
    _pin_special(b)
    b.settle()
    b.screenshot("rich_pinned")
    info = b.eval("(() => { const p = document.querySelector('.vt-pin'); return {hidden: p.hidden,"
                  " text: p.querySelector('.vt-pin-info').textContent,"
                  " img: p.querySelector('.vt-pin-img').getAttribute('src'),"
                  " nbs: [...p.querySelectorAll('.vt-nb img')].map(i => i.getAttribute('src')),"
                  " title: p.querySelector('.vt-nb-title').textContent}; })()")
    uris = thumbnail_data_uris(m.thumbnails, thumbnail_side(m.n))
    assert info["hidden"] is False and info["img"] == uris[SPECIAL]
    f = m.fields
    name = m.class_names
    for text in (str(m.dataset_index[SPECIAL]), m.paths[SPECIAL], name[m.labels[SPECIAL]],
                 f"{name[f['prediction'][SPECIAL]]} ({f['confidence'][SPECIAL]:.2f})"):
        assert text in info["text"], text
    assert info["nbs"] == [uris[j] for j in m.neighbors[SPECIAL]]
    assert "feature space (backbone.3)" in info["title"]
    # the pinned point and its neighbours are ringed on the map
    lw = np.array(b.eval("vistsnePage.group().source.data.lw.slice()"))
    assert lw[SPECIAL] == 3 and np.all(lw[m.neighbors[SPECIAL]] == 1.5)
    assert (lw > 0).sum() == 1 + m.neighbors.shape[1]
    rings = b.eval("Bokeh.documents[0].get_model_by_name('vt-marks-0').indices")
    assert sorted(rings) == sorted({SPECIAL, *m.neighbors[SPECIAL].tolist()})
    # a click on a neighbour pins it
    first = int(m.neighbors[SPECIAL][0])
    b.page.click(".vt-nb >> nth=0")
    b.wait_for(f"vistsnePage.state().pin === {first}")
    b.page.click(".vt-unpin")
    b.wait_for("vistsnePage.state().pin === null")
    assert b.eval("document.querySelector('.vt-pin').hidden") is True


def test_box_select_and_export_the_csv(rich):
    b, maps = rich
    m = maps[0]
    # the box select tool, as a click on its toolbar button would make it
    b.eval("(() => { const f = Bokeh.documents[0].get_model_by_name('map0');"
           " f.toolbar.active_drag = f.toolbar.tools.find(t => t.type === 'BoxSelectTool'); })()")
    g = b.eval(GEOMETRY, [0, SPECIAL])
    x0, y0 = g["x0"] + 0.05 * (g["x1"] - g["x0"]), g["y0"] + 0.3 * (g["y1"] - g["y0"])
    x1, y1 = g["x0"] + 0.6 * (g["x1"] - g["x0"]), g["y0"] + 0.95 * (g["y1"] - g["y0"])
    b.page.mouse.move(x0, y0)
    b.page.mouse.down()
    for t in np.linspace(0, 1, 8)[1:]:
        b.page.mouse.move(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
    b.page.mouse.up()
    b.wait_for("vistsnePage.state().selected > 0")
    # the points whose screen position is inside the box
    pos = b.eval("""(() => { const v = [...Bokeh.index].find(v => v.model.name === 'map0');
      const r = v.canvas_view.el.getBoundingClientRect(), d = vistsnePage.group().source.data;
      return [Array.from(v.frame.x_scale.v_compute(d.x0), x => x + r.left),
              Array.from(v.frame.y_scale.v_compute(d.y0), y => y + r.top)]; })()""")
    sx, sy = np.array(pos[0]), np.array(pos[1])
    inside = np.flatnonzero((sx >= x0) & (sx <= x1) & (sy >= y0) & (sy <= y1))
    edge = np.flatnonzero((np.abs(sx - x0) < 1.5) | (np.abs(sx - x1) < 1.5) |
                          (np.abs(sy - y0) < 1.5) | (np.abs(sy - y1) < 1.5))
    selected = b.eval("vistsnePage.state().selected")
    assert abs(selected - len(inside)) <= len(edge), (selected, len(inside))
    assert b.eval("document.querySelector('.vt-sel-count').textContent") == \
        f"{selected} points selected"
    b.screenshot("rich_selected")
    with b.page.expect_download() as dl:
        b.page.click(".vt-export")
    download = dl.value
    assert download.suggested_filename == f"{m.name}_selection.csv"
    text = open(download.path(), encoding="utf-8").read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["dataset_index", "path", "label", "prediction", "confidence"]
    got = {int(r[0]): r for r in rows[1:]}
    assert len(got) == selected == len(rows) - 1
    by_index = {int(ix): i for i, ix in enumerate(m.dataset_index)}
    chosen = sorted(by_index[ix] for ix in got)
    assert set(inside) - set(edge) <= set(chosen) <= set(inside) | set(edge)
    for i in chosen:
        r = got[int(m.dataset_index[i])]
        assert r[1] == m.paths[i] and r[2] == m.class_names[m.labels[i]]
        assert r[3] == m.class_names[m.fields["prediction"][i]]
        assert float(r[4]) == pytest.approx(float(m.fields["confidence"][i]), abs=1e-4)
    # a lasso selection replaces it
    b.eval("(() => { const f = Bokeh.documents[0].get_model_by_name('map0');"
           " f.toolbar.active_drag = f.toolbar.tools.find(t => t.type === 'LassoSelectTool'); })()")
    cx, cy, rad = (g["x0"] + g["x1"]) / 2, (g["y0"] + g["y1"]) / 2, 0.3 * (g["x1"] - g["x0"])
    b.page.mouse.move(cx + rad, cy)
    b.page.mouse.down()
    for a in np.linspace(0, 2 * np.pi, 40)[1:]:
        b.page.mouse.move(cx + rad * np.cos(a), cy + rad * np.sin(a))
    b.page.mouse.up()
    inside = np.flatnonzero((sx - cx) ** 2 + (sy - cy) ** 2 < (0.97 * rad) ** 2)
    b.wait_for(f"vistsnePage.state().selected !== {selected}")
    lasso = b.eval("vistsnePage.state().selected")
    ring = np.flatnonzero(np.abs(np.hypot(sx - cx, sy - cy) - rad) < 0.04 * rad)
    assert len(inside) <= lasso <= len(inside) + len(ring)
    b.eval("(() => { const f = Bokeh.documents[0].get_model_by_name('map0');"
           " f.toolbar.active_drag = f.toolbar.tools.find(t => t.type === 'PanTool');"
           " vistsnePage.group().source.selected.indices = []; })()")
    b.wait_for("vistsnePage.state().selected === 0")
    assert b.eval("document.querySelector('.vt-export').disabled") is True


def test_stage_switch_shows_one_stage_at_a_time(rich):
    b, maps = rich
    assert b.eval("[...document.querySelectorAll('.vt-stage')].map(b => b.textContent)") == \
        list(STAGES)
    assert b.eval("document.querySelector('.vt-variant-box').hidden") is True  # one map each
    b.page.select_option(".vt-color", "suspect")
    b.wait_for("vistsnePage.state().field === 'suspect'")
    _pin_special(b)
    for k, stage in list(enumerate(STAGES))[::-1]:
        b.page.click(f".vt-stage[data-stage='{stage}']")
        b.wait_for(f"vistsnePage.state().stage === '{stage}'")
        b.settle(400)
        hidden = b.eval("[...document.querySelectorAll('section.vt-map')].map(s => s.hidden)")
        assert hidden == [j != k for j in range(len(STAGES))]
        assert b.eval("document.querySelector('.vt-stage.on').textContent") == stage
        b.wait_for(f"(() => {{ const g = ({GEOMETRY})([{k}, 0]); "
                   "return g.x1 - g.x0 > 600 && g.fig_x1 <= 1200; })()")  # grown to the screen
        g = b.eval(GEOMETRY, [k, SPECIAL])
        assert 0 <= g["fig_x0"] and g["fig_x1"] <= VIEW_W and g["fig_y1"] <= VIEW_H
        assert g["x1"] - g["x0"] == pytest.approx(g["y1"] - g["y0"], abs=1)
        shot = b.screenshot(f"rich_stage_{stage}")
        m = maps[k]
        fc = field_colors("suspect", m.field("suspect"), class_colors(m.class_names))
        # drawn in this stage's place, in the colour kept across the switch
        assert np.abs(_spot(shot, g["px"], g["py"]) - _rgb(fc.table[fc.index[SPECIAL]])).max() < 0.15
        # the pin stays, with this stage's neighbours
        assert b.eval("vistsnePage.state().pin") == SPECIAL
        assert f"feature space ({stage})" in b.eval("document.querySelector('.vt-nb-title')"
                                                     ".textContent")
        n_nb = b.eval("document.querySelectorAll('.vt-nb').length")
        assert n_nb == m.neighbors.shape[1]
        captions = b.eval("[...document.querySelectorAll('.vt-nb figcaption')]"
                          ".map(c => c.textContent)")
        assert captions == [m.class_names[m.labels[j]] for j in m.neighbors[SPECIAL]]
    b.page.click(".vt-unpin")
    b.page.select_option(".vt-color", "label")
    b.wait_for("vistsnePage.state().field === 'label'")


# ------------------------------------------------------------------ 1,000 classes

def test_class_list_with_a_thousand_classes(browser, tmp_path):
    k, n = 1000, 2000  # at most 2,000 points: drawn opaque
    rng = np.random.default_rng(5)
    others = rng.integers(0, k - 1, n - 100)
    labels = np.concatenate([np.full(100, 42), others + (others >= 42)])  # 42: only the first 100
    names = [f"class {i:04d}" for i in range(k)]
    coords = rng.normal(size=(n, 2))
    coords[labels == 42] = rng.normal(size=(100, 2)) * 0.3 + (9.0, 9.0)  # alone in a corner
    m = MapData("thousand", coords, labels, names, np.arange(n), None, "1,000 classes",
                info={"stage": "pre_logits"})
    path = render_html([m], tmp_path / "thousand.html", progress=False)
    b = browser.open(path.resolve().as_uri())
    try:
        present = len(np.unique(labels))
        assert b.eval("document.querySelectorAll('.vt-class-list .item').length") == present
        assert b.eval("document.querySelector('.vt-class-count').textContent") == f"({present})"
        # class 42 is the largest: coloured, drawn in its corner
        color = class_colors(names, np.bincount(labels, minlength=k))[42]
        assert color is not None
        g = b.eval(GEOMETRY, [0, int(np.flatnonzero(labels == 42)[0])])
        corner = (g["x0"] + 0.7 * (g["x1"] - g["x0"]), g["y0"], g["x1"], g["y0"] + 0.3 * (g["y1"] - g["y0"]))
        assert _colour_pixels(b.screenshot("thousand_before"), corner, color) > 50
        # filter by name: one item left; a click hides the class
        b.page.fill(".vt-class-filter", "class 0042")
        b.wait_for("[...document.querySelectorAll('.vt-class-list .item')]"
                   ".filter(i => !i.hidden).length === 1")
        b.page.click(".vt-class-list .item:not([hidden])")
        b.wait_for("vistsnePage.state().hidden.length === 1")
        assert b.eval("vistsnePage.state().hidden") == [42]
        assert b.eval("document.querySelector('.vt-class-list .item:not([hidden])')"
                      ".classList.contains('off')") is True
        b.settle(400)
        assert _colour_pixels(b.screenshot("thousand_hidden"), corner, color) == 0
        booleans = b.eval("vistsnePage.group().filter.booleans")
        assert booleans == [bool(c != 42) for c in labels]
        # none and all act on the classes listed
        listed = sorted({int(c) for c in np.unique(labels) if 40 <= c <= 49})
        b.page.fill(".vt-class-filter", "class 004")
        b.wait_for("[...document.querySelectorAll('.vt-class-list .item')]"
                   f".filter(i => !i.hidden).length === {len(listed)}")
        b.page.click(".vt-class-none")
        assert b.eval("vistsnePage.state().hidden") == listed
        b.page.click(".vt-class-all")
        assert b.eval("vistsnePage.state().hidden") == []
        b.page.fill(".vt-class-filter", "")
        b.page.click(".vt-class-none")
        assert len(b.eval("vistsnePage.state().hidden")) == present
        b.page.click(".vt-class-all")
        assert b.eval("vistsnePage.state().hidden") == []
        b.settle(400)
        assert _colour_pixels(b.screenshot(), corner, color) > 50
        assert not b.errors, b.errors
    finally:
        b.close()
