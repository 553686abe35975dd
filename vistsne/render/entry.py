"""The render stage over an entry of the store: figures from the store alone.

No model, no dataset, no t-SNE, and nothing from the other stages: file
names come from each stored map's own ``name`` attribute. Chooses embeddings
(all, the latest per stage, or by key), turns each into a :class:`MapData`
with the entry's class list (so colours are tied to class names), and writes
one figure per map, one sweep sheet per sweep (stages as rows, every swept
value as columns), and one interactive page. :func:`render_entry` is this
package's store-level entry point.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import NotFoundError
from ..hints import did_you_mean, embed_command
from ..selection import RowSelection, rows_digest, rows_held
from ..stages import network_order, stage_sort_key
from ..store import EmbeddingInfo, Store
from .params import MapData, RenderParams, check_out_dir, color_suffix, show_available

log = logging.getLogger("vistsne")

#: parameters that may differ between the maps of one sweep sheet (its columns)
SWEPT = ("perplexity", "seed", "n_iter", "early_exaggeration", "learning_rate", "init", "pca_dims", "method",
         "n_iter_without_progress")


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


def map_name(entry: str, info: EmbeddingInfo) -> str:
    """``<entry12>_<the map's stored name>``, e.g. ``3fa2c9e1b0d4_pre_logits_p30_s0``.

    Maps stored before names were recorded get ``<stage>_p<perplexity>_s<seed>_<key6>``.
    """
    stem = info.attrs.get("name")
    if not stem:
        p = info.attrs.get("params", {})
        stem = f"{info.stage}_p{_num(p.get('perplexity'))}_s{p.get('seed')}_{info.key[:6]}"
    return f"{entry[:12]}_{stem}".replace("/", "-").replace(" ", "")


def stored_selection(attrs: dict) -> RowSelection | None:
    """The row selection a map was made with (None for maps stored before it was recorded)."""
    sel = attrs.get("selection")
    if not isinstance(sel, dict):
        return None
    cls = sel.get("class_idx")
    return RowSelection(tuple(cls) if cls else None, sel.get("max_num_class"), sel.get("max_num_samples"))


def sheet_name(entry: str, info: EmbeddingInfo) -> str:
    """The sweep sheet a map belongs to: one per entry, selection and map dimension."""
    a = info.attrs
    name = f"{entry[:12]}_sheet"
    d = (a.get("params") or {}).get("n_components", 2)
    if d != 2:
        name += f"_d{d}"
    sel = stored_selection(a)
    if sel is not None and sel.token():
        name += f"_{sel.token()}"
    if a.get("rows_complete") is False:  # fewer rows than the selection asks for
        name += f"_r{a.get('rows')}"
    return name


def _embed_hint(entry: str, stage: str | None = None) -> str:
    return f"run `{embed_command(entry, stage)}`"


def _selection_text(sel: dict | None) -> str:
    if not sel:
        return "rows of an unrecorded selection"
    s = RowSelection(tuple(sel["class_idx"]) if sel.get("class_idx") else None, sel.get("max_num_class"),
                     sel.get("max_num_samples"))
    return " ".join(s.flags()) or "the default selection"


def _over_rows_of(store: Store, entry: str, infos: list[EmbeddingInfo], selection: RowSelection) -> list:
    """The maps over exactly the rows that ``selection`` takes of the entry (of their stage's stored rows),
    as embed chose them: a map is keyed by its rows, so one map serves every selection of those rows."""
    wanted, _ = selection.rows(store.dataset_labels(entry), len(store.entry_meta(entry)["class_names"]))
    digests: dict[str, str] = {}
    for e in infos:
        if e.stage not in digests:
            digests[e.stage] = rows_digest(rows_held(wanted, store.present(entry, [e.stage])))
    return [e for e in infos if e.attrs.get("rows_sha256") == digests[e.stage]]


def choose_embeddings(store: Store, entry: str, stages: Sequence[str] = (),
                      embeddings: Sequence[str] = ("all",), selection=None) -> list[EmbeddingInfo]:
    """The maps of ``entry`` to draw: of ``stages`` (default all), ``embeddings`` (keys, all or latest),
    made over ``selection`` (a :class:`~vistsne.selection.RowSelection`; None: any)."""
    infos = store.embeddings(entry)
    if selection is not None:
        others = sorted({_selection_text(e.attrs.get("selection")) for e in infos})
        infos = _over_rows_of(store, entry, infos, selection)
        if not infos:
            asked = _selection_text(selection.to_dict())
            raise NotFoundError(f"entry {entry[:12]} has no maps over {asked}"
                                + (f" (its maps are over: {'; '.join(others)})" if others else ""),
                                f"run `{embed_command(entry, None, selection.flags())}` first, or drop the "
                                "selection options to draw every map")
    if stages and list(stages) != ["all"]:
        stored = network_order(store.entry_meta(entry).get("stages", {}))
        for s in stages:
            if s not in stored:
                hit = did_you_mean(s, stored)
                raise NotFoundError(f"entry {entry[:12]} has no stage {s!r} (stages: {', '.join(stored)})",
                                    f"{hit}pass one of those with --stage")
        have = {n for e in infos for n in names(e)}
        for s in stages:
            if s not in have:
                raise NotFoundError(f"entry {entry[:12]} has no embedding of stage {s}", _embed_hint(entry, s))
        infos = [e for e in infos if set(names(e)) & set(stages)]
    if not infos:
        raise NotFoundError(f"entry {entry[:12]} has no embeddings yet", _embed_hint(entry))
    infos = sorted(infos, key=lambda e: (stage_sort_key(e.stage), e.attrs.get("created", "")))
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


def names(info: EmbeddingInfo) -> list[str]:
    """Every name the map's stage goes by (identical stages are embedded once)."""
    return list(info.attrs.get("stage_names") or [info.stage])


def shown_stage(info: EmbeddingInfo) -> str:
    """``backbone.3 = neck = pre_logits`` for a stage stored once under several names."""
    return " = ".join(names(info))


def _title(meta: dict, info: EmbeddingInfo) -> str:
    p, m = info.attrs.get("params", {}), info.attrs.get("metrics", {})
    ckpt = os.path.basename(str(meta.get("checkpoint"))) if meta.get("checkpoint") else "random init"
    extra = f", {p.get('n_components')}-D" if p.get("n_components", 2) != 2 else ""
    acc = m.get("knn_acc_map")
    acc_s = f"10-NN acc {acc:.3f}" if isinstance(acc, (int, float)) else "10-NN acc n/a"
    phrases = [meta.get("config_name", "config"), ckpt, shown_stage(info),
               f"perplexity {_num(p.get('perplexity'))}, seed {p.get('seed')}{extra}"]
    sub = _subsample_note(info)
    if sub:  # a --subsample map: how many rows were optimised, how many placed, and both accuracies
        phrases.append(sub)
        placed = m.get("knn_acc_placed")
        if isinstance(placed, (int, float)):
            acc_s += f" ({placed:.3f} placed)"
    return " | ".join(phrases + [acc_s])


def _subsample_note(info: EmbeddingInfo) -> str:
    """``20,000 embedded, 80,000 placed`` for a ``--subsample`` map ("" for a map of every row)."""
    r = info.attrs.get("resolved") or {}
    if not r.get("subsample") or not r.get("placed"):
        return ""
    return f"{int(r['subsample']):,} embedded, {int(r['placed']):,} placed"


def _caption(info: EmbeddingInfo) -> str:
    p, m = info.attrs.get("params", {}), info.attrs.get("metrics", {})

    def f(k):
        v = m.get(k)
        return f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"

    sub = _subsample_note(info)
    return (f"p{_num(p.get('perplexity'))} s{p.get('seed')} n={info.attrs.get('rows')}"
            + (f" ({sub})" if sub else "") + " | "
            f"knn {f('knn_acc_map')} (feat {f('knn_acc_features')}) | trust {f('trustworthiness')} | "
            f"KL {f('kl_divergence')}")


def row_fields(store: Store, entry: str, ekey: str, index: np.ndarray, labels: np.ndarray) -> dict:
    """The per-row colour fields the store holds for these rows: the model's top-1 ``prediction`` and
    its ``confidence`` (and ``correct``) when the entry holds predictions, the map's ``suspect`` score."""
    fields: dict[str, np.ndarray] = {}
    meta = store.entry_meta(entry)
    pc = meta.get("prediction_classes")
    same = pc is None or list(pc) == list(meta["class_names"])  # else predictions name other classes
    if same and set(index.tolist()) <= store.present(entry, ["pred_top5", "score_top5"]):
        pred = store.read_rows(entry, index, what="pred_top5")[:, 0].astype(np.int64)
        fields["prediction"] = pred
        fields["confidence"] = np.clip(store.read_rows(entry, index, what="score_top5")[:, 0], 0, 1)
        fields["correct"] = pred == labels
    suspect = store.read_map_extra(entry, ekey, "suspect")
    if suspect is not None:
        fields["suspect"] = np.clip(np.asarray(suspect, dtype=np.float32), 0, 1)
    return fields


def load_map(store: Store, entry: str, info: EmbeddingInfo, meta: dict, with_thumbs: bool = True,
             name: str | None = None, with_fields: bool = False) -> MapData:
    """One stored map as :class:`MapData`; ``with_fields`` adds its colour fields, sample paths and
    feature-space neighbours (for the page and ``--color-by``)."""
    coords, index = store.read_embedding(entry, info.key)
    labels = store.read_rows(entry, index, what="label").astype(np.int64)
    # an entry extracted with --thumb-size 0 stores none: the page and figures then go without
    thumbs = store.read_rows(entry, index, what="thumb") if with_thumbs and store.thumb_size(entry) else None
    fields, paths, neighbors = None, None, None
    if with_fields:
        fields = row_fields(store, entry, info.key, index, labels) or None
        ids = store.dataset_ids(entry)
        paths = [str(p) for p in ids[index]] if ids is not None else None
        knn = store.read_map_extra(entry, info.key, "knn")
        neighbors = np.asarray(knn, dtype=np.int64) if knn is not None and knn.shape[1] else None
    info_dict = {"entry": entry, "embedding": info.key, "stage": info.stage, "stage_label": shown_stage(info),
                 "rows": info.attrs.get("rows"),
                 "params": info.attrs.get("params"), "resolved": info.attrs.get("resolved"),
                 "metrics": info.attrs.get("metrics"), "config": meta.get("config"),
                 "checkpoint": meta.get("checkpoint"),
                 "sheet_name": sheet_name(entry, info)}
    counts = np.bincount(store.dataset_labels(entry), minlength=len(meta["class_names"]))
    return MapData(name=name or map_name(entry, info), coords=coords, labels=labels,
                   class_names=list(meta["class_names"]), dataset_index=index, thumbnails=thumbs,
                   title=_title(meta, info), caption=_caption(info), info=info_dict,
                   class_counts=counts[:len(meta["class_names"])].tolist(), fields=fields, paths=paths,
                   neighbors=neighbors)


def sweep_groups(maps: Sequence[MapData]) -> dict[str, list[MapData]]:
    """Maps of one entry, selection and map dimension form one sweep sheet (when there are several)."""
    groups: dict[str, list[MapData]] = {}
    for m in maps:
        groups.setdefault(m.info["sheet_name"], []).append(m)
    return {k: v for k, v in groups.items() if len(v) > 1}


def _swept(maps: Sequence[MapData]) -> list[str]:
    """The parameters whose values differ between ``maps`` (perplexity when none do)."""
    return [f for f in SWEPT if len({json_key(m.info["params"].get(f)) for m in maps}) > 1] or ["perplexity"]


def json_key(v) -> str:
    return repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)


def sheet_grid(maps: Sequence[MapData]):
    """Stages as rows (network order), every swept combination as columns (sorted by value)."""
    stages = network_order(m.info["stage"] for m in maps)
    fields = _swept(maps)

    def col_of(m):
        return tuple(m.info["params"].get(f) for f in fields)

    def sort_key(col):
        return tuple((0, float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))
                     for v in col)

    cols = sorted({col_of(m) for m in maps}, key=sort_key)
    grid: list[list[MapData | None]] = [[None] * len(cols) for _ in stages]
    for m in maps:
        grid[stages.index(m.info["stage"])][cols.index(col_of(m))] = m
    labels = [", ".join(f"{f.replace('_', ' ')} {_num(v)}" for f, v in zip(fields, col)) for col in cols]
    shown = {m.info["stage"]: m.info.get("stage_label", m.info["stage"]) for m in maps}
    return grid, [shown[s] for s in stages], labels


def render_entry(store: Store, entry: str, out_dir, params: RenderParams, *, stages: Sequence[str] = (),
                 embeddings: Sequence[str] = ("all",), progress: bool = True,
                 names: dict[str, str] | None = None, html_name: str | None = None,
                 sheets: bool = True, selection=None) -> RenderResult:
    """Every chosen map of ``entry`` into ``out_dir``: figures, sweep sheets, the page.

    ``names`` maps embedding keys to file stems (default: the stored names);
    ``html_name`` names the page (default ``<entry12>_maps.html``); ``sheets``
    False skips the sweep sheets; ``selection`` keeps only the maps made over that
    :class:`~vistsne.selection.RowSelection` (None: every map).
    """
    from ..hints import extract_command_for
    from .html import render_html
    from .static import render_maps, render_sheet

    params = params.validate()
    out = check_out_dir(out_dir)
    meta = store.entry_meta(entry)
    infos = choose_embeddings(store, entry, stages, embeddings, selection)
    need_thumbs = "html" in params.formats or params.mosaic
    need_fields = "html" in params.formats or params.color_by != "label"
    suffix = color_suffix(params)
    names = names or {}
    maps = [load_map(store, entry, e, meta, need_thumbs, names.get(e.key), with_fields=need_fields)
            for e in infos]
    pc = meta.get("prediction_classes")
    if params.color_by in ("prediction", "correct", "confidence") and pc is not None \
            and list(pc) != list(meta["class_names"]):
        from ..errors import RenderError

        raise RenderError(f"cannot colour by {params.color_by}: the model predicts {len(pc)} classes of its own, "
                          f"not this data's {len(meta['class_names'])}",
                          "colour by label or suspect, or extract with a model trained on these classes")
    if suffix:
        for m in maps:  # every map must have the field; the error says why not and how to get it
            m.color_field(params.color_by, command=extract_command_for(meta))
            m.name += suffix
    _say_when_partial(store, entry, infos)
    if params.show and not show_available():
        log.warning("no display here; figures are saved, not shown")
        params = RenderParams(**{**params.__dict__, "show": False})
    files: list[Path] = []
    n_sheets = 0
    if params.static_formats:
        files += render_maps(maps, out, params, progress=progress)
        for group in (sweep_groups(maps).values() if sheets else ()):
            grid, rows, cols = sheet_grid(group)
            if len(grid) * len(grid[0]) < 2:
                continue
            stem = f"{group[0].info['sheet_name']}_{'-'.join(_swept(group))}{suffix}"
            for fmt in params.static_formats:
                files.append(render_sheet(grid, rows, cols, out / f"{stem}.{fmt}", params))
            n_sheets += 1
        if sheets:
            files += render_depths(maps, out, params, meta)
    if "html" in params.formats:
        files.append(render_html(maps, out / (html_name or f"{entry[:12]}_maps.html"), color_by=params.color_by))
    return RenderResult(files=files, maps=len(maps), sheets=n_sheets, entry=entry, out_dir=out)


def render_depths(maps: Sequence[MapData], out: Path, params: RenderParams, meta: dict) -> list[Path]:
    """The separation-by-depth figure of each set of maps that differ only in stage (2 or more stages):
    10-NN accuracy in feature space and in the map per stage, in network order, with the maps beneath."""
    from .depth import render_depth

    groups: dict[tuple, list[MapData]] = {}
    for m in maps:
        p = m.info.get("params") or {}
        groups.setdefault((m.info["sheet_name"], json_key(sorted(p.items()))), []).append(m)
    files = []
    for group in groups.values():
        by_stage = {m.info["stage"]: m for m in group}
        if len(by_stage) < 2:
            continue
        order = network_order(by_stage)
        ms = [by_stage[s] for s in order]
        acc = [(m.info.get("metrics") or {}) for m in ms]
        chance = 1.0 / max(1, len(np.unique(ms[0].labels)))
        p = ms[0].info.get("params") or {}
        stem = f"{ms[0].info['sheet_name'].replace('_sheet', '_depth', 1)}_p{_num(p.get('perplexity'))}_s{p.get('seed')}"
        title = (f"{meta.get('config_name', 'config')} | separation by depth | perplexity "
                 f"{_num(p.get('perplexity'))}, seed {p.get('seed')} | {ms[0].n} rows")
        for fmt in params.static_formats:
            files.append(render_depth([m.info.get("stage_label", m.info["stage"]) for m in ms],
                                      [a.get("knn_acc_features") for a in acc], [a.get("knn_acc_map") for a in acc],
                                      out / f"{stem}.{fmt}", params, title=title, chance=chance, maps=ms))
    return files


def _say_when_partial(store: Store, entry: str, infos: Sequence[EmbeddingInfo]) -> None:
    """One line when a map of the default selection shows fewer rows than its stage holds."""
    said = set()
    for e in infos:
        sel = stored_selection(e.attrs)
        if sel is None or e.stage in said or not sel.is_default:
            continue
        held = len(store.present(entry, [e.stage]))
        if held > int(e.attrs.get("rows", 0)):
            said.add(e.stage)
            log.info("map %s shows %d of the %d rows stage %s holds (the default selection); `%s` maps them all",
                     map_name(entry, e), e.attrs.get("rows"), held, e.stage,
                     embed_command(entry, e.stage, ["--max-num-class", "all", "--max-num-samples", "all"]))


def render_cells(store: Store, cells: Sequence[Sequence[tuple[str, str] | None]], row_labels: Sequence[str],
                 col_labels: Sequence[str], out_path, params: RenderParams,
                 captions: dict[tuple[str, str], str] | None = None) -> Path:
    """A sheet of maps from any entries: ``cells[r][c]`` is ``(entry, embedding key)`` or None."""
    from .static import render_sheet

    captions = captions or {}
    grid = []
    for row in cells:
        out_row = []
        for cell in row:
            if cell is None:
                out_row.append(None)
                continue
            entry, ekey = cell
            info = store.embedding(entry, ekey)
            if info is None:
                raise NotFoundError(f"entry {entry[:12]} has no complete embedding {ekey[:12]}",
                                    _embed_hint(entry))
            m = load_map(store, entry, info, store.entry_meta(entry), with_thumbs=False)
            if cell in captions:
                m.caption = captions[cell]
            out_row.append(m)
        grid.append(out_row)
    return render_sheet(grid, row_labels, col_labels, Path(out_path), params)


def render_suspects(store: Store, report, out_path, params: RenderParams) -> Path:
    """The contact sheet of a suspects report: each row's thumbnail, captioned with its label, its
    neighbours' majority and the model's prediction."""
    from .contact import render_contact_sheet

    items = list(report.items)
    if not items:
        raise NotFoundError(f"no suspects to draw for stage {report.stage}", "pass a larger --top")
    thumbs = None
    if store.thumb_size(report.entry):
        thumbs = store.read_rows(report.entry, np.array([it["dataset_index"] for it in items]), what="thumb")
    else:
        log.info("entry %s stores no thumbnails (--thumb-size 0): the sheet shows grey tiles; extract again "
                 "with --thumb-size 48 to see the images", report.entry[:12])
    captions = []
    for it in items:
        lines = [f"label {it['label']}", f"nbrs {it['neighbour_majority']} ({it['disagree']:.0%} differ)"]
        if it.get("prediction") is not None:
            lines.append(f"pred {it['prediction']} {it['confidence']:.2f}")
        captions.append(lines)
    title = (f"{report.entry[:12]} | {report.stage} | {len(items)} most suspect of {report.rows} rows"
             + (" | neighbours + model" if report.uses_predictions else " | neighbours"))
    return render_contact_sheet(thumbs, captions, Path(out_path), params, title)
