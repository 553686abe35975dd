"""One self-contained interactive HTML page for one or more maps.

The page shows one map at a time, filling the first screen, with a panel
beside it; the provenance and parameters of the map fold away under it (a
``<details>`` element). Nothing is loaded from the network.

- **Maps**: 2-D (and 1-D) maps are bokeh figures with INLINE resources and
  the WebGL backend (the 2-D canvas where the browser's WebGL is software:
  see ``BOKEH_BIND_JS``), every point in one renderer: pan, wheel zoom, box
  and lasso select, reset, a legend whose entries hide their class (through
  the page's class list), and a hover tooltip with the point's thumbnail (a
  data URI), class name, dataset index and path. Bokeh has no 3-D, so
  3-D maps get a small inline canvas viewer (drag to rotate, wheel to zoom,
  double-click to reset, same tooltip and legend).
- **Stages**: maps are grouped by ``info["stage"]``; a stage switch shows
  one stage's map, and a second selector picks among maps of one stage with
  different parameters.
- **Colour**: a switch over every colour field the maps have (``label``
  always; ``prediction``, ``correct``, ``confidence``, ``suspect`` where
  ``MapData.fields`` has them), with the same colours as the static figures
  (:func:`colors.field_colors`) and a colour key in the panel.
- **Search**: part of a class name or file path; matching points keep their
  colour, the others are dimmed, and the panel counts the matches.
- **Pin**: a click on a point pins it: its thumbnail, path, label,
  prediction, and its nearest neighbours in feature space
  (``MapData.neighbors``) as thumbnails (a click on one pins it).
- **Selection**: box or lasso select, then "export selection" downloads a
  CSV of dataset index, file path, label, prediction and confidence.
- **Classes**: a list that filters by name, shows all or none, and hides a
  class on a click; usable with 1,000 classes.

The page's script is :mod:`html_assets`; ``window.vistsnePage`` is its API
(the tests drive it), ``window.vistsne3d`` lists the 3-D viewers.

Size: thumbnails are WebP (JPEG where Pillow lacks WebP) of at most 48 px,
40 px past 5,000 points and 32 px past 10,000 points on the page; about
0.3-0.9 kB each in base64 (0.3 kB for 32 px digits), so a 20,000-point page
is roughly 8-20 MB and a 100,000-point page about 37 MB, of which bokeh's own
JavaScript is about 1.5 MB. Maps that show the same points (e.g. several
stages of one entry) share one copy of the thumbnails. At most
:data:`PAGE_THUMBS_MAX` thumbnails go into one page: past it, every point is
still drawn, and a class-balanced sample of the rows has thumbnails (the
line above the map says how many); the others hover with their class,
index and path. ``benchmarks/scale_page.py`` measures size, load and hover.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import RenderError
from ..progress import Progress
from .colors import (CORRECT_COLOR, FIELD_CMAPS, OTHER_COLOR, OTHER_LABEL, WRONG_COLOR,
                     class_colors, cmap_table, field_colors)
from .common import LIMITS, as_rgb_uint8, atomic_write, short_name, strip_rows
from .params import (COLOR_FIELDS, FIELD_HINT, FIELD_HINT_COMMAND, FIELD_MISSING_WHY,
                     FIELD_TITLES, MapData, check_out_dir, normalize_coords,
                     show_available)

FRAME_PX = 700
TOOLTIP_IMG_PX = 64
LEGEND_SWATCH_PX = 9
DIM_ALPHA = 0.08  # points that do not match a search
#: The most thumbnails one page embeds. Every point is always drawn; past
#: this many, thumbnails go to a class-balanced sample of this many rows
#: (:func:`balanced_rows`) and the page says so above the map.
PAGE_THUMBS_MAX = 100_000
#: thumbnails are encoded this many at a time (bounds the RGB copy of float input)
_THUMB_CHUNK = 4096


# ---------------------------------------------------------------- thumbnails

def thumbnail_side(total_points: int) -> int:
    """Largest side (px) of embedded thumbnails for a page of this many points."""
    if total_points <= 5000:
        return 48
    if total_points <= 10000:
        return 40
    return 32


def thumbnail_data_uris(thumbnails: np.ndarray, side: int = 48, *, fmt: str | None = None,
                        progress: Progress | None = None) -> list[str]:
    """One ``data:image/...;base64,`` URI per thumbnail, shrunk to fit
    ``side`` x ``side`` (never enlarged). WebP where Pillow supports it,
    else JPEG. Identical thumbnails are encoded once.

    WebP ``method`` 0 (the fastest): 0.36 ms an image against method 4's
    0.50 ms, for 208 bytes against 205 (32 px digits, this machine)."""
    from PIL import Image, features
    if fmt is None:
        fmt = "WEBP" if features.check("webp") else "JPEG"
    fmt = fmt.upper()
    mime = {"WEBP": "image/webp", "JPEG": "image/jpeg", "PNG": "image/png"}[fmt]
    options = {"WEBP": {"quality": 70, "method": 0}, "JPEG": {"quality": 75, "optimize": True},
               "PNG": {"optimize": True}}[fmt]
    prefix = f"data:{mime};base64,"
    out: list[str] = []
    seen: dict[bytes, str] = {}
    thumbnails = np.asarray(thumbnails)
    # float input: one scale for all chunks ([0, 1] or [0, 255], as as_rgb_uint8 decides)
    gain = None if thumbnails.dtype == np.uint8 or not len(thumbnails) else \
        (255.0 if thumbnails.max() <= 1.0 else 1.0)
    for start in range(0, len(thumbnails), _THUMB_CHUNK):
        chunk = thumbnails[start:start + _THUMB_CHUNK]
        if gain is not None:
            chunk = np.clip(chunk.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)
        for arr in as_rgb_uint8(chunk):
            key = hashlib.blake2b(arr.tobytes(), digest_size=16).digest() + bytes(str(arr.shape), "ascii")
            uri = seen.get(key)
            if uri is None:
                im = Image.fromarray(arr)
                if max(im.size) > side:
                    im.thumbnail((side, side), Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                im.save(buf, fmt, **options)
                uri = seen[key] = prefix + base64.b64encode(buf.getvalue()).decode("ascii")
            out.append(uri)
            if progress is not None:
                progress.update()
    return out


def balanced_rows(labels: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``cap`` rows, spread over the classes as
    evenly as their sizes allow (each class keeps ``min(count, q)`` rows for
    the largest such ``q``; the rows left over go one each to classes with
    rows to spare), chosen at random within a class (``seed``)."""
    labels = np.asarray(labels)
    n = len(labels)
    if n <= cap:
        return np.arange(n)
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    lo, hi = 0, int(counts.max())
    while lo < hi:  # the largest quota q with sum(min(count, q)) <= cap
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(counts, mid).sum() <= cap else (lo, mid - 1)
    take = np.minimum(counts, lo)
    rng = np.random.default_rng(seed)
    spare = np.flatnonzero(counts > take)
    take[rng.choice(spare, int(cap - take.sum()), replace=False)] += 1
    perm = rng.permutation(n)
    by_class = perm[np.argsort(inv[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - starts[inv[by_class]]
    return np.sort(by_class[rank < take[inv[by_class]]])


def thumbnail_note(n: int, with_thumbs: int | None) -> str:
    """The page's one line above a map: how many of its points have a thumbnail."""
    if with_thumbs is None:
        return f"{n:,} points; no thumbnails were stored (extracted with --thumb-size 0)"
    if with_thumbs >= n:
        return f"{n:,} points, each with its thumbnail"
    return f"{n:,} points; thumbnails for {with_thumbs:,} of them (a class-balanced sample)"


# ---------------------------------------------------------------- grouping

def _same_fields(a: dict | None, b: dict | None) -> bool:
    a, b = a or {}, b or {}
    return set(a) == set(b) and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


class _Group:
    """Maps that show the same points in the same order share their labels,
    dataset indices, thumbnails, fields and paths (one bokeh source, one
    JSON pool). Neighbours in feature space belong to each map (its stage)."""

    def __init__(self, gid: int, m: MapData):
        self.gid = gid
        self.first = m
        self.n = m.n
        self.labels = np.asarray(m.labels)
        self.index = np.asarray(m.dataset_index)
        self.thumbs = m.thumbnails
        self.class_names = list(m.class_names)
        self.fields = m.fields
        self.paths = None if m.paths is None else list(m.paths)
        self.uris: list[str] | None = None  # "" for rows without a thumbnail
        self.thumb_rows: np.ndarray | None = None  # the rows with one (None: all)
        self.source = None
        self.visible = None
        self.marks = None
        self.columns: dict[str, object] = {}
        self.colors: list[str | None] = []
        self.legends: dict[int, list[list[int]]] = {}  # map -> the classes of each legend entry
        self.legend_labels: dict[int, list[str]] = {}  # map -> the text of each legend entry
        self.has_3d = False
        self.has_bokeh = False

    def matches(self, m: MapData) -> bool:
        if m.n != self.n or list(m.class_names) != self.class_names:
            return False
        if not (np.array_equal(np.asarray(m.labels), self.labels)
                and np.array_equal(np.asarray(m.dataset_index), self.index)):
            return False
        if not _same_fields(m.fields, self.fields):
            return False
        if (m.paths is None) != (self.paths is None) or \
                (m.paths is not None and list(m.paths) != self.paths):
            return False
        if (m.thumbnails is None) != (self.thumbs is None):
            return False
        return m.thumbnails is None or m.thumbnails is self.thumbs \
            or np.array_equal(np.asarray(m.thumbnails), np.asarray(self.thumbs))

    def available(self) -> list[str]:
        return list(self.first.available_fields())


def _json_for_script(obj) -> str:
    """JSON that is safe inside a <script> element."""
    return (json.dumps(obj, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _fmt_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_value(x) for x in v)
    if isinstance(v, np.ndarray):
        return ", ".join(_fmt_value(x) for x in v.tolist())
    return str(v)


def _flatten(info: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, _fmt_value(value)))
    return rows


# ---------------------------------------------------------------- stages and variants

_NOT_A_VARIANT = ("metrics", "resolved", "embedding", "sheet_name", "config", "stage")


def _stage_of(m: MapData) -> str:
    stage = (m.info or {}).get("stage")
    return str(stage) if stage not in (None, "") else "map"


def _variant_labels(maps: Sequence[MapData]) -> list[str]:
    """Short labels that tell maps of one stage apart: the parameters (and
    other provenance) whose values differ, else the dimension, else the name."""
    if len(maps) == 1:
        return [""]
    flat = [dict(r for r in _flatten(m.info or {}) if not r[0].startswith(_NOT_A_VARIANT))
            for m in maps]
    keys = sorted({k for f in flat for k in f})
    differ = [k for k in keys if len({f.get(k) for f in flat}) > 1]
    dims = len({mm.dim for mm in maps}) > 1
    if dims:  # the dimension says it
        differ = [k for k in differ if not k.endswith("n_components")]
    labels = []
    for m, f in zip(maps, flat):
        parts = [f"{k.rsplit('.', 1)[-1].replace('_', ' ')} {f[k]}" for k in differ if k in f]
        if dims:
            parts.append(f"{m.dim}-D")
        labels.append(", ".join(parts))
    if len(set(labels)) < len(labels) or not all(labels):
        labels = [f"{lab} ({m.name})" if lab else m.name for lab, m in zip(labels, maps)]
    return labels


def _map_about(m: MapData) -> str:
    """The map's provenance and parameters: a folded table under the map."""
    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(val)}</td></tr>"
                   for key, val in _flatten(m.info or {}))
    table = f'<table class="vt-info">{rows}</table>' if rows else \
        '<div class="vt-name">no provenance recorded</div>'
    return (f'<details class="vt-about"><summary>provenance and parameters &middot; '
            f'{html.escape(m.name)} &middot; {m.n} points</summary>{table}</details>')


# ---------------------------------------------------------------- colour data

def _field_values(g: _Group) -> dict[str, list]:
    """The per-row fields of a group as compact JSON lists."""
    out: dict[str, list] = {}
    m = g.first
    for f in ("prediction", "correct", "confidence", "suspect"):
        v = m.field(f)
        if v is None:
            continue
        if f == "prediction":
            out[f] = np.asarray(v).astype(int).tolist()
        elif f == "correct":
            out[f] = np.asarray(v).astype(int).tolist()
        else:
            out[f] = np.round(np.asarray(v, dtype=np.float64), 4).tolist()
    return out


def _color_tables(g: _Group) -> dict[str, list[str]]:
    """The colour table of each field the group has; the page picks a
    point's row of it as :func:`colors.field_colors` does."""
    class_table = [c if c is not None else OTHER_COLOR for c in g.colors]
    tables: dict[str, list[str]] = {"label": class_table}
    avail = g.available()
    if "prediction" in avail:
        tables["prediction"] = class_table
    if "correct" in avail:
        tables["correct"] = [CORRECT_COLOR, WRONG_COLOR]
    for f in ("confidence", "suspect"):
        if f in avail:
            tables[f] = cmap_table(FIELD_CMAPS[f])
    return tables


def _continuous_index(g: _Group) -> dict[str, list[int]]:
    """Each point's row of a continuous field's colour table, as the static
    figures pick it (so that the page draws exactly their colours)."""
    out = {}
    for f in ("confidence", "suspect"):
        v = g.first.field(f)
        if v is not None:
            out[f] = field_colors(f, v, g.colors).index.astype(int).tolist()
    return out


def _initial_style(g: _Group, field: str):
    """(colour, alpha) columns of the page's first colouring."""
    if field not in g.available():
        field = "label"
    fc = field_colors(field, g.first.field(field), g.colors, g.class_names,
                      alpha=1.0 if g.n <= 2000 else 0.8)
    return [fc.table[i] for i in fc.index], fc.alpha.astype(np.float32)


# ---------------------------------------------------------------- bokeh (1-D, 2-D)

def _tooltip(has_thumbs: bool, pixelated: bool, has_paths: bool) -> str:
    """The hover template: thumbnail (rows without one show none), class,
    dataset index and path (``@idx{path}``: read from the page's pool by a
    CustomJSHover, so that the paths are not a second time in the source)."""
    img = ""
    if has_thumbs:
        rendering = "pixelated" if pixelated else "auto"
        img = ('<style>img.vt-tip-img[src=""]{display:none}</style>'
               f'<img src="@img" class="vt-tip-img" width="{TOOLTIP_IMG_PX}" '
               f'height="{TOOLTIP_IMG_PX}" '
               f'style="display:block;object-fit:contain;image-rendering:{rendering}" '
               'alt="thumbnail">')
    path = '<div style="overflow-wrap:anywhere">@idx{path}</div>' if has_paths else ""
    return ('<div class="vt-tip" style="font:12px sans-serif;max-width:200px">' + img +
            '<div style="font-weight:bold">@cls</div><div>dataset index @idx</div>' + path +
            '</div>')


def _legend_cols(entries: int) -> int:
    return max(1, math.ceil(entries / 40))


def _point_px(n: int) -> float:
    """Marker diameter in screen pixels for a bokeh map of n points."""
    return float(np.clip(40.0 / max(n, 1) ** 0.3, 2.5, 10.0))


def _bokeh_figure(k: int, m: MapData, g: _Group, pixelated: bool):
    from bokeh.models import (BoxSelectTool, CDSView, CustomJS, CustomJSHover, FixedTicker,
                              HoverTool, IndexFilter, LassoSelectTool, Legend, LegendItem, PanTool, Range1d,
                              ResetTool, SaveTool, WheelZoomTool)
    from bokeh.plotting import figure

    xy = normalize_coords(m.coords)
    xcol, ycol = f"x{k}", f"y{k}"
    g.columns[xcol] = xy[:, 0].astype(np.float32)
    rows = None
    if m.dim == 2:
        g.columns[ycol] = xy[:, 1].astype(np.float32)
        y_range = Range1d(*LIMITS)
    else:
        y, rows = strip_rows(g.labels, np.unique(g.labels))
        g.columns[ycol] = np.asarray(y, dtype=np.float32)
        y_range = Range1d(len(rows) - 0.4, -0.6) if rows is not None else Range1d(-0.05, 1.05)

    wheel = WheelZoomTool()
    pan = PanTool()
    box, lasso = BoxSelectTool(), LassoSelectTool()
    p = figure(frame_width=FRAME_PX, frame_height=FRAME_PX if m.dim == 2 else FRAME_PX // 2,
               x_range=Range1d(*LIMITS), y_range=y_range, output_backend="webgl",
               tools=[pan, wheel, box, lasso, ResetTool(), SaveTool()],
               toolbar_location="above", name=f"map{k}")
    p.toolbar.active_drag = pan
    p.toolbar.active_scroll = wheel
    p.xaxis.visible = False
    p.xgrid.visible = False
    p.ygrid.visible = False
    if rows is None:
        p.yaxis.visible = False
    else:
        p.yaxis.ticker = FixedTicker(ticks=list(range(len(rows))))
        p.yaxis.major_label_overrides = {i: short_name(g.class_names[c], 24)
                                         for i, c in enumerate(rows)}
        p.yaxis.major_tick_line_color = None
        p.yaxis.minor_tick_line_color = None

    size = _point_px(m.n)
    present = np.unique(g.labels)
    # every point in ONE renderer (WebGL: each WebGL renderer costs a copy of
    # the whole canvas on each paint); classes the page hides drop out of its view
    points = p.scatter(xcol, ycol, source=g.source, view=CDSView(filter=g.visible), size=size,
                       fill_color="color", fill_alpha="alpha", line_color=None, name=f"vt-points-{k}")
    # the legend: one swatch renderer (no points: an empty view) per coloured
    # class and one for all grey classes; the page turns a click on an entry
    # (the legend hides its renderer) into hiding its classes, and back
    entries = [(short_name(g.class_names[c], 28), g.colors[c], [int(c)])
               for c in present if g.colors[c] is not None]
    grey = [int(c) for c in present if g.colors[c] is None]
    if grey:
        entries.append((OTHER_LABEL, OTHER_COLOR, grey))
    items = []
    first = {int(c): int(i) for i, c in reversed(list(enumerate(g.labels.tolist())))}
    for j, (label, color, classes) in enumerate(entries):
        # one row of the source, at a constant NaN position: never on the map,
        # but a glyph the legend draws (it skips renderers without rows)
        swatch = p.scatter(x=float("nan"), y=float("nan"), source=g.source,
                           view=CDSView(filter=IndexFilter(indices=[first[classes[0]]])),
                           size=LEGEND_SWATCH_PX, fill_color=color, line_color=None,
                           name=f"vt-leg-{k}-{j}")
        items.append(LegendItem(label=label, renderers=[swatch]))
    g.legends[k] = [classes for _, _, classes in entries]
    g.legend_labels[k] = [label for label, _, _ in entries]
    # rings around the pinned point and its neighbours (the page sets which),
    # on top, drawn on the canvas (a few points: no second WebGL copy of the canvas)
    ring = size + 3
    p.ellipse(xcol, ycol, source=g.source, view=CDSView(filter=g.marks), width=ring, height=ring,
              width_units="screen", height_units="screen", fill_color=None, line_color="#000000",
              line_width="lw", name=f"vt-rings-{k}")
    for tool in (box, lasso):
        tool.renderers = [points]
    path = CustomJSHover(code=f"var p = window.vistsnePage; "
                              f"return p ? p.tipPath({g.gid}, special_vars.index) : '';")
    p.add_tools(HoverTool(renderers=[points], formatters={"@idx": path},
                          tooltips=_tooltip(g.uris is not None, pixelated, g.paths is not None)))
    legend = Legend(items=items, click_policy="hide", location="top_left",
                    label_text_font_size="8pt", glyph_height=12, glyph_width=12, spacing=0,
                    padding=4, ncols=_legend_cols(len(items)),
                    title="click to hide", title_text_font_size="8pt", name=f"vt-legend-{k}")
    p.add_layout(legend, "right")
    p.js_on_event("tap", CustomJS(code=f"if (window.vistsnePage) window.vistsnePage.tap({k}, cb_obj);"))
    return p


# ---------------------------------------------------------------- 3-D viewer

def _viewer_html(k: int, m: MapData, g: _Group) -> str:
    xyz = normalize_coords(m.coords) - 0.5
    data = {"x": np.round(xyz[:, 0], 4).tolist(), "y": np.round(xyz[:, 1], 4).tolist(),
            "z": np.round(xyz[:, 2], 4).tolist(), "r": _point_px(m.n) / 2}
    return (f'<div class="vt3d" id="vt3d-{k}" data-k="{k}" data-src="vt3d-data-{k}" '
            f'data-pool="vt-pool-{g.gid}">'
            f'<div class="vt3d-main"><canvas width="{FRAME_PX}" height="{FRAME_PX}" '
            f'style="width:{FRAME_PX}px;height:{FRAME_PX}px"></canvas>'
            '<div class="vt3d-legend"><div class="vt3d-legend-title">click to hide</div></div>'
            '</div><div class="vt3d-help">3-D map: drag to rotate, wheel to zoom, '
            'double-click to reset, hover for the image, click to pin</div>'
            '<div class="vt3d-tip" hidden></div></div>'
            f'<script type="application/json" id="vt3d-data-{k}">{_json_for_script(data)}</script>')


def _pool_html(g: _Group) -> str:
    """Everything the page's script knows about a group's points. The
    thumbnails are here only when a 3-D viewer needs them (bokeh maps keep
    theirs in their data source)."""
    pool = {"n": g.n, "lab": g.labels.astype(int).tolist(),
            "idx": g.index.astype(np.int64).tolist(),
            "img": g.uris if g.has_3d else None, "has_img": g.uris is not None,
            "names": g.class_names, "colors": g.colors,
            "other_color": OTHER_COLOR, "other_label": OTHER_LABEL,
            "paths": g.paths, "fields": _field_values(g), "tables": _color_tables(g),
            "cidx": _continuous_index(g),
            "bokeh": g.has_bokeh}
    return f'<script type="application/json" id="vt-pool-{g.gid}">{_json_for_script(pool)}</script>'


def _neighbors_html(k: int, m: MapData) -> str:
    if m.neighbors is None:
        return ""
    nb = np.asarray(m.neighbors).astype(int).tolist()
    return f'<script type="application/json" id="vt-nb-{k}">{_json_for_script(nb)}</script>'


# ---------------------------------------------------------------- the page

_TEMPLATE = """
{% from macros import embed %}
{% block title %}{{ page_title }}{% endblock %}
{% block postamble %}{{ page_css }}{% endblock %}
{% block body %}
<body class="vt">
{% block inner_body %}{{ super() }}<script>{{ viewer_js }}</script>{% if has_bokeh %}<script>{{ bokeh_bind_js }}</script>{% endif %}<script>{{ page_js }}</script>
{% endblock %}
</body>
{% endblock %}
{% block contents %}
{{ page_head }}
<main class="vt-main">
<div class="vt-maps">
{% for sec in sections %}
<section class="vt-map" id="vt-map-{{ sec.k }}" data-k="{{ sec.k }}"{% if sec.hidden %} hidden{% endif %}>
{{ sec.header }}
<div class="vt-plot">{% if sec.root %}{{ embed(roots[sec.root]) }}{% else %}{{ sec.viewer }}{% endif %}</div>
{{ sec.about }}
</section>
{% endfor %}
</div>
{{ side }}
</main>
{{ pools }}
{% endblock %}
"""


def _page_head(page_title: str, stages: list[str], fields: list[str], color_by: str) -> str:
    stage_buttons = "".join(
        f'<button type="button" class="vt-stage" data-stage="{html.escape(s)}">'
        f'{html.escape(s)}</button>' for s in stages)
    options = "".join(
        f'<option value="{f}"{" selected" if f == color_by else ""}>'
        f'{html.escape(FIELD_TITLES[f])}</option>' for f in fields)
    return (
        '<header class="vt-bar">'
        f'<div class="vt-title" title="{html.escape(page_title)}">{html.escape(page_title)}</div>'
        '<div class="vt-controls">'
        f'<div class="vt-stages" role="group" aria-label="stage"{"" if len(stages) > 1 else " hidden"}>'
        f'<span class="vt-label">stage</span>{stage_buttons}</div>'
        '<label class="vt-variant-box" hidden><span class="vt-label">map</span>'
        '<select class="vt-variant"></select></label>'
        '<label><span class="vt-label">colour</span>'
        f'<select class="vt-color">{options}</select></label>'
        '<label class="vt-search-box"><span class="vt-label">search</span>'
        '<input type="search" class="vt-search" placeholder="class name or file path" '
        'autocomplete="off" spellcheck="false"></label>'
        '<span class="vt-search-count" aria-live="polite"></span>'
        '</div></header>')


_SIDE = """
<aside class="vt-side">
<div class="vt-key"></div>
<div class="vt-pin" hidden>
  <div class="vt-pin-head"><b>pinned point</b>
    <button type="button" class="vt-unpin" title="unpin">&times;</button></div>
  <div class="vt-pin-main"><img class="vt-pin-img" alt="pinned thumbnail"><dl class="vt-pin-info"></dl></div>
  <div class="vt-nb-title"></div>
  <div class="vt-nbs"></div>
</div>
<div class="vt-pin-help">click a point to pin it: its image, path, prediction and
 nearest neighbours in feature space</div>
<div class="vt-sel">
  <div><span class="vt-sel-count">no points selected</span>
  <button type="button" class="vt-export" disabled>export selection (CSV)</button></div>
  <div class="vt-hint">select with the box or lasso tool (toolbar above the map);
   shift-drag adds to the selection</div>
</div>
<details class="vt-classes" open>
  <summary>classes <span class="vt-class-count"></span></summary>
  <div class="vt-class-tools">
    <input type="search" class="vt-class-filter" placeholder="filter classes" autocomplete="off">
    <button type="button" class="vt-class-all" title="show the classes listed">all</button>
    <button type="button" class="vt-class-none" title="hide the classes listed">none</button>
  </div>
  <div class="vt-class-list"></div>
</details>
</aside>
"""


def render_html(maps: Sequence[MapData], out_path, *, title: str | None = None,
                progress: bool = True, show: bool = False, color_by: str = "label",
                max_thumbnails: int = PAGE_THUMBS_MAX) -> Path:
    """Write one self-contained interactive page for ``maps`` to ``out_path``.

    ``title``: the page heading (default: the first map's title, or a count).
    ``show``: also open the page in a web browser where a display exists.
    ``color_by``: the colour field the page opens with (the first map must
    have it; the page's switch offers every field the maps have).
    ``max_thumbnails``: the most thumbnails the page embeds (the points that
    show the same rows share theirs); past it, each group of maps embeds a
    class-balanced sample of its rows, in proportion to its size. Every
    point is drawn either way, and a line above each map says which.
    """
    from bokeh.core.templates import FILE, MACROS, get_env
    from bokeh.embed import file_html
    from bokeh.models import BooleanFilter, ColumnDataSource, IndexFilter
    from bokeh.resources import INLINE

    from .html_assets import BOKEH_BIND_JS, PAGE_CSS, PAGE_JS, VIEWER_JS

    maps = list(maps)
    if not maps:
        raise RenderError("no maps to put in the HTML page", "pass at least one map")
    for m in maps:
        m.check()
    maps[0].color_field(color_by)  # an unknown or missing field: one line, before any work
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".html", ".htm"):
        out_path = out_path.with_name(out_path.name + ".html")
    check_out_dir(out_path.parent)

    groups: list[_Group] = []
    group_of: list[_Group] = []
    for m in maps:
        g = next((g for g in groups if g.matches(m)), None)
        if g is None:
            g = _Group(len(groups), m)
            g.colors = class_colors(m.class_names, m.counts())
            groups.append(g)
        group_of.append(g)
        if m.dim == 3:
            g.has_3d = True
        else:
            g.has_bokeh = True

    rows = sum(g.n for g in groups if g.thumbs is not None)
    for g in groups:  # past the cap, a class-balanced sample of each group's rows
        if g.thumbs is not None:
            g.thumb_rows = None if rows <= max_thumbnails else \
                balanced_rows(g.labels, max_thumbnails * g.n // rows)
    total = sum(g.n if g.thumb_rows is None else len(g.thumb_rows)
                for g in groups if g.thumbs is not None)
    side = thumbnail_side(total)
    pixelated = False
    with Progress(total, "thumbnails", unit="img", enabled=progress and total > 2000) as bar:
        for g in groups:
            if g.thumbs is not None:
                t = g.thumbs if g.thumb_rows is None else np.asarray(g.thumbs)[g.thumb_rows]
                pixelated = pixelated or max(t.shape[1], t.shape[2]) < 32
                uris = thumbnail_data_uris(t, side, progress=bar)
                if g.thumb_rows is not None:
                    full = [""] * g.n
                    for r, u in zip(g.thumb_rows.tolist(), uris):
                        full[r] = u
                    uris = full
                g.uris = uris

    for g in groups:
        g.columns = {"cls": [str(g.class_names[c]) for c in g.labels],
                     "idx": g.index.astype(np.int32) if np.abs(g.index).max(initial=0) < 2**31
                     else g.index.astype(np.float64)}
        if g.uris is not None:
            g.columns["img"] = g.uris
        g.columns["color"], g.columns["alpha"] = _initial_style(g, color_by)
        g.columns["lw"] = np.zeros(g.n, dtype=np.float32)
        g.source = ColumnDataSource(data={}, name=f"vt-src-{g.gid}")
        g.visible = BooleanFilter(name=f"vt-vis-{g.gid}")
        g.marks = IndexFilter(indices=[], name=f"vt-marks-{g.gid}")

    # stages in the order of their first map; a stage's maps in the order given
    stages: list[str] = []
    for m in maps:
        if _stage_of(m) not in stages:
            stages.append(_stage_of(m))
    variants: dict[int, str] = {}
    for s in stages:
        members = [k for k, m in enumerate(maps) if _stage_of(m) == s]
        for k, label in zip(members, _variant_labels([maps[k] for k in members])):
            variants[k] = label

    sections, figures = [], []
    for k, (m, g) in enumerate(zip(maps, group_of)):
        note = thumbnail_note(g.n, None if g.uris is None else
                              g.n if g.thumb_rows is None else len(g.thumb_rows))
        header = (f'<div class="vt-map-head"><h2 class="vt-map-title" '
                  f'title="{html.escape(str(m.title))}">{html.escape(str(m.title))}</h2>'
                  f'<span class="vt-thumb-note">{html.escape(note)}</span></div>')
        sec = {"k": k, "header": header, "root": None, "viewer": "", "about": _map_about(m),
               "hidden": k != 0}
        if m.dim == 3:
            sec["viewer"] = _viewer_html(k, m, g)
        else:
            figures.append(_bokeh_figure(k, m, g, pixelated))
            sec["root"] = f"map{k}"
        sections.append(sec)
    for g in groups:
        g.source.data = g.columns
        if g.has_bokeh:
            from bokeh.models import CustomJS
            g.source.selected.js_on_change("indices", CustomJS(
                code=f"if (window.vistsnePage) window.vistsnePage.selectionChanged({g.gid});"))

    fields = [f for f in COLOR_FIELDS if any(f in g.available() for g in groups)]
    page_title = title if title is not None else (
        maps[0].title if len(maps) == 1 else f"{len(maps)} t-SNE maps")
    page_data = {
        "maps": [{"k": k, "gid": g.gid, "dim": m.dim, "stage": _stage_of(m),
                  "variant": variants[k], "name": m.name, "n": m.n,
                  "has_nb": m.neighbors is not None, "legend_classes": g.legends.get(k),
                  "legend_labels": g.legend_labels.get(k),
                  "legend_cols": _legend_cols(len(g.legend_labels.get(k) or [])),
                  "fields": g.available()} for k, (m, g) in enumerate(zip(maps, group_of))],
        "stages": stages, "fields": fields, "color_by": color_by,
        "field_titles": FIELD_TITLES,
        "missing": {f: FIELD_MISSING_WHY[f] + "; " + FIELD_HINT.format(command=FIELD_HINT_COMMAND)
                    for f in FIELD_MISSING_WHY},
        "dim_alpha": DIM_ALPHA, "pixelated": pixelated,
        "other_color": OTHER_COLOR,
    }
    pools = "".join(_pool_html(g) for g in groups)
    pools += "".join(_neighbors_html(k, m) for k, m in enumerate(maps))
    pools += f'<script type="application/json" id="vt-page">{_json_for_script(page_data)}</script>'
    variables = {
        "page_title": html.escape(str(page_title)),
        "page_css": PAGE_CSS,
        "page_head": _page_head(str(page_title), stages, fields, color_by),
        "sections": sections,
        "side": _SIDE,
        "pools": pools,
        "viewer_js": VIEWER_JS,
        "page_js": PAGE_JS,
        "bokeh_bind_js": BOKEH_BIND_JS,
        "has_bokeh": bool(figures),
    }
    if figures:
        page = file_html(figures, INLINE, str(page_title), template=_TEMPLATE,
                         template_variables=variables)
    else:
        template = get_env().from_string("{% extends base %}\n" + _TEMPLATE)
        page = template.render(base=FILE, macros=MACROS, title=str(page_title), bokeh_js="",
                               bokeh_css="", plot_script="", docs=[], **variables)

    atomic_write(out_path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    if show and show_available():
        import webbrowser
        webbrowser.open(out_path.resolve().as_uri())
    return out_path

