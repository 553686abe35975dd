"""A small progress bar on stderr, with a rate, that every long step uses.

Stage code takes an optional :class:`Progress`; the CLI decides whether bars
are shown. On a terminal the bar redraws in place; otherwise (logs, CI) it
prints a line at most every few seconds and one at the end.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str, unit: str = "it", *, enabled: bool = True,
                 stream=None, min_interval: float = 0.2):
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.n = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._interval = min_interval if self._tty else 5.0
        self._closed = False

    def __enter__(self) -> "Progress":
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.n / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def close(self) -> None:
        if not self._closed:
            self._draw(force=True, final=True)
            self._closed = True

    def _draw(self, force: bool = False, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        elapsed = now - self.start
        rate = self.rate
        if self.total:
            frac = min(self.n / self.total, 1.0)
            width = 24
            filled = int(frac * width)
            bar = "#" * filled + "-" * (width - filled)
            eta = (self.total - self.n) / rate if rate > 0 and not final else 0.0
            line = (f"{self.desc} [{bar}] {self.n}/{self.total} {self.unit} "
                    f"{rate:.1f} {self.unit}/s {elapsed:.1f}s elapsed"
                    + (f", eta {eta:.0f}s" if eta else ""))
        else:
            line = f"{self.desc} {self.n} {self.unit} {rate:.1f} {self.unit}/s {elapsed:.1f}s"
        if self._tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        elif final or force or self.n:
            self.stream.write(line + "\n")
        self.stream.flush()


def _seconds(s: float) -> str:
    return f"{s:.0f}s" if s < 90 else f"{s / 60:.1f} min"


class Phase:
    """Start and end lines of a step that cannot report its own progress (a library call).

    ``with Phase("kNN graph (hnsw, 100000 rows x 50 dims)", estimate_s=40):`` writes
    ``... started, about 40s expected`` and, when the step ends, ``... done in 38.2s``
    (or ``failed after``). ``estimate_s`` None leaves the estimate out.
    """

    def __init__(self, desc: str, estimate_s: float | None = None, *, enabled: bool = True, stream=None):
        self.desc = desc
        self.estimate_s = estimate_s
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = 0.0
        self.seconds = 0.0

    def _write(self, line: str) -> None:
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()

    def __enter__(self) -> "Phase":
        self.start = time.perf_counter()
        est = f", about {_seconds(self.estimate_s)} expected" if self.estimate_s else ""
        self._write(f"{self.desc}: started{est}")
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self._write(f"{self.desc}: {'done in' if exc_type is None else 'failed after'} {self.seconds:.1f}s")


def progress(total: int, desc: str, unit: str = "it", enabled: bool = True) -> Progress:
    return Progress(total, desc, unit, enabled=enabled)
