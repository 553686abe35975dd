"""Maps of many points drawn as one image: a density-aware blend of colours.

Past :data:`RASTER_MIN_POINTS` points, a static map's points are not one
matplotlib ``scatter`` (slow, and an unreadable heap of markers at a million
points) but one image placed on the same axes with ``imshow``. Each pixel's
colour is the weighted mean of the colours of the points that land in it
(categorical and ``correct`` fields: the RGB of their colours; continuous
fields: the mean value, looked up in the field's colormap), and its opacity
grows with the log of its point count, from :data:`MIN_ALPHA` for one point
to 1 for the densest tenth of the pixels, so that dense cores and lone outliers both show
against white. A point's weight is its alpha (grey "other" classes count
half, as they are drawn half-transparent in a scatter).

The aggregation is four ``np.bincount`` calls over the points (count and
the weighted sums of R, G and B, or of the value), so time and memory grow
with N plus the pixels, not with the number of classes or colours.
Measured against datashader 0.19.1 (``benchmarks/scale_render.py``; README,
"Figures at any N"), it was faster in a fresh process, where datashader
pays its numba compilation, and needed a fraction of the memory; so this
module has no dependency beyond numpy. :data:`IMAGE_BACKENDS` lets the
benchmark plug in datashader in its own process.

numpy only at module level; matplotlib is imported inside functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: Past this many points a 2-D or 1-D map is drawn as a density image
#: instead of a scatter (measured: ``benchmarks/scale_render.py``). Tests
#: lower it to draw small maps rasterised.
RASTER_MIN_POINTS = 200_000
#: opacity of the lightest non-empty pixel (one point)
MIN_ALPHA = 0.5
#: pixels at least as dense as this quantile of the non-empty ones are opaque
SATURATE_QUANTILE = 0.9

#: name -> function(xy, fc, extent, shape, spread) -> (H, W, 4) uint8 RGBA,
#: row 0 at the bottom (``origin="lower"``); "numpy" is :func:`density_image`
IMAGE_BACKENDS: dict[str, Callable] = {}
RASTER_BACKEND = "numpy"


def use_raster(n: int, dim: int) -> bool:
    """Whether a map of ``n`` points in ``dim`` dimensions is drawn as an
    image (2-D and 1-D maps past :data:`RASTER_MIN_POINTS`; 3-D never)."""
    return dim in (1, 2) and int(n) > RASTER_MIN_POINTS


def spread_px(point_size: float, dpi: float) -> int:
    """How many pixels each point reaches beyond its own pixel: the radius
    of a scatter marker of area ``point_size`` (points^2) at ``dpi``, less
    half a pixel, rounded (0 at the automatic sizes of large maps at 100 dpi)."""
    diameter = math.sqrt(max(float(point_size), 0.0)) * float(dpi) / 72.0
    return max(0, int(round((diameter - 1.0) / 2.0)))


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of each (2r+1) x (2r+1) window of the last two axes (zeros outside)."""
    if r <= 0:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(r + 1, r), (r + 1, r)]
    c = np.pad(a, pad).cumsum(axis=-1).cumsum(axis=-2)
    k = 2 * r + 1
    return c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]


def pixel_index(xy: np.ndarray, extent, shape) -> np.ndarray:
    """Flat pixel index (row-major, row 0 at ``extent``'s bottom) of each
    point of ``xy`` (N, 2) in an image of ``shape`` (H, W) covering
    ``extent`` = (x0, x1, y0, y1); points outside go to the nearest edge."""
    h, w = int(shape[0]), int(shape[1])
    x0, x1, y0, y1 = (float(v) for v in extent)
    ix = np.floor((xy[:, 0] - x0) * (w / (x1 - x0))).astype(np.int64)
    iy = np.floor((xy[:, 1] - y0) * (h / (y1 - y0))).astype(np.int64)
    np.clip(ix, 0, w - 1, out=ix)
    np.clip(iy, 0, h - 1, out=iy)
    iy *= w
    iy += ix
    return iy


def shade(density: np.ndarray, rgb: np.ndarray, min_alpha: float = MIN_ALPHA) -> np.ndarray:
    """(H, W, 4) uint8 RGBA from a (H, W) weight per pixel and (H, W, 3)
    colours in [0, 1]: opacity ``min_alpha`` at the lightest non-empty pixel,
    1 from the :data:`SATURATE_QUANTILE` of the non-empty pixels' weights up,
    log-scaled between; empty pixels transparent."""
    d = np.asarray(density, dtype=np.float64)
    filled = d > 0
    out = np.zeros(d.shape + (4,), dtype=np.uint8)
    if not filled.any():
        return out
    values = d[filled]
    lo = float(values.min())
    hi = float(np.quantile(values, SATURATE_QUANTILE))
    if hi > lo:
        t = np.clip(np.log(np.where(filled, d, lo) / lo) / math.log(hi / lo), 0.0, 1.0)
    else:
        t = np.ones_like(d)
    alpha = np.where(filled, min_alpha + (1.0 - min_alpha) * t, 0.0)
    out[..., :3] = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    out[..., 3] = np.rint(alpha * 255.0).astype(np.uint8)
    return out


def _table_rgb(table) -> np.ndarray:
    from .colors import hex_to_rgb
    return np.array([hex_to_rgb(c) for c in table], dtype=np.float64).reshape(-1, 3)


def density_image(xy: np.ndarray, fc, extent, shape, spread: int = 0) -> np.ndarray:
    """The (H, W, 4) uint8 RGBA image of points ``xy`` (N, 2) coloured by
    ``fc`` (:class:`colors.FieldColors`), row 0 at the bottom of ``extent``
    (x0, x1, y0, y1). ``spread``: each point also counts in the pixels up to
    that many pixels away (a square), as a marker larger than a pixel would."""
    h, w = int(shape[0]), int(shape[1])
    pix = pixel_index(np.asarray(xy, dtype=np.float64), extent, (h, w))
    weight = np.asarray(fc.alpha, dtype=np.float64)
    size = h * w
    density = np.bincount(pix, weights=weight, minlength=size)
    table = _table_rgb(fc.table)
    if fc.kind == "continuous":
        # the mean value of the pixel, in the field's colormap
        steps = len(table) - 1
        value = np.bincount(pix, weights=weight * (fc.index / steps), minlength=size)
        sums = np.stack([density, value]).reshape(2, h, w)
        sums = _box_sum(sums, spread)
        dens = sums[0]
        mean = np.divide(sums[1], dens, out=np.zeros_like(dens), where=dens > 0)
        rgb = table[np.rint(mean * steps).astype(np.int64)]
        return shade(dens, rgb)
    colour = table[fc.index]
    sums = np.empty((4, size))
    sums[0] = density
    for c in range(3):
        sums[c + 1] = np.bincount(pix, weights=weight * colour[:, c], minlength=size)
    sums = _box_sum(sums.reshape(4, h, w), spread)
    dens = sums[0]
    rgb = np.divide(sums[1:], dens, out=np.zeros_like(sums[1:]), where=dens > 0)
    return shade(dens, np.moveaxis(rgb, 0, -1))


IMAGE_BACKENDS["numpy"] = density_image


def draw_image(ax, xy: np.ndarray, fc, *, point_size: float, dpi: float, aspect: str = "equal"):
    """Draw points ``xy`` (N, 2, in ``ax``'s data coordinates) coloured by
    ``fc`` as one image over ``ax``'s current limits, at one image pixel per
    screen pixel of the axes; the limits stay as they were. Returns the
    ``AxesImage``."""
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    extent = (min(xlim), max(xlim), min(ylim), max(ylim))
    fig = ax.get_figure()
    pos = ax.get_position()
    w = max(1, int(round(pos.width * fig.get_figwidth() * fig.dpi)))
    h = max(1, int(round(pos.height * fig.get_figheight() * fig.dpi)))
    image = IMAGE_BACKENDS[RASTER_BACKEND](xy, fc, extent, (h, w), spread_px(point_size, dpi))
    art = ax.imshow(image, extent=extent, origin="lower", interpolation="nearest",
                    aspect=aspect, zorder=1)
    art.set_gid("vistsne-density")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return art
