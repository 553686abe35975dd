"""Render stage: real files, no mocks. Small data except the one 20,000-point
page-size check (marked slow)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vistsne.errors import RenderError
from vistsne.render import (FORMATS, MAX_COLORED, OTHER_COLOR, PALETTE, MapData,
                            RenderParams, build_map_figure, build_mosaic_image,
                            build_sheet_figure, check_out_dir, class_colors, mosaic_subsample,
                            render_html, render_map, render_maps, render_mosaic, render_sheet,
                            show_available, thumbnail_data_uris)
from vistsne.render.common import atomic_write

DPI = 50  # small files, fast tests


def make_map(n=120, k=4, dim=2, *, name="m", seed=0, classes=None, thumbs=True,
             class_names=None, thumb_px=16) -> MapData:
    """Clustered points; ``classes`` picks which classes of the ``k``-class
    list appear (all by default)."""
    rng = np.random.default_rng(seed)
    present = np.arange(k) if classes is None else np.asarray(classes)
    labels = present[np.arange(n) % len(present)]
    centers = np.random.default_rng(123).normal(0, 6, (k, dim))
    coords = (centers[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32)
    th = None
    if thumbs:
        th = np.zeros((n, thumb_px, thumb_px, 3), np.uint8)
        th[..., 0] = ((np.arange(n) + 60 * seed) % 251)[:, None, None]
        th[..., 1] = np.linspace(0, 255, thumb_px, dtype=np.uint8)[None, :, None]
        th[..., 2] = (labels * 37 % 256)[:, None, None]
    names = class_names or [f"class {i}" for i in range(k)]
    return MapData(name=name, coords=coords, labels=labels, class_names=names,
                   dataset_index=np.arange(n) + 1000, thumbnails=th,
                   title=f"toy | demo.pth | pre_logits | perplexity 30, seed {seed} | {name}",
                   caption=f"p30 s{seed} | acc 0.9{seed}",
                   info={"stage": "pre_logits", "params": {"perplexity": 30, "seed": seed},
                         "metrics": {"knn_acc": 0.97}})


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], -1)


def hex_rgb(h: str) -> np.ndarray:
    return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], float) / 255


# ------------------------------------------------------------------ params

def test_params_validate_and_parse():
    assert RenderParams().validate() == RenderParams()
    assert RenderParams.parse_formats("png,svg") == ("png", "svg")
    assert RenderParams.parse_formats(" PNG, .pdf ,png html") == ("png", "pdf", "html")
    assert RenderParams(formats=("png", "html")).static_formats == ("png",)
    with pytest.raises(RenderError) as e:
        RenderParams(formats=("png", "jpg")).validate()
    assert one_line(e) == "unknown format 'jpg'; choose from png, svg, pdf, html"
    with pytest.raises(RenderError) as e:
        RenderParams.parse_formats("png,jpg")
    assert one_line(e) == "unknown format 'jpg'; choose from png, svg, pdf, html"
    for bad in (RenderParams(formats=()), RenderParams(dpi=0), RenderParams(dpi=72.5),
                RenderParams(point_size=-1), RenderParams(point_size=float("nan"))):
        with pytest.raises(RenderError) as e:
            bad.validate()
        one_line(e)
    with pytest.raises(RenderError):
        RenderParams.parse_formats(" , ")
    assert FORMATS == ("png", "svg", "pdf", "html")


def test_bad_map_data_raises_one_line(tmp_path):
    m = make_map()
    m.labels = m.labels.copy()
    m.labels[0] = 4  # only 4 class names
    with pytest.raises(RenderError) as e:
        render_map(m, tmp_path, RenderParams(dpi=DPI))
    assert "labels run from" in one_line(e)
    m = make_map()
    m.coords = m.coords[:, :1].repeat(4, axis=1)
    with pytest.raises(RenderError) as e:
        render_map(m, tmp_path, RenderParams(dpi=DPI))
    one_line(e)
    assert not list(tmp_path.iterdir())


def test_import_is_cheap():
    code = ("import sys, vistsne.render; "
            "print(sorted(m for m in ('matplotlib', 'bokeh', 'PIL', 'zarr', 'torch', 'click') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ files

def test_render_map_writes_valid_files(tmp_path):
    maps = [make_map(name="a_pre_logits_p30_s0"), make_map(name="b_neck_p30_s0", seed=1)]
    params = RenderParams(formats=("png", "svg", "pdf", "html"), dpi=DPI)
    written = render_maps(maps, tmp_path / "out" / "nested", params, progress=False)
    out = tmp_path / "out" / "nested"
    assert sorted(p.name for p in written) == sorted(
        f"{m.name}.{f}" for m in maps for f in ("png", "svg", "pdf"))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)  # no temp files
    for m in maps:
        with Image.open(out / f"{m.name}.png") as im:
            im.load()
            assert im.size == (8 * DPI, 8 * DPI)  # square
        root = ET.parse(out / f"{m.name}.svg").getroot()
        assert root.tag.endswith("svg")
        assert (out / f"{m.name}.pdf").read_bytes().startswith(b"%PDF")
    # a legend widens the figure but keeps the height
    [png] = render_map(maps[0], tmp_path / "leg", RenderParams(legend=True, dpi=DPI))
    with Image.open(png) as im:
        assert im.size[1] == 8 * DPI and im.size[0] > 8 * DPI


def test_same_input_same_files(tmp_path):
    m = make_map(n=60)
    params = RenderParams(formats=("png", "svg", "pdf"), dpi=DPI)
    first = {p.name: p.read_bytes() for p in render_map(m, tmp_path / "1", params)}
    second = {p.name: p.read_bytes() for p in render_map(m, tmp_path / "2", params)}
    assert first == second


def test_3d_and_1d_static(tmp_path):
    for dim in (3, 1):
        m = make_map(dim=dim, name=f"d{dim}")
        paths = render_map(m, tmp_path, RenderParams(formats=("png", "pdf"), legend=True,
                                                     dpi=DPI))
        assert [p.name for p in paths] == [f"d{dim}.png", f"d{dim}.pdf"]
        with Image.open(paths[0]) as im:
            assert im.size[1] == 8 * DPI
            px = np.asarray(im.convert("RGB"), float) / 255
        # points of class 0 are visible
        assert (np.abs(px - hex_rgb(PALETTE[0])).max(axis=-1) < 0.02).sum() > 20
    fig = build_map_figure(make_map(dim=3), RenderParams())
    assert fig.axes[0].name == "3d"


def test_single_class_map(tmp_path):
    m = make_map(n=30, k=1, name="one")
    [png] = render_map(m, tmp_path, RenderParams(legend=True, dpi=DPI))
    fig = build_map_figure(m, RenderParams(legend=True))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["class 0"]
    assert png.exists()
    # all points on one spot: the flat axes are centred, not divided by zero
    m.coords = np.ones_like(m.coords)
    fig = build_map_figure(m, RenderParams())
    assert np.allclose(fig.axes[0].collections[0].get_offsets(), 0.5)


# ------------------------------------------------------------------ colours

def _facecolor_by_point(fig, coords) -> np.ndarray:
    """Face colour of each input point, found back from the drawn offsets."""
    coll = fig.axes[0].collections[0]
    offsets = np.asarray(coll.get_offsets())
    colors = coll.get_facecolors()
    c = np.asarray(coords, float)
    norm = (c - c.min(0)) / (c.max(0) - c.min(0))
    out = np.zeros((len(c), 4))
    for off, col in zip(offsets, colors):
        i = np.argmin(np.abs(norm - off).sum(axis=1))
        assert np.abs(norm[i] - off).sum() < 1e-6
        out[i] = col
    return out


def test_class_colours_consistent_across_figures(tmp_path):
    names = [f"digit {i}" for i in range(10)]
    a = make_map(n=80, k=10, classes=[0, 1, 2, 5], class_names=names, name="a", thumbs=False)
    b = make_map(n=60, k=10, classes=[2, 5, 7], class_names=names, name="b", thumbs=False, seed=3)
    per_class = {}
    for m in (a, b):
        fc = _facecolor_by_point(build_map_figure(m, RenderParams()), m.coords)
        for cls in np.unique(m.labels):
            rows = fc[m.labels == cls, :3]
            assert np.allclose(rows, rows[0])  # one colour per class
            per_class.setdefault(int(cls), []).append(rows[0])
    for cls, seen in per_class.items():
        for rgb in seen:
            assert np.allclose(rgb, hex_rgb(PALETTE[cls]), atol=1e-6), cls
    assert np.allclose(per_class[2][0], per_class[2][1])
    assert len({tuple(np.round(v[0], 4)) for v in per_class.values()}) == len(per_class)

    # the PNG pixels agree: one big, isolated point per class at a known place
    params = RenderParams(point_size=900, dpi=DPI)
    spots = {0: (0.0, 0.0), 2: (1.0, 0.0), 5: (0.0, 1.0), 7: (1.0, 1.0)}
    found = {}
    for name, classes in (("pa", [0, 2, 5]), ("pb", [2, 5, 7])):
        coords = np.array([spots[c] for c in classes] + [(0.5, 0.5)], np.float32)
        labels = np.array(classes + [classes[0]])
        m = MapData(name, coords, labels, names, np.arange(len(labels)), None, name)
        fig = build_map_figure(m, params)
        ax = fig.axes[0]
        [png] = render_map(m, tmp_path, params)
        px = np.asarray(Image.open(png).convert("RGB"), float) / 255
        height = px.shape[0]
        for c in classes:
            x, y = ax.transData.transform(spots[c])
            x, y = int(round(x)), int(round(height - y))
            found.setdefault(c, []).append(px[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0))
    for c, seen in found.items():
        for rgb in seen:
            assert np.abs(rgb - hex_rgb(PALETTE[c])).max() < 0.02, (c, rgb)


def test_sixty_distinct_colours():
    cols = class_colors([f"c{i}" for i in range(60)])
    assert len(cols) == MAX_COLORED == 60 and None not in cols
    assert len(set(cols)) == 60
    lab = srgb_to_lab(np.array([hex_rgb(c) for c in cols]))
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 15  # CIE76: clearly different at a glance
    grey = srgb_to_lab(hex_rgb(OTHER_COLOR))
    assert np.linalg.norm(lab - grey, axis=1).min() > 20
    # fixed by position: a shorter list is a prefix, the same list the same colours
    assert class_colors([f"c{i}" for i in range(10)]) == cols[:10]
    assert class_colors([f"x{i}" for i in range(60)]) == cols


def test_past_sixty_classes_smallest_are_grey(tmp_path):
    k = 64
    counts = np.full(k, 10)
    counts[[3, 17, 40, 50]] = 1  # the four smallest
    cols = class_colors([f"c{i}" for i in range(k)], counts)
    assert [i for i, c in enumerate(cols) if c is None] == [3, 17, 40, 50]
    assert len({c for c in cols if c is not None}) == 60
    # ties by index: with equal counts the last ones are grey
    equal = class_colors([f"c{i}" for i in range(k)], np.ones(k))
    assert [i for i, c in enumerate(equal) if c is None] == [60, 61, 62, 63]
    with pytest.raises(RenderError):
        class_colors(["a", "b"], [1])

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(k), counts)
    coords = rng.normal(size=(len(labels), 2)).astype(np.float32)
    m = MapData("many", coords, labels, [f"c{i}" for i in range(k)], np.arange(len(labels)),
                None, "64 classes")
    fig = build_map_figure(m, RenderParams(legend=True))
    # past 60 classes they are named at their centres instead of a legend (test_render_scale.py)
    assert not fig.legends
    assert [t for t in fig.axes[0].texts if t.get_gid() == "vistsne-class-name"]
    fc = _facecolor_by_point(fig, coords)
    assert np.allclose(fc[labels == 3, :3], hex_rgb(OTHER_COLOR))
    assert np.allclose(fc[labels == 4, :3], hex_rgb(cols[4]))
    assert render_map(m, tmp_path, RenderParams(legend=True, dpi=DPI))[0].exists()


# ------------------------------------------------------------------ sheet

def test_sweep_sheet_grid(tmp_path):
    names = [f"class {i}" for i in range(4)]
    grid = [[make_map(name=f"r{r}c{c}", seed=r * 3 + c, class_names=names) for c in range(3)]
            for r in range(2)]
    grid[1][2] = None  # empty cell
    grid[1][0] = make_map(dim=3, name="r1c0", class_names=names)
    params = RenderParams(legend=True, dpi=DPI)
    fig = build_sheet_figure(grid, ["pre_logits", "neck"], ["p5", "p30", "p50"], params,
                             title="sweep")
    panels = [ax for ax in fig.axes if ax.collections]
    assert len(panels) == len(fig.axes) == 5
    assert [ax.get_title() for ax in panels] == [m.caption for row in grid for m in row if m]
    assert panels[3].name == "3d"
    assert len(fig.legends) == 1  # one shared legend
    # panels share the colour mapping
    for ax in panels:
        assert {tuple(np.round(c[:3], 5)) for c in ax.collections[0].get_facecolors()} <= \
            {tuple(np.round(hex_rgb(p), 5)) for p in PALETTE[:4]}
    texts = [t.get_text() for t in fig.texts]
    for label in ("pre_logits", "neck", "p5", "p30", "p50", "sweep"):
        assert label in texts

    # size follows the grid: one more column adds exactly one panel and a gap
    def width(ncols):
        g = [[make_map(name=f"w{c}", class_names=names) for c in range(ncols)]]
        out = render_sheet(g, ["row"], [f"c{c}" for c in range(ncols)], tmp_path / f"w{ncols}",
                           RenderParams(dpi=DPI))
        assert out.suffix == ".png"
        with Image.open(out) as im:
            return im.size
    (w2, h2), (w3, h3) = width(2), width(3)
    assert h2 == h3 and w3 - w2 == pytest.approx((3.0 + 0.2) * DPI, abs=1)

    with pytest.raises(RenderError) as e:
        build_sheet_figure(grid, ["only one"], [], params)
    assert "2 rows but 1 row labels" in one_line(e)
    with pytest.raises(RenderError) as e:
        build_sheet_figure([[None, None]], [], [], params)
    one_line(e)
    with pytest.raises(RenderError) as e:
        render_sheet(grid, [], [], tmp_path / "sheet.jpg", params)
    one_line(e)
    out = render_sheet(grid, [], [], tmp_path / "sheet.svg", params)
    assert ET.parse(out).getroot().tag.endswith("svg")


# ------------------------------------------------------------------ mosaic

def test_mosaic(tmp_path):
    m = make_map(n=50, k=3, name="mo", thumb_px=40)
    m.thumbnails[:] = 0
    m.thumbnails[7] = (255, 255, 0)  # one yellow thumbnail
    params = RenderParams(mosaic=True, dpi=DPI)
    paths = render_map(m, tmp_path, params)
    assert [p.name for p in paths] == ["mo.png", "mo_mosaic.png"]
    with Image.open(paths[1]) as im:
        px = np.asarray(im.convert("RGB"))
    yellow = np.all(px == (255, 255, 0), axis=-1)
    assert yellow.sum() >= 30 * 30  # drawn (maybe partly covered by others)
    black = np.all(px == 0, axis=-1)
    assert black.sum() > 40 * 40 * 10

    assert np.array_equal(mosaic_subsample(10, 20), np.arange(10))
    sub = mosaic_subsample(5000, 300)
    assert len(sub) == 300 == len(np.unique(sub)) and np.array_equal(sub, mosaic_subsample(5000, 300))
    big = make_map(n=400, k=3, thumb_px=8)
    full = build_mosaic_image(big, max_points=400)
    few = build_mosaic_image(big, max_points=20)
    assert few.size[0] < full.size[0]

    for bad in (make_map(dim=3), make_map(thumbs=False)):
        with pytest.raises(RenderError) as e:
            render_mosaic(bad, tmp_path / "x.png", params)
        assert "drop --mosaic" in one_line(e)


# ------------------------------------------------------------------ html

class _Tags(HTMLParser):
    """Start tags with their attributes, and the text of JSON script blocks."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.json_blocks: list[str] = []
        self._in_json = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_json = tag == "script" and dict(attrs).get("type") == "application/json"
        if self._in_json:
            self.json_blocks.append("")

    def handle_endtag(self, tag):
        self._in_json = False

    def handle_data(self, data):
        if self._in_json:
            self.json_blocks[-1] += data


def bokeh_models(blocks: list[str]) -> list[dict]:
    """Every serialized bokeh model ({"type": "object", "name": ...}) in the page."""
    import json
    found: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "name" in node:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    for block in blocks:  # bokeh HTML-escapes its JSON (its loader unescapes it)
        walk(json.loads(html.unescape(block)))
    return found


def test_html_self_contained(tmp_path):
    names = [f"class <{i}>" for i in range(5)]
    a = make_map(n=80, k=5, name="stage_a", class_names=names)
    b = make_map(n=80, k=5, name="stage_b", class_names=names)   # same points: shared thumbnails
    b.coords = b.coords[:, ::-1].copy()
    c = make_map(n=80, k=5, dim=3, name="stage_c", class_names=names)
    d = make_map(n=40, k=5, dim=1, name="stage_d", class_names=names, seed=2)
    out = render_html([a, b, c, d], tmp_path / "page", progress=False)
    assert out.name == "page.html"
    text = out.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(text)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all("src" not in attrs for attrs in scripts)
    for tag, attrs in parser.tags:
        if tag == "link":
            assert not re.match(r"\s*(https?:)?//", attrs.get("href", "")), attrs
        for key in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(key) or ""), (tag, attrs)
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"""<link[^>]+href=["']?https?:""", text)
    assert "@import" not in text
    # thumbnails as data URIs; the 2-D maps of the same points share one copy
    # (the 3-D viewer keeps its own)
    uris = thumbnail_data_uris(a.thumbnails, 48)
    assert uris[5].startswith("data:image/")
    assert text.count(uris[5]) == 2
    assert text.count(thumbnail_data_uris(d.thumbnails[11:12], 48)[0]) == 1
    # bokeh page: webgl, legend hides, hover has an <img> of the thumbnail
    models = bokeh_models(parser.json_blocks)
    by_name: dict[str, list[dict]] = {}
    for node in models:
        by_name.setdefault(node["name"], []).append(node.get("attributes", {}))
    figures = by_name["Figure"]
    assert len(figures) == 3  # the 2-D and 1-D maps; the 3-D one is the canvas viewer
    assert all(f["output_backend"] == "webgl" for f in figures)
    legends = by_name["Legend"]
    assert len(legends) == 3 and all(lg["click_policy"] == "hide" for lg in legends)
    assert all(len(lg["items"]) == 5 for lg in legends)  # one renderer per class
    tips = [h["tooltips"] for h in by_name["HoverTool"]]
    assert len(tips) == 3 and all('<img src="@img"' in t and "@cls" in t and "@idx" in t
                                  for t in tips)
    tools = {n for n in by_name if n.endswith("Tool")}
    assert {"PanTool", "WheelZoomTool", "BoxSelectTool", "ResetTool", "HoverTool"} <= tools
    assert len(by_name["ColumnDataSource"]) == 2  # a and b share theirs
    # 3-D viewer for the 3-D map, titles, info and escaped class names
    assert 'id="vt3d-2"' in text and "vistsne3d" in text
    for m in (a, b, c, d):
        assert m.title in text
    assert "metrics.knn_acc" in text and "0.97" in text
    assert "class <0>" not in text  # names are escaped wherever they appear


def test_html_only_3d_needs_no_bokeh(tmp_path):
    out = render_html([make_map(dim=3, name="only3d")], tmp_path / "p.html", progress=False)
    text = out.read_text()
    assert "vistsne3d" in text and "data:image/" in text
    assert "Bokeh" not in text


def test_html_bad_input(tmp_path):
    with pytest.raises(RenderError) as e:
        render_html([], tmp_path / "p.html")
    one_line(e)


@pytest.mark.slow
def test_html_size_for_20000_points(tmp_path):
    """A 20,000-point page with photo-like thumbnails stays well under 25 MB."""
    import matplotlib.cbook as cbook
    rng = np.random.default_rng(0)
    n = 20000
    photo = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    small = np.asarray(Image.fromarray(photo).resize((256, 300)))
    ys, xs = rng.integers(0, 300 - 48, n), rng.integers(0, 256 - 48, n)
    thumbs = np.stack([small[y:y + 48, x:x + 48] for y, x in zip(ys, xs)])
    m = make_map(n=n, k=10, thumbs=False, name="big")
    m.thumbnails = thumbs
    out = render_html([m], tmp_path / "big.html", progress=False)
    size = out.stat().st_size
    assert 2e6 < size < 25e6, size


# ------------------------------------------------------------------ folders, show

def test_unwritable_folder_raises_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for bad in (blocker / "sub", blocker):
        with pytest.raises(RenderError) as e:
            check_out_dir(bad)
        msg = one_line(e)
        assert msg.startswith(f"output folder '{bad}' is not writable")
        assert msg.endswith("pass --out with a folder you can write to")
        with pytest.raises(RenderError):
            render_map(make_map(), bad, RenderParams(dpi=DPI))
    assert check_out_dir(tmp_path / "new" / "deep").is_dir()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write to read-only folders")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RenderError) as e:
            render_map(make_map(), ro, RenderParams(dpi=DPI))
        assert "is not writable" in one_line(e)
    finally:
        ro.chmod(0o700)


def test_show_without_display_still_saves(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert show_available() is False
    paths = render_map(make_map(), tmp_path, RenderParams(show=True, dpi=DPI))
    assert [p.suffix for p in paths] == [".png"] and paths[0].exists()


# ------------------------------------------------------------------ concurrent writers

def test_atomic_write_two_writers_of_one_file(tmp_path):
    """Both writers are inside ``write`` at the same time (a barrier holds
    them there): each has its own temporary file, both succeed, and the file
    is one of the two whole contents, with nothing else left in the folder."""
    target = tmp_path / "f.bin"
    barrier = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []
    temps: list[Path] = []

    def writer(payload: bytes):
        def write(tmp: Path):
            tmp.write_bytes(payload)
            temps.append(tmp)
            barrier.wait()  # both temporary files exist now

        try:
            atomic_write(target, write)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(c * 100_000,)) for c in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(set(temps)) == 2 and all(t.parent == tmp_path for t in temps)
    assert target.read_bytes() in (b"a" * 100_000, b"b" * 100_000)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    # an ordinary file's permissions, as open() gives them
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    plain.unlink()

    # a failing write leaves nothing behind and raises its own error
    def broken(tmp: Path):
        tmp.write_bytes(b"half")
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        atomic_write(tmp_path / "g.bin", broken)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


_RENDER_SCRIPT = """
import sys
import numpy as np
from vistsne.render import MapData, RenderParams, render_maps, render_sheet
sys.path.insert(0, {tests!r})
from test_render import make_map
maps = [make_map(name=f"m{{i}}", seed=i, n=80) for i in range(3)]
params = RenderParams(formats=("png", "svg"), dpi=40, mosaic=True)
for _ in range(3):
    render_maps(maps, {out!r}, params, progress=False)
    render_sheet([maps], ["row"], ["a", "b", "c"], {out!r} + "/sheet.png", params)
print("ok")
"""


@pytest.mark.slow
def test_two_processes_render_into_one_folder(tmp_path):
    """Two renders of the same maps into one folder at the same time (as two
    `vistsne render` runs would): both succeed, every file is whole and the
    same as a render alone, and no temporary file is left."""
    out = tmp_path / "shared"
    out.mkdir()
    code = _RENDER_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0 and stdout.strip() == "ok", stderr[-2000:]
    alone = tmp_path / "alone"
    alone.mkdir()
    subprocess.run([sys.executable, "-c", _RENDER_SCRIPT.format(
        tests=str(Path(__file__).parent), out=str(alone))], cwd=root, check=True,
        capture_output=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in alone.iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith(".part")]
    for name in names:
        assert (out / name).read_bytes() == (alone / name).read_bytes(), name
