"""One fixed colour per class position, shared by every figure of an entry.

The palette is a fixed table (not computed at run time), so a class list
always gets the same colours, whatever library versions draw them: class
``i`` of an entry's class list is ``PALETTE[i]`` in every map, sheet, mosaic
and HTML page. It was generated once by ``python -m vistsne.render.palette``
(see that module): a greedy farthest-point choice over the sRGB colours with
CIELAB L* from 20 to 80 (no very light colours, which white swallows), with
the distance of two colours the smallest of their CIEDE2000, CAM02-UCS and
CIE76 differences, starting away from white and from the grey of "other
classes". Measured (CIEDE2000, smallest / mean pairwise difference): the
first 20 colours 21.0 / 45.3, the first 50 14.3 / 42.7, all 60 13.1 / 41.8;
the palette it replaced had 14.2 / 46.0, 5.5 / 45.8 and 5.5 / 45.0. The
glasbey palettes (the glasbey package, colorcet's glasbey variants) measured
against it reach CAM02-UCS minima up to 3 units higher (16.9 among 50
colours, against 14.0 here) but have CIEDE2000 minima of only 5.7 to 12.5
among 50 or 60 colours, and most of them include very light colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import RenderError

PALETTE: tuple[str, ...] = (
    "#0000ae", "#513c00", "#ce0b47", "#007277", "#269800", "#be5cff",
    "#c97700", "#2192ff", "#d4c900", "#5c4c62", "#00deae", "#ff82a8",
    "#7d7762", "#670b00", "#00d4fa", "#005c26", "#d9b8ff", "#2b5ca8",
    "#ae0098", "#8282a3", "#213636", "#ffb38d", "#ff512b", "#41e400",
    "#729d98", "#984700", "#67003c", "#9db377", "#8d8800", "#a36782",
    "#6d31ff", "#fa16b3", "#b8928d", "#008d67", "#a3c9ff", "#7d4c47",
    "#ffae26", "#5c6200", "#213157", "#412b26", "#0092b3", "#8d8dfa",
    "#825ca8", "#5c2b77", "#4c5c4c", "#ae6d51", "#ff82ef", "#e9b8ce",
    "#263616", "#b30000", "#d96267", "#5c6772", "#b88db8", "#8d6716",
    "#c39d62", "#00c3be", "#3cbe62", "#98c9b3", "#5c7d47", "#98365c",
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


# ---------------------------------------------------------------- colour fields

#: ``correct``: Okabe and Ito's blue and vermillion, apart for every colour
#: vision (CIEDE2000 45 in trichromats; also apart under the deutan and
#: protan simulations), both clear on white
CORRECT_COLOR = "#0072b2"
WRONG_COLOR = "#d55e00"
#: the colormap of each continuous field, its interesting end dark (which
#: reads on white, where viridis's light yellow end recedes): low confidence
#: and high suspect scores stand out
FIELD_CMAPS = {"confidence": "viridis", "suspect": "viridis_r"}
CMAP_STEPS = 256


def cmap_table(name: str, steps: int = CMAP_STEPS) -> list[str]:
    """``steps`` colours (``"#rrggbb"``) of matplotlib colormap ``name`` from 0 to 1."""
    from matplotlib import colormaps
    cmap = colormaps[name]
    rgb = np.asarray(cmap(np.linspace(0.0, 1.0, steps)))[:, :3]
    return ["#%02x%02x%02x" % tuple(int(round(c * 255)) for c in row) for row in rgb]


class FieldColors:
    """The colours of one colour field over the points of a map.

    ``table``: colours (``"#rrggbb"``); ``index``: (N,) int, each point's row
    of the table; ``alpha``: (N,) float; ``order``: the order to draw the
    points in (the ones that matter last, on top); ``kind``: ``categorical``,
    ``binary`` or ``continuous``; ``entries``: legend (label, colour) pairs
    for categorical and binary fields; ``cmap``: the colormap of a continuous
    field.
    """

    def __init__(self, field, kind, table, index, alpha, order, entries=(), cmap=None):
        self.field = field
        self.kind = kind
        self.table = list(table)
        self.index = np.asarray(index, dtype=np.int64)
        self.alpha = np.asarray(alpha, dtype=float)
        self.order = np.asarray(order)
        self.entries = list(entries)
        self.cmap = cmap

    def rgba(self) -> np.ndarray:
        """(N, 4) float RGBA of every point."""
        table = np.array([hex_to_rgb(c) for c in self.table], dtype=float)
        return np.concatenate([table[self.index], self.alpha[:, None]], axis=1)


def field_colors(field: str, values: np.ndarray, class_cols: Sequence[str | None],
                 class_names: Sequence[str] = (), *, alpha: float = 1.0,
                 other_alpha: float = 0.5, counts_in_legend: bool = True) -> FieldColors:
    """Colours of ``values`` of colour field ``field`` (see :data:`params.COLOR_FIELDS`).

    ``label`` and ``prediction`` take the fixed class colours ``class_cols``
    (:func:`class_colors`; None: grey at ``other_alpha``), ``correct`` two
    colours (wrong drawn on top, legend ``correct (512)`` / ``wrong (28)``),
    ``confidence`` and ``suspect`` their :data:`FIELD_CMAPS` colormap.
    """
    values = np.asarray(values)
    n = values.shape[0]
    perm = np.random.default_rng(0).permutation(n)
    if field in ("label", "prediction"):
        table = [c if c is not None else OTHER_COLOR for c in class_cols]
        grey = np.array([c is None for c in class_cols], dtype=bool)
        idx = values.astype(np.int64)
        a = np.where(grey[idx], other_alpha, alpha)
        g = grey[idx[perm]]
        order = np.concatenate([perm[g], perm[~g]])
        present = np.unique(idx)
        entries = [(str(class_names[c]) if len(class_names) else str(c), class_cols[c])
                   for c in present if class_cols[c] is not None]
        if grey[present].any():
            entries.append((OTHER_LABEL, OTHER_COLOR))
        return FieldColors(field, "categorical", table, idx, a, order, entries)
    if field == "correct":
        wrong = ~values.astype(bool)
        idx = wrong.astype(np.int64)
        w = wrong[perm]
        order = np.concatenate([perm[~w], perm[w]])
        n_wrong = int(wrong.sum())
        labels = (f"correct ({n - n_wrong})", f"wrong ({n_wrong})") if counts_in_legend \
            else ("correct", "wrong")
        entries = [(labels[0], CORRECT_COLOR), (labels[1], WRONG_COLOR)]
        return FieldColors(field, "binary", [CORRECT_COLOR, WRONG_COLOR], idx,
                           np.full(n, alpha), order, entries)
    cmap = FIELD_CMAPS[field]
    v = np.clip(values.astype(np.float64), 0.0, 1.0)
    idx = np.rint(v * (CMAP_STEPS - 1)).astype(np.int64)
    # the interesting end on top: low confidence, high suspect scores
    key = -v if field == "confidence" else v
    order = perm[np.argsort(key[perm], kind="stable")]
    return FieldColors(field, "continuous", cmap_table(cmap), idx, np.full(n, alpha), order,
                       cmap=cmap)
