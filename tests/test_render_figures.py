"""The depth figure (issue 18) and the suspects contact sheet (issue 17): real
files, measured text, no mocks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from vistsne.errors import RenderError
from vistsne.render import (MapData, RenderParams, build_contact_sheet, build_depth_figure,
                            render_contact_sheet, render_depth)
from vistsne.render.contact import MAX_COLUMNS, TILE_PX
from vistsne.render.titles import ELLIPSIS

DPI = 50
STAGES = ["backbone.0", "backbone.1", "backbone.2", "backbone.3", "neck", "pre_logits"]
FEAT = [0.31, 0.45, 0.7, 0.9, 0.95, 0.96]
MAPV = [0.25, 0.4, 0.66, 0.88, None, 0.95]


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def small_map(seed: int, n=60, k=3) -> MapData:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    return MapData(f"m{seed}", rng.normal(size=(n, 2)) + labels[:, None] * 3, labels,
                   [f"c{i}" for i in range(k)], np.arange(n), None, f"map {seed}")


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


# ------------------------------------------------------------------ depth

def test_depth_figure_lines_axes_and_chance():
    fig = build_depth_figure(STAGES, FEAT, MAPV, "cfg | ckpt.pth | 10-NN accuracy by stage",
                             chance=0.1, params=RenderParams(dpi=DPI))
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) >= {"feature space", "t-SNE map", "chance (0.1)"}
    assert np.allclose(lines["feature space"].get_ydata(), FEAT)
    y = np.asarray(lines["t-SNE map"].get_ydata(), float)
    assert np.isnan(y[4]) and np.allclose(np.delete(y, 4), np.delete(np.array(MAPV, float), 4))
    assert np.allclose(lines["chance (0.1)"].get_ydata(), 0.1)
    assert ax.get_ylim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == STAGES  # in the order given
    assert list(ax.get_xticks()) == list(range(len(STAGES)))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == \
        ["feature space", "t-SNE map", "chance (0.1)"]
    assert len(fig.axes) == 1  # no maps given
    # the order given is the order drawn (the caller passes network order)
    rev = build_depth_figure(STAGES[::-1], FEAT[::-1], MAPV[::-1], "", params=RenderParams(dpi=DPI))
    assert [t.get_text() for t in rev.axes[0].get_xticklabels()] == STAGES[::-1]


def test_depth_figure_map_thumbnails_under_their_stage():
    maps = [small_map(i) for i in range(len(STAGES))]
    maps[2] = None  # a stage without a map: a gap
    fig = build_depth_figure(STAGES, FEAT, MAPV, "title", chance=1 / 3, maps=maps,
                             params=RenderParams(dpi=DPI))
    r = _renderer(fig)
    ax, thumbs = fig.axes[0], fig.axes[1:]
    assert len(thumbs) == 5
    ticks = [ax.transData.transform((i, 0))[0] for i in range(len(STAGES))]
    plot_box = ax.get_window_extent(r)
    for stage, t in zip([i for i, m in enumerate(maps) if m is not None], thumbs):
        box = t.get_window_extent(r)
        assert box.x0 < ticks[stage] < box.x1  # under its own stage
        assert abs((box.x0 + box.x1) / 2 - ticks[stage]) < 1.5
        assert box.y1 < plot_box.y0  # below the plot (and its tick labels)
        assert len(t.collections) == 1 and len(t.collections[0].get_offsets()) == 60
    for label in ax.get_xticklabels():
        assert label.get_window_extent(r).y0 > max(t.get_window_extent(r).y1 for t in thumbs) - 0.5


@pytest.mark.parametrize("dpi", [50, 150])
def test_depth_titles_and_stage_names_fit(dpi):
    long_stages = ["backbone.layer4.0.downsample_with_a_long_name", "neck", "pre_logits"]
    title = " | ".join(["vit-base-p16_32xb128-mae_in1k-224px_with_a_long_name",
                        "vit-base-p16_pt-32xb128-mae_in1k_20220427-1b0a7d6c_finetuned.pth",
                        "10-NN accuracy by stage", "a" * 200])
    fig = build_depth_figure(long_stages, [0.5, 0.6, 0.7], [0.4, 0.5, 0.6], title, chance=0.01,
                             params=RenderParams(dpi=dpi))
    r = _renderer(fig)
    ax = fig.axes[0]
    n = len(long_stages)
    cell = ax.get_window_extent(r).width / n
    for label in ax.get_xticklabels():
        box = label.get_window_extent(r)
        assert box.width <= cell + 0.5, (label.get_text(), box.width, cell)
    assert ax.get_xticklabels()[0].get_text().endswith(ELLIPSIS)
    assert [t.get_text() for t in ax.get_xticklabels()][1:] == long_stages[1:]
    [head] = fig.texts
    box = head.get_window_extent(r)
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width + 0.5 and box.y1 <= fig.bbox.height + 0.5
    assert box.y0 >= ax.get_window_extent(r).y1  # above the plot
    assert head.get_fontsize() >= 8.0


def test_render_depth_writes_files_and_refuses_bad_input(tmp_path):
    params = RenderParams(dpi=DPI)
    png = render_depth(STAGES, FEAT, MAPV, tmp_path / "depth", params, title="t", chance=0.1,
                       maps=[small_map(i) for i in range(len(STAGES))])
    assert png.name == "depth.png"
    with Image.open(png) as im:
        assert im.size[0] > im.size[1] > 100
    svg = render_depth(STAGES, FEAT, MAPV, tmp_path / "depth.svg", params)
    assert ET.parse(svg).getroot().tag.endswith("svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.png", "depth.svg"]
    cases = [((STAGES, FEAT[:3], MAPV), {}, "3 feature accuracy values for 6 stages"),
             ((STAGES, FEAT, [1.5] * 6), {}, "map accuracy 1.5 is outside [0, 1]"),
             (([], [], []), {}, "depth figure has no stages"),
             ((STAGES, FEAT, MAPV), {"chance": 0}, "chance level 0 is not in (0, 1]"),
             ((STAGES, FEAT, MAPV), {"maps": [small_map(0)]}, "1 maps for 6 stages")]
    for args, kw, text in cases:
        with pytest.raises(RenderError) as e:
            render_depth(*args, tmp_path / "bad.png", params, **kw)
        assert text in one_line(e)
    with pytest.raises(RenderError) as e:
        render_depth(STAGES, FEAT, MAPV, tmp_path / "d.jpg", params)
    assert "cannot be written as 'jpg'" in one_line(e)
    assert not (tmp_path / "bad.png").exists()


# ------------------------------------------------------------------ contact sheet

def _suspects(n=23, side=8):
    rng = np.random.default_rng(0)
    thumbs = np.zeros((n, side, side, 3), np.uint8)
    for i in range(n):
        thumbs[i] = rng.integers(0, 256, 3)  # one flat colour each
    captions = [[f"label: digit {i % 10}", f"neighbours: digit {(i + 1) % 10} (7/10)",
                 f"pred: digit {(i + 1) % 10} 0.{i % 10}3"] for i in range(n)]
    return thumbs, captions


def test_contact_sheet_grid_upscales_and_captions():
    thumbs, captions = _suspects()
    image = build_contact_sheet(thumbs, captions, "suspects | cfg | pre_logits")
    px = np.asarray(image.convert("RGB"))
    for i in (0, 9, 10, 22):
        color = thumbs[i, 0, 0]
        mask = np.all(px == color, axis=-1)
        ys, xs = np.nonzero(mask)
        # nearest-neighbour enlarged to TILE_PX (8 px x 12), not smoothed
        assert mask.sum() >= TILE_PX * TILE_PX, i
        assert ys.max() - ys.min() + 1 >= TILE_PX and xs.max() - xs.min() + 1 >= TILE_PX
    # at most 10 per row: thumbnails 0..9 in the first row, 10 starts the second
    def top_left(i):
        ys, xs = np.nonzero(np.all(px == thumbs[i, 0, 0], axis=-1))
        return ys.min(), xs.min()
    assert top_left(0)[0] == top_left(9)[0] < top_left(10)[0]
    assert top_left(10)[1] == top_left(0)[1] and top_left(20)[0] > top_left(10)[0]
    assert MAX_COLUMNS == 10
    # captions are drawn under each thumbnail (dark ink below the tile)
    y0, x0 = top_left(0)
    below = px[y0 + TILE_PX + 4:y0 + TILE_PX + 60, x0 - 20:x0 + TILE_PX + 20]
    assert (below.min(axis=-1) < 100).sum() > 200
    # a large thumbnail is not shrunk, nor enlarged past a whole factor
    big = build_contact_sheet(np.zeros((2, 120, 100, 3), np.uint8), [["a"], ["b"]])
    assert big.size[1] >= 120


def test_contact_sheet_captions_fit_their_cells():
    from PIL import ImageDraw

    from vistsne.render.common import pil_font
    from vistsne.render.contact import _CAPTION_PX, CELL_PX, _fit_lines
    from vistsne.render.titles import pil_measure
    measure = pil_measure(ImageDraw.Draw(Image.new("RGB", (1, 1))), pil_font)
    lines = ["label: a class name of a reasonable length", "short", "x" * 300]
    size, drawn = _fit_lines(lines, measure, CELL_PX - 4)
    assert _CAPTION_PX[1] <= size <= _CAPTION_PX[0]
    for line in drawn:
        assert measure(line, size)[0] <= CELL_PX - 4
    assert drawn[1] == "short" and drawn[2].endswith(ELLIPSIS)
    # the over-long line does not drag the others to the smallest size
    size2, drawn2 = _fit_lines(["label: cat", "pred: dog 0.93", "x" * 300], measure, CELL_PX - 4)
    assert size2 == _CAPTION_PX[0] and drawn2[:2] == ["label: cat", "pred: dog 0.93"]


def test_render_contact_sheet_atomic_and_checked(tmp_path):
    thumbs, captions = _suspects(5)
    out = render_contact_sheet(thumbs, captions, tmp_path / "suspects", RenderParams(),
                               title="suspects")
    assert out.name == "suspects.png" and [p.name for p in tmp_path.iterdir()] == ["suspects.png"]
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 5 * TILE_PX
    again = render_contact_sheet(thumbs, captions, tmp_path / "again.png", RenderParams(),
                                 title="suspects")
    assert again.read_bytes() == out.read_bytes()  # same input, same file
    for args, text in (((thumbs, captions[:4]), "5 thumbnails but 4 captions"),
                       ((thumbs[:0], []), "thumbnails have shape (0, 8, 8, 3)"),
                       ((thumbs, [["a"] * 5] * 5), "at most 4 short strings")):
        with pytest.raises(RenderError) as e:
            render_contact_sheet(*args, tmp_path / "bad.png", RenderParams())
        assert text in one_line(e)
    with pytest.raises(RenderError) as e:
        render_contact_sheet(thumbs, captions, tmp_path / "s.jpg", RenderParams())
    assert "use a file name ending in .png" in one_line(e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.png", "suspects.png"]
