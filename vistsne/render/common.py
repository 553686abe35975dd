"""What the static figures and the HTML page share: the axis limits of a
normalised map, short class names, the rows of a 1-D map, thumbnails as RGB
bytes, the font of Pillow images, and atomic file writes.

No heavy imports at module level (matplotlib and Pillow are imported inside
the functions that need them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import RenderError

# Axis limits of a map whose coordinates were normalised to [0, 1]: a small margin.
LIMITS = (-0.03, 1.03)
NAME_CHARS = 32


def short_name(name, limit: int = NAME_CHARS) -> str:
    """``name`` as a string of at most ``limit`` characters (cut with an ellipsis)."""
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def strip_rows(labels: np.ndarray, present: np.ndarray):
    """y positions of a 1-D map: one jittered row per present class (or pure
    jitter past 40 classes) and the classes of the rows (None past 40)."""
    labels = np.asarray(labels)
    jitter = np.random.default_rng(1).uniform(-0.35, 0.35, size=labels.shape[0])
    if len(present) > 40:
        return (jitter + 0.35) / 0.7, None
    row_of = np.full(int(labels.max()) + 1, -1)
    row_of[present] = np.arange(len(present))
    return row_of[labels] + jitter, present


def as_rgb_uint8(thumbnails: np.ndarray) -> np.ndarray:
    """(N, h, w, 3) uint8 from (N, h, w), (N, h, w, 1|3|4), uint8 or float in [0, 1]."""
    t = np.asarray(thumbnails)
    if t.dtype != np.uint8:
        t = np.clip(t.astype(np.float64) * (255.0 if t.max(initial=0) <= 1.0 else 1.0), 0, 255)
        t = t.round().astype(np.uint8)
    if t.ndim == 3:
        t = t[..., None]
    if t.shape[-1] == 1:
        t = np.repeat(t, 3, axis=-1)
    elif t.shape[-1] == 4:
        t = t[..., :3]
    return np.ascontiguousarray(t)


def matplotlib_font_path() -> str | None:
    """The file of the font matplotlib draws text with (DejaVu Sans, which
    matplotlib ships, unless the user's matplotlibrc says otherwise); None
    when matplotlib finds none."""
    from matplotlib import font_manager
    for family in (None, "DejaVu Sans"):
        props = font_manager.FontProperties() if family is None else \
            font_manager.FontProperties(family=family)
        try:
            path = font_manager.findfont(props, fallback_to_default=True)
        except (ValueError, RuntimeError):
            continue
        if path and str(path).lower().endswith((".ttf", ".otf", ".ttc")):
            return str(path)
    return None


def pil_font(size: int):
    """A Pillow font of ``size`` pixels in matplotlib's font, so that mosaics
    read like the other figures (Pillow's own default font where that fails)."""
    from PIL import ImageFont
    path = matplotlib_font_path()
    if path is not None:
        try:
            return ImageFont.truetype(path, int(size))
        except (OSError, ImportError):  # Pillow without FreeType
            pass
    try:
        return ImageFont.load_default(size=int(size))
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """:func:`vistsne.atomic.atomic_write`, with a write failure as one :class:`RenderError` line."""
    from ..atomic import atomic_write as write_atomically

    try:
        return write_atomically(path, write)
    except OSError as e:
        raise RenderError(f"cannot write {str(path)!r} ({e.strerror or type(e).__name__})",
                          "pass --out with a folder you can write to and that has free space") from None
