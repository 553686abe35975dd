"""`vistsne compare`: which entries are meant, their features extracted through the cache, then
aligned maps, pair numbers and figures.

Entries come from ``--entry`` keys, from CONFIG with one or more
``--checkpoint`` (a glob is taken in natural order: epoch_2 before epoch_10),
or from two or more configs (two models over the same data). Missing features
are extracted first as `vistsne extract` would (:func:`vistsne.pipeline.extract`,
a cache hit when they are there). The store-level work is
:func:`vistsne.embed.compare_entry.compare_entries`; the figures are
:mod:`vistsne.render.compare` and :mod:`vistsne.render.compare_page`.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import CheckpointError, ParamError
from .selection import RowSelection
from .store import Store

_GLOB = re.compile(r"[*?\[]")
_STEP = re.compile(r"(epoch|iter)[_-]?(\d+)", re.IGNORECASE)


def natural_key(text: str) -> list:
    """Sort key that orders the digit runs of ``text`` as numbers (epoch_2 before epoch_10)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text))]


def expand_checkpoints(patterns: Sequence[str]) -> list[str]:
    """Each checkpoint as given; a glob becomes its matches in natural order (an error when none)."""
    out: list[str] = []
    for pat in patterns:
        if "://" not in pat and _GLOB.search(pat):
            hits = sorted(glob.glob(pat), key=natural_key)
            if not hits:
                raise CheckpointError(f"the checkpoint glob {pat!r} matches no file",
                                      "check the path (quote the glob so the shell leaves it to vistsne)")
            out += hits
        else:
            out.append(pat)
    return out


def checkpoint_step(path: str | None, position: int) -> tuple[str, int]:
    """(``epoch``|``iter``|``position``, number) of a checkpoint: its meta, else its file name, else position.

    No checkpoint (random init) is ``("init", 0)``: step 0 of any schedule.
    """
    if not path:
        return "init", 0
    if path and os.path.isfile(path):
        try:
            import torch

            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
            for where in (meta, meta.get("vistsne", {}) if isinstance(meta, dict) else {}):
                for kind in ("epoch", "iter"):
                    if isinstance(where, dict) and isinstance(where.get(kind), int):
                        return kind, int(where[kind])
        except Exception:  # noqa: BLE001 - unreadable meta: fall back to the name
            pass
    if path:
        m = _STEP.search(os.path.basename(str(path)))
        if m:
            return m.group(1).lower(), int(m.group(2))
    return "position", int(position)


@dataclass
class Resolved:
    entries: list[str]
    labels: list[str]
    steps: list[tuple[str, int]]
    extracted: list = field(default_factory=list)


def _label(config: str | None, checkpoint: str | None, many_configs: bool) -> str:
    parts = []
    if many_configs and config:
        parts.append(Path(str(config)).stem)
    parts.append(Path(str(checkpoint)).stem if checkpoint else ("random init" if not parts else "random init"))
    return " ".join(parts) if many_configs else parts[-1]


def resolve_entries(store: Store, configs: Sequence[str], checkpoints: Sequence[str], entries: Sequence[str],
                    selection: RowSelection, *, extract_options: dict | None = None,
                    progress: bool = True) -> Resolved:
    """The entry keys compared, in order: --entry keys first, then each (config, checkpoint) extracted."""
    from . import pipeline
    from .extract import ExtractParams

    keys, labels, steps, done = [], [], [], []
    for e in entries:
        key = store.resolve_entry(e)
        meta = store.entry_meta(key)
        keys.append(key)
        ck = meta.get("checkpoint")
        labels.append(Path(ck).stem if ck else "random init")
        steps.append(checkpoint_step(ck, len(steps)))
    ckpts = expand_checkpoints(checkpoints)
    configs = list(configs)
    if ckpts and not configs:
        raise ParamError("--checkpoint needs a CONFIG", "give the config first: vistsne compare CONFIG --checkpoint ...")
    if len(configs) == 1:
        pairs = [(configs[0], c) for c in ckpts] or [(configs[0], None)]
    elif configs and not ckpts:
        pairs = [(c, None) for c in configs]
    elif configs and len(ckpts) == len(configs):
        pairs = list(zip(configs, ckpts))
    elif configs:
        raise ParamError(f"{len(configs)} configs and {len(ckpts)} checkpoints do not pair up",
                         "give one config with many checkpoints, or one checkpoint per config")
    else:
        pairs = []
    opts = dict(extract_options or {})
    for config, ck in pairs:
        params = ExtractParams(config=config, checkpoint=ck, class_idx=selection.class_idx,
                               max_num_class=selection.max_num_class, max_num_samples=selection.max_num_samples,
                               **opts).validate()
        res = pipeline.extract(store, params, progress=progress)
        done.append(res)
        keys.append(res.entry)
        labels.append(_label(config, ck, len(configs) > 1))
        steps.append(checkpoint_step(ck, len(steps)))
    twice = {lab for lab in labels if labels.count(lab) > 1}  # two random inits, two epoch_1.pth: add the key
    labels = [f"{lab} [{k[:8]}]" if lab in twice else lab for lab, k in zip(labels, keys)]
    return Resolved(keys, labels, steps, done)


@dataclass
class CompareOutput:
    result: object
    resolved: Resolved
    files: list[Path] = field(default_factory=list)

    def to_json(self) -> dict:
        return {**self.result.to_json(), "steps": [list(s) for s in self.resolved.steps],
                "files": [str(f) for f in self.files]}


def compare(store: Store, *, configs: Sequence[str] = (), checkpoints: Sequence[str] = (),
            entries: Sequence[str] = (), stages: Sequence[str] = (), params=None,
            selection: RowSelection = RowSelection(), align: str | None = None, reference: int = -1,
            out_dir: str | Path | None = None, figures: Sequence[str] = ("sheet", "curve", "gif", "html"),
            extract_options: dict | None = None, n_jobs: int | None = None, progress: bool = True,
            top: int = 10) -> CompareOutput:
    """Resolve and extract the entries, make the aligned maps and numbers, write the figures."""
    from .embed import EmbedParams
    from .embed.compare_entry import DEFAULT_ALIGN, compare_entries
    from .pipeline import _cores

    selection = selection.validate()
    resolved = resolve_entries(store, configs, checkpoints, entries, selection,
                               extract_options=extract_options, progress=progress)
    if len(resolved.entries) < 2:
        raise ParamError(f"compare needs at least two entries, got {len(resolved.entries)}",
                         "give two or more --checkpoint (or a glob matching two files), --entry keys or configs")
    if len(set(resolved.entries)) < len(resolved.entries):
        raise ParamError("the same entry is given twice", "give different checkpoints, configs or --entry keys")
    store.check_writable()
    if not stages:
        from .pipeline import default_stage

        stages = [default_stage(store, resolved.entries[-1])]
    result = compare_entries(store, resolved.entries, stages, params or EmbedParams(), selection,
                             labels_of=resolved.labels, align=align or DEFAULT_ALIGN, reference=reference,
                             n_jobs=_cores(n_jobs), progress=progress, top=top)
    out = CompareOutput(result, resolved)
    if out_dir is not None and figures:
        out.files = write_figures(store, result, resolved, out_dir, figures)
    return out


def write_figures(store: Store, result, resolved: Resolved, out_dir, figures: Sequence[str]) -> list[Path]:
    from .render import check_out_dir
    from .render.compare import compare_data, write_animation, write_curve, write_sheet
    from .render.compare_page import write_compare_page

    out = check_out_dir(out_dir)
    stem = f"compare_{result.entries[0][:6]}_{result.entries[-1][:6]}_{len(result.entries)}"
    data = compare_data(store, result, resolved.steps)
    files: list[Path] = []
    if "sheet" in figures:
        files.append(write_sheet(data, out / f"{stem}_sheet.png"))
    if "curve" in figures:
        files.append(write_curve(data, out / f"{stem}_accuracy.png"))
    if "gif" in figures or "mp4" in figures:
        files += write_animation(data, out / f"{stem}_{data.stages[0]}", mp4="mp4" in figures or None)
    if "html" in figures:
        files.append(write_compare_page(data, out / f"{stem}.html"))
    if "json" in figures:
        path = out / f"{stem}.json"
        path.write_text(json.dumps(result.to_json(), default=str))
        files.append(path)
    return files
