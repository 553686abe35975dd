"""Parameters and inputs of the render stage, validated in one place."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RenderError

FORMATS = ("png", "svg", "pdf", "html")
STATIC_FORMATS = ("png", "svg", "pdf")


def _format_list() -> str:
    return ", ".join(FORMATS)


@dataclass(frozen=True)
class RenderParams:
    """How figures are drawn and written.

    ``formats``: any of :data:`FORMATS`; ``html`` is written by
    :func:`render_html` (one page for all maps), the others by
    :func:`render_map`. ``point_size``: matplotlib marker area in points^2
    (None: automatic from the number of points). ``mosaic``: also write the
    thumbnail mosaic of each 2-D map. ``show``: open windows where a display
    exists (files are written either way).
    """

    formats: tuple[str, ...] = ("png",)
    legend: bool = False
    point_size: float | None = None
    dpi: int = 100
    mosaic: bool = False
    show: bool = False

    def validate(self) -> "RenderParams":
        if isinstance(self.formats, str) or not isinstance(self.formats, (tuple, list)):
            raise RenderError(f"formats must be a tuple of names, not {self.formats!r}",
                              f"choose from {_format_list()}")
        if not self.formats:
            raise RenderError("no output format given", f"choose from {_format_list()}")
        for fmt in self.formats:
            if fmt not in FORMATS:
                raise RenderError(f"unknown format {fmt!r}", f"choose from {_format_list()}")
        if isinstance(self.dpi, bool) or not isinstance(self.dpi, (int, np.integer)) \
                or not 10 <= int(self.dpi) <= 2400:
            raise RenderError(f"dpi must be a whole number from 10 to 2400, not {self.dpi!r}",
                              "pass e.g. --dpi 100")
        if self.point_size is not None:
            try:
                ok = math.isfinite(float(self.point_size)) and float(self.point_size) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise RenderError(f"point size must be a positive number, not {self.point_size!r}",
                                  "pass e.g. --point-size 4, or leave it out for automatic")
        return self

    @classmethod
    def parse_formats(cls, text: str) -> tuple[str, ...]:
        """``"png,svg"`` -> ``("png", "svg")`` (case, spaces, dots and repeats forgiven)."""
        out: list[str] = []
        for part in str(text).replace(";", ",").replace(" ", ",").split(","):
            name = part.strip().lower().lstrip(".")
            if not name:
                continue
            if name not in FORMATS:
                raise RenderError(f"unknown format {name!r}", f"choose from {_format_list()}")
            if name not in out:
                out.append(name)
        if not out:
            raise RenderError("no output format given", f"choose from {_format_list()}")
        return tuple(out)

    @property
    def static_formats(self) -> tuple[str, ...]:
        return tuple(f for f in self.formats if f in STATIC_FORMATS)


@dataclass
class MapData:
    """One embedding, ready to draw.

    ``class_counts`` (optional, not in the original sketch): the entry-wide
    number of points per class; only matters past 60 classes, where it
    decides which classes get colours. When None, the counts of this map's
    labels are used.
    """

    name: str
    coords: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    dataset_index: np.ndarray
    thumbnails: np.ndarray | None
    title: str
    caption: str = ""
    info: dict = field(default_factory=dict)
    class_counts: Sequence[int] | None = None

    @property
    def n(self) -> int:
        return int(np.asarray(self.coords).shape[0])

    @property
    def dim(self) -> int:
        return int(np.asarray(self.coords).shape[1])

    def check(self) -> "MapData":
        """Raise RenderError (one line) when the arrays do not fit together."""
        name = self.name
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise RenderError(f"map name {name!r} cannot be a file name",
                              "use letters, digits, '_' and '-'")
        c = np.asarray(self.coords)
        if c.ndim != 2 or not 1 <= c.shape[1] <= 3:
            raise RenderError(f"map {name}: coordinates have shape {c.shape}",
                              "expected (N, d) with d 1, 2 or 3")
        n = c.shape[0]
        if n == 0:
            raise RenderError(f"map {name} has no points", "embed at least one point")
        if not np.isfinite(c).all():
            raise RenderError(f"map {name} has NaN or infinite coordinates",
                              "re-run the embedding")
        lab = np.asarray(self.labels)
        if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
            raise RenderError(f"map {name}: labels have shape {lab.shape} and type {lab.dtype}",
                              f"expected ({n},) integers")
        k = len(self.class_names)
        if k == 0:
            raise RenderError(f"map {name} has an empty class list",
                              "pass the entry's class names")
        if lab.min() < 0 or lab.max() >= k:
            raise RenderError(f"map {name}: labels run from {lab.min()} to {lab.max()} "
                              f"but there are {k} class names",
                              "pass the entry's full class list")
        idx = np.asarray(self.dataset_index)
        if idx.shape != (n,):
            raise RenderError(f"map {name}: dataset_index has shape {idx.shape}",
                              f"expected ({n},)")
        if self.thumbnails is not None:
            t = np.asarray(self.thumbnails)
            if t.shape[0] != n or t.ndim not in (3, 4) or (t.ndim == 4 and t.shape[3] not in (1, 3, 4)):
                raise RenderError(f"map {name}: thumbnails have shape {t.shape}",
                                  f"expected ({n}, h, w, 3) uint8 or None")
        if self.class_counts is not None and len(self.class_counts) != k:
            raise RenderError(f"map {name}: {len(self.class_counts)} class counts "
                              f"for {k} classes", "pass one count per class or None")
        return self

    def counts(self) -> np.ndarray:
        if self.class_counts is not None:
            return np.asarray(self.class_counts)
        return np.bincount(np.asarray(self.labels), minlength=len(self.class_names))


def normalize_coords(coords: np.ndarray) -> np.ndarray:
    """Each axis to [0, 1] by ``(x - min) / (max - min)``; a flat axis -> 0.5."""
    c = np.asarray(coords, dtype=np.float64)
    lo = c.min(axis=0)
    span = c.max(axis=0) - lo
    flat = span <= 0
    out = (c - lo) / np.where(flat, 1.0, span)
    out[:, flat] = 0.5
    return out


def check_out_dir(out_dir) -> Path:
    """Create ``out_dir`` (with parents) and make sure files can be written there."""
    path = Path(out_dir).expanduser()
    fix = "pass --out with a folder you can write to"
    try:
        path.mkdir(parents=True, exist_ok=True)
        # os.access lies for root and on some network mounts: really try
        fd, probe = tempfile.mkstemp(prefix=".vistsne-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise RenderError(f"output folder {str(path)!r} is not writable ({why})", fix) from None
    return path


def show_available() -> bool:
    """Whether an interactive display exists for matplotlib windows."""
    backend = os.environ.get("MPLBACKEND", "").lower()
    if backend in ("agg", "pdf", "svg", "ps", "pgf", "cairo", "template"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
