"""One fixed colour per class position, shared by every figure of an entry.

The palette is fixed (written out below, not computed from a colormap at run
time), so a class list always gets the same colours, whatever matplotlib
version draws them. The first ten are matplotlib's tab10 with its grey
replaced (grey means "other classes" here); the other fifty were picked
greedily, each as far as possible in CIELAB from those before it, so that all
sixty are mutually distinct (smallest pairwise CIE76 distance about 21) and
far from the grey used for the remaining classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import RenderError

PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#b400c3", "#bcbd22", "#17becf", "#b4e1a5", "#4b5a0f",
    "#004be1", "#f0b478", "#ff0078", "#96f02d", "#00f0a5", "#c3c3ff",
    "#00785a", "#965a00", "#ff8787", "#0087ff", "#a52d5a", "#ff00b4",
    "#ffb400", "#ffb4d2", "#a50f87", "#ff78ff", "#00f069", "#a5e169",
    "#69f0d2", "#a5a55a", "#5ac3ff", "#a578ff", "#a53c2d", "#694b78",
    "#782da5", "#4bb478", "#698700", "#00691e", "#2d4bb4", "#f0784b",
    "#a58700", "#ff4b0f", "#b46987", "#e1a5ff", "#f0d269", "#e13c5a",
    "#2dc30f", "#873ce1", "#78b400", "#f06996", "#ffa54b", "#ffb4a5",
    "#c3e100", "#0087a5", "#8796f0", "#b4784b", "#5a874b", "#b43c00",
)
MAX_COLORED = len(PALETTE)  # 60
OTHER_COLOR = "#bfbfbf"
OTHER_LABEL = "other classes (grey)"


def class_colors(class_names: Sequence[str],
                 counts: Sequence[int] | None = None) -> list[str | None]:
    """Colour (``"#rrggbb"``) for each class of an entry's class list.

    Up to 60 classes, class ``i`` gets ``PALETTE[i]``. Past 60, the 60 largest
    classes by ``counts`` (ties broken by index; the first 60 when ``counts``
    is None) get ``PALETTE[0..59]`` in class-index order and the others get
    ``None`` (drawn in :data:`OTHER_COLOR`). Pass the entry-wide counts, so
    that every map of the entry colours its classes alike.
    """
    k = len(class_names)
    if counts is not None:
        counts = np.asarray(counts).reshape(-1)
        if counts.shape[0] != k:
            raise RenderError(
                f"class counts have {counts.shape[0]} values for {k} classes",
                "pass one count per class of the entry's class list")
    if k <= MAX_COLORED:
        return list(PALETTE[:k])
    if counts is None:
        keep = np.arange(MAX_COLORED)
    else:
        # stable sort on -count keeps ties in index order
        keep = np.sort(np.argsort(-counts.astype(np.int64), kind="stable")[:MAX_COLORED])
    out: list[str | None] = [None] * k
    for pos, cls in enumerate(keep):
        out[int(cls)] = PALETTE[pos]
    return out


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    c = color.lstrip("#")
    return tuple(int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def rgba_table(colors: Sequence[str | None], alpha: float = 1.0,
               other_alpha: float = 0.5) -> np.ndarray:
    """(K, 4) float RGBA rows for :func:`class_colors` output; None -> grey."""
    table = np.empty((len(colors), 4), dtype=float)
    grey = hex_to_rgb(OTHER_COLOR)
    for i, c in enumerate(colors):
        if c is None:
            table[i] = (*grey, other_alpha)
        else:
            table[i] = (*hex_to_rgb(c), alpha)
    return table
