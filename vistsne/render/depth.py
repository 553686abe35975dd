"""The depth figure: what each stage of a network separates (issue 18).

10-NN accuracy in feature space and in the map for each stage, in the order
given (the caller passes network order), as two marker lines over the stage
names, y from 0 to 1 with the chance level (1 / number of classes) as a
dashed line; optionally each stage's map drawn small under its stage name.

matplotlib is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import RenderError
from .colors import class_colors
from .params import MapData, RenderParams
from .titles import MatplotlibMeasure, fit_text

# Layout, in inches
_STAGE_IN = 1.35        # the width each stage gets on the x axis
_MIN_PLOT_IN = 4.5      # the plot is at least this wide
_PLOT_H_IN = 3.4
_LEFT_IN = 0.75
_RIGHT_IN = 0.25
_TITLE_IN = 0.6
_TITLE_TOP_IN = 0.08
_THUMB_GAP_IN = 0.12
_LEGEND_IN = 0.45       # the legend's band under the plot
_TICK_PT = (9.0, 6.0)   # stage names: the size they start at and the floor

FEATURE_COLOR = "#0072b2"  # Okabe and Ito's blue and vermillion (colour-vision safe)
MAP_COLOR = "#d55e00"
CHANCE_COLOR = "#777777"


def _values(name: str, values, n: int) -> np.ndarray:
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64) \
        if values is not None else np.full(n, np.nan)
    if v.shape != (n,):
        raise RenderError(f"depth figure: {len(v)} {name} values for {n} stages",
                          "pass one value per stage (None where there is none)")
    bad = np.isfinite(v) & ((v < 0) | (v > 1))
    if bad.any():
        raise RenderError(f"depth figure: {name} {v[bad][0]:g} is outside [0, 1]",
                          "pass accuracies as fractions from 0 to 1")
    return v


def _check(stages, feature_acc, map_acc, chance, maps):
    stages = [str(s) for s in stages]
    if not stages:
        raise RenderError("depth figure has no stages", "pass at least one stage")
    n = len(stages)
    feat = _values("feature accuracy", feature_acc, n)
    mapv = _values("map accuracy", map_acc, n)
    if chance is not None:
        try:
            ok = 0 < float(chance) <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise RenderError(f"depth figure: chance level {chance!r} is not in (0, 1]",
                              "pass 1 / number of classes")
    if maps is not None:
        maps = list(maps)
        if len(maps) != n:
            raise RenderError(f"depth figure: {len(maps)} maps for {n} stages",
                              "pass one map (or None) per stage, or no maps")
        for m in maps:
            if m is not None:
                m.check()
    return stages, feat, mapv, maps


def build_depth_figure(stages: Sequence[str], feature_acc: Sequence[float | None],
                       map_acc: Sequence[float | None], title: str = "", *,
                       chance: float | None = None, maps: Sequence[MapData | None] | None = None,
                       params: RenderParams | None = None, pyplot: bool = False):
    """The Figure of 10-NN accuracy per stage (not saved).

    ``stages`` in the order to draw them (network order); ``feature_acc`` and
    ``map_acc`` one value in [0, 1] per stage (None or NaN: not drawn there);
    ``chance``: the chance level, 1 / number of classes (a dashed line);
    ``maps``: one MapData (or None) per stage, drawn small under the stage's
    name, coloured by ``params.color_by``. ``fig.axes[0]`` is the plot: its
    lines are feature space, then the map (labels ``"feature space"`` and
    ``"t-SNE map"``); the map axes follow in stage order.
    """
    from .static import _draw_map, _new_figure, _style_axes, auto_point_size, map_field_colors

    params = (params or RenderParams()).validate()
    stages, feat, mapv, maps = _check(stages, feature_acc, map_acc, chance, maps)
    n = len(stages)
    dpi = params.dpi
    plot_w = max(_MIN_PLOT_IN, n * _STAGE_IN)
    width = _LEFT_IN + plot_w + _RIGHT_IN
    cell = plot_w / n
    has_maps = maps is not None and any(m is not None for m in maps)
    thumb = min(cell * 0.9, 1.6) if has_maps else 0.0

    # stage names under their ticks: one common size, broken between
    # phrases (there are none: a name is one phrase) or cut to fit the cell
    measure = MatplotlibMeasure(dpi)
    fits = [fit_text(s, measure, cell * 0.95 * dpi, None, fontsize=_TICK_PT[0],
                     min_fontsize=_TICK_PT[1], max_lines=1) for s in stages]
    size = min(f.fontsize for f in fits)
    fits = [fit_text(s, measure, cell * 0.95 * dpi, None, fontsize=size, min_fontsize=size,
                     max_lines=1) for s in stages]
    tick_in = 0.1 + size * 1.5 / 72

    title_fit = fit_text(title, measure, (width - 0.3) * dpi,
                         (_TITLE_IN - _TITLE_TOP_IN - 0.04) * dpi, fontsize=11.0,
                         min_fontsize=8.0, max_lines=2) if title else None
    top = _TITLE_IN if title_fit else 0.2
    maps_in = (thumb + _THUMB_GAP_IN) if has_maps else 0.0
    height = top + _PLOT_H_IN + tick_in + maps_in + _LEGEND_IN
    fig = _new_figure(width, height, dpi, pyplot)

    plot_y0 = height - top - _PLOT_H_IN
    ax = fig.add_axes((_LEFT_IN / width, plot_y0 / height, plot_w / width, _PLOT_H_IN / height))
    x = np.arange(n, dtype=float)
    ax.plot(x, feat, color=FEATURE_COLOR, marker="o", lw=1.8, ms=6, label="feature space")
    ax.plot(x, mapv, color=MAP_COLOR, marker="s", lw=1.8, ms=6, ls="-", label="t-SNE map")
    if chance is not None:
        ax.axhline(float(chance), color=CHANCE_COLOR, lw=1.0, ls="--",
                   label=f"chance ({float(chance):.3g})")
    for xs, vs, color, dy in ((x, feat, FEATURE_COLOR, 8), (x, mapv, MAP_COLOR, -13)):
        for xi, vi in zip(xs, vs):
            if np.isfinite(vi):  # the value next to its marker
                ax.annotate(f"{vi:.2f}", (xi, vi), textcoords="offset points", xytext=(0, dy),
                            ha="center", fontsize=7, color=color)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(0.0, 1.0)
    ax.set_xticks(x)
    ax.set_xticklabels([f.text for f in fits], fontsize=size)
    ax.set_ylabel("10-NN accuracy", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    legend_y = (0.05 + _LEGEND_IN / 2) / height
    fig.legend(*ax.get_legend_handles_labels(), loc="center", ncol=3, frameon=False,
               fontsize=8, bbox_to_anchor=((_LEFT_IN + plot_w / 2) / width, legend_y))

    if has_maps:
        # one colouring for all stages: the class colours of the first map
        first = next(m for m in maps if m is not None)
        colors = class_colors(first.class_names, first.counts())
        y0 = plot_y0 - tick_in - thumb
        for i, m in enumerate(maps):
            if m is None:
                continue
            cx = _LEFT_IN + (i + 0.5) * cell
            rect = ((cx - thumb / 2) / width, y0 / height, thumb / width, thumb / height)
            same = list(m.class_names) == list(first.class_names)
            fc = map_field_colors(m, params.color_by, colors if same else None)
            point = float(params.point_size) if params.point_size else \
                max(auto_point_size(m.n, thumb), 0.3)
            sub = _draw_map(fig, rect, m, fc, point, rasterize=True, title=None,
                            title_fontsize=0)
            _style_axes(sub, m.dim)
    if title_fit:
        fig.text(0.5, 1 - _TITLE_TOP_IN / height, title_fit.text, ha="center", va="top",
                 fontsize=title_fit.fontsize)
    return fig


def render_depth(stages: Sequence[str], feature_acc: Sequence[float | None],
                 map_acc: Sequence[float | None], out_path, params: RenderParams, *,
                 title: str = "", chance: float | None = None,
                 maps: Sequence[MapData | None] | None = None) -> Path:
    """Write the depth figure (:func:`build_depth_figure`) to ``out_path``:
    the format is its suffix (png, svg or pdf), with none the first static
    format of ``params`` (png when none)."""
    from .static import _showing, figure_path, save_figure

    params = params.validate()
    out_path, fmt = figure_path(out_path, params, "a depth figure")
    showing = _showing(params)
    fig = build_depth_figure(stages, feature_acc, map_acc, title, chance=chance, maps=maps,
                             params=params, pyplot=showing)
    save_figure(fig, out_path, fmt, params.dpi)
    if showing:
        import matplotlib.pyplot as plt
        plt.show()
        plt.close(fig)
    return out_path

