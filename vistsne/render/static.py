"""Static figures (PNG, SVG, PDF): one map, a sweep sheet, a thumbnail mosaic.

matplotlib is imported inside the functions. Figures are plain
``matplotlib.figure.Figure`` objects (no pyplot, no global state) unless
windows are to be shown, in which case pyplot creates them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import RenderError
from ..progress import Progress
from .colors import (MAX_COLORED, OTHER_COLOR, OTHER_LABEL, FieldColors, class_colors,
                     field_colors)
from .common import LIMITS, as_rgb_uint8, atomic_write, pil_font, short_name, strip_rows
from .params import (FIELD_TITLES, STATIC_FORMATS, MapData, RenderParams, check_out_dir,
                     normalize_coords, show_available)
from .raster import draw_image, use_raster
from .titles import MatplotlibMeasure, fit_text, pil_measure

# Layout of a single map, in inches: a square figure holding a square axes
# under a title band; a legend widens the figure to the right.
MAP_SIDE_IN = 8.0
_TITLE_IN = 0.6
_BOTTOM_IN = 0.25
_AXES_IN = MAP_SIDE_IN - _TITLE_IN - _BOTTOM_IN
_LEFT_IN = (MAP_SIDE_IN - _AXES_IN) / 2

# Sweep sheet panels, in inches.
PANEL_IN = 3.0
_CAPTION_PT = 7.0
_GAP_IN = 0.2
_ROW_LABEL_IN = 0.45
_COL_LABEL_IN = 0.35
_SHEET_TITLE_IN = 0.45

_LEGEND_FONT = 8.0
_LEGEND_ROWS = 30

#: Past this many classes (present in the map, or across a sheet's maps), a
#: figure with a class legend names the classes at their centres instead.
NAMES_PAST_CLASSES = MAX_COLORED  # 60
#: font size (points) of the class names on a one-map figure and a sheet panel
_NAME_PT = 7.0
_SHEET_NAME_PT = 5.5
#: room kept free around each class name (a fraction of its height)
_NAME_PAD = 0.25

# Font sizes (points) of titles and captions: the size they start at and the
# smallest they may shrink to before phrases are left out (see titles.py).
_TITLE_PT = (11.0, 8.0)
_CAPTION_PT_RANGE = (_CAPTION_PT, 6.0)
_LABEL_PT = (10.0, 7.0)


# ---------------------------------------------------------------- helpers

def auto_point_size(n: int, axes_inches: float = _AXES_IN) -> float:
    """Marker area (points^2) that reads well from 100 to 20,000 points.

    ``500 / sqrt(n)`` on a 7-inch axes (50 at 100 points, 16 at 1,000, 3.5
    at 20,000), scaled with the axes area, clipped to [0.3, 60].
    """
    s = 500.0 / math.sqrt(max(int(n), 1)) * (axes_inches / 7.0) ** 2
    return float(np.clip(s, 0.3, 60.0))


def _alpha_for(n: int) -> float:
    return 1.0 if n <= 2000 else 0.8


def draw_order(labels: np.ndarray, colors: Sequence[str | None]) -> np.ndarray:
    """Order in which points are drawn: grey ("other") points first, then the
    coloured ones in a fixed pseudo-random order, so that no class is always
    painted over the others where they overlap."""
    labels = np.asarray(labels)
    perm = np.random.default_rng(0).permutation(labels.shape[0])
    grey = np.array([c is None for c in colors], dtype=bool)[labels[perm]]
    return np.concatenate([perm[grey], perm[~grey]])


def mosaic_subsample(n: int, max_points: int) -> np.ndarray:
    """Sorted indices of the points a mosaic draws: all of them up to
    ``max_points``, else a fixed (seeded) random subset of that size."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=max_points, replace=False))


def _legend_entries(colors: Sequence[str | None], class_names: Sequence[str],
                    present: np.ndarray) -> list[tuple[str, str]]:
    """(label, colour) for each coloured class in ``present`` (sorted), plus
    one grey entry when any present class is grey."""
    entries = [(short_name(class_names[c]), colors[c]) for c in present if colors[c] is not None]
    if any(colors[c] is None for c in present):
        entries.append((OTHER_LABEL, OTHER_COLOR))
    return entries


def _legend_layout(entries: list[tuple[str, str]]) -> tuple[int, float]:
    """(columns, width in inches) of a legend with these entries."""
    if not entries:
        return 1, 0.0
    ncol = math.ceil(len(entries) / _LEGEND_ROWS)
    longest = max(len(label) for label, _ in entries)
    col_w = 0.45 + longest * _LEGEND_FONT * 0.6 / 72.0
    return ncol, ncol * col_w + 0.25


def _add_legend(fig, entries, x_frac: float, ncol: int, title: str | None = None) -> None:
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], linestyle="", marker="o", markersize=6, markeredgewidth=0,
                      color=color, label=label) for label, color in entries]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(x_frac, 0.5),
               frameon=False, fontsize=_LEGEND_FONT, ncol=ncol, handletextpad=0.3,
               columnspacing=0.8, borderaxespad=0.0, title=title,
               title_fontsize=_LEGEND_FONT + 1 if title else None,
               alignment="left")


def names_on_map(fc: FieldColors, legend: bool) -> bool:
    """Whether a map coloured by ``fc`` names its classes at their centres
    (a class field with a legend asked for, past :data:`NAMES_PAST_CLASSES`
    classes present) instead of drawing a legend."""
    return legend and fc.kind == "categorical" and \
        np.unique(fc.index).shape[0] > NAMES_PAST_CLASSES


def class_centres(xy: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes present, their point counts, (K, 2) centres): the centre of
    a class is the median of its points' ``xy``, per axis."""
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    present, starts, counts = np.unique(classes[order], return_index=True, return_counts=True)
    sorted_xy = np.asarray(xy)[order]
    centres = np.array([np.median(sorted_xy[a:a + c], axis=0) for a, c in zip(starts, counts)])
    return present, counts, centres.reshape(-1, 2)


def add_class_names(ax, xy: np.ndarray, fc: FieldColors, class_names: Sequence[str],
                    fontsize: float) -> tuple[int, int]:
    """Write each class's name at its centre (:func:`class_centres` of the
    points ``xy``, in ``ax``'s data coordinates, grouped by ``fc.index``),
    black with a white halo. Coloured classes come first, then the grey ones,
    each by size (largest first); a name that would overlap one already
    written (or leave the axes) is skipped. Returns (names written, classes)."""
    from matplotlib import patheffects
    present, counts, centres = class_centres(xy, fc.index)
    grey = np.array([fc.table[c] == OTHER_COLOR for c in present], dtype=bool)
    order = np.lexsort((present, -counts, grey))
    fig = ax.get_figure()
    pos = ax.get_position()
    ax_w = pos.width * fig.get_figwidth() * fig.dpi   # axes size in pixels
    ax_h = pos.height * fig.get_figheight() * fig.dpi
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties
    renderer, font = RendererAgg(1, 1, fig.dpi), FontProperties(size=fontsize)
    h = fontsize * 1.2 * fig.dpi / 72.0  # one line of text, as matplotlib lays it out
    pad = _NAME_PAD * h
    taken: list[tuple[float, float, float, float]] = []
    halo = [patheffects.withStroke(linewidth=2.0, foreground="white")]
    for k in order:
        # the class centre in axes pixels; a centre inside a written name is skipped unmeasured
        cx = (centres[k, 0] - x0) / (x1 - x0) * ax_w
        cy = (centres[k, 1] - y0) / (y1 - y0) * ax_h
        if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in taken):
            continue
        name = short_name(class_names[present[k]], 20)
        w = renderer.get_text_width_height_descent(name, font, ismath=False)[0]
        box = (cx - w / 2 - pad, cy - h / 2 - pad, cx + w / 2 + pad, cy + h / 2 + pad)
        if box[0] < 0 or box[1] < 0 or box[2] > ax_w or box[3] > ax_h:
            continue
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            continue
        taken.append(box)
        ax.text(centres[k, 0], centres[k, 1], name, fontsize=fontsize, ha="center",
                va="center", color="black", path_effects=halo, zorder=3,
                gid="vistsne-class-name")
    return len(taken), int(present.shape[0])


# ---------------------------------------------------------------- colour fields

# A continuous field's colour bar, in inches: the bar, the gap before it and
# the room its tick labels and title take to its right.
_CBAR_W_IN = 0.18
_CBAR_GAP_IN = 0.25
_CBAR_TEXT_IN = 0.75
CBAR_BAND_IN = _CBAR_GAP_IN + _CBAR_W_IN + _CBAR_TEXT_IN


def map_field_colors(m: MapData, field: str, class_cols: Sequence[str | None] | None = None,
                     *, alpha: float | None = None) -> FieldColors:
    """The colours of ``m``'s points for colour field ``field`` (a one-line
    RenderError when the map lacks it). ``class_cols``: the class colours to
    use (default: :func:`class_colors` of ``m``)."""
    values = m.color_field(field)
    if class_cols is None:
        class_cols = class_colors(m.class_names, m.counts())
    return field_colors(field, values, class_cols, m.class_names,
                        alpha=_alpha_for(m.n) if alpha is None else alpha)


def _field_legend(fc: FieldColors, legend: bool) -> tuple[list[tuple[str, str]], str | None]:
    """(entries, title) of the legend of a map coloured by ``fc``: the
    classes when ``legend`` (label, prediction), the two colours of
    ``correct`` always; none for a continuous field (it gets a colour bar)."""
    if fc.kind == "binary":
        return fc.entries, "top-1 prediction"
    if fc.kind == "categorical" and legend:
        entries = [(label if label == OTHER_LABEL else short_name(label), color)
                   for label, color in fc.entries]
        return entries, ("predicted class" if fc.field == "prediction" else None)
    return [], None


def _add_colorbar(fig, rect, field: str, cmap: str, fontsize: float = 8.0):
    """A vertical colour bar for a field in [0, 1] at ``rect`` (figure
    fraction), titled with what the colour is (:data:`FIELD_TITLES`)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    cax = fig.add_axes(rect)
    bar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap), cax=cax)
    bar.set_label(FIELD_TITLES[field], fontsize=fontsize + 1)
    bar.ax.tick_params(labelsize=fontsize)
    bar.outline.set_linewidth(0.5)
    return cax


def with_field_phrase(title: str, field: str) -> tuple[str, list[int] | None]:
    """A map's title with the colour field as its last phrase (for non-label
    fields) and the drop order that keeps that phrase until the first one goes."""
    if field == "label" or not title:
        return title, None
    from .titles import SEPARATOR, split_phrases
    phrases = split_phrases(title) + [f"colour: {FIELD_TITLES[field]}"]
    n = len(phrases)
    return SEPARATOR.join(phrases), list(range(n - 2, 0, -1)) + [n - 1]


def _new_figure(width_in: float, height_in: float, dpi: int, pyplot: bool):
    if pyplot:
        import matplotlib.pyplot as plt
        return plt.figure(figsize=(width_in, height_in), dpi=dpi)
    from matplotlib.figure import Figure
    return Figure(figsize=(width_in, height_in), dpi=dpi)


def _showing(params: RenderParams) -> bool:
    return bool(params.show) and show_available()


# ---------------------------------------------------------------- titles

_TITLE_TOP_IN = 0.08  # from the top of the figure to the top of its title


def fit_map_title(title: str, dpi: int, axes_in: float = _AXES_IN,
                  drop_order: Sequence[int] | None = None):
    """The title of a one-map figure laid out over the width of its axes
    (``axes_in`` inches) and in the band above it (see :func:`titles.fit_text`)."""
    measure = MatplotlibMeasure(dpi)
    return fit_text(title, measure, axes_in * dpi, (_TITLE_IN - _TITLE_TOP_IN - 0.04) * dpi,
                    fontsize=_TITLE_PT[0], min_fontsize=_TITLE_PT[1], max_lines=3,
                    drop_order=drop_order)


def _fit_common(texts: Sequence[str], measure, width: float, height: float | None,
                sizes: tuple[float, float], max_lines: int):
    """Each text fitted to the same box, all at one font size: the largest
    at which every one of them fits whole (texts that do not fit whole even
    at the smallest size are shortened at that common size instead)."""
    fits = [fit_text(t, measure, width, height, fontsize=sizes[0], min_fontsize=sizes[1],
                     max_lines=max_lines) for t in texts]
    whole = [f.fontsize for f in fits if not (f.dropped or f.cut)]
    size = min(whole or [sizes[1]])
    if all(f.fontsize == size for f in fits):
        return fits
    return [fit_text(t, measure, width, height, fontsize=size, min_fontsize=size,
                     max_lines=max_lines) for t in texts]


def save_figure(fig, path: Path, fmt: str, dpi: int) -> Path:
    """Write ``fig`` as ``fmt``, with no timestamps (same input, same file)."""
    import matplotlib
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    with matplotlib.rc_context({"svg.hashsalt": "vistsne", "svg.fonttype": "path"}):
        return atomic_write(path, lambda tmp: fig.savefig(
            tmp, format=fmt, dpi=dpi, metadata=metadata.get(fmt), facecolor="white"))


def _style_axes(ax, dim: int) -> None:
    if dim == 3:
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(*LIMITS)
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.set_zticklabels([])
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=20, azim=-60)
        return
    ax.set_xlim(*LIMITS)
    ax.set_xticks([])
    if dim == 2:
        ax.set_ylim(*LIMITS)
        ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#999999")
        spine.set_linewidth(0.6)


def _draw_map(fig, rect, m: MapData, fc: FieldColors, size: float, rasterize: bool,
              title: str | None, title_fontsize: float):
    """Draw the points of ``m`` in a new axes at ``rect`` (figure fraction),
    coloured by ``fc`` (:func:`map_field_colors`)."""
    labels = np.asarray(m.labels)
    xyz = normalize_coords(m.coords)
    dim = m.dim
    raster = use_raster(m.n, dim)
    rgba = None if raster else fc.rgba()
    order = fc.order
    if raster:  # one density image, drawn once the axes have their limits (below)
        ax = fig.add_axes(rect)
        if dim == 1:
            y, rows = strip_rows(labels, np.unique(labels))
    elif dim == 3:
        ax = fig.add_axes(rect, projection="3d")
        ax.scatter(xyz[order, 0], xyz[order, 1], xyz[order, 2], s=size, c=rgba[order],
                   linewidths=0, depthshade=False)
    elif dim == 2:
        ax = fig.add_axes(rect)
        ax.scatter(xyz[order, 0], xyz[order, 1], s=size, c=rgba[order], linewidths=0,
                   rasterized=rasterize)
    else:
        ax = fig.add_axes(rect)
        y, rows = strip_rows(labels, np.unique(labels))
        ax.scatter(xyz[order, 0], y[order], s=size, c=rgba[order], linewidths=0,
                   rasterized=rasterize)
    _style_axes(ax, dim)
    if dim == 1:
        if rows is None:
            ax.set_ylim(-0.05, 1.05)
            ax.set_yticks([])
        else:
            ax.set_ylim(-0.6, len(rows) - 0.4)
            ax.set_yticks(np.arange(len(rows)))
            ax.set_yticklabels([short_name(m.class_names[c], 20) for c in rows], fontsize=7)
            ax.tick_params(axis="y", length=0, pad=2)
            ax.invert_yaxis()
    if raster:
        pts = xyz[:, :2] if dim == 2 else np.column_stack([xyz[:, 0], y])
        draw_image(ax, pts, fc, point_size=size, dpi=fig.dpi,
                   aspect="equal" if dim == 2 else "auto")
    if title:
        ax.set_title(title, fontsize=title_fontsize, pad=4)
    return ax


def _plot_points(m: MapData) -> np.ndarray:
    """(N, 2) positions of a 1-D or 2-D map's points in its axes' data
    coordinates, as :func:`_draw_map` draws them."""
    xyz = normalize_coords(m.coords)
    if m.dim == 2:
        return xyz
    labels = np.asarray(m.labels)
    return np.column_stack([xyz[:, 0], strip_rows(labels, np.unique(labels))[0]])


# ---------------------------------------------------------------- one map

def build_map_figure(m: MapData, params: RenderParams, *, pyplot: bool = False):
    """The matplotlib Figure of one map (not saved). The points are one
    ``PathCollection`` on ``fig.axes[0]``, drawn in :func:`draw_order` with
    face colours from :func:`class_colors` of ``m.class_names``; past
    :data:`raster.RASTER_MIN_POINTS` points (2-D and 1-D maps), one density
    image there instead (:func:`raster.draw_image`). With ``params.legend``
    and more than :data:`NAMES_PAST_CLASSES` classes, the class names are
    written at the class centres (:func:`add_class_names`) instead of a legend.

    ``params.color_by`` other than ``label`` colours by that field of
    ``m.fields`` instead: ``prediction`` with the class colours, ``correct``
    with two colours and a legend with counts, ``confidence`` and ``suspect``
    with a colormap and a colour bar at the right; the title then ends with
    the colour's meaning."""
    params = params.validate()
    m.check()
    colors = class_colors(m.class_names, m.counts())
    fc = map_field_colors(m, params.color_by, colors)
    present = np.unique(np.asarray(m.labels))
    names = m.dim != 3 and names_on_map(fc, params.legend)
    entries, legend_title = _field_legend(fc, params.legend and not names)
    ncol, legend_w = _legend_layout(entries)
    if legend_title:
        legend_w = max(legend_w, len(legend_title) * (_LEGEND_FONT + 1) * 0.6 / 72 + 0.25)
    width = MAP_SIDE_IN + (legend_w + 0.1 if entries else 0.0)
    if fc.kind == "continuous":
        width += CBAR_BAND_IN
    fig = _new_figure(width, MAP_SIDE_IN, params.dpi, pyplot)

    left_in, axes_w = _LEFT_IN, _AXES_IN
    if m.dim == 1 and len(present) <= 40:  # room for the class names of the rows
        longest = max(len(short_name(m.class_names[c], 20)) for c in present)
        label_in = min(longest * 0.06 + 0.15, 1.4)
        left_in, axes_w = label_in, _AXES_IN - (label_in - _LEFT_IN)
    rect = (left_in / width, _BOTTOM_IN / MAP_SIDE_IN, axes_w / width, _AXES_IN / MAP_SIDE_IN)
    size = float(params.point_size) if params.point_size else auto_point_size(m.n)
    ax = _draw_map(fig, rect, m, fc, size, rasterize=m.n > 5000, title=None, title_fontsize=0)
    if names:
        shown, total = add_class_names(ax, _plot_points(m), fc, m.class_names, _NAME_PT)
        what = "predicted classes" if fc.field == "prediction" else "classes"
        fig.text((left_in + axes_w) / width, 0.5 * _BOTTOM_IN / MAP_SIDE_IN,
                 f"names of {shown:,} of {total:,} {what} at their centres"
                 + (" (the others would overlap)" if shown < total else ""),
                 ha="right", va="center", fontsize=_LEGEND_FONT - 1, color="#555555",
                 gid="vistsne-names-note")

    text, drop = with_field_phrase(m.title, params.color_by)
    title = fit_map_title(text, params.dpi, axes_w, drop)
    fig.text((left_in + axes_w / 2) / width, 1 - _TITLE_TOP_IN / MAP_SIDE_IN, title.text,
             ha="center", va="top", fontsize=title.fontsize)
    right = _LEFT_IN + _AXES_IN
    if fc.kind == "continuous":
        bar_h = 0.6 * _AXES_IN
        _add_colorbar(fig, ((right + _CBAR_GAP_IN) / width,
                            (_BOTTOM_IN + (_AXES_IN - bar_h) / 2) / MAP_SIDE_IN,
                            _CBAR_W_IN / width, bar_h / MAP_SIDE_IN), fc.field, fc.cmap)
    if entries:
        _add_legend(fig, entries, (right + 0.15) / width, ncol, legend_title)
    return fig


def _check_mosaic(m: MapData) -> None:
    if m.dim != 2:
        raise RenderError(f"a mosaic needs a 2-D map but {m.name} has {m.dim} dimension(s)",
                          "embed with 2 dimensions or drop --mosaic")
    if m.thumbnails is None:
        raise RenderError(f"map {m.name} has no thumbnails for a mosaic",
                          "extract features with thumbnails or drop --mosaic")


def _render_one(m: MapData, out: Path, params: RenderParams, keep_open: bool):
    m.check()
    if params.mosaic:
        _check_mosaic(m)  # before writing anything
    paths: list[Path] = []
    fig = None
    if params.static_formats or keep_open:
        fig = build_map_figure(m, params, pyplot=keep_open)
        for fmt in params.static_formats:
            paths.append(save_figure(fig, out / f"{m.name}.{fmt}", fmt, params.dpi))
    if params.mosaic:
        paths.append(render_mosaic(m, out / f"{m.name}_mosaic.png", replace(params, show=False)))
    return paths, fig


def render_map(m: MapData, out_dir, params: RenderParams) -> list[Path]:
    """Write ``<out_dir>/<m.name>.<fmt>`` for each static format in
    ``params.formats`` (html excluded: see :func:`render_html`) and, with
    ``params.mosaic``, ``<m.name>_mosaic.png``. Returns the paths written.
    With ``params.show`` and a display, also opens the figure (blocking)."""
    params = params.validate()
    out = check_out_dir(out_dir)
    showing = _showing(params)
    paths, fig = _render_one(m, out, params, keep_open=showing)
    if showing and fig is not None:
        import matplotlib.pyplot as plt
        plt.show()
        plt.close(fig)
    return paths


def render_maps(maps: Sequence[MapData], out_dir, params: RenderParams, *,
                progress: bool = True) -> list[Path]:
    """:func:`render_map` for many maps with a progress bar; with
    ``params.show`` and a display, all windows open together at the end."""
    params = params.validate()
    out = check_out_dir(out_dir)
    showing = _showing(params)
    paths: list[Path] = []
    figs = []
    with Progress(len(maps), "render", unit="map", enabled=progress and len(maps) > 1) as bar:
        for m in maps:
            written, fig = _render_one(m, out, params, keep_open=showing)
            paths.extend(written)
            if showing and fig is not None:
                figs.append(fig)
            bar.update()
    if figs:
        import matplotlib.pyplot as plt
        plt.show()
        for fig in figs:
            plt.close(fig)
    return paths


# ---------------------------------------------------------------- sweep sheet

def _sheet_grid(grid, row_labels, col_labels):
    rows = [list(r) for r in grid]
    if not rows:
        raise RenderError("sweep sheet has no rows", "pass at least one map")
    ncols = max(len(r) for r in rows)
    rows = [r + [None] * (ncols - len(r)) for r in rows]
    maps = [m for r in rows for m in r if m is not None]
    if not maps:
        raise RenderError("sweep sheet has no maps (all cells empty)", "pass at least one map")
    row_labels = list(row_labels) if row_labels else []
    col_labels = list(col_labels) if col_labels else []
    if row_labels and len(row_labels) != len(rows):
        raise RenderError(f"sweep sheet has {len(rows)} rows but {len(row_labels)} row labels",
                          "pass one label per row or none")
    if col_labels and len(col_labels) != ncols:
        raise RenderError(f"sweep sheet has {ncols} columns but {len(col_labels)} column labels",
                          "pass one label per column or none")
    first = list(maps[0].class_names)
    for m in maps:
        m.check()
        if list(m.class_names) != first:
            raise RenderError(f"sweep sheet panels {maps[0].name} and {m.name} have different "
                              "class lists", "put only maps of one dataset in a sheet")
    return rows, maps, row_labels, col_labels


def build_sheet_figure(grid: Sequence[Sequence[MapData | None]], row_labels: Sequence[str],
                       col_labels: Sequence[str], params: RenderParams, *, title: str = "",
                       pyplot: bool = False):
    """The Figure of a sweep sheet: ``grid[r][c]`` is drawn in row r, column
    c (None: an empty cell). Each drawn panel is one axes (in row-major
    order in ``fig.axes``) titled with its caption; colours come from the
    shared class list; one legend at the right when ``params.legend``."""
    params = params.validate()
    rows, maps, row_labels, col_labels = _sheet_grid(grid, row_labels, col_labels)
    nrows, ncols = len(rows), len(rows[0])
    class_names = maps[0].class_names
    if any(m.class_counts is not None for m in maps):
        counts = next(m.class_counts for m in maps if m.class_counts is not None)
    else:
        counts = np.sum([m.counts() for m in maps], axis=0)
    colors = class_colors(class_names, counts)
    fcs = {id(m): map_field_colors(m, params.color_by, colors) for m in maps}
    kind = fcs[id(maps[0])].kind
    legend_title = None
    if kind == "categorical" and params.color_by == "prediction":
        values = np.concatenate([np.asarray(m.field("prediction")) for m in maps])
        entries = _legend_entries(colors, class_names, np.unique(values)) if params.legend else []
        legend_title = "predicted class" if entries else None
    elif kind == "categorical":
        present = np.unique(np.concatenate([np.asarray(m.labels) for m in maps]))
        entries = _legend_entries(colors, class_names, present) if params.legend else []
    else:
        entries = []
    if kind == "categorical" and params.legend and maps[0].dim != 3:
        values = np.unique(np.concatenate([fcs[id(m)].index for m in maps]))
        names = values.shape[0] > NAMES_PAST_CLASSES
        if names:  # class names in each panel instead of a legend
            entries, legend_title = [], None
    else:
        names = False
    if kind == "binary":
        entries, legend_title = _sheet_correct_entries([fcs[id(m)] for m in maps])
    ncol, legend_w = _legend_layout(entries)
    if legend_title:
        legend_w = max(legend_w, len(legend_title) * (_LEGEND_FONT + 1) * 0.6 / 72 + 0.25)

    dpi = params.dpi
    caption_fits = _fit_common([m.caption or m.title for m in maps], MatplotlibMeasure(dpi),
                               PANEL_IN * dpi, None, _CAPTION_PT_RANGE, 3)
    captions = {id(m): f for m, f in zip(maps, caption_fits)}
    caption_in = 0.12 + max(len(f.lines) * f.fontsize * 1.3 / 72 for f in caption_fits)
    left = _ROW_LABEL_IN if row_labels else 0.15
    top = (_SHEET_TITLE_IN if title else 0.1) + (_COL_LABEL_IN if col_labels else 0.0)
    cell_h = caption_in + PANEL_IN
    grid_w = left + ncols * PANEL_IN + (ncols - 1) * _GAP_IN
    width = grid_w + 0.15 + (legend_w + 0.1 if entries else 0.0)
    if kind == "continuous":
        width += CBAR_BAND_IN
    height = top + nrows * cell_h + (nrows - 1) * _GAP_IN + 0.15
    bold = MatplotlibMeasure(dpi, fontweight="bold")
    row_fits = _fit_common([str(t) for t in row_labels], bold, PANEL_IN * dpi,
                           (_ROW_LABEL_IN - 0.1) * dpi, _LABEL_PT, 2)
    col_fits = _fit_common([str(t) for t in col_labels], bold, PANEL_IN * dpi,
                           (_COL_LABEL_IN - 0.04) * dpi, _LABEL_PT, 2)
    fig = _new_figure(width, height, params.dpi, pyplot)

    for r, row in enumerate(rows):
        y_top = height - top - r * (cell_h + _GAP_IN)   # top of the caption band
        y0 = y_top - cell_h                              # bottom of the panel
        if row_labels:
            fig.text(0.2 / width, (y0 + PANEL_IN / 2) / height, row_fits[r].text,
                     rotation=90, ha="center", va="center", fontsize=row_fits[r].fontsize,
                     fontweight="bold", multialignment="center")
        for c, m in enumerate(row):
            x0 = left + c * (PANEL_IN + _GAP_IN)
            if r == 0 and col_labels:
                fig.text((x0 + PANEL_IN / 2) / width, (height - top + _COL_LABEL_IN / 2) / height,
                         col_fits[c].text, ha="center", va="center",
                         fontsize=col_fits[c].fontsize, fontweight="bold",
                         multialignment="center")
            if m is None:
                continue
            rect = (x0 / width, y0 / height, PANEL_IN / width, PANEL_IN / height)
            size = float(params.point_size) if params.point_size else auto_point_size(m.n, PANEL_IN)
            ax = _draw_map(fig, rect, m, fcs[id(m)], size, rasterize=m.n > 5000,
                           title=captions[id(m)].text, title_fontsize=captions[id(m)].fontsize)
            if names:
                add_class_names(ax, _plot_points(m), fcs[id(m)], class_names, _SHEET_NAME_PT)
    if title:
        text, drop = with_field_phrase(title, params.color_by)
        head = fit_text(text, MatplotlibMeasure(dpi), (grid_w - 0.2) * dpi,
                        (_SHEET_TITLE_IN - _TITLE_TOP_IN - 0.02) * dpi, fontsize=_TITLE_PT[0],
                        min_fontsize=_TITLE_PT[1], max_lines=2, drop_order=drop)
        fig.text(0.5 * grid_w / width, 1 - _TITLE_TOP_IN / height, head.text, ha="center",
                 va="top", fontsize=head.fontsize)
    right = left + ncols * PANEL_IN + (ncols - 1) * _GAP_IN
    if kind == "continuous":
        bar_h = min(0.6 * (height - top), 4.0)
        _add_colorbar(fig, ((right + _CBAR_GAP_IN) / width, (height - top - bar_h) / 2 / height
                            + 0.075 / height, _CBAR_W_IN / width, bar_h / height),
                      params.color_by, fcs[id(maps[0])].cmap)
    if entries:
        _add_legend(fig, entries, (right + 0.2) / width, ncol, legend_title)
    return fig


def _sheet_correct_entries(fcs: Sequence[FieldColors]):
    """The legend of a sheet coloured by ``correct``: the counts when every
    panel has the same ones, else their range (``correct (498-512)``)."""
    wrong = [int(fc.index.sum()) for fc in fcs]
    right = [fc.index.shape[0] - w for fc, w in zip(fcs, wrong)]

    def span(v):
        return f"{min(v)}" if min(v) == max(v) else f"{min(v)}\u2013{max(v)}"
    return [(f"correct ({span(right)})", fcs[0].table[0]),
            (f"wrong ({span(wrong)})", fcs[0].table[1])], "top-1 prediction"


def figure_path(out_path, params: RenderParams, what: str) -> tuple[Path, str]:
    """``(path, format)`` of a figure: the format is the path's suffix (png, svg or pdf); with no
    suffix, the first static format of ``params`` (png when none) is added. The folder is checked."""
    out_path = Path(out_path)
    fmt = out_path.suffix.lower().lstrip(".")
    if not fmt:
        fmt = (params.static_formats or ("png",))[0]
        out_path = out_path.with_name(f"{out_path.name}.{fmt}")
    if fmt not in STATIC_FORMATS:
        raise RenderError(f"{what} cannot be written as {fmt!r}",
                          f"use a file name ending in {', '.join('.' + f for f in STATIC_FORMATS)}")
    check_out_dir(out_path.parent)
    return out_path, fmt


def render_sheet(grid: Sequence[Sequence[MapData | None]], row_labels: Sequence[str],
                 col_labels: Sequence[str], out_path, params: RenderParams, *,
                 title: str = "") -> Path:
    """Write one image with a grid of panels (e.g. rows = stages, columns =
    perplexities). The format is ``out_path``'s suffix (png, svg or pdf); with
    no suffix, the first static format of ``params`` (png when none)."""
    params = params.validate()
    out_path, fmt = figure_path(out_path, params, "a sweep sheet")
    showing = _showing(params)
    fig = build_sheet_figure(grid, row_labels, col_labels, params, title=title, pyplot=showing)
    save_figure(fig, out_path, fmt, params.dpi)
    if showing:
        import matplotlib.pyplot as plt
        plt.show()
        plt.close(fig)
    return out_path


# ---------------------------------------------------------------- mosaic

def _mosaic_legend(entries, measure, font_px: int, avail_h: int):
    """Layout of the mosaic legend: (label size px, row height, swatch side,
    rows per column, column width, total width with the gaps either side)."""
    label_px = max(10, int(round(font_px * 0.8)))
    row_h = int(round(label_px * 1.6))
    swatch = int(round(label_px * 0.9))
    per_col = max(1, min(len(entries), avail_h // row_h))
    ncol = math.ceil(len(entries) / per_col)
    per_col = math.ceil(len(entries) / ncol)
    text_w = max(measure(label, label_px)[0] for label, _ in entries)
    col_w = int(math.ceil(swatch + label_px * 0.5 + text_w + label_px))
    return label_px, row_h, swatch, per_col, col_w, font_px + ncol * col_w + font_px // 2


def build_mosaic_image(m: MapData, max_points: int = 3000, *, legend: bool = False,
                       color_by: str = "label"):
    """The mosaic as a PIL image: each thumbnail (at most ``max_points``, see
    :func:`mosaic_subsample`) pasted at its map position in a frame of its
    class colour, under a title band; with ``legend``, the class colours at
    the right (the classes of the map, as in :func:`build_map_figure`). Text
    is in matplotlib's font (:func:`common.pil_font`) and the title is laid
    out as the figures' titles are (:func:`titles.fit_text`). ``color_by``:
    the frames show that colour field instead (see :func:`build_map_figure`;
    the legend of a continuous field shows five steps of its colormap)."""
    from PIL import Image, ImageDraw
    m.check()
    _check_mosaic(m)
    if int(max_points) < 1:
        raise RenderError(f"mosaic max_points must be at least 1, not {max_points}",
                          "pass e.g. 3000")
    sel = mosaic_subsample(m.n, int(max_points))
    thumbs = as_rgb_uint8(np.asarray(m.thumbnails)[sel])
    th, tw = thumbs.shape[1:3]
    scale = max(1, math.ceil(32 / max(th, tw)))  # tiny images (8x8 digits) are upscaled
    th, tw = th * scale, tw * scale
    side = int(np.clip(math.sqrt(len(sel)) * max(th, tw) * 1.6, 600, 6000))
    font_px = int(np.clip(side / 80, 14, 48))
    margin = font_px // 2
    frame = 2
    measure = pil_measure(ImageDraw.Draw(Image.new("RGB", (1, 1))), pil_font)
    head_text, drop = with_field_phrase(m.title, color_by)
    head = fit_text(head_text, measure, side - 2 * margin, None, fontsize=font_px,
                    min_fontsize=max(10, int(round(font_px * 0.7))), max_lines=3, step=1,
                    drop_order=drop)
    head_px = int(round(head.fontsize))
    title_h = (int(math.ceil(measure(head.text, head_px)[1])) if head.text else 0) + 2 * margin

    colors = class_colors(m.class_names, m.counts())
    if color_by == "label":
        fc = None
        entries = _legend_entries(colors, m.class_names, np.unique(np.asarray(m.labels))) \
            if legend else []
    else:
        fc = field_colors(color_by, m.color_field(color_by)[sel], colors, m.class_names)
        entries = _field_legend(fc, legend)[0]
        if fc.kind == "continuous" and legend:
            entries = [(f"{color_by} {v:.2f}", fc.table[int(round(v * (len(fc.table) - 1)))])
                       for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    legend_w = 0
    if entries:
        label_px, row_h, swatch, per_col, col_w, legend_w = _mosaic_legend(
            entries, measure, font_px, side - 2 * margin)
    canvas = Image.new("RGB", (side + legend_w, side + title_h), "white")
    draw = ImageDraw.Draw(canvas)
    if head.text:
        draw.multiline_text((margin, margin), head.text, fill="black", font=pil_font(head_px),
                            spacing=int(round(head_px * 0.25)))
    if entries:
        font = pil_font(label_px)
        y_first = title_h + (side - per_col * row_h) // 2
        for k, (label, color) in enumerate(entries):
            col, row = divmod(k, per_col)
            x = side + font_px + col * col_w  # a gap after the thumbnails
            y = y_first + row * row_h + row_h // 2  # middle of the row
            draw.rectangle((x, y - swatch // 2, x + swatch - 1, y - swatch // 2 + swatch - 1),
                           fill=color)
            box = draw.textbbox((0, 0), label, font=font)
            draw.text((x + swatch + label_px // 2, y - (box[1] + box[3]) // 2), label,
                      fill="black", font=font)

    xy = normalize_coords(np.asarray(m.coords)[sel])
    labels = np.asarray(m.labels)[sel]
    pad = max(th, tw) / 2 + frame + 2
    cx = pad + xy[:, 0] * (side - 2 * pad)
    cy = title_h + pad + (1.0 - xy[:, 1]) * (side - 2 * pad)
    for i in (draw_order(labels, colors) if fc is None else fc.order):
        im = Image.fromarray(thumbs[i] if scale == 1 else
                             np.repeat(np.repeat(thumbs[i], scale, 0), scale, 1))
        x0 = int(round(cx[i] - tw / 2))
        y0 = int(round(cy[i] - th / 2))
        color = (colors[labels[i]] or OTHER_COLOR) if fc is None else fc.table[fc.index[i]]
        draw.rectangle((x0 - frame, y0 - frame, x0 + tw + frame - 1, y0 + th + frame - 1),
                       fill=color)
        canvas.paste(im, (x0, y0))
    return canvas


def render_mosaic(m: MapData, out_path, params: RenderParams, max_points: int = 3000) -> Path:
    """Write the thumbnail mosaic of a 2-D map as a PNG at ``out_path``."""
    params = params.validate()
    out_path = Path(out_path)
    check_out_dir(out_path.parent)
    image = build_mosaic_image(m, max_points, legend=params.legend, color_by=params.color_by)
    atomic_write(out_path, lambda tmp: image.save(tmp, format="PNG", optimize=False))
    if _showing(params):
        import matplotlib.pyplot as plt
        w, h = image.size
        fig = plt.figure(figsize=(8, 8 * h / w))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(np.asarray(image))
        ax.set_axis_off()
        plt.show()
        plt.close(fig)
    return out_path
