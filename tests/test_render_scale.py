"""Static figures at any N (issue 16, point 5): maps past the raster threshold
drawn as one density image, and class names at class centres past 60
classes. Small maps, with the threshold lowered; real matplotlib figures and
files, no mocks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vistsne.render import PALETTE, MapData, RenderParams, build_map_figure, build_sheet_figure, render_map
from vistsne.render import raster
from vistsne.render.colors import CORRECT_COLOR, WRONG_COLOR, cmap_table, hex_to_rgb
from vistsne.render.static import NAMES_PAST_CLASSES

DPI = 50


@pytest.fixture
def low_threshold(monkeypatch):
    """Maps of more than 100 points are rasterised."""
    monkeypatch.setattr(raster, "RASTER_MIN_POINTS", 100)


def corner_map(n_per=400, k=3, fields=None, seed=0, dim=2) -> MapData:
    """``k`` tight clusters far apart (on a circle), ``n_per`` points each."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per)
    angle = 2 * np.pi * np.arange(k) / k
    centres = np.column_stack([np.cos(angle), np.sin(angle)]) * 10
    coords = centres[labels] + rng.normal(scale=0.1, size=(len(labels), 2))
    coords = coords[:, :dim]
    return MapData("corners", coords.astype(np.float32), labels, [f"class {i}" for i in range(k)],
                   np.arange(len(labels)), None, "three corners", fields=fields)


def _images(ax):
    return [im for im in ax.get_images() if im.get_gid() == "vistsne-density"]


def _png_rgb_at(png, fig, ax, xy) -> np.ndarray:
    """RGB (0-1) of the PNG written from ``fig`` at data point ``xy`` of ``ax``."""
    img = np.asarray(Image.open(png).convert("RGB"), dtype=float) / 255.0
    fig.canvas.draw()  # the same layout as the saved file (same dpi)
    x, y = ax.transData.transform(xy)
    h = img.shape[0]
    return img[int(round(h - y)), int(round(x))]


def _class_medians(m: MapData) -> np.ndarray:
    from vistsne.render import normalize_coords
    xy = normalize_coords(m.coords)
    return np.array([np.median(xy[m.labels == c], axis=0) for c in range(len(m.class_names))])


def test_small_maps_keep_the_scatter():
    m = corner_map()
    assert m.n <= raster.RASTER_MIN_POINTS
    fig = build_map_figure(m, RenderParams(dpi=DPI))
    ax = fig.axes[0]
    assert not _images(ax)
    [points] = ax.collections
    assert points.get_offsets().shape == (m.n, 2)


def test_rasterised_map_carries_class_colours(tmp_path, low_threshold):
    m = corner_map()
    params = RenderParams(dpi=DPI, legend=True)
    fig = build_map_figure(m, params)
    ax = fig.axes[0]
    [image] = _images(ax)
    assert not ax.collections  # no scatter
    assert tuple(ax.get_xlim()) == tuple(ax.get_ylim()) == (-0.03, 1.03)
    assert tuple(image.get_extent()) == (-0.03, 1.03, -0.03, 1.03)
    # one image pixel per screen pixel of the axes
    box = ax.get_window_extent()
    assert image.get_array().shape[:2] == (round(box.height), round(box.width))
    # the legend is today's (3 classes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["class 0", "class 1", "class 2"]

    [png] = render_map(m, tmp_path, params)
    for c, centre in enumerate(_class_medians(m)):
        rgb = _png_rgb_at(png, fig, ax, centre)
        assert np.allclose(rgb, hex_to_rgb(PALETTE[c]), atol=2 / 255), (c, rgb)
    # away from the classes: the white background
    assert np.allclose(_png_rgb_at(png, fig, ax, (0.5, 0.5)), 1.0)


def test_rasterised_vector_file_holds_one_image(tmp_path, low_threshold):
    m = corner_map()
    [svg] = render_map(m, tmp_path, RenderParams(formats=("svg",), dpi=DPI))
    text = svg.read_text()
    assert text.count("<image") == 1
    assert text.count("<use") < m.n // 10  # the title's glyphs, not a marker per point


def test_density_image_blends_by_weight_and_shades_by_density():
    from vistsne.render.colors import field_colors
    red, blue = "#ff0000", "#0000ff"
    # pixel (0, 0): one red and three blue points; pixel (1, 1): one red point
    xy = np.array([[0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.9, 0.9]])
    values = np.array([0, 1, 1, 1, 0])
    fc = field_colors("label", values, [red, blue], ["r", "b"])
    img = raster.density_image(xy, fc, (0, 1, 0, 1), (2, 2))
    assert img.shape == (2, 2, 4) and img.dtype == np.uint8
    assert tuple(img[0, 0, :3]) == (64, 0, 191)   # a quarter red, three quarters blue
    assert img[0, 0, 3] == 255                     # the densest pixel is opaque
    assert tuple(img[1, 1]) == (255, 0, 0, round(raster.MIN_ALPHA * 255))  # one point: lightest
    assert img[0, 1, 3] == img[1, 0, 3] == 0       # empty pixels are transparent
    # spread: each point also reaches its neighbours
    wide = raster.density_image(xy, fc, (0, 1, 0, 1), (2, 2), spread=1)
    assert (wide[..., 3] > 0).all()


@pytest.mark.parametrize("field", ["correct", "confidence"])
def test_rasterised_colour_fields(tmp_path, low_threshold, field):
    m = corner_map()
    wrong = m.labels == 1
    fields = {"prediction": np.where(wrong, 0, m.labels),
              "confidence": np.where(wrong, 0.05, 0.95)}
    m.fields = fields
    params = RenderParams(dpi=DPI, color_by=field)
    fig = build_map_figure(m, params)
    ax = fig.axes[0]
    assert len(_images(ax)) == 1 and not ax.collections
    [png] = render_map(m, tmp_path, params)
    if field == "correct":
        expect = [CORRECT_COLOR, WRONG_COLOR, CORRECT_COLOR]
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == [f"correct ({m.n * 2 // 3})", f"wrong ({m.n // 3})"]
    else:
        table = cmap_table("viridis")
        expect = [table[round(0.95 * 255)], table[round(0.05 * 255)], table[round(0.95 * 255)]]
        assert len(fig.axes) == 2  # the colour bar
    for c, centre in enumerate(_class_medians(m)):
        rgb = _png_rgb_at(png, fig, ax, centre)
        assert np.allclose(rgb, hex_to_rgb(expect[c]), atol=2 / 255), (field, c, rgb)


def test_rasterised_strip_map(low_threshold):
    m = corner_map(dim=1)
    fig = build_map_figure(m, RenderParams(dpi=DPI))
    ax = fig.axes[0]
    [image] = _images(ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["class 0", "class 1", "class 2"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # rows top-down, as the scatter has them


def grid_map(k: int, n_per: int = 3, spacing: float = 10.0) -> MapData:
    """``k`` classes on a square grid, ``n_per`` points each near its node."""
    side = int(np.ceil(np.sqrt(k)))
    labels = np.repeat(np.arange(k), n_per)
    nodes = np.column_stack([np.arange(k) % side, np.arange(k) // side]) * spacing
    jitter = np.random.default_rng(1).normal(scale=0.2, size=(len(labels), 2))
    return MapData(f"grid{k}", nodes[labels] + jitter, labels, [f"c{i}" for i in range(k)],
                   np.arange(len(labels)), None, f"{k} classes")


def _names(fig):
    return [t for ax in fig.axes for t in ax.texts if t.get_gid() == "vistsne-class-name"]


def test_class_names_replace_the_legend_past_60_classes():
    assert NAMES_PAST_CLASSES == 60
    at = build_map_figure(grid_map(60), RenderParams(legend=True, dpi=DPI))
    assert fig_legend_count(at) == 60 and not _names(at)  # 60: today's legend

    m = grid_map(64)
    fig = build_map_figure(m, RenderParams(legend=True, dpi=100))
    assert not fig.legends
    names = _names(fig)
    assert sorted(t.get_text() for t in names) == sorted(m.class_names)  # a sparse grid: all fit
    medians = _class_medians(m)
    for t in names:
        c = int(t.get_text()[1:])
        assert np.allclose(t.get_position(), medians[c])
        assert t.get_ha() == "center" and t.get_path_effects()  # the halo
    note = [t for t in fig.texts if t.get_gid() == "vistsne-names-note"]
    assert [t.get_text() for t in note] == ["names of 64 of 64 classes at their centres"]
    # no legend asked for: neither names nor legend
    bare = build_map_figure(m, RenderParams(dpi=DPI))
    assert not bare.legends and not _names(bare)


def fig_legend_count(fig) -> int:
    return sum(len(leg.get_texts()) for leg in fig.legends)


def test_many_class_names_do_not_overlap(low_threshold):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    m = grid_map(1000, n_per=2, spacing=1.0)  # 1,000 classes, crowded
    fig = build_map_figure(m, RenderParams(legend=True, dpi=DPI))
    assert not fig.legends and len(_images(fig.axes[0])) == 1
    names = _names(fig)
    assert 10 < len(names) < 1000
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in names]
    ax_box = fig.axes[0].get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert ax_box.x0 <= a.x0 and a.x1 <= ax_box.x1 and ax_box.y0 <= a.y0 and a.y1 <= ax_box.y1
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    # the coloured (largest) classes first: all 60 coloured ones fit before grey ones are tried
    [note] = [t.get_text() for t in fig.texts if t.get_gid() == "vistsne-names-note"]
    assert note == f"names of {len(names)} of 1,000 classes at their centres (the others would overlap)"


def test_sheet_names_classes_in_each_panel_past_60_classes(low_threshold):
    a, b = grid_map(64), grid_map(64)
    b.name = "other"
    fig = build_sheet_figure([[a, b]], [], [], RenderParams(legend=True, dpi=DPI))
    assert not fig.legends
    per_panel = [[t for t in ax.texts if t.get_gid() == "vistsne-class-name"] for ax in fig.axes]
    assert len(per_panel) == 2 and all(per_panel)
    small = build_sheet_figure([[grid_map(10)]], [], [], RenderParams(legend=True, dpi=DPI))
    assert fig_legend_count(small) == 10 and not _names(small)
