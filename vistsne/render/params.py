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

#: What points can be coloured by: the true class, or one of the per-row
#: fields of :attr:`MapData.fields` (stored by extract, never computed here).
COLOR_FIELDS = ("label", "prediction", "correct", "confidence", "suspect")
#: fields drawn with the fixed class colours (:func:`colors.class_colors`)
CATEGORICAL_FIELDS = ("label", "prediction")
#: fields in [0, 1], drawn with a perceptual colormap and a colour bar
CONTINUOUS_FIELDS = ("confidence", "suspect")
#: the per-row fields MapData.fields may hold, and the kind of values of each
FIELD_KINDS = {"prediction": "int", "confidence": "float", "correct": "bool", "suspect": "float"}
#: what each colour means, in words (colour bar and legend titles, the page's switch)
FIELD_TITLES = {
    "label": "true class",
    "prediction": "predicted class (top-1)",
    "correct": "top-1 prediction correct or wrong",
    "confidence": "top-1 confidence (softmax)",
    "suspect": "suspect score (likely label error)",
}

#: How to get a field that an entry lacks: the fix half of :func:`missing_field_error`.
#: The store-level caller can pass its own command (``hints.extract_command_for(meta)``)
#: in place of ``vistsne extract CONFIG ...``.
FIELD_HINT = "re-extract with `{command}`"
FIELD_HINT_COMMAND = "vistsne extract CONFIG ..."
#: Why a map may lack each field: the first half of :func:`missing_field_error`.
FIELD_MISSING_WHY = {
    "prediction": "this entry has no predictions: its model has no classification head, "
                  "or it was extracted before predictions were stored",
    "correct": "this entry has no predictions to compare with the labels: its model has no "
               "classification head, or it was extracted before predictions were stored",
    "confidence": "this entry has no prediction confidences: its model has no classification "
                  "head, or it was extracted before predictions were stored",
    "suspect": "this entry has no suspect scores: its model has no classification head, "
               "or it was extracted before predictions were stored",
}


def missing_field_error(field: str, name: str | None = None,
                        command: str | None = None) -> RenderError:
    """The one-line error for colouring by a field that a map does not have:
    why (:data:`FIELD_MISSING_WHY`) and how to get it (:data:`FIELD_HINT`
    with ``command``, default :data:`FIELD_HINT_COMMAND`)."""
    what = f"map {name} cannot be coloured by {field}" if name else f"cannot colour by {field}"
    why = FIELD_MISSING_WHY.get(field, f"this entry has no {field} values")
    return RenderError(f"{what}: {why}",
                       FIELD_HINT.format(command=command or FIELD_HINT_COMMAND))


def color_suffix(params: "RenderParams") -> str:
    """The file-name token of a colour field: ``""`` for ``label``, else
    ``"_by-<field>"`` (``m_pre_logits_p30_s0_by-confidence.png``)."""
    field = params.validate().color_by
    return "" if field == "label" else f"_by-{field}"


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
    exists (files are written either way). ``color_by``: what the points'
    colour shows, one of :data:`COLOR_FIELDS` (the map must have the field:
    :meth:`MapData.color_field`); file names of non-label colourings carry
    :func:`color_suffix`.
    """

    formats: tuple[str, ...] = ("png",)
    legend: bool = False
    point_size: float | None = None
    dpi: int = 100
    mosaic: bool = False
    show: bool = False
    color_by: str = "label"

    def validate(self) -> "RenderParams":
        if self.color_by not in COLOR_FIELDS:
            raise RenderError(f"unknown colour field {self.color_by!r}",
                              f"choose from {', '.join(COLOR_FIELDS)}")
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

    Optional per-row data (None when the entry does not have it):

    - ``fields``: extra colour fields, any of ``prediction`` (int class
      index, top-1), ``confidence`` (float in [0, 1], top-1 softmax),
      ``correct`` (bool, prediction == label) and ``suspect`` (float in
      [0, 1], a likely-label-error score); see :data:`FIELD_KINDS`.
    - ``paths``: each row's file path relative to the dataset root (or a
      dataset id), shown and searched on the page and exported with a selection.
    - ``neighbors``: (N, k) int, k <= 10: indices into this map's rows of
      each row's nearest neighbours in feature space (shown for a pinned point).
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
    fields: dict[str, np.ndarray] | None = None
    paths: Sequence[str] | None = None
    neighbors: np.ndarray | None = None

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
        self._check_fields(n, k)
        if self.paths is not None:
            if isinstance(self.paths, (str, bytes)) or len(self.paths) != n:
                got = "a string" if isinstance(self.paths, (str, bytes)) else len(self.paths)
                raise RenderError(f"map {name}: paths has {got} entries",
                                  f"expected a list of {n} strings or None")
            if not all(isinstance(p, str) for p in self.paths):
                raise RenderError(f"map {name}: paths must be strings",
                                  "pass each row's path relative to the dataset root")
        if self.neighbors is not None:
            nb = np.asarray(self.neighbors)
            if nb.ndim != 2 or nb.shape[0] != n or not 1 <= nb.shape[1] <= 10 \
                    or not np.issubdtype(nb.dtype, np.integer):
                raise RenderError(f"map {name}: neighbors have shape {nb.shape} and type {nb.dtype}",
                                  f"expected ({n}, k) integers with k from 1 to 10, or None")
            if nb.min() < 0 or nb.max() >= n:
                raise RenderError(f"map {name}: neighbors run from {nb.min()} to {nb.max()} "
                                  f"but the map has {n} rows",
                                  "pass indices into this map's rows")
        return self

    def _check_fields(self, n: int, k: int) -> None:
        if self.fields is None:
            return
        name = self.name
        if not isinstance(self.fields, dict):
            raise RenderError(f"map {name}: fields must be a dict of arrays, not "
                              f"{type(self.fields).__name__}", "pass {name: array} or None")
        for key, values in self.fields.items():
            kind = FIELD_KINDS.get(key)
            if kind is None:
                raise RenderError(f"map {name}: unknown field {key!r}",
                                  f"use any of {', '.join(FIELD_KINDS)}")
            v = np.asarray(values)
            if v.shape != (n,):
                raise RenderError(f"map {name}: field {key} has shape {v.shape}",
                                  f"expected ({n},), one value per row")
            if kind == "int":
                if not np.issubdtype(v.dtype, np.integer) or v.dtype == bool:
                    raise RenderError(f"map {name}: field {key} has type {v.dtype}",
                                      "expected integer class indices")
                if v.min() < 0 or v.max() >= k:
                    raise RenderError(f"map {name}: field {key} runs from {v.min()} to "
                                      f"{v.max()} but there are {k} class names",
                                      "pass class indices into the entry's class list")
            elif kind == "bool":
                if v.dtype != bool:
                    raise RenderError(f"map {name}: field {key} has type {v.dtype}",
                                      "expected booleans")
            else:
                if not np.issubdtype(v.dtype, np.floating):
                    raise RenderError(f"map {name}: field {key} has type {v.dtype}",
                                      "expected floats in [0, 1]")
                if not np.isfinite(v).all() or v.min() < 0 or v.max() > 1:
                    raise RenderError(f"map {name}: field {key} has values outside [0, 1] "
                                      "(or NaN)", "pass floats in [0, 1]")

    def field(self, name: str) -> np.ndarray | None:
        """The values of a colour field (``label``: the labels), or None
        when the map does not have it. ``correct`` falls back to
        ``prediction == labels`` when only predictions were given."""
        if name == "label":
            return np.asarray(self.labels)
        fields = self.fields or {}
        if name in fields:
            return np.asarray(fields[name])
        if name == "correct" and "prediction" in fields:
            return np.asarray(fields["prediction"]) == np.asarray(self.labels)
        return None

    def available_fields(self) -> tuple[str, ...]:
        """The colour fields this map has, in :data:`COLOR_FIELDS` order."""
        return tuple(f for f in COLOR_FIELDS if self.field(f) is not None)

    def color_field(self, name: str, command: str | None = None) -> np.ndarray:
        """The values of colour field ``name``; a one-line RenderError when
        the name is unknown or the map does not have it (see
        :func:`missing_field_error`; ``command`` is the extract command its
        hint names)."""
        if name not in COLOR_FIELDS:
            raise RenderError(f"unknown colour field {name!r}",
                              f"choose from {', '.join(COLOR_FIELDS)}")
        values = self.field(name)
        if values is None:
            raise missing_field_error(name, self.name, command)
        return values

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
