"""Legibility of the figures: the palette's colour distances, titles and
captions that fit their axes without splitting a phrase, and the mosaic's
font and legend. Real figures measured with matplotlib's renderer; no mocks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from vistsne.render import (MAX_COLORED, OTHER_COLOR, OTHER_LABEL, PALETTE, MapData,
                            RenderParams, build_map_figure, build_mosaic_image,
                            build_sheet_figure, class_colors, render_map)
from vistsne.render.common import matplotlib_font_path, pil_font
from vistsne.render.palette import (ciede2000, hex_to_rgb01, pairwise_ciede2000,
                                    srgb_to_lab)
from vistsne.render.titles import (ELLIPSIS, SEPARATOR, WIDTH_MARGIN, MatplotlibMeasure,
                                   fit_text, split_phrases)

# ------------------------------------------------------------------ colours

# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula:
# implementation notes, supplementary test data", pairs 1-34 (a selection).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_published_data():
    a = np.array([p[0] for p in SHARMA])
    b = np.array([p[1] for p in SHARMA])
    expected = np.array([p[2] for p in SHARMA])
    assert np.allclose(ciede2000(a, b), expected, atol=5e-5)
    assert np.allclose(ciede2000(b, a), expected, atol=5e-5)  # symmetric
    # sRGB -> CIELAB: white, black, and sRGB red (published D65 values)
    lab = srgb_to_lab(hex_to_rgb01(["#ffffff", "#000000", "#ff0000"]))
    assert np.allclose(lab[0], (100, 0, 0), atol=0.01)
    assert np.allclose(lab[1], (0, 0, 0), atol=0.01)
    assert np.allclose(lab[2], (53.24, 80.09, 67.20), atol=0.05)


def test_palette_is_well_separated_and_reads_on_white():
    """The measured properties the palette was chosen for (README note)."""
    assert len(PALETTE) == MAX_COLORED == 60 and len(set(PALETTE)) == 60
    d = pairwise_ciede2000(PALETTE)
    for k, floor in ((10, 26.0), (20, 20.5), (50, 14.0), (60, 13.0)):
        sub = d[:k, :k][np.triu_indices(k, 1)]
        assert sub.min() >= floor, (k, sub.min())
    lab = srgb_to_lab(hex_to_rgb01(PALETTE))
    assert lab[:, 0].max() <= 80.1 and lab[:, 0].min() >= 19.9  # no very light (or black) colours
    white, grey = srgb_to_lab(hex_to_rgb01(["#ffffff", OTHER_COLOR]))
    assert ciede2000(lab, white).min() > 20
    assert ciede2000(lab, grey).min() > 15  # "other classes" stays apart
    # the previous palette had two colours 5.5 apart among its first 50: the
    # near-duplicate purples and greens of issue 15
    assert d[:50, :50][np.triu_indices(50, 1)].min() > 2.5 * 5.5


def test_colours_fixed_per_class_list_across_figures():
    names = [f"n{i}" for i in range(50)]
    assert class_colors(names) == list(PALETTE[:50])
    assert class_colors(names[:7]) == list(PALETTE[:7])  # a shorter list is a prefix
    # a map showing only some classes colours them as the full list does
    labels = np.array([3, 17, 42] * 10)
    m = MapData("sub", np.random.default_rng(0).normal(size=(30, 2)), labels, names,
                np.arange(30), None, "t")
    fig = build_map_figure(m, RenderParams(legend=True))
    legend = {t.get_text(): h.get_color() for t, h in
              zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert legend == {"n3": PALETTE[3], "n17": PALETTE[17], "n42": PALETTE[42]}


# ------------------------------------------------------------------ titles

def store_title(config: str, ckpt: str, stage: str, perplexity=30, seed=0, acc=0.505,
                extra="") -> str:
    """The shape of the store path's map titles (render/from_store.py _title)."""
    return (f"{config} | {ckpt} | {stage} | perplexity {perplexity}, seed {seed}{extra} | "
            f"10-NN acc {acc:.3f}")


def store_caption(perplexity=30, seed=0, rows=540, knn=0.505, feat=0.912, trust=0.953,
                  kl=0.302) -> str:
    """The shape of the store path's panel captions (render/from_store.py _caption)."""
    return (f"p{perplexity} s{seed} n={rows} | knn {knn:.3f} (feat {feat:.3f}) | "
            f"trust {trust:.3f} | KL {kl:.3f}")


TITLES = [
    store_title("digits_resnet18", "digits_r18.pth", "pre_logits"),
    store_title("resnet50_8xb32_in1k", "resnet50_8xb32_in1k_20210831-ea4938fc.pth", "backbone.3"),
    store_title("vit-base-p16_32xb128-mae_in1k-224px_with_a_long_name",
                "vit-base-p16_pt-32xb128-mae_in1k_20220427-1b0a7d6c_finetuned_again.pth",
                "backbone.11", perplexity=50, seed=12345, extra=", 3-D"),
    store_title("a" * 150, "b" * 120, "neck.0"),  # phrases wider than any axes
    " | ".join(f"phrase number {i}, with a comma" for i in range(40)),  # far too many phrases
]


def _lines_and_phrases(text: str, original: str) -> list[list[str]]:
    """The phrases of each line of a laid-out ``text``, checked to be whole
    phrases of ``original``: each is a phrase, the ellipsis, or (when a phrase
    was too wide for a line by itself) the start of a phrase cut short with
    an ellipsis. Never the tail of a phrase begun on another line."""
    phrases = split_phrases(original)
    out = []
    for line in text.split("\n"):
        parts = line.split(SEPARATOR)
        for part in parts:
            assert part == ELLIPSIS or part in phrases or (
                part.endswith(ELLIPSIS) and any(p.startswith(part[:-1]) for p in phrases)
            ), (part, line)
        out.append(parts)
    return out


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _vector_width(text, dpi: float) -> float:
    """Widest line of a Text as PDF and SVG draw it (unhinted outlines), in pixels."""
    from matplotlib.textpath import TextPath
    return max(TextPath((0, 0), line, size=text.get_fontsize(),
                        prop=text.get_fontproperties()).get_extents().width * dpi / 72
               for line in text.get_text().split("\n"))


def _check_title_order(lines: list[list[str]], original: str) -> None:
    """Whole phrases in their original order, none repeated; those left out
    are marked by an ellipsis."""
    phrases = split_phrases(original)
    shown = [p for line in lines for p in line]
    whole = [p for p in shown if p in phrases]
    idx = [phrases.index(p) for p in whole]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    if len(whole) < len(phrases):
        assert any(p.endswith(ELLIPSIS) for p in shown)


@pytest.mark.parametrize("dpi", [50, 150])
def test_map_titles_fit_their_axes(dpi):
    rng = np.random.default_rng(0)
    long_names = ["a class name of twenty", "b", "c"]  # a 1-D map's row labels narrow its axes
    for legend, dim, names in ((False, 2, "abc"), (True, 2, "abc"), (True, 1, long_names),
                               (False, 3, "abc")):
        for title in TITLES:
            n = 60
            m = MapData("t", rng.normal(size=(n, dim)), np.arange(n) % 3,
                        list(names), np.arange(n), None, title)
            fig = build_map_figure(m, RenderParams(legend=legend, dpi=dpi))
            renderer = _renderer(fig)
            ax = fig.axes[0]
            [text] = fig.texts
            box = text.get_window_extent(renderer)
            axes_box = ax.get_window_extent(renderer) if dim != 3 else ax.bbox
            assert box.width <= axes_box.width + 0.5, (title, box.width, axes_box.width)
            assert box.x0 >= axes_box.x0 - 0.5 and box.x1 <= axes_box.x1 + 0.5
            assert box.y1 <= fig.bbox.height and box.y0 >= ax.bbox.y1 - 0.5  # above the axes
            assert text.get_fontsize() >= 8.0
            assert _vector_width(text, dpi) <= axes_box.width  # PDF and SVG too
            lines = _lines_and_phrases(text.get_text(), title)
            _check_title_order(lines, title)
    # a title that fits is shown whole, broken between phrases only
    m = MapData("t", rng.normal(size=(30, 2)), np.zeros(30, int), ["a"], np.arange(30), None,
                TITLES[1])
    [text] = build_map_figure(m, RenderParams(dpi=dpi)).texts
    assert text.get_text().replace("\n", SEPARATOR) == TITLES[1]
    assert text.get_fontsize() == 11.0


def _sheet(captions, row_labels, col_labels, title, dpi):
    names = [f"class {i}" for i in range(4)]
    rng = np.random.default_rng(1)
    grid = []
    for r in range(len(row_labels)):
        row = []
        for c in range(len(col_labels)):
            labels = np.arange(40) % 4
            row.append(MapData(f"r{r}c{c}", rng.normal(size=(40, 2)), labels, names,
                               np.arange(40), None, "map title",
                               caption=captions[(r * len(col_labels) + c) % len(captions)]))
        grid.append(row)
    return build_sheet_figure(grid, row_labels, col_labels, RenderParams(legend=True, dpi=dpi),
                              title=title)


@pytest.mark.parametrize("dpi", [50, 100])
def test_sheet_titles_and_captions_fit(dpi):
    captions = [store_caption(), store_caption(perplexity=5, seed=3, rows=20000),
                "trained: 10-NN acc 0.994, trust 0.994",  # the demo's, one phrase
                store_caption() + " | " + " | ".join(f"extra metric {i} 0.{i}" for i in range(12)),
                "x" * 300]
    row_labels = ["pre_logits", "backbone.3 of a model with a very long stage name indeed"]
    col_labels = ["perplexity 5", "perplexity 30", "random init (untrained) of a long name", "p50"]
    title = " | ".join(TITLES[2:4])
    fig = _sheet(captions, row_labels, col_labels, title, dpi)
    renderer = _renderer(fig)
    panels = [ax for ax in fig.axes if ax.collections]
    assert len(panels) == 8
    sizes = set()
    for k, ax in enumerate(panels):
        caption = captions[k % len(captions)]
        t = ax.title
        box, axes_box = t.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.width <= axes_box.width + 0.5, (caption, box.width, axes_box.width)
        assert box.x0 >= axes_box.x0 - 0.5 and box.x1 <= axes_box.x1 + 0.5
        assert _vector_width(t, dpi) <= axes_box.width
        assert len(t.get_text().split("\n")) <= 3
        _check_title_order(_lines_and_phrases(t.get_text(), caption), caption)
        sizes.add(t.get_fontsize())
    assert sizes == {7.0}  # one caption size per sheet, set by the captions that fit whole
    # the two short store captions are shown whole, and "10-NN acc 0.505"-like
    # phrases are never split
    for k in (0, 1, 2):
        assert panels[k].title.get_text().replace("\n", SEPARATOR) == captions[k]
    fig_box = fig.bbox
    panel_w = panels[0].get_window_extent(renderer).width
    for t in fig.texts:
        box = t.get_window_extent(renderer)
        assert fig_box.x0 - 0.5 <= box.x0 and box.x1 <= fig_box.x1 + 0.5
        assert fig_box.y0 - 0.5 <= box.y0 and box.y1 <= fig_box.y1 + 0.5
        if t.get_rotation() == 90:  # a row label: its length runs along the panel's height
            assert box.height <= panels[0].get_window_extent(renderer).height + 0.5
            assert box.x1 <= panels[0].get_window_extent(renderer).x0 + 0.5
        elif t.get_fontweight() == "bold":  # a column label
            assert box.width <= panel_w + 0.5
    [head] = [t for t in fig.texts if t.get_fontweight() != "bold"]
    _check_title_order(_lines_and_phrases(head.get_text(), title), title)
    assert head.get_window_extent(renderer).y0 > max(
        t.get_window_extent(renderer).y1 for t in fig.texts if t.get_fontweight() == "bold"
        and t.get_rotation() == 0) - 0.5  # above the column labels


def test_fit_text_rules():
    measure = MatplotlibMeasure(100)
    text = "config_name | checkpoint.pth | pre_logits | perplexity 30, seed 0 | 10-NN acc 0.505"
    # wide enough: one line, nothing changed
    f = fit_text(text, measure, 2000, fontsize=11, min_fontsize=8)
    assert f.text == text and f.fontsize == 11 and not f.dropped
    # narrower: lines break between phrases only, at the starting size
    w = measure("config_name | checkpoint.pth | pre_logits", 11)[0] / WIDTH_MARGIN + 1
    f = fit_text(text, measure, w, fontsize=11, min_fontsize=8, max_lines=3)
    assert f.fontsize == 11 and all(line.split(SEPARATOR)[-1] in split_phrases(text)
                                    for line in f.lines)
    assert SEPARATOR.join(f.lines) == text and len(f.lines) == 2
    # fewer lines allowed: the font shrinks before anything is left out
    w8 = measure(text, 8)[0] / WIDTH_MARGIN + 1
    f2 = fit_text(text, measure, w8, fontsize=11, min_fontsize=6, max_lines=1)
    assert 8 <= f2.fontsize < 11 and f2.text == text
    # not even the floor fits: the last phrases go first, marked by an ellipsis
    f3 = fit_text(text, measure, w, fontsize=11, min_fontsize=10, max_lines=1)
    assert f3.fontsize == 10 and f3.dropped and f3.text.endswith(SEPARATOR + ELLIPSIS)
    assert f3.text.startswith("config_name | ")
    assert measure(f3.text, 10)[0] <= w
    # a caller's own order of importance
    w4 = measure(ELLIPSIS + " | pre_logits | perplexity 30, seed 0 | 10-NN acc 0.505", 10)[0]
    f4 = fit_text(text, measure, w4 / WIDTH_MARGIN + 1, fontsize=11, min_fontsize=10, max_lines=1,
                  drop_order=[0, 1])
    assert f4.text == ELLIPSIS + " | pre_logits | perplexity 30, seed 0 | 10-NN acc 0.505"
    assert f4.dropped == ("checkpoint.pth", "config_name")
    # past the caller's order the others go from the last: the first phrase stays
    tail = ELLIPSIS + " | checkpoint.pth | " + ELLIPSIS
    f4b = fit_text(text, measure, measure(tail, 10)[0] / WIDTH_MARGIN + 1,
                   fontsize=10, min_fontsize=10, max_lines=1, drop_order=[0])
    assert f4b.text == tail
    # one phrase wider than the line: cut short, never wrapped
    f5 = fit_text("y" * 500, measure, 300, fontsize=11, min_fontsize=8)
    assert f5.cut and f5.text.endswith(ELLIPSIS) and "\n" not in f5.text
    assert measure(f5.text, 8)[0] <= 300
    # height limits the lines
    one_line = measure("Xg", 11)[1]
    f6 = fit_text(text, measure, w, one_line * 1.2, fontsize=11, min_fontsize=11, max_lines=3)
    assert len(f6.lines) == 1
    assert split_phrases(" a |b | c  |  d ") == ["a |b", "c", "d"]
    assert fit_text("", measure, 100, fontsize=11, min_fontsize=8).text == ""


# ------------------------------------------------------------------ mosaic

def _ink_box(px: np.ndarray, threshold: int = 160):
    ys, xs = np.nonzero(px.min(axis=-1) < threshold)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def _mosaic_map(n=40, k=4, classes=None, title="mosaic title"):
    rng = np.random.default_rng(2)
    present = np.arange(k) if classes is None else np.asarray(classes)
    labels = present[np.arange(n) % len(present)]
    thumbs = np.full((n, 16, 16, 3), 255, np.uint8)  # white thumbnails: frames carry the colour
    return MapData("mo", rng.normal(size=(n, 2)), labels, [f"cls {i}" for i in range(k)],
                   np.arange(n), thumbs, title)


def test_mosaic_uses_matplotlibs_font():
    from matplotlib import font_manager
    path = matplotlib_font_path()
    assert path == font_manager.findfont(font_manager.FontProperties())
    assert path.endswith("DejaVuSans.ttf")  # what matplotlib draws the figures with
    assert pil_font(20).path == path and pil_font(20).getname()[0] == "DejaVu Sans"

    title = "Mosaic 123"
    image = np.asarray(build_mosaic_image(_mosaic_map(title=title)).convert("RGB"))
    inked = (image.min(axis=-1) < 160).any(axis=1)
    first = int(np.argmax(inked))
    end = first + int(np.argmax(~inked[first:]))  # the first blank row below the title
    band = image[:end]
    assert 0 < first < end < 60
    y0, y1, x0, x1 = _ink_box(band)
    ink = band[y0:y1, x0:x1].min(axis=-1) < 160

    def drawn_with(font) -> np.ndarray:
        im = Image.new("RGB", (600, 80), "white")
        ImageDraw.Draw(im).text((10, 10), title, fill="black", font=font)
        px = np.asarray(im)
        a0, a1, b0, b1 = _ink_box(px)
        return px[a0:a1, b0:b1].min(axis=-1) < 160

    same = [s for s in range(8, 49) if np.array_equal(drawn_with(ImageFont.truetype(path, s)), ink)]
    assert same, "the title is not DejaVu Sans at any size"
    assert not np.array_equal(drawn_with(ImageFont.load_default(size=same[0])), ink)


def test_mosaic_legend(tmp_path):
    m = _mosaic_map(k=6, classes=[0, 2, 5])
    plain = build_mosaic_image(m)
    with_legend = build_mosaic_image(m, legend=True)
    assert with_legend.size[1] == plain.size[1] and with_legend.size[0] > plain.size[0] + 50
    px = np.asarray(with_legend.convert("RGB"))
    assert np.array_equal(px[:, :plain.size[0]][60:], np.asarray(plain.convert("RGB"))[60:])
    legend = px[:, plain.size[0]:]
    for cls in range(6):
        rgb = np.array([int(PALETTE[cls][i:i + 2], 16) for i in (1, 3, 5)])
        count = np.all(legend == rgb, axis=-1).sum()
        if cls in (0, 2, 5):
            assert count >= 80, (cls, count)  # a swatch
        else:
            assert count == 0, cls  # absent classes are not listed
    dark = legend.min(axis=-1) < 100
    assert dark.sum() > 100  # the class names
    # past 60 classes the grey "other classes" entry is there too
    k = 64
    big = MapData("big", np.random.default_rng(0).normal(size=(128, 2)), np.arange(128) % k,
                  [f"c{i}" for i in range(k)], np.arange(128), np.zeros((128, 8, 8, 3), np.uint8),
                  OTHER_LABEL)
    counts = np.ones(k)
    counts[:4] = 0  # the first four get grey
    big.class_counts = counts
    image = build_mosaic_image(big, legend=True)
    px = np.asarray(image.convert("RGB"))
    side = build_mosaic_image(big).size[0]
    grey = np.array([int(OTHER_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    assert np.all(px[:, side:] == grey, axis=-1).sum() >= 80
    # --legend reaches the mosaic that render_map writes
    for legend_on in (False, True):
        paths = render_map(m, tmp_path / str(legend_on), RenderParams(mosaic=True, legend=legend_on,
                                                                     dpi=50))
        with Image.open(paths[1]) as im:
            assert im.size[0] == (with_legend if legend_on else plain).size[0]
