"""The progress bar: lines for logs and CI, an in-place bar on a terminal, nothing when disabled."""

from __future__ import annotations

import io
import re

from vistsne.progress import Progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_non_tty_prints_a_first_and_a_final_line_with_counts():
    out = io.StringIO()
    with Progress(5, "extracting digits", unit="img", stream=out) as bar:
        for _ in range(5):
            bar.update()
    text = out.getvalue()
    assert "\r" not in text and "\033" not in text
    lines = text.splitlines()
    # no redraws in between: a log gets one line at the start and one at the end
    assert len(lines) == 2 and text.endswith("\n")
    assert lines[0].startswith("extracting digits [" + "-" * 24 + "] 0/5 img ")
    assert lines[-1].startswith("extracting digits [" + "#" * 24 + "] 5/5 img ")
    assert re.search(r" 5/5 img \d+\.\d img/s \d+\.\ds elapsed$", lines[-1])  # no eta at the end


def test_non_tty_counts_partial_progress_and_unknown_totals():
    out = io.StringIO()
    with Progress(8, "t-SNE", unit="it", stream=out) as bar:
        bar.update(2)
        bar.update(1)
    bar.close()  # a second close prints nothing more
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "[#########---------------] 3/8 it" in lines[-1]  # 3/8 of 24 columns filled
    out = io.StringIO()
    with Progress(0, "reading", unit="rows", stream=out) as bar:
        bar.update(7)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("reading 0 rows ") and lines[-1].startswith("reading 7 rows ")
    assert "[" not in out.getvalue() and "/7" not in out.getvalue()


def test_disabled_bar_prints_nothing():
    for stream in (io.StringIO(), Terminal()):
        with Progress(3, "extracting", stream=stream, enabled=False) as bar:
            bar.update(3)
        assert stream.getvalue() == ""


def test_tty_redraws_in_place_and_ends_the_line_once():
    out = Terminal()
    with Progress(3, "t-SNE", unit="it", stream=out, min_interval=0.0) as bar:
        for _ in range(3):
            bar.update()
    text = out.getvalue()
    frames = text.split("\r\033[K")
    assert frames[0] == ""  # every draw starts by going back to the line's start
    frames = frames[1:]
    assert [re.search(r"\] (\d)/3 it", f).group(1) for f in frames] == ["0", "1", "2", "3", "3"]
    assert text.count("\n") == 1 and text.endswith("\n") and frames[-1].endswith("\n")
    assert all("\n" not in f for f in frames[:-1])
    assert "eta" in frames[1] and "eta" not in frames[-1]


def test_tty_redraws_at_most_every_min_interval():
    out = Terminal()
    with Progress(1000, "t-SNE", stream=out, min_interval=3600.0) as bar:
        for _ in range(1000):
            bar.update()
    frames = out.getvalue().split("\r\033[K")[1:]
    assert len(frames) == 2  # the first draw and the final one
    assert "1000/1000" in frames[-1]
