"""The interactive page at scale: every point drawn; thumbnails for at most
``PAGE_THUMBS_MAX`` rows (a class-balanced sample past it), and the page
says which; 100,000 points in headless Chromium, load and hover measured."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from vistsne.render import MapData, render_html, thumbnail_data_uris
from vistsne.render.html import PAGE_THUMBS_MAX, balanced_rows, thumbnail_note, thumbnail_side

from .page_browser import FIND_TIPS, POINT_XY, Browser, chromium_problem, digit_map, page_figures


def _imbalanced(n=600, cap_note=None, thumbs=True, seed=0) -> MapData:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.zeros(400), np.ones(150), np.full(45, 2), np.full(5, 3)]).astype(int)
    labels = labels[rng.permutation(n)]
    coords = rng.normal(size=(n, 2))
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) if thumbs else None
    return MapData("imb", coords, labels, ["big", "mid", "small", "tiny"], np.arange(n) + 100,
                   images, "imbalanced", paths=[f"set/{c}/{i:04d}.png" for i, c in enumerate(labels)])


def _uris_in(text: str) -> list[str]:
    """The thumbnails in a page (as :func:`thumbnail_data_uris` writes them;
    bokeh's own icons are PNG)."""
    mime = thumbnail_data_uris(np.zeros((1, 4, 4, 3), np.uint8), 4)[0].split(";")[0]
    return re.findall(mime + r";base64,[A-Za-z0-9+/=]+", text)


def test_balanced_rows_spread_the_cap_over_the_classes():
    labels = np.repeat(np.arange(5), [10, 100, 1000, 5, 50])
    rows = balanced_rows(labels, 100)
    assert len(rows) == 100 and len(set(rows.tolist())) == 100 and np.all(np.diff(rows) > 0)
    counts = np.bincount(labels[rows], minlength=5)
    assert counts[0] == 10 and counts[3] == 5           # the small classes whole
    assert counts[[1, 2, 4]].max() - counts[[1, 2, 4]].min() <= 1  # the rest share evenly
    assert np.array_equal(balanced_rows(labels, 100), rows)  # deterministic
    assert np.array_equal(balanced_rows(labels, 10_000), np.arange(len(labels)))


def test_page_past_the_cap_says_how_many_thumbnails_it_holds_and_holds_that_many(tmp_path):
    m = _imbalanced()
    out = render_html([m], tmp_path / "capped.html", progress=False, max_thumbnails=90)
    text = out.read_text(encoding="utf-8")
    assert ">600 points; thumbnails for 90 of them (a class-balanced sample)<" in text
    rows = balanced_rows(m.labels, 90)
    counts = np.bincount(m.labels[rows], minlength=4)
    assert counts[3] == 5 and sorted(counts[:3]) == [28, 28, 29]  # 5 + 3 x 28 + 1 left over
    uris = _uris_in(text)
    assert len(uris) == 90  # one per sampled row, none for the others
    assert sorted(uris) == sorted(thumbnail_data_uris(m.thumbnails[rows], thumbnail_side(90)))
    assert "Bokeh" in text and not re.search(r"<script[^>]+src=", text)  # still one offline file


def test_page_within_the_cap_and_without_thumbnails_says_so(tmp_path):
    text = render_html([_imbalanced()], tmp_path / "all.html", progress=False).read_text()
    assert ">600 points, each with its thumbnail<" in text and len(_uris_in(text)) == 600
    bare = render_html([_imbalanced(thumbs=False)], tmp_path / "none.html", progress=False).read_text()
    assert ("600 points; no thumbnails were stored (extracted with --thumb-size 0)" in bare)
    assert not _uris_in(bare)
    assert thumbnail_note(1_281_167, PAGE_THUMBS_MAX) == \
        "1,281,167 points; thumbnails for 100,000 of them (a class-balanced sample)"


# ------------------------------------------------------------------ in the browser

@pytest.fixture(scope="module")
def browser():
    problem = None if sys.platform != "win32" else "the test runs Debian's Chromium"
    problem = problem or chromium_problem()
    if problem:
        pytest.skip(problem)
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def _tip(tab, i: int) -> dict:
    xy = tab.eval(POINT_XY, [0, i])
    tab.page.mouse.move(2, 2)
    tab.page.mouse.move(xy["x"], xy["y"])
    tips = tab.wait_for(f"(() => {{ const t = {FIND_TIPS}.filter(t => t.shown); "
                        "return t.length ? t : null; })()", timeout=10)
    return tips[0]


@pytest.mark.browser
@pytest.mark.slow
def test_capped_page_hovers_rows_without_a_thumbnail_with_label_and_path(browser, tmp_path):
    m = _imbalanced()
    m.coords = np.stack([np.arange(m.n) % 30, np.arange(m.n) // 30], axis=1).astype(float)  # a grid
    out = render_html([m], tmp_path / "capped.html", progress=False, max_thumbnails=90)
    rows = set(balanced_rows(m.labels, 90).tolist())
    tab = browser.open(out.resolve().as_uri())
    try:
        note = tab.eval("document.querySelector('#vt-map-0 .vt-thumb-note')")
        assert note is not None
        with_img = next(i for i in range(m.n) if i in rows)
        without = next(i for i in range(m.n) if i not in rows)
        tip = _tip(tab, without)
        assert tip["shown"] and not tip["decoded"] and tip["src"] == ""
        assert m.class_names[m.labels[without]] in tip["text"]
        assert m.paths[without] in tip["text"] and f"dataset index {without + 100}" in tip["text"]
        tip = _tip(tab, with_img)
        assert tip["src"].startswith("data:image/") and m.paths[with_img] in tip["text"]
        tab.wait_for(f"({FIND_TIPS}).some(t => t.shown && t.decoded)")
        assert not tab.errors, tab.errors
        remote = [u for u in tab.requests if not u.startswith(("file:", "data:", "about:", "blob:"))]
        assert not remote, remote
    finally:
        tab.close()


SCALE_N = 100_000


@pytest.mark.browser
@pytest.mark.slow
def test_page_of_100000_points_loads_and_hovers(browser, tmp_path, record_property):
    """Every point with its thumbnail. Load time and hover latency are
    measured and reported (printed, and as properties of the test in a JUnit
    report), never asserted: the machine is shared. The page's thumbnails
    are 5,000 distinct real digit images, repeated (the page is as big as
    with 100,000 distinct ones; building it encodes 5,000)."""
    m = digit_map(SCALE_N, distinct=5000)
    out = render_html([m], tmp_path / "scale.html", progress=False)
    mb = out.stat().st_size / 1e6
    tab = browser.open(out.resolve().as_uri(), timeout_s=120)
    try:
        fig = page_figures(tab, [SCALE_N - 1, 0, SCALE_N // 2])
        report = {"points": SCALE_N, "page_mb": round(mb, 1), "load_s": round(fig["load_s"], 2),
                  "hover_ms_median": round(fig["hover_ms_median"], 1),
                  "hover_ms_max": round(fig["hover_ms_max"], 1), "backend": fig["backend"]}
        for key, value in report.items():
            record_property(key, value)
        print(f"\npage at {SCALE_N:,} points: {report}")
        assert not fig["errors"], fig["errors"]
        assert fig["points"] == SCALE_N
        assert tab.eval("vistsnePage.group().n") == SCALE_N
        assert fig["note"] == f"{SCALE_N:,} points, each with its thumbnail"
        # the lone corner point: its own tooltip, with its image decoded
        corner = fig["hovers"][0]
        assert corner["src"].startswith("data:image/") and m.paths[SCALE_N - 1] in corner["text"]
        assert all(h["src"].startswith("data:image/") for h in fig["hovers"])
    finally:
        tab.close()
