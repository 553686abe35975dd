"""The comparison's page: one offline HTML file with a checkpoint slider.

One bokeh map per stage; each point's position in every aligned map is a
column of its source (``x0``, ``y0``, ``x1``, ...). Moving the slider moves
the points (a short eased transition) to that entry's map; the colour,
legend and hover tooltip (with the image's thumbnail and its path) are the
same columns on every step, so they keep working. Bokeh's resources are
inlined: the page makes no network request.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

from .common import atomic_write
from .compare import CompareData, step_label

TIP_IMG_PX = 96
THUMB_PX = 48


def data_uris(thumbs: np.ndarray, side: int = THUMB_PX) -> list[str]:
    """One PNG ``data:`` URI per thumbnail (shrunk to ``side``)."""
    from PIL import Image

    out = []
    for arr in thumbs:
        im = Image.fromarray(np.asarray(arr, dtype=np.uint8))
        if max(im.size) > side:
            im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=True)
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


_MOVE_JS = """
const k = slider.value;
const t0 = performance.now();
const ms = 350;
title.text = '<b>' + labels[k] + '</b>';
for (const src of sources) {
  const d = src.data;
  const fx = d.x.slice(), fy = d.y.slice();
  const tx = d['x' + k], ty = d['y' + k];
  const stepf = (now) => {
    let a = Math.min(1, (now - t0) / ms);
    a = a * a * (3 - 2 * a);
    const nx = new Array(fx.length), ny = new Array(fy.length);
    for (let i = 0; i < fx.length; i++) {
      nx[i] = fx[i] + (tx[i] - fx[i]) * a;
      ny[i] = fy[i] + (ty[i] - fy[i]) * a;
    }
    src.data = Object.assign({}, src.data, {x: nx, y: ny});
    if (a < 1) requestAnimationFrame(stepf);
    else { window.vistsneCompare.step = k; window.vistsneCompare.moving = false; }
  };
  if (window.vistsneCompare) window.vistsneCompare.moving = true;
  requestAnimationFrame(stepf);
}
"""


def build_layout(data: CompareData, *, start: int | None = None):
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, Div, HoverTool, Range1d, Slider
    from bokeh.plotting import figure

    from .compare import _limits

    n = len(data.labels_of)
    start = n - 1 if start is None else int(start)
    labels = [step_label(s, l) for s, l in zip(data.steps, data.labels_of)]
    sources, figs = [], []
    for si, stage in enumerate(data.stages):
        maps = data.coords[stage]
        lab = np.asarray(data.labels[stage])
        cols = {"x": maps[start][:, 0].tolist(), "y": maps[start][:, 1].tolist(),
                "cls": [data.class_names[int(c)] for c in lab],
                "color": [data.colors[int(c)] for c in lab],
                "idx": [int(i) for i in data.indices[stage]],
                "path": [str(p) for p in data.ids[stage]]}
        for k, Y in enumerate(maps):
            cols[f"x{k}"], cols[f"y{k}"] = Y[:, 0].tolist(), Y[:, 1].tolist()
        has_img = stage in data.thumbs
        if has_img:
            cols["img"] = data_uris(data.thumbs[stage])
        src = ColumnDataSource(cols, name=f"src{si}")
        x0, x1, y0, y1 = _limits(maps)
        p = figure(width=640, height=640, title=stage, name=f"map{si}", match_aspect=True,
                   x_range=Range1d(x0, x1), y_range=Range1d(y0, y1), tools="pan,wheel_zoom,reset,save")
        size = max(3.0, min(8.0, 12.0 - len(lab) / 400))
        r = p.scatter("x", "y", source=src, color="color", size=size, alpha=0.85, legend_group="cls")
        img = (f'<img src="@img" width="{TIP_IMG_PX}" height="{TIP_IMG_PX}" '
               'style="display:block;image-rendering:pixelated" alt="thumbnail">') if has_img else ""
        p.add_tools(HoverTool(renderers=[r], tooltips=(
            '<div class="vt-tip" style="font:12px sans-serif;max-width:220px">' + img +
            '<div style="font-weight:bold">@cls</div><div>dataset index @idx</div><div>@path</div></div>')))
        p.legend.location = "top_left"
        p.legend.click_policy = "hide"
        p.legend.label_text_font_size = "8pt"
        p.xaxis.visible = p.yaxis.visible = False
        sources.append(src)
        figs.append(p)
    title = Div(text=f"<b>{labels[start]}</b>", name="step-title")
    slider = Slider(start=0, end=max(1, n - 1), value=start, step=1, title="checkpoint", name="step",
                    width=640)
    slider.js_on_change("value", CustomJS(args=dict(slider=slider, sources=sources, title=title,
                                                    labels=labels), code=_MOVE_JS))
    return column(title, slider, row(*figs))


def write_compare_page(data: CompareData, path: Path, *, title: str = "vistsne compare") -> Path:
    """The slider page, one file, no network requests."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    layout = build_layout(data)
    html = file_html(layout, INLINE, title)
    info = {"ready": True, "step": len(data.labels_of) - 1, "moving": False, "steps": len(data.labels_of),
            "labels": [step_label(s, l) for s, l in zip(data.steps, data.labels_of)], "stages": data.stages}
    script = f"<script>window.vistsneCompare = {json.dumps(info)};</script>"
    head, sep, tail = html.rpartition("</body>")  # the last one: bokeh's inlined JS holds the string too
    html = head + script + "\n" + sep + tail if sep else html + script
    return atomic_write(Path(path), lambda p: Path(p).write_text(html, encoding="utf-8"))
