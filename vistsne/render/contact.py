"""The contact sheet: a grid of captioned thumbnails (issue 17's suspects).

Each thumbnail is enlarged with nearest-neighbour sampling to a readable
size (:data:`TILE_PX`, by a whole factor; never shrunk), with its caption of
a few short lines under it (label, neighbour majority, prediction and
confidence, as the caller writes them), at most :data:`MAX_COLUMNS` per row,
under a title. Text is in matplotlib's font and laid out by measured extents
(:mod:`titles`): every caption line is drawn at one common size, the largest
at which all of them fit whole; a line too wide even at the smallest size is
cut short with an ellipsis. Pillow is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import RenderError
from .common import as_rgb_uint8, atomic_write, pil_font
from .params import RenderParams, check_out_dir
from .titles import ELLIPSIS, fit_text, pil_measure

TILE_PX = 96          # thumbnails are enlarged to at least this side (whole factors)
MAX_COLUMNS = 10
MAX_LINES = 4
CELL_PX = 150         # the narrowest a cell is (captions are wider than thumbnails)
_CAPTION_PX = (12, 10)  # caption font: the size it starts at and the floor
_TITLE_PX = (18, 12)
_GAP = 10
_MARGIN = 14


def _check(thumbnails, captions) -> tuple[np.ndarray, list[list[str]]]:
    t = np.asarray(thumbnails)
    if t.ndim not in (3, 4) or t.shape[0] == 0 or (t.ndim == 4 and t.shape[3] not in (1, 3, 4)):
        raise RenderError(f"contact sheet thumbnails have shape {t.shape}",
                          "expected (N, h, w, 3) uint8 with N >= 1")
    caps = list(captions)
    if len(caps) != t.shape[0]:
        raise RenderError(f"contact sheet has {t.shape[0]} thumbnails but {len(caps)} captions",
                          "pass one caption (a list of lines) per thumbnail")
    out = []
    for i, c in enumerate(caps):
        lines = [c] if isinstance(c, str) else list(c)
        if len(lines) > MAX_LINES or not all(isinstance(x, str) for x in lines):
            raise RenderError(f"contact sheet caption {i} is {c!r}",
                              f"pass a list of at most {MAX_LINES} short strings")
        out.append([" ".join(x.split()) for x in lines])
    return t, out


def _fit_lines(lines: Sequence[str], measure, width: float) -> tuple[int, list[str]]:
    """(font px, the lines as drawn): the largest size at which every line
    that fits whole at some size does, and the others cut short at that size."""
    def whole_at(line: str) -> int | None:
        for size in range(_CAPTION_PX[0], _CAPTION_PX[1] - 1, -1):
            if measure(line, size)[0] <= width:
                return size
        return None
    sizes = [whole_at(x) for x in lines if x]
    size = min([s for s in sizes if s is not None] or [_CAPTION_PX[1]])
    out = []
    for line in lines:
        if not line or measure(line, size)[0] <= width:
            out.append(line)
            continue
        lo, hi = 0, len(line)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if measure(line[:mid].rstrip() + ELLIPSIS, size)[0] <= width:
                lo = mid
            else:
                hi = mid - 1
        out.append(line[:lo].rstrip() + ELLIPSIS if lo else ELLIPSIS)
    return size, out


#: The sheet's note when the entry stores no thumbnails (``--thumb-size 0``): grey tiles instead.
NO_THUMBNAILS = "no thumbnails stored (extracted with --thumb-size 0): extract with --thumb-size 48 to see the images"


def build_contact_sheet(thumbnails: np.ndarray | None, captions: Sequence[Sequence[str]],
                        title: str = "", *, tile: int = TILE_PX,
                        columns: int = MAX_COLUMNS):
    """The contact sheet as a PIL image (see the module doc); thumbnail ``i``
    in row ``i // columns``, column ``i % columns``. ``thumbnails`` None (an
    entry extracted with ``--thumb-size 0``): grey tiles, and the title says
    why and how to get the images."""
    from PIL import Image, ImageDraw

    if thumbnails is None:
        thumbnails = np.full((max(1, len(list(captions))), 8, 8, 3), 225, np.uint8)
        title = f"{title} | {NO_THUMBNAILS}" if title else NO_THUMBNAILS
    t, caps = _check(thumbnails, captions)
    thumbs = as_rgb_uint8(t)
    n, th, tw = thumbs.shape[:3]
    scale = max(1, math.ceil(int(tile) / max(th, tw)))
    th, tw = th * scale, tw * scale
    cols = max(1, min(int(columns), MAX_COLUMNS, n))
    rows = math.ceil(n / cols)
    cell_w = max(tw + 8, CELL_PX)
    measure = pil_measure(ImageDraw.Draw(Image.new("RGB", (1, 1))), pil_font)

    flat = [line for c in caps for line in c]
    size, drawn = _fit_lines(flat, measure, cell_w - 4)
    line_h = int(math.ceil(size * 1.25))
    n_lines = max((len(c) for c in caps), default=0)
    cap_h = n_lines * line_h + (4 if n_lines else 0)
    cell_h = th + 2 + cap_h

    grid_w = cols * cell_w + (cols - 1) * _GAP
    width = grid_w + 2 * _MARGIN
    head = fit_text(title, measure, grid_w, None, fontsize=_TITLE_PX[0],
                    min_fontsize=_TITLE_PX[1], max_lines=2, step=1) if title else None
    head_px = int(round(head.fontsize)) if head else 0
    head_h = (int(math.ceil(measure(head.text, head_px)[1])) + _MARGIN) if head and head.text \
        else 0
    height = _MARGIN + head_h + rows * cell_h + (rows - 1) * _GAP + _MARGIN

    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if head_h:
        draw.multiline_text((_MARGIN, _MARGIN), head.text, fill="black", font=pil_font(head_px),
                            spacing=int(round(head_px * 0.25)))
    font = pil_font(size)
    k = 0
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = _MARGIN + c * (cell_w + _GAP)
        y0 = _MARGIN + head_h + r * (cell_h + _GAP)
        ix = x0 + (cell_w - tw) // 2
        im = Image.fromarray(np.repeat(np.repeat(thumbs[i], scale, 0), scale, 1)
                             if scale > 1 else thumbs[i])
        draw.rectangle((ix - 1, y0, ix + tw, y0 + th + 1), outline="#bbbbbb")
        canvas.paste(im, (ix, y0 + 1))
        y = y0 + th + 2 + 4
        for j in range(len(caps[i])):
            line = drawn[k]
            k += 1
            if line:
                w = measure(line, size)[0]
                draw.text((x0 + (cell_w - w) / 2, y), line, font=font,
                          fill="black" if j == 0 else "#444444")
            y += line_h
    return canvas


def render_contact_sheet(thumbnails: np.ndarray | None, captions: Sequence[Sequence[str]], out_path,
                         params: RenderParams, title: str = "") -> Path:
    """Write the contact sheet (:func:`build_contact_sheet`) as a PNG at
    ``out_path`` (``.png`` added when it has no suffix), atomically."""
    params = params.validate()
    out_path = Path(out_path)
    if not out_path.suffix:
        out_path = out_path.with_name(out_path.name + ".png")
    if out_path.suffix.lower() != ".png":
        raise RenderError(f"a contact sheet cannot be written as {out_path.suffix!r}",
                          "use a file name ending in .png")
    check_out_dir(out_path.parent)
    image = build_contact_sheet(thumbnails, captions, title)
    dpi = int(params.dpi)
    return atomic_write(out_path, lambda tmp: image.save(tmp, format="PNG", dpi=(dpi, dpi)))
