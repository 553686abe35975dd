"""One self-contained interactive HTML page for one or more maps.

2-D (and 1-D) maps are bokeh figures with INLINE resources and the WebGL
backend: pan, wheel zoom, box select, reset, a legend whose entries hide
their class, and a hover tooltip with the point's thumbnail (a data URI),
class name and dataset index. Bokeh has no 3-D, so 3-D maps get a small
inline canvas viewer (drag to rotate, wheel to zoom, double-click to reset,
same tooltip and legend). Nothing is loaded from the network.

Size: thumbnails are WebP (JPEG where Pillow lacks WebP) of at most 48 px,
40 px past 5,000 points and 32 px past 10,000 points on the page; about
0.3-0.9 kB each in base64, so a 20,000-point page is roughly 10-20 MB of
which bokeh's own JavaScript is about 1.5 MB. Maps that show the same points
(e.g. several stages of one entry) share one copy of the thumbnails.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import RenderError
from ..progress import Progress
from .colors import OTHER_COLOR, OTHER_LABEL, class_colors
from .common import LIMITS, as_rgb_uint8, atomic_write, short_name, strip_rows
from .params import MapData, check_out_dir, normalize_coords, show_available

FRAME_PX = 700
TOOLTIP_IMG_PX = 64


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
    else JPEG."""
    from PIL import Image, features
    if fmt is None:
        fmt = "WEBP" if features.check("webp") else "JPEG"
    fmt = fmt.upper()
    mime = {"WEBP": "image/webp", "JPEG": "image/jpeg", "PNG": "image/png"}[fmt]
    options = {"WEBP": {"quality": 70, "method": 4}, "JPEG": {"quality": 75, "optimize": True},
               "PNG": {"optimize": True}}[fmt]
    thumbs = as_rgb_uint8(thumbnails)
    out: list[str] = []
    for arr in thumbs:
        im = Image.fromarray(arr)
        if max(im.size) > side:
            im.thumbnail((side, side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, fmt, **options)
        out.append(f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
        if progress is not None:
            progress.update()
    return out


# ---------------------------------------------------------------- grouping

class _Group:
    """Maps that show the same points in the same order share their labels,
    dataset indices and thumbnails (one bokeh source, one JSON pool)."""

    def __init__(self, gid: int, m: MapData):
        self.gid = gid
        self.first = m
        self.n = m.n
        self.labels = np.asarray(m.labels)
        self.index = np.asarray(m.dataset_index)
        self.thumbs = m.thumbnails
        self.class_names = list(m.class_names)
        self.uris: list[str] | None = None
        self.source = None
        self.columns: dict[str, object] = {}
        self.colors: list[str | None] = []

    def matches(self, m: MapData) -> bool:
        if m.n != self.n or list(m.class_names) != self.class_names:
            return False
        if not (np.array_equal(np.asarray(m.labels), self.labels)
                and np.array_equal(np.asarray(m.dataset_index), self.index)):
            return False
        if (m.thumbnails is None) != (self.thumbs is None):
            return False
        return m.thumbnails is None or m.thumbnails is self.thumbs \
            or np.array_equal(np.asarray(m.thumbnails), np.asarray(self.thumbs))

    @property
    def has_grey(self) -> bool:
        return any(self.colors[c] is None for c in np.unique(self.labels))


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


def _header_html(k: int, m: MapData) -> str:
    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(val)}</td></tr>"
                   for key, val in _flatten(m.info or {}))
    table = f'<table class="vt-info">{rows}</table>' if rows else ""
    return (f'<h2 id="map-{k}">{html.escape(str(m.title))}</h2>'
            f'<div class="vt-name">{html.escape(m.name)} &middot; {m.n} points</div>{table}')


# ---------------------------------------------------------------- bokeh (1-D, 2-D)

def _tooltip(has_thumbs: bool, pixelated: bool) -> str:
    img = ""
    if has_thumbs:
        rendering = "pixelated" if pixelated else "auto"
        img = (f'<img src="@img" width="{TOOLTIP_IMG_PX}" height="{TOOLTIP_IMG_PX}" '
               f'style="display:block;object-fit:contain;image-rendering:{rendering}" '
               'alt="thumbnail">')
    return ('<div class="vt-tip" style="font:12px sans-serif;max-width:200px">' + img +
            '<div style="font-weight:bold">@cls</div><div>dataset index @idx</div></div>')


def _point_px(n: int) -> float:
    """Marker diameter in screen pixels for a bokeh map of n points."""
    return float(np.clip(40.0 / max(n, 1) ** 0.3, 2.5, 10.0))


def _bokeh_figure(k: int, m: MapData, g: _Group, pixelated: bool):
    from bokeh.models import (BoxSelectTool, CDSView, FixedTicker, GroupFilter, HoverTool,
                              Legend, LegendItem, PanTool, Range1d, ResetTool, SaveTool,
                              WheelZoomTool)
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
    p = figure(frame_width=FRAME_PX, frame_height=FRAME_PX if m.dim == 2 else FRAME_PX // 2,
               x_range=Range1d(*LIMITS), y_range=y_range, output_backend="webgl",
               tools=[pan, wheel, BoxSelectTool(), ResetTool(), SaveTool()],
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
    alpha = 1.0 if m.n <= 2000 else 0.8
    present = np.unique(g.labels)
    items, renderers = [], []
    # one renderer per coloured class (so the legend can hide it), one for
    # all grey classes; "key" is the class index, or -1 for grey classes
    if g.has_grey:
        r = p.scatter(xcol, ycol, source=g.source, size=size, fill_color=OTHER_COLOR,
                      line_color=None, fill_alpha=0.5,
                      view=CDSView(filter=GroupFilter(column_name="key", group=-1)))
        renderers.append(r)
        other_item = LegendItem(label=OTHER_LABEL, renderers=[r])
    for c in present:
        color = g.colors[c]
        if color is None:
            continue
        r = p.scatter(xcol, ycol, source=g.source, size=size, fill_color=color, line_color=None,
                      fill_alpha=alpha,
                      view=CDSView(filter=GroupFilter(column_name="key", group=int(c))))
        renderers.append(r)
        items.append(LegendItem(label=short_name(g.class_names[c], 28), renderers=[r]))
    if g.has_grey:
        items.append(other_item)
    p.add_tools(HoverTool(renderers=renderers, tooltips=_tooltip(g.uris is not None, pixelated)))
    legend = Legend(items=items, click_policy="hide", location="top_left",
                    label_text_font_size="8pt", glyph_height=12, glyph_width=12, spacing=0,
                    padding=4, ncols=max(1, math.ceil(len(items) / 40)),
                    title="click to hide", title_text_font_size="8pt")
    p.add_layout(legend, "right")
    return p


# ---------------------------------------------------------------- 3-D viewer

def _viewer_html(k: int, m: MapData, g: _Group) -> str:
    xyz = normalize_coords(m.coords) - 0.5
    data = {"x": np.round(xyz[:, 0], 4).tolist(), "y": np.round(xyz[:, 1], 4).tolist(),
            "z": np.round(xyz[:, 2], 4).tolist(), "r": _point_px(m.n) / 2}
    return (f'<div class="vt3d" id="vt3d-{k}" data-src="vt3d-data-{k}" '
            f'data-pool="vt-pool-{g.gid}">'
            f'<div class="vt3d-main"><canvas width="{FRAME_PX}" height="{FRAME_PX}" '
            f'style="width:{FRAME_PX}px;height:{FRAME_PX}px"></canvas>'
            '<div class="vt3d-legend"><div class="vt3d-legend-title">click to hide</div></div>'
            '</div><div class="vt3d-help">3-D map: drag to rotate, wheel to zoom, '
            'double-click to reset, hover for the image</div>'
            '<div class="vt3d-tip" hidden></div></div>'
            f'<script type="application/json" id="vt3d-data-{k}">{_json_for_script(data)}</script>')


def _pool_html(g: _Group) -> str:
    pool = {"lab": g.labels.astype(int).tolist(), "idx": g.index.astype(np.int64).tolist(),
            "img": g.uris, "names": g.class_names, "colors": g.colors,
            "other_color": OTHER_COLOR, "other_label": OTHER_LABEL}
    return f'<script type="application/json" id="vt-pool-{g.gid}">{_json_for_script(pool)}</script>'


_CSS = """
<style>
  body.vt { font: 14px/1.4 sans-serif; color: #222; margin: 16px 24px; height: auto;
            display: block; }
  .vt h1 { font-size: 20px; margin: 0 0 8px; }
  .vt h2 { font-size: 16px; margin: 28px 0 2px; }
  .vt .vt-name { color: #777; font-size: 12px; margin-bottom: 6px; }
  .vt nav a { margin-right: 12px; }
  .vt table.vt-info { border-collapse: collapse; font-size: 12px; margin: 4px 0 10px; }
  .vt table.vt-info th { text-align: left; font-weight: normal; color: #666;
                         padding: 1px 12px 1px 0; }
  .vt table.vt-info td { padding: 1px 0; }
  .vt3d { position: relative; display: inline-block; }
  .vt3d-main { display: flex; align-items: flex-start; }
  .vt3d canvas { border: 1px solid #ddd; cursor: grab; touch-action: none; }
  .vt3d-legend { font-size: 11px; margin-left: 10px; max-height: 700px; overflow-y: auto;
                 columns: auto 160px; }
  .vt3d-legend-title { font-weight: bold; margin-bottom: 2px; }
  .vt3d-legend div.item { cursor: pointer; white-space: nowrap; user-select: none; }
  .vt3d-legend div.item.off { opacity: 0.35; }
  .vt3d-legend span.sw { display: inline-block; width: 10px; height: 10px;
                         border-radius: 50%; margin-right: 4px; vertical-align: -1px; }
  .vt3d-help { font-size: 11px; color: #777; }
  .vt3d-tip { position: absolute; pointer-events: none; background: #fff; border: 1px solid #aaa;
              border-radius: 3px; padding: 4px; font-size: 12px; box-shadow: 0 1px 4px #0003;
              z-index: 10; }
  .vt3d-tip img { display: block; width: 64px; height: 64px; object-fit: contain; }
  .vt3d-tip .cls { font-weight: bold; }
</style>
"""

# The 3-D viewer: plain canvas 2-D drawing, orthographic projection, points
# painted back to front. window.vistsne3d lists the viewers (used by tests).
_VIEWER_JS = r"""
(function () {
  "use strict";
  function readJSON(id) { return JSON.parse(document.getElementById(id).textContent); }
  function Viewer(root) {
    var d = readJSON(root.dataset.src), pool = readJSON(root.dataset.pool);
    var n = d.x.length, radius = d.r;
    var canvas = root.querySelector("canvas"), ctx = canvas.getContext("2d");
    var tip = root.querySelector(".vt3d-tip"), legendEl = root.querySelector(".vt3d-legend");
    var k = pool.names.length, hidden = new Uint8Array(k);
    var grey = pool.colors.map(function (c) { return c === null; });
    var fill = pool.colors.map(function (c) { return c === null ? pool.other_color : c; });
    var sx = new Float32Array(n), sy = new Float32Array(n), sz = new Float32Array(n);
    var order = new Uint32Array(n);
    for (var i = 0; i < n; i++) order[i] = i;
    var home = {yaw: -0.7, pitch: 0.45, zoom: 1.0};
    var view = {yaw: home.yaw, pitch: home.pitch, zoom: home.zoom};
    var W = canvas.clientWidth || canvas.width, H = canvas.clientHeight || canvas.height;
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    var pending = false, drag = null;

    function rotate(x, y, z) {
      var cy = Math.cos(view.yaw), sy_ = Math.sin(view.yaw);
      var cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
      var x1 = cy * x + sy_ * z, z1 = -sy_ * x + cy * z;
      return [x1, cp * y - sp * z1, sp * y + cp * z1];
    }
    function project() {
      var s = Math.min(W, H) * 0.58 * view.zoom, cx = W / 2, cy = H / 2;
      for (var i = 0; i < n; i++) {
        var p = rotate(d.x[i], d.y[i], d.z[i]);
        sx[i] = cx + s * p[0]; sy[i] = cy - s * p[1]; sz[i] = p[2];
      }
      order.sort(function (a, b) { return sz[a] - sz[b]; });
    }
    function drawCube() {
      var s = Math.min(W, H) * 0.58 * view.zoom, cx = W / 2, cy = H / 2, h = 0.5;
      var c = [], e = [[0,1],[2,3],[4,5],[6,7],[0,2],[1,3],[4,6],[5,7],[0,4],[1,5],[2,6],[3,7]];
      for (var a = 0; a < 8; a++) {
        var p = rotate(a & 1 ? h : -h, a & 2 ? h : -h, a & 4 ? h : -h);
        c.push([cx + s * p[0], cy - s * p[1]]);
      }
      ctx.strokeStyle = "#dddddd"; ctx.lineWidth = 1; ctx.beginPath();
      e.forEach(function (q) { ctx.moveTo(c[q[0]][0], c[q[0]][1]); ctx.lineTo(c[q[1]][0], c[q[1]][1]); });
      ctx.stroke();
    }
    function draw() {
      pending = false;
      project();
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      drawCube();
      for (var j = 0; j < n; j++) {
        var i = order[j], l = pool.lab[i];
        if (hidden[l]) continue;
        ctx.globalAlpha = grey[l] ? 0.5 : 0.85;
        ctx.fillStyle = fill[l];
        ctx.beginPath(); ctx.arc(sx[i], sy[i], radius, 0, 6.2832); ctx.fill();
      }
      ctx.globalAlpha = 1;
    }
    function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }
    function nearest(x, y) {
      var best = -1, bestD = (radius + 4) * (radius + 4);
      for (var i = 0; i < n; i++) {
        if (hidden[pool.lab[i]]) continue;
        var dx = sx[i] - x, dy = sy[i] - y, dd = dx * dx + dy * dy;
        if (dd < bestD || (dd === bestD && best >= 0 && sz[i] > sz[best])) { best = i; bestD = dd; }
      }
      return best;
    }
    function showTip(i, x, y) {
      if (i < 0) { tip.hidden = true; return; }
      tip.replaceChildren();
      if (pool.img) {
        var im = document.createElement("img"); im.src = pool.img[i]; im.alt = "thumbnail";
        tip.appendChild(im);
      }
      var c = document.createElement("div"); c.className = "cls";
      c.textContent = pool.names[pool.lab[i]]; tip.appendChild(c);
      var t = document.createElement("div"); t.textContent = "dataset index " + pool.idx[i];
      tip.appendChild(t);
      tip.style.left = (canvas.offsetLeft + x + 14) + "px";
      tip.style.top = (canvas.offsetTop + y + 14) + "px";
      tip.hidden = false;
    }
    function local(ev) {
      var r = canvas.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    }
    canvas.addEventListener("mousedown", function (ev) {
      drag = {x: ev.clientX, y: ev.clientY, yaw: view.yaw, pitch: view.pitch};
      tip.hidden = true; canvas.style.cursor = "grabbing"; ev.preventDefault();
    });
    window.addEventListener("mouseup", function () { drag = null; canvas.style.cursor = "grab"; });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) return;
      view.yaw = drag.yaw + (ev.clientX - drag.x) * 0.01;
      view.pitch = Math.max(-1.55, Math.min(1.55, drag.pitch + (ev.clientY - drag.y) * 0.01));
      redraw();
    });
    canvas.addEventListener("mousemove", function (ev) {
      if (drag) return;
      var p = local(ev); showTip(nearest(p[0], p[1]), p[0], p[1]);
    });
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      view.zoom = Math.max(0.2, Math.min(20, view.zoom * Math.exp(-ev.deltaY * 0.0015)));
      tip.hidden = true; redraw();
    }, {passive: false});
    canvas.addEventListener("dblclick", function () {
      view.yaw = home.yaw; view.pitch = home.pitch; view.zoom = home.zoom; redraw();
    });

    var present = new Uint8Array(k);
    for (var q = 0; q < n; q++) present[pool.lab[q]] = 1;
    function legendItem(label, color, classes) {
      var it = document.createElement("div"); it.className = "item";
      var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = color;
      it.appendChild(sw); it.appendChild(document.createTextNode(label));
      it.addEventListener("click", function () {
        var off = !it.classList.contains("off");
        it.classList.toggle("off", off);
        classes.forEach(function (c) { hidden[c] = off ? 1 : 0; });
        tip.hidden = true; redraw();
      });
      legendEl.appendChild(it);
    }
    var others = [];
    for (var c = 0; c < k; c++) {
      if (!present[c]) continue;
      if (grey[c]) others.push(c); else legendItem(pool.names[c], fill[c], [c]);
    }
    if (others.length) legendItem(pool.other_label, pool.other_color, others);

    draw();
    return {
      root: root, n: n,
      screenPos: function (i) {
        var r = canvas.getBoundingClientRect();
        return {x: r.left + sx[i], y: r.top + sy[i]};
      },
      redraw: draw
    };
  }
  window.vistsne3d = [];
  document.querySelectorAll(".vt3d").forEach(function (root) {
    window.vistsne3d.push(Viewer(root));
  });
})();
"""

_TEMPLATE = """
{% from macros import embed %}
{% block title %}{{ page_title }}{% endblock %}
{% block postamble %}{{ page_css }}{% endblock %}
{% block body %}
<body class="vt">
{% block inner_body %}{{ super() }}{% if has_3d %}<script>{{ viewer_js }}</script>{% endif %}
{% endblock %}
</body>
{% endblock %}
{% block contents %}
{{ page_head }}
{% for sec in sections %}
<section>
{{ sec.header }}
{% if sec.root %}{{ embed(roots[sec.root]) }}{% else %}{{ sec.viewer }}{% endif %}
</section>
{% endfor %}
{{ pools }}
{% endblock %}
"""


def render_html(maps: Sequence[MapData], out_path, *, title: str | None = None,
                progress: bool = True, show: bool = False) -> Path:
    """Write one self-contained interactive page for ``maps`` to ``out_path``.

    ``title``: the page heading (default: the first map's title, or a count).
    ``show``: also open the page in a web browser where a display exists.
    """
    from bokeh.core.templates import FILE, MACROS, get_env
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource
    from bokeh.resources import INLINE

    maps = list(maps)
    if not maps:
        raise RenderError("no maps to put in the HTML page", "pass at least one map")
    for m in maps:
        m.check()
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

    total = sum(g.n for g in groups if g.thumbs is not None)
    side = thumbnail_side(total)
    pixelated = False
    with Progress(total, "thumbnails", unit="img", enabled=progress and total > 2000) as bar:
        for g in groups:
            if g.thumbs is not None:
                t = np.asarray(g.thumbs)
                pixelated = pixelated or max(t.shape[1], t.shape[2]) < 32
                g.uris = thumbnail_data_uris(t, side, progress=bar)

    for g in groups:
        g.columns = {"cls": [str(g.class_names[c]) for c in g.labels],
                     "idx": g.index.astype(np.int32) if np.abs(g.index).max(initial=0) < 2**31
                     else g.index.astype(np.float64)}
        grey = np.array([c is None for c in g.colors], dtype=bool)
        g.columns["key"] = np.where(grey[g.labels], -1, g.labels).astype(np.int32)
        if g.uris is not None:
            g.columns["img"] = g.uris
        g.source = ColumnDataSource(data={})

    sections, figures, has_3d = [], [], False
    for k, (m, g) in enumerate(zip(maps, group_of)):
        sec = {"header": _header_html(k, m), "root": None, "viewer": ""}
        if m.dim == 3:
            sec["viewer"] = _viewer_html(k, m, g)
            has_3d = True
        else:
            figures.append(_bokeh_figure(k, m, g, pixelated))
            sec["root"] = f"map{k}"
        sections.append(sec)
    for g in groups:
        g.source.data = g.columns

    page_title = title if title is not None else (
        maps[0].title if len(maps) == 1 else f"{len(maps)} t-SNE maps")
    nav = ""
    if len(maps) > 1:
        nav = "<nav>" + "".join(f'<a href="#map-{k}">{html.escape(m.name)}</a>'
                                for k, m in enumerate(maps)) + "</nav>"
    variables = {
        "page_title": html.escape(str(page_title)),
        "page_css": _CSS,
        "page_head": f"<h1>{html.escape(str(page_title))}</h1>{nav}",
        "sections": sections,
        "pools": "".join(_pool_html(g) for g in groups
                         if any(m.dim == 3 for m, gg in zip(maps, group_of) if gg is g)),
        "has_3d": has_3d,
        "viewer_js": _VIEWER_JS,
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
