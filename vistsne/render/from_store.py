"""Figures from the store alone: no model, no dataset, no t-SNE.

Chooses embeddings (all, the latest per stage, or by key), turns each into a
:class:`MapData` with the entry's class list (so colours are tied to class
names), and writes one figure per map, one sweep sheet per sweep, and one
interactive page.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..embed.cached import rows_digest
from ..embed.params import EmbedParams
from ..errors import NotFoundError
from ..selection import select_rows
from ..store import EmbeddingInfo, Store
from .params import MapData, RenderParams, check_out_dir, show_available

log = logging.getLogger("vistsne")

DEFAULTS = EmbedParams().to_dict()
# short tokens for parameters that differ from the defaults, in file names
TOKENS = [("n_iter", "it"), ("early_exaggeration", "ee"), ("learning_rate", "lr"), ("init", "init-"),
          ("n_components", "d"), ("pca_dims", "pca"), ("method", ""), ("n_iter_without_progress", "nwp")]


@dataclass
class RenderResult:
    files: list[Path]
    maps: int
    sheets: int
    entry: str
    out_dir: Path

    def to_json(self) -> dict:
        return {"files": [str(f) for f in self.files]}


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def map_name(entry: str, info: EmbeddingInfo, default_rows: str | None, *, sheet: bool = False) -> str:
    """A stable file stem, e.g. ``3fa2c9e1b0d4_pre_logits_p30_s0``.

    Parameters that differ from the defaults add short tokens (``_it500``,
    ``_init-random``); rows other than the default selection add ``_r<digest>``.
    ``sheet=True`` names the sweep sheet the map belongs to (no stage, no perplexity).
    """
    p = info.attrs.get("params", {})
    head = "sheet" if sheet else f"{info.stage}_p{_num(p.get('perplexity'))}"
    name = f"{entry[:12]}_{head}_s{p.get('seed')}"
    for field_name, tok in TOKENS:
        if field_name in p and p[field_name] != DEFAULTS.get(field_name):
            name += f"_{tok}{_num(p[field_name])}"
    if default_rows is not None and info.attrs.get("rows_sha256") != default_rows:
        name += f"_r{str(info.attrs.get('rows_sha256', ''))[:6]}"
    return name.replace("/", "-").replace(" ", "")


def _embed_hint(entry: str, stage: str | None = None) -> str:
    return f"run `vistsne embed --entry {entry[:12]}" + (f" --stage {stage}`" if stage else "`")


def choose_embeddings(store: Store, entry: str, stages: Sequence[str] = (),
                      embeddings: Sequence[str] = ("all",)) -> list[EmbeddingInfo]:
    infos = store.embeddings(entry)
    if not infos:
        raise NotFoundError(f"entry {entry[:12]} has no embeddings yet", _embed_hint(entry))
    if stages and list(stages) != ["all"]:
        for s in stages:
            if not any(e.stage == s for e in infos):
                raise NotFoundError(f"entry {entry[:12]} has no embedding of stage {s}", _embed_hint(entry, s))
        infos = [e for e in infos if e.stage in stages]
    sel = [s for s in embeddings if s not in ("all",)] or ["all"]
    if sel == ["latest"]:
        latest: dict[str, EmbeddingInfo] = {}
        for e in infos:
            if e.stage not in latest or e.attrs.get("created", "") >= latest[e.stage].attrs.get("created", ""):
                latest[e.stage] = e
        return list(latest.values())
    if sel == ["all"]:
        return infos
    chosen = []
    for want in sel:
        hits = [e for e in infos if e.key.startswith(want)]
        if len(hits) != 1:
            have = ", ".join(e.key[:10] for e in infos[:12])
            what = "is ambiguous" if hits else "not found"
            raise NotFoundError(f"embedding {want} {what} in entry {entry[:12]} (embeddings: {have})",
                                "pass one of those keys (or a unique prefix), all, or latest")
        chosen.append(hits[0])
    return chosen


def _title(meta: dict, info: EmbeddingInfo) -> str:
    p, m = info.attrs.get("params", {}), info.attrs.get("metrics", {})
    ckpt = os.path.basename(str(meta.get("checkpoint"))) if meta.get("checkpoint") else "random init"
    extra = f", {p.get('n_components')}-D" if p.get("n_components", 2) != 2 else ""
    acc = m.get("knn_acc_map")
    acc_s = f"10-NN acc {acc:.3f}" if isinstance(acc, (int, float)) else "10-NN acc n/a"
    return (f"{meta.get('config_name', 'config')} | {ckpt} | {info.stage} | perplexity {_num(p.get('perplexity'))}, "
            f"seed {p.get('seed')}{extra} | {acc_s}")


def _caption(info: EmbeddingInfo) -> str:
    p, m = info.attrs.get("params", {}), info.attrs.get("metrics", {})

    def f(k):
        v = m.get(k)
        return f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"

    return (f"p{_num(p.get('perplexity'))} s{p.get('seed')} n={info.attrs.get('rows')} | "
            f"knn {f('knn_acc_map')} (feat {f('knn_acc_features')}) | trust {f('trustworthiness')} | "
            f"KL {f('kl_divergence')}")


def load_map(store: Store, entry: str, info: EmbeddingInfo, meta: dict, default_rows: str | None,
             with_thumbs: bool = True) -> MapData:
    coords, index = store.read_embedding(entry, info.key)
    labels = store.read_rows(entry, index, what="label").astype(np.int64)
    thumbs = store.read_rows(entry, index, what="thumb") if with_thumbs else None
    info_dict = {"entry": entry, "embedding": info.key, "stage": info.stage, "rows": info.attrs.get("rows"),
                 "params": info.attrs.get("params"), "resolved": info.attrs.get("resolved"),
                 "metrics": info.attrs.get("metrics"), "config": meta.get("config"),
                 "checkpoint": meta.get("checkpoint"),
                 "sheet_name": map_name(entry, info, default_rows, sheet=True)}
    counts = np.bincount(store.dataset_labels(entry), minlength=len(meta["class_names"]))
    return MapData(name=map_name(entry, info, default_rows), coords=coords, labels=labels,
                   class_names=list(meta["class_names"]), dataset_index=index, thumbnails=thumbs,
                   title=_title(meta, info), caption=_caption(info), info=info_dict,
                   class_counts=counts[:len(meta["class_names"])].tolist())


def sweep_groups(maps: Sequence[MapData]) -> dict[str, list[MapData]]:
    """Maps that differ only in stage and perplexity form one sweep sheet."""
    groups: dict[str, list[MapData]] = {}
    for m in maps:
        groups.setdefault(m.info["sheet_name"], []).append(m)
    return {k: v for k, v in groups.items() if len(v) > 1}


def sheet_grid(maps: Sequence[MapData]):
    stages = list(dict.fromkeys(m.info["stage"] for m in maps))
    perps = sorted({float(m.info["params"]["perplexity"]) for m in maps})
    grid: list[list[MapData | None]] = [[None] * len(perps) for _ in stages]
    for m in maps:
        grid[stages.index(m.info["stage"])][perps.index(float(m.info["params"]["perplexity"]))] = m
    return grid, stages, [f"perplexity {_num(p)}" for p in perps]


def render_entry(store: Store, entry: str, out_dir, params: RenderParams, *, stages: Sequence[str] = (),
                 embeddings: Sequence[str] = ("all",), progress: bool = True) -> RenderResult:
    from .html import render_html
    from .static import render_maps, render_sheet

    params = params.validate()
    out = check_out_dir(out_dir)
    meta = store.entry_meta(entry)
    infos = choose_embeddings(store, entry, stages, embeddings)
    default_idx, _ = select_rows(store.dataset_labels(entry), len(meta["class_names"]), None, 20, 100)
    default_rows = rows_digest(default_idx)
    need_thumbs = "html" in params.formats or params.mosaic
    maps = [load_map(store, entry, e, meta, default_rows, need_thumbs) for e in infos]
    if params.show and not show_available():
        log.warning("no display here; figures are saved, not shown")
        params = RenderParams(**{**params.__dict__, "show": False})
    files: list[Path] = []
    sheets = 0
    if params.static_formats:
        files += render_maps(maps, out, params, progress=progress)
        for group in sweep_groups(maps).values():
            grid, rows, cols = sheet_grid(group)
            if len(grid) * len(grid[0]) < 2:
                continue
            stem = group[0].info["sheet_name"]
            for fmt in params.static_formats:
                files.append(render_sheet(grid, rows, cols, out / f"{stem}.{fmt}", params))
            sheets += 1
    if "html" in params.formats:
        files.append(render_html(maps, out / f"{entry[:12]}_maps.html"))
    return RenderResult(files=files, maps=len(maps), sheets=sheets, entry=entry, out_dir=out)
