"""Titles and captions that fit their box, measured, not guessed.

A title is a list of phrases joined by ``" | "`` (``"config | checkpoint |
pre_logits | perplexity 30, seed 0 | 10-NN acc 0.505"``). :func:`fit_text`
lays one out in a box of a given width and height:

1. lines break only between phrases, never inside one; of the layouts with
   the fewest lines, the one whose longest line is shortest is taken;
2. when that does not fit at the starting font size, the size shrinks step
   by step down to a floor;
3. when it does not fit at the floor either, a phrase too wide for a line by
   itself is cut short with "\u2026", then the least important phrases are left
   out, as few as needed (by default the last ones first; a "\u2026" phrase
   marks the place), and as a last resort one phrase is shown alone.

Sizes are measured by a ``measure(text, fontsize) -> (width, height)``
callable in the units of the box: :class:`MatplotlibMeasure` measures with
matplotlib's Agg renderer (the text as it will be drawn, in pixels of the
figure's dpi); the mosaic measures with Pillow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEPARATOR = " | "
ELLIPSIS = "\u2026"
# Lines are measured as the PNG draws them (hinted, at the figure's dpi); PDF
# and SVG text uses unhinted metrics, a little different: lines are kept this
# much narrower than their box, to leave room for that.
WIDTH_MARGIN = 0.95  # measured: unhinted widths are up to 4% wider (6 pt at 100 dpi)

Measure = Callable[[str, float], tuple[float, float]]


def split_phrases(text) -> list[str]:
    """The phrases of ``text``: the parts between ``" | "`` separators (a bar
    with white space on both sides), each with its white space collapsed."""
    parts = re.split(r"\s+\|\s+", " ".join(str(text).split()))
    return [p for p in (p.strip() for p in parts) if p]


@dataclass(frozen=True)
class FittedText:
    """A laid-out title: ``text`` (its lines joined by newlines) at ``fontsize``.

    ``dropped``: the phrases left out, most important last; ``cut``: whether
    the phrase left was cut short; ``fits``: False only when not even one
    character and an ellipsis fit.
    """

    text: str
    fontsize: float
    lines: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    cut: bool = False
    fits: bool = True


def font_sizes(start: float, floor: float, step: float = 0.5) -> list[float]:
    """``start``, ``start - step``, ... down to ``floor`` (both included)."""
    sizes, s = [], float(start)
    while s > floor + 1e-9:
        sizes.append(round(s, 3))
        s -= step
    sizes.append(float(floor))
    return sizes


class _Widths:
    """Estimated widths of lines of phrases: each phrase and the separator
    measured once, at one reference size, then added up and scaled to the
    size asked for (text width is nearly proportional to the font size).
    Chosen lines are measured for real before they are used (and chosen
    again, for a narrower estimate, if one is too wide after all)."""

    def __init__(self, measure: Measure, ref_size: float):
        self.measure = measure
        self.ref = float(ref_size)
        self._phrase: dict[str, float] = {}
        self.sep = max(measure("x" + SEPARATOR + "x", self.ref)[0]
                       - 2 * measure("x", self.ref)[0], 0.0)

    def phrase(self, p: str) -> float:
        if p not in self._phrase:
            self._phrase[p] = self.measure(p, self.ref)[0]
        return self._phrase[p]

    def line(self, phrases: Sequence[str], size: float) -> float:
        if len(phrases) == 1:  # exact: a phrase alone must fit or be cut
            return self.measure(phrases[0], size)[0]
        total = sum(self.phrase(p) for p in phrases) + self.sep * (len(phrases) - 1)
        return total * size / self.ref


class _Layout:
    """Line breaking of one phrase list at one font size."""

    def __init__(self, phrases: Sequence[str], widths: _Widths, size: float):
        self.phrases = list(phrases)
        self.widths = widths
        self.size = size
        self._w: dict[tuple[int, int], float] = {}

    def line(self, i: int, j: int) -> str:
        return SEPARATOR.join(self.phrases[i:j])

    def width(self, i: int, j: int) -> float:
        key = (i, j)
        if key not in self._w:
            self._w[key] = self.widths.line(self.phrases[i:j], self.size)
        return self._w[key]

    def break_lines(self, width: float, max_lines: int) -> list[str] | None:
        """The lines of the fewest-lines layout whose longest line is the
        shortest, or None when more than ``max_lines`` lines (or one phrase
        wider than ``width``) would be needed. Every line is measured."""
        limit = width
        for _ in range(3):
            lines = self._break(limit, max_lines)
            if lines is None:
                return None
            over = max(self.widths.measure(line, self.size)[0] for line in lines) - width
            if over <= 0:
                return lines
            limit -= over  # the estimate was short: ask for narrower lines
        return None

    def _break(self, width: float, max_lines: int) -> list[str] | None:
        n = len(self.phrases)
        if any(self.width(i, i + 1) > width for i in range(n)):
            return None
        # fewest lines: greedy filling is optimal for that
        count, i = 0, 0
        while i < n:
            j = i + 1
            while j < n and self.width(i, j + 1) <= width:
                j += 1
            count, i = count + 1, j
        if count > max_lines:
            return None
        # among layouts with `count` lines, minimise the longest line (n is small)
        best: dict[tuple[int, int], tuple[float, list[int]]] = {}

        def solve(i: int, lines: int) -> tuple[float, list[int]]:
            if i == n:
                return (0.0, []) if lines == 0 else (float("inf"), [])
            if lines == 0:
                return float("inf"), []
            key = (i, lines)
            if key not in best:
                result: tuple[float, list[int]] = (float("inf"), [])
                for j in range(i + 1, n + 1):
                    w = self.width(i, j)
                    if w > width:
                        break
                    rest, cuts = solve(j, lines - 1)
                    longest = max(w, rest)
                    if longest < result[0]:
                        result = (longest, [j] + cuts)
                best[key] = result
            return best[key]

        _, cuts = solve(0, count)
        starts = [0] + cuts[:-1]
        return [self.line(a, b) for a, b in zip(starts, cuts)]


def _drop_order(n: int, drop_order: Sequence[int] | None, gone: set[int]) -> list[int]:
    """Indices in the order they are left out: ``drop_order`` (valid ones),
    then the others from the last to the first, all but one (the phrase
    kept to the end); none of ``gone`` (already left out)."""
    first = [] if drop_order is None else [int(i) for i in drop_order if 0 <= int(i) < n]
    order = list(dict.fromkeys(first + list(range(n - 1, -1, -1))))
    order = [i for i in order if i not in gone]
    return order[:-1]


def _with_ellipses(phrases: Sequence[str], dropped: set[int]) -> list[str]:
    """The kept phrases, with one ellipsis phrase where one or more were dropped."""
    out: list[str] = []
    for i, p in enumerate(phrases):
        if i in dropped:
            if not out or out[-1] != ELLIPSIS:
                out.append(ELLIPSIS)
        else:
            out.append(p)
    return out


def fit_text(text, measure: Measure, width: float, height: float | None = None, *,
             fontsize: float, min_fontsize: float, max_lines: int = 3, step: float = 0.5,
             drop_order: Sequence[int] | None = None) -> FittedText:
    """Lay ``text`` out to fit ``width`` x ``height`` (see the module doc).

    ``height`` None: only ``max_lines`` limits the lines. ``drop_order``:
    indices of the least important phrases, left out first in this order;
    the others follow from the last to the first (by default: the last
    phrase goes first and the first one is kept to the end).
    """
    phrases = split_phrases(text)
    if not phrases:
        return FittedText("", float(fontsize), ())
    width = float(width) * WIDTH_MARGIN
    sizes = font_sizes(fontsize, min_fontsize, step)

    widths = _Widths(measure, sizes[0])

    def attempt(items: Sequence[str], size: float) -> list[str] | None:
        lines = _Layout(items, widths, size).break_lines(width, max_lines)
        if lines is None:
            return None
        if height is not None and measure("\n".join(lines), size)[1] > height:
            return None
        return lines

    for size in sizes:
        lines = attempt(phrases, size)
        if lines is not None:
            return FittedText("\n".join(lines), size, tuple(lines))

    floor = sizes[-1]

    def cut(phrase: str) -> str:
        """The longest start of ``phrase`` that fits one line with an ellipsis."""
        if measure(phrase, floor)[0] <= width:
            return phrase
        lo, hi = 0, len(phrase)
        while lo < hi:  # bisection
            mid = (lo + hi + 1) // 2
            if measure(phrase[:mid].rstrip() + ELLIPSIS, floor)[0] <= width:
                lo = mid
            else:
                hi = mid - 1
        return phrase[:lo].rstrip() + ELLIPSIS if lo else ""

    # a phrase wider than the whole line is cut short (it is unreadable whole)
    short = [cut(p) for p in phrases]
    was_cut = short != phrases
    gone = {i for i, p in enumerate(short) if not p}
    order = _drop_order(len(phrases), drop_order, gone)

    def dropping(k: int):
        dropped = gone | set(order[:k])
        if len(dropped) == len(phrases):
            return None, dropped
        return attempt(_with_ellipses(short, dropped), floor), dropped

    # the fewest phrases left out that make it fit (bisection: leaving out
    # more never makes a layout wider or taller)
    lines, dropped = dropping(0)
    if lines is None and order:
        best = dropping(len(order))
        if best[0] is not None:
            lo, hi = 1, len(order)
            while lo < hi:
                mid = (lo + hi) // 2
                trial = dropping(mid)
                if trial[0] is not None:
                    hi, best = mid, trial
                else:
                    lo = mid + 1
            lines, dropped = best
    if lines is not None:
        return FittedText("\n".join(lines), floor, tuple(lines), cut=was_cut,
                          dropped=tuple(phrases[k] for k in sorted(dropped, reverse=True)))
    # not even one phrase with an ellipsis fits: the one phrase kept to the end, alone
    keep = next((i for i in range(len(phrases)) if i not in gone and i not in order), 0)
    line = short[keep] or ELLIPSIS
    fits = bool(short[keep]) and (height is None or measure(line, floor)[1] <= height)
    return FittedText(line, floor, (line,), cut=True, fits=fits,
                      dropped=tuple(p for i, p in reversed(list(enumerate(phrases))) if i != keep))


class MatplotlibMeasure:
    """``measure(text, fontsize) -> (width, height)`` in pixels at ``dpi``, as
    matplotlib's Agg renderer lays the text out (font properties from
    ``text_props``, e.g. ``fontweight="bold"``; the defaults are those of
    ``Figure.text`` and ``Axes.set_title`` with an explicit font size)."""

    def __init__(self, dpi: float, **text_props):
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.figure import Figure
        from matplotlib.text import Text
        self._renderer = RendererAgg(1, 1, dpi)  # text layout needs no canvas
        self._text = Text(0, 0, "", **text_props)
        self._text.set_figure(Figure(dpi=dpi))
        self._cache: dict[tuple[str, float], tuple[float, float]] = {}

    def __call__(self, text: str, fontsize: float) -> tuple[float, float]:
        key = (text, float(fontsize))
        if key not in self._cache:
            self._text.set_text(text)
            self._text.set_fontsize(fontsize)
            box = self._text.get_window_extent(self._renderer)
            self._cache[key] = (float(box.width), float(box.height))
        return self._cache[key]


def pil_measure(draw, font_for: Callable[[int], object], spacing_frac: float = 0.25) -> Measure:
    """``measure(text, size)`` for Pillow: the bounding box of
    ``draw.multiline_text`` in the font ``font_for(size)`` (sizes in pixels)."""
    def measure(text: str, size: float) -> tuple[float, float]:
        s = max(int(round(size)), 1)
        box = draw.multiline_textbbox((0, 0), text, font=font_for(s),
                                      spacing=int(round(s * spacing_frac)))
        return float(box[2] - min(box[0], 0)), float(box[3] - min(box[1], 0))
    return measure
