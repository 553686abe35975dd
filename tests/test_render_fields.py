"""Colour fields (issue 17 and 18): MapData's per-row fields, RenderParams.color_by,
and what the static figures and the page's data make of them. Real figures, no mocks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from vistsne.errors import RenderError
from vistsne.render import (FIELD_HINT, FIELD_MISSING_WHY, PALETTE, MapData, RenderParams,
                            build_map_figure, build_mosaic_image, build_sheet_figure,
                            class_colors, color_suffix, missing_field_error, render_html,
                            render_map)
from vistsne.render.colors import (CORRECT_COLOR, WRONG_COLOR, cmap_table, field_colors)
from vistsne.render.params import COLOR_FIELDS, FIELD_TITLES

DPI = 50


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def hex_rgb(h: str) -> np.ndarray:
    return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], float) / 255


def field_map(n=200, k=5, *, name="f", seed=0, fields=("prediction", "correct", "confidence",
                                                        "suspect"), thumbs=True) -> MapData:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    coords = np.random.default_rng(9).normal(0, 5, (k, 2))[labels] + rng.normal(size=(n, 2))
    pred = labels.copy()
    wrong = rng.random(n) < 0.2
    pred[wrong] = (labels[wrong] + 1) % k
    every = {"prediction": pred, "correct": pred == labels,
             "confidence": rng.uniform(0, 1, n), "suspect": rng.uniform(0, 1, n).astype(np.float32)}
    th = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) if thumbs else None
    return MapData(name, coords, labels, [f"class {i}" for i in range(k)], np.arange(n), th,
                   f"cfg | ckpt.pth | pre_logits | perplexity 30, seed {seed} | 10-NN acc 0.9",
                   info={"stage": "pre_logits"}, fields={f: every[f] for f in fields},
                   paths=[f"val/{c}/{i}.png" for i, c in enumerate(labels)],
                   neighbors=np.stack([(np.arange(n) + j) % n for j in range(1, 6)], axis=1))


def facecolors_by_point(fig, m: MapData) -> np.ndarray:
    """RGBA of each point of ``m`` in ``fig.axes[0]``, found back from the drawn offsets."""
    from vistsne.render import normalize_coords
    coll = fig.axes[0].collections[0]
    offsets = np.asarray(coll.get_offsets())
    colors = coll.get_facecolors()
    norm = normalize_coords(m.coords)
    out = np.zeros((m.n, 4))
    for off, col in zip(offsets, colors):
        i = np.argmin(np.abs(norm - off).sum(axis=1))
        out[i] = col
    return out


# ------------------------------------------------------------------ MapData and params

def test_old_callers_keep_working():
    m = MapData("old", np.zeros((3, 2)) + np.arange(3)[:, None], np.array([0, 1, 0]),
                ["a", "b"], np.arange(3), None, "t")
    assert m.fields is None and m.paths is None and m.neighbors is None
    assert m.check().available_fields() == ("label",)
    assert RenderParams().color_by == "label" and color_suffix(RenderParams()) == ""


def test_fields_are_checked_one_line():
    good = field_map(n=20)
    assert good.check().available_fields() == COLOR_FIELDS
    bad_cases = [
        ({"prediction": np.arange(19)}, "field prediction has shape (19,)"),
        ({"prediction": np.full(20, 5)}, "field prediction runs from 5 to 5 but there are 5 class"),
        ({"prediction": np.zeros(20)}, "field prediction has type float64"),
        ({"correct": np.ones(20, int)}, "field correct has type int64"),
        ({"confidence": np.full(20, 1.5)}, "field confidence has values outside [0, 1]"),
        ({"suspect": np.full(20, np.nan)}, "field suspect has values outside [0, 1] (or NaN)"),
        ({"confidence": np.ones(20, int)}, "field confidence has type int64"),
        ({"colour": np.ones(20)}, "unknown field 'colour'"),
    ]
    for fields, text in bad_cases:
        m = field_map(n=20)
        m.fields = fields
        with pytest.raises(RenderError) as e:
            m.check()
        assert text in one_line(e), (fields, str(e.value))
    for attr, value, text in (("paths", ["a"] * 19, "paths has 19 entries"),
                              ("paths", "abc", "paths has a string entries"),
                              ("paths", [1] * 20, "paths must be strings"),
                              ("neighbors", np.zeros((20, 11), int), "neighbors have shape (20, 11)"),
                              ("neighbors", np.zeros((20, 3)), "type float64"),
                              ("neighbors", np.full((20, 3), 20), "neighbors run from 20 to 20")):
        m = field_map(n=20)
        setattr(m, attr, value)
        with pytest.raises(RenderError) as e:
            m.check()
        assert text in one_line(e), (attr, str(e.value))


def test_color_by_is_validated_in_one_place():
    for f in COLOR_FIELDS:
        assert RenderParams(color_by=f).validate().color_by == f
    with pytest.raises(RenderError) as e:
        RenderParams(color_by="colour").validate()
    assert one_line(e) == ("unknown colour field 'colour'; choose from label, prediction, "
                           "correct, confidence, suspect")
    assert color_suffix(RenderParams(color_by="confidence")) == "_by-confidence"
    assert color_suffix(RenderParams(color_by="label")) == ""
    with pytest.raises(RenderError):
        color_suffix(RenderParams(color_by="nope"))


def test_a_missing_field_says_why_and_how():
    m = field_map(fields=())
    assert m.available_fields() == ("label",)
    for f in ("prediction", "correct", "confidence", "suspect"):
        with pytest.raises(RenderError) as e:
            build_map_figure(m, RenderParams(color_by=f))
        msg = one_line(e)
        assert msg.startswith(f"map f cannot be coloured by {f}: this entry has no ")
        assert FIELD_MISSING_WHY[f] in msg
        assert msg.endswith("; re-extract with `vistsne extract CONFIG ...`")
    assert "classification head" in FIELD_MISSING_WHY["prediction"]
    # the lead's store-level caller names the real command
    err = missing_field_error("prediction", "m1", command="vistsne extract cfg.py --checkpoint c.pth")
    assert str(err).endswith("re-extract with `vistsne extract cfg.py --checkpoint c.pth`")
    assert FIELD_HINT.format(command="X") == "re-extract with `X`"
    # correct is derived from predictions when only those are stored
    only_pred = field_map(fields=("prediction",))
    assert "correct" in only_pred.available_fields()
    assert np.array_equal(only_pred.field("correct"),
                          only_pred.fields["prediction"] == only_pred.labels)


# ------------------------------------------------------------------ static figures

def test_categorical_fields_keep_the_class_colours():
    m = field_map()
    cols = class_colors(m.class_names)
    for field, values in (("label", m.labels), ("prediction", m.fields["prediction"])):
        fc = facecolors_by_point(build_map_figure(m, RenderParams(color_by=field)), m)
        for i in range(m.n):
            assert np.allclose(fc[i, :3], hex_rgb(cols[values[i]]), atol=1e-6)
    fig = build_map_figure(m, RenderParams(color_by="prediction", legend=True))
    assert fig.legends[0].get_title().get_text() == "predicted class"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == m.class_names


def test_correct_has_two_colours_and_counts():
    m = field_map()
    fig = build_map_figure(m, RenderParams(color_by="correct"))  # legend without --legend
    fc = facecolors_by_point(fig, m)
    right = m.fields["correct"]
    assert np.allclose(fc[right, :3], hex_rgb(CORRECT_COLOR))
    assert np.allclose(fc[~right, :3], hex_rgb(WRONG_COLOR))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == [f"correct ({right.sum()})", f"wrong ({(~right).sum()})"]
    # the wrong ones are drawn last, on top
    order = field_colors("correct", right, class_colors(m.class_names)).order
    assert not right[order[-(~right).sum():]].any() and right[order[:right.sum()]].all()
    # well apart: CIE76 distance in Lab above 40
    from vistsne.render.palette import ciede2000, hex_to_rgb01, srgb_to_lab
    lab = srgb_to_lab(hex_to_rgb01([CORRECT_COLOR, WRONG_COLOR]))
    assert ciede2000(lab[:1], lab[1:])[0] > 30


@pytest.mark.parametrize("field", ["confidence", "suspect"])
def test_continuous_fields_get_a_colour_bar(field, tmp_path):
    m = field_map()
    fig = build_map_figure(m, RenderParams(color_by=field, dpi=DPI))
    fc = facecolors_by_point(fig, m)
    table = cmap_table("viridis" if field == "confidence" else "viridis_r")
    v = np.asarray(m.fields[field], float)
    want = np.array([hex_rgb(table[int(np.rint(x * 255))]) for x in v])
    assert np.allclose(fc[:, :3], want, atol=1e-6)
    bars = [ax for ax in fig.axes if ax.get_ylabel() == FIELD_TITLES[field]]
    assert len(bars) == 1, [ax.get_ylabel() for ax in fig.axes]
    assert bars[0].get_ylim() == (0.0, 1.0)
    assert not fig.legends  # a colour bar, not a legend
    [title] = fig.texts
    assert title.get_text().replace("\n", " | ").endswith(f"colour: {FIELD_TITLES[field]}")
    # the bar is right of the map and inside the figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()
    bar_box, map_box = bars[0].get_tightbbox(r), fig.axes[0].get_window_extent(r)
    assert bar_box.x0 > map_box.x1 and bar_box.x1 <= fig.bbox.width + 0.5
    # the drawn order: the interesting end on top
    order = field_colors(field, v, class_colors(m.class_names)).order
    last = v[order[-20:]]
    assert (last.mean() < v.mean()) if field == "confidence" else (last.mean() > v.mean())
    [png] = render_map(m, tmp_path, RenderParams(color_by=field, dpi=DPI))
    with Image.open(png) as im:
        assert im.size[1] == 8 * DPI and im.size[0] > 8 * DPI


def test_title_keeps_the_colour_phrase_when_cut():
    m = field_map()
    m.title = " | ".join(f"phrase {i} of a long title" for i in range(12))
    [text] = build_map_figure(m, RenderParams(color_by="suspect", dpi=DPI)).texts
    assert text.get_text().endswith(f"colour: {FIELD_TITLES['suspect']}")
    assert text.get_text().startswith("phrase 0")


def test_sheet_and_mosaic_follow_color_by():
    a, b = field_map(name="a"), field_map(name="b", seed=1)
    fig = build_sheet_figure([[a, b]], ["pre_logits"], ["s0", "s1"],
                             RenderParams(color_by="confidence", dpi=DPI), title="sheet")
    assert sum(ax.get_ylabel() == FIELD_TITLES["confidence"] for ax in fig.axes) == 1
    fig = build_sheet_figure([[a, b]], ["pre_logits"], ["s0", "s1"],
                             RenderParams(color_by="correct", dpi=DPI))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    ra, rb = int(a.fields["correct"].sum()), int(b.fields["correct"].sum())
    lo, hi = sorted((ra, rb))
    assert texts[0] == (f"correct ({lo})" if lo == hi else f"correct ({lo}\u2013{hi})")
    with pytest.raises(RenderError):
        build_sheet_figure([[a, field_map(name="c", fields=())]], [], [],
                           RenderParams(color_by="suspect"))
    m = field_map(n=30, k=3)
    m.thumbnails = np.full((30, 16, 16, 3), 255, np.uint8)
    m.fields["correct"] = np.arange(30) % 2 == 0
    img = np.asarray(build_mosaic_image(m, color_by="correct", legend=True).convert("RGB"))
    for color in (CORRECT_COLOR, WRONG_COLOR):
        assert np.all(img == (hex_rgb(color) * 255).round().astype(int), axis=-1).sum() > 100
    plain = np.asarray(build_mosaic_image(m).convert("RGB"))
    assert np.all(plain == (hex_rgb(PALETTE[0]) * 255).round().astype(int), axis=-1).sum() > 100


# ------------------------------------------------------------------ the page's data

def _json_block(text: str, ident: str):
    found = re.search(rf'<script type="application/json" id="{ident}">(.*?)</script>', text, re.S)
    assert found, ident
    return json.loads(found.group(1))


def test_page_carries_fields_paths_neighbours_and_stages(tmp_path):
    maps = []
    for s, stage in enumerate(("backbone.3", "neck", "pre_logits")):
        m = field_map(name=f"m_{stage}")
        m.coords = m.coords * (s + 1)
        m.neighbors = np.roll(m.neighbors, s, axis=0)
        m.info = {"stage": stage, "params": {"perplexity": 30}}
        maps.append(m)
    extra = field_map(name="m_pre_logits_p5")
    extra.info = {"stage": "pre_logits", "params": {"perplexity": 5}}
    maps.append(extra)
    out = render_html(maps, tmp_path / "p.html", progress=False, color_by="suspect")
    text = out.read_text()
    page = _json_block(text, "vt-page")
    assert page["stages"] == ["backbone.3", "neck", "pre_logits"]
    assert [m["variant"] for m in page["maps"]] == ["", "", "perplexity 30", "perplexity 5"]
    assert page["fields"] == list(COLOR_FIELDS) and page["color_by"] == "suspect"
    assert {m["gid"] for m in page["maps"]} == {0}  # one group: the same points
    pool = _json_block(text, "vt-pool-0")
    m = maps[0]
    assert pool["paths"] == m.paths and pool["fields"]["prediction"] == m.fields["prediction"].tolist()
    assert pool["fields"]["correct"] == m.fields["correct"].astype(int).tolist()
    fc = field_colors("suspect", m.fields["suspect"], class_colors(m.class_names))
    assert pool["cidx"]["suspect"] == fc.index.tolist()
    assert pool["tables"]["suspect"] == cmap_table("viridis_r")
    assert pool["img"] is None  # no 3-D map: the thumbnails live in the bokeh source only
    for k, mm in enumerate(maps):
        assert _json_block(text, f"vt-nb-{k}") == mm.neighbors.tolist()
    # one map shown, the others' sections hidden; provenance folded in <details>
    assert re.findall(r'<section class="vt-map" id="vt-map-(\d)" data-k="\d"( hidden)?', text) == \
        [("0", ""), ("1", " hidden"), ("2", " hidden"), ("3", " hidden")]
    assert text.count('<details class="vt-about">') == 4
    assert 'data-stage="neck"' in text and '<select class="vt-color">' in text
    assert '<option value="suspect" selected>' in text
    # a field no map has: one line before anything is written
    with pytest.raises(RenderError) as e:
        render_html([field_map(fields=())], tmp_path / "q.html", color_by="confidence")
    assert "re-extract with" in one_line(e)
    assert not (tmp_path / "q.html").exists()
