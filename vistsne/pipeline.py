"""The one orchestrator: extract -> embed -> render for a request.

The CLI's ``extract``, ``embed`` and ``render`` commands, ``vistsne run``,
``vistsne demo`` and the ``make`` targets all come through here. Each
function resolves which entry is meant once (:mod:`vistsne.locate`), then
calls the stages' store-level entry points, which share nothing but the
store: ``extract_entry`` (config -> features), ``embed_entry`` (features ->
coordinates) and ``render_entry`` (coordinates -> figures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .locate import EntryRef, find_entry

__all__ = ["EntryRef", "Request", "RunOutput", "EmbedRun", "open_store", "extract", "embed", "render", "run",
           "suspects", "default_stage"]
from .resources import available_cores
from .selection import RowSelection
from .store import Store


def _cores(n_jobs: int | None) -> int:
    return int(n_jobs) if n_jobs else available_cores()


def open_store(path: str | None, mode: str = "a") -> Store:
    """``mode``: "a" creates the store if needed (extract), "r" reads, "r+" writes into an existing one."""
    if mode == "r+":
        Store(path, mode="r")  # a missing store is an error here, not a new empty one
        mode = "a"
    return Store(path, mode=mode)


def extract(store: Store, params, *, progress: bool = True):
    """Features of every selected row into ``store`` (a cache hit runs nothing)."""
    from .extract import extract_entry

    params = params.validate()
    store.check_writable()  # before any work: a read-only store fails now, not after the inference
    return extract_entry(store, params, progress=progress)


@dataclass
class EmbedRun:
    entry: str
    records: list


def embed(store: Store, ref: EntryRef, stages: Sequence[str], params_list: Sequence, selection: RowSelection,
          *, n_jobs: int | None = None, progress: bool = True, entry: str | None = None) -> EmbedRun:
    """Maps of the entry ``ref`` names (or the key ``entry``), for every stage and parameter set."""
    from .embed.entry import embed_entry

    key = entry or find_entry(store, ref)
    store.check_writable()  # before any map is computed
    records = embed_entry(store, key, stages, params_list, selection, n_jobs=_cores(n_jobs), progress=progress)
    return EmbedRun(key, records)


def render(store: Store, ref: EntryRef, out_dir, params, *, stages: Sequence[str] = (),
           embeddings: Sequence[str] = ("all",), progress: bool = True, entry: str | None = None, **kw):
    """Figures of the entry's maps, from the store alone."""
    from .render.entry import render_entry

    key = entry or find_entry(store, ref)
    return render_entry(store, key, out_dir, params, stages=stages, embeddings=embeddings, progress=progress,
                        **kw)


@dataclass(frozen=True)
class Request:
    """One pass through every stage.

    ``stages``: names to embed, ``("all",)``, or a function from the
    entry's ``{stage: dim}`` to names (``vistsne run``'s ``--vis-stage``).
    ``render``: the figures' parameters, or None for no figures.
    ``names``: a function from an embed record to a file stem (default: the
    stored name); ``html_name``, ``sheets``: as in ``render_entry``.
    """

    extract: object
    out_dir: str | Path | None = None
    stages: Sequence[str] | Callable[[dict], list[str]] = ("all",)
    embed: Sequence = ()
    render: object | None = None
    n_jobs: int | None = None
    names: Callable | None = None
    html_name: str | None = None
    sheets: bool = True


@dataclass
class RunOutput:
    extracted: object
    records: list = field(default_factory=list)
    rendered: object | None = None
    seconds: float = 0.0

    @property
    def entry(self) -> str:
        return self.extracted.entry

    @property
    def files(self) -> list[Path]:
        return list(self.rendered.files) if self.rendered is not None else []


def run(store: Store, request: Request, *, progress: bool = True) -> RunOutput:
    """extract -> embed -> render for ``request``; every stage a cache hit where it can be."""
    from .embed import EmbedParams

    t0 = time.perf_counter()
    xparams = request.extract.validate()
    res = extract(store, xparams, progress=progress)
    stages = request.stages(res.stages) if callable(request.stages) else list(request.stages)
    emb = embed(store, EntryRef(), stages, list(request.embed) or [EmbedParams()], xparams.selection,
                n_jobs=request.n_jobs, progress=progress, entry=res.entry)
    out = RunOutput(res, emb.records)
    if request.render is not None:
        names = {r.key: request.names(r) for r in emb.records} if request.names else None
        out.rendered = render(store, EntryRef(), request.out_dir, request.render,
                              embeddings=[r.key for r in emb.records], progress=progress,
                              entry=res.entry, names=names, html_name=request.html_name, sheets=request.sheets)
    out.seconds = time.perf_counter() - t0
    return out


def default_stage(store: Store, entry: str) -> str:
    """``pre_logits`` when the entry has it, else its last stage in network order."""
    from .stages import network_order

    stages = network_order(store.entry_meta(entry).get("stages", {}))
    return "pre_logits" if "pre_logits" in stages else stages[-1]


def suspects(store: Store, ref: EntryRef, stage: str | None, selection: RowSelection, *, top: int = 50,
             out_dir=None, render_params=None, n_jobs: int | None = None, progress: bool = True):
    """The rows most likely mislabelled: the stage's default map (embedded first if needed) and its scores.

    Returns ``(report, sheet path or None)``.
    """
    from .embed import EmbedParams
    from .embed.entry import suspects_entry

    from .embed.params import largest_perplexity

    key = find_entry(store, ref)
    stage = stage or default_stage(store, key)
    wanted, _ = selection.rows(store.dataset_labels(key), len(store.entry_meta(key)["class_names"]))
    n = len(set(wanted.tolist()) & store.present(key, [stage]))
    params = EmbedParams(perplexity=max(1.0, min(EmbedParams().perplexity, float(int(largest_perplexity(n))))))
    emb = embed(store, ref, [stage], [params], selection, n_jobs=n_jobs, progress=progress, entry=key)
    report = suspects_entry(store, key, emb.records[0].key, top)
    sheet = None
    if out_dir is not None and report.items:
        from .render import check_out_dir
        from .render.entry import render_suspects

        out = check_out_dir(out_dir)
        sheet = render_suspects(store, report, out / f"{key[:12]}_{stage}_suspects.png", render_params)
    return report, sheet
