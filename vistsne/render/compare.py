"""Figures of a comparison: the sheet, the accuracy curve and the animation between aligned maps.

:func:`compare_data` reads what the figures need from the store and the
comparison's result (coordinates of every aligned map, labels, thumbnails,
metrics); the writers take that and write one file each, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import RenderError
from .colors import OTHER_COLOR, class_colors
from .common import as_rgb_uint8, atomic_write

#: Frames between two maps in the animation, and pause frames on each map.
TWEEN_FRAMES = 12
HOLD_FRAMES = 6
FRAME_MS = 60
ANIM_PX = 480


@dataclass
class CompareData:
    stages: list[str]
    labels_of: list[str]
    steps: list[tuple[str, int]]
    class_names: list[str]
    colors: list[str]
    coords: dict                     # stage -> [N x 2 per entry]
    labels: dict                     # stage -> N labels
    indices: dict                    # stage -> N dataset indices (reference entry)
    ids: dict                        # stage -> N sample ids
    metrics: dict                    # stage -> [metrics per entry]
    feature_acc: dict                # stage -> [10-NN accuracy in feature space per entry]
    align: str = "chain"
    thumbs: dict = field(default_factory=dict)  # stage -> N x h x w x 3 uint8 (reference entry)


def compare_data(store, result, steps: Sequence[tuple[str, int]], *, thumbs: bool = True) -> CompareData:
    """Everything the comparison's figures draw, from ``result`` (and thumbnails from the store)."""
    names = list(result.class_names)
    colors = [c or OTHER_COLOR for c in class_colors(names)]
    coords, metrics, feat, indices, th = {}, {}, {}, {}, {}
    ref = result.reference
    for stage, maps in result.maps.items():
        coords[stage] = [np.asarray(m.coords, dtype=np.float64)[:, :2] if m.coords.shape[1] >= 2 else
                         np.column_stack([m.coords[:, 0], np.zeros(len(m.coords))]) for m in maps]
        metrics[stage] = [dict(m.metrics) for m in maps]
        feat[stage] = [float(m.metrics.get("knn_acc_features", float("nan"))) for m in maps]
        indices[stage] = np.asarray(maps[ref].indices)
        if thumbs:
            try:
                th[stage] = as_rgb_uint8(store.read_rows(maps[ref].entry, maps[ref].indices, what="thumb"))
            except Exception:  # noqa: BLE001 - the page then shows no images
                pass
    return CompareData(list(result.maps), list(result.labels_of), [tuple(s) for s in steps], names, colors,
                       coords, dict(result.labels), indices, dict(result.ids), metrics, feat, result.align, th)


def _limits(arrays: Sequence[np.ndarray]) -> tuple[float, float, float, float]:
    allp = np.concatenate(arrays)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    pad = 0.05 * float(max(hi - lo))
    c = (lo + hi) / 2
    half = float(max(hi - lo)) / 2 + pad
    return c[0] - half, c[0] + half, c[1] - half, c[1] + half


def step_label(step: tuple[str, int], label: str) -> str:
    kind, n = step
    return label if kind in ("position", "init") else f"{label} ({kind} {n})"


def write_sheet(data: CompareData, path: Path, *, dpi: int = 100) -> Path:
    """Entries as columns, stages as rows, one colour per class, equal axes (one frame per stage)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols, n_rows = len(data.labels_of), len(data.stages)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.8 * n_rows + 0.6), squeeze=False)
    for r, stage in enumerate(data.stages):
        lims = _limits(data.coords[stage])
        cols = np.array(data.colors, dtype=object)[data.labels[stage]]
        s = max(1.0, min(8.0, 4000 / max(1, len(data.labels[stage]))))
        for c in range(n_cols):
            ax = axes[r][c]
            Y = data.coords[stage][c]
            ax.scatter(Y[:, 0], Y[:, 1], c=list(cols), s=s, linewidths=0)
            ax.set_xlim(lims[0], lims[1])
            ax.set_ylim(lims[2], lims[3])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            m = data.metrics[stage][c]
            ax.set_title(f"{step_label(data.steps[c], data.labels_of[c])}\nmap 10-NN "
                         f"{m.get('knn_acc_map', float('nan')):.2f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(stage, fontsize=9)
    handles = [plt.Line2D([], [], marker="o", ls="", color=data.colors[i], label=n)
               for i, n in enumerate(data.class_names[:20])]
    fig.legend(handles=handles, loc="lower center", ncol=min(10, len(handles)), fontsize=7, frameon=False)
    fig.suptitle(f"aligned t-SNE maps ({data.align})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    try:
        return atomic_write(Path(path), lambda p: fig.savefig(p, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def write_curve(data: CompareData, path: Path, *, dpi: int = 100) -> Path:
    """10-NN accuracy in feature space and in the map, per stage, against epoch/iteration (or position)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {k for k, _ in data.steps if k != "init"} or {"position"}
    x = [n for _, n in data.steps] if len(kinds) == 1 and "position" not in kinds else list(range(len(data.steps)))
    xlabel = next(iter(kinds)) if len(kinds) == 1 and "position" not in kinds else "position"
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, stage in enumerate(data.stages):
        col = f"C{i % 10}"
        ax.plot(x, data.feature_acc[stage], "-o", color=col, label=f"{stage} features")
        ax.plot(x, [m.get("knn_acc_map", float("nan")) for m in data.metrics[stage]], "--s", color=col,
                label=f"{stage} map")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("10-NN accuracy")
    if xlabel == "position":
        ax.set_xticks(x)
        ax.set_xticklabels(data.labels_of, rotation=30, fontsize=7, ha="right")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return atomic_write(Path(path), lambda p: fig.savefig(p, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def animation_frames(data: CompareData, stage: str, *, px: int = ANIM_PX, tween: int = TWEEN_FRAMES,
                     hold: int = HOLD_FRAMES) -> list:
    """PIL images that move the points from each aligned map to the next (smoothstep easing)."""
    from PIL import Image, ImageDraw

    from .common import pil_font

    maps = data.coords[stage]
    x0, x1, y0, y1 = _limits(maps)
    scale = (px - 20) / max(x1 - x0, y1 - y0)
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in data.colors], dtype=np.uint8)
    cols = [tuple(int(v) for v in rgb[l]) for l in data.labels[stage]]
    font = pil_font(14)
    r = 2 if len(cols) > 1500 else 3

    def frame(Y: np.ndarray, title: str):
        im = Image.new("RGB", (px, px + 24), "white")
        d = ImageDraw.Draw(im)
        xs = 10 + (Y[:, 0] - x0) * scale
        ys = 34 + (y1 - Y[:, 1]) * scale
        for x, y, c in zip(xs.tolist(), ys.tolist(), cols):
            d.ellipse((x - r, y - r, x + r, y + r), fill=c)
        d.text((8, 4), title, fill="black", font=font)
        return im

    frames = []
    titles = [step_label(s, l) for s, l in zip(data.steps, data.labels_of)]
    for i, Y in enumerate(maps):
        frames += [frame(Y, f"{stage}: {titles[i]}")] * hold
        if i + 1 < len(maps):
            for t in range(1, tween):
                a = t / tween
                a = a * a * (3 - 2 * a)
                frames.append(frame((1 - a) * Y + a * maps[i + 1], f"{stage}: {titles[i]} -> {titles[i + 1]}"))
    return frames


def write_animation(data: CompareData, stem: Path, *, mp4: bool | None = None) -> list[Path]:
    """``<stem>.gif`` (Pillow) and, when ffmpeg exists (or ``mp4`` is True), ``<stem>.mp4``."""
    import shutil
    import subprocess
    import tempfile

    stage = next((s for s in data.stages if stem.name.endswith(s)), data.stages[0])
    frames = animation_frames(data, stage)
    gif = Path(f"{stem}.gif")
    out = [atomic_write(gif, lambda p: frames[0].save(p, format="GIF", save_all=True, append_images=frames[1:],
                                                       duration=FRAME_MS, loop=0, optimize=False))]
    ffmpeg = shutil.which("ffmpeg")
    if mp4 is True and ffmpeg is None:
        raise RenderError("an MP4 needs ffmpeg, which is not installed", "install ffmpeg, or write the GIF only")
    if ffmpeg and mp4 is not False:
        mp4_path = Path(f"{stem}.mp4")
        with tempfile.TemporaryDirectory() as tmp:
            for i, f in enumerate(frames):
                f.save(Path(tmp) / f"f{i:05d}.png")

            def run(p: Path):
                subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-framerate", str(1000 // FRAME_MS), "-i",
                                str(Path(tmp) / "f%05d.png"), "-pix_fmt", "yuv420p", "-vf",
                                "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-f", "mp4", str(p)], check=True)
            out.append(atomic_write(mp4_path, run))
    return out
