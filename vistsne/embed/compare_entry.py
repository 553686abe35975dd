"""Compare entries over the store: shared rows by sample identity, aligned maps, pair numbers.

:func:`compare_entries` is the store-level entry point of `vistsne compare`.
Rows are matched by each sample's stored identity (:meth:`Store.dataset_ids`:
its path relative to the dataset root, or the dataset's own id), never by
position. For each stage it makes one map per entry over the same rows, in
the reference's frame:

- ``chain``: the reference is embedded as `vistsne embed` would (the
  same key, so the same cached map); every other entry is optimised on its own
  affinities from the aligned coordinates of its neighbour in the sequence
  (the one nearer the reference; the normal phase only, see
  :data:`RESTART_WITHOUT_EXAGGERATION`), then fitted onto the reference by
  Procrustes (rotation, reflection, uniform scale);
- ``reference``: as chain, but every entry starts from the reference's map;
- ``procrustes`` (default, :data:`DEFAULT_ALIGN`): every entry embedded independently (cached like `embed`),
  then only fitted onto the reference;
- ``none``: the independent maps as they are.

An aligned map is an embedding like any other: its params carry ``align`` and
``align_from`` (the key of the map it started from or was fitted onto), so its
key covers the whole chain, and a second compare is a cache hit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import DatasetError, FeatureError, ParamError, StageError
from ..selection import RowSelection
from ..stages import network_order
from ..store import Store
from .entry import (embedding_key, file_stem, opentsne_version, row_scores, rows_digest, stored_predictions,
                    thread_limited)
from .params import EmbedParams, resolve

log = logging.getLogger("vistsne")

ALIGN_METHODS = ("chain", "reference", "procrustes", "none")
#: Chosen by `python benchmarks/compare.py` (README, `vistsne compare`): chain and reference move points
#: least, but a map started from a more structured neighbour's layout keeps structure its own
#: features lack (random init started from the trained map: 10-NN accuracy in the map +0.08,
#: trustworthiness -0.012 against its independent map; +0.022 / -0.001 with early
#: exaggeration), beyond the 0.01 a map may differ. Procrustes keeps every map's quality.
DEFAULT_ALIGN = "procrustes"
#: A map started from a neighbour's converged layout runs only the normal phase
#: (``n_iter - early_exaggeration_iter`` iterations, no early exaggeration): the
#: layout is already formed, and measured (benchmarks/compare.py) it moves points
#: least at the same map quality, for 3/4 of the cost.
RESTART_WITHOUT_EXAGGERATION = True


@dataclass
class CompareMap:
    entry: str
    stage: str
    key: str
    coords: np.ndarray
    indices: np.ndarray
    params: dict
    metrics: dict
    cached: bool
    name: str
    seconds: float = 0.0
    n_iter_run: int = 0

    def to_json(self) -> dict:
        return {"entry": self.entry, "stage": self.stage, "key": self.key, "name": self.name,
                "align": self.params.get("align", ""), "align_from": self.params.get("align_from", ""),
                "cached": self.cached, "seconds": round(self.seconds, 3), "n_iter_run": self.n_iter_run,
                "metrics": {k: round(float(v), 4) for k, v in self.metrics.items()}}


@dataclass
class CompareResult:
    entries: list[str]
    labels_of: list[str]
    reference: int
    align: str
    class_names: list[str]
    stages: list[str]
    rows: dict = field(default_factory=dict)          # stage -> number of shared rows
    labels: dict = field(default_factory=dict)        # stage -> labels of the shared rows
    ids: dict = field(default_factory=dict)           # stage -> ids of the shared rows
    maps: dict = field(default_factory=dict)          # stage -> [CompareMap per entry]
    pairs: dict = field(default_factory=dict)         # stage -> [pair numbers]
    shared_counts: dict = field(default_factory=dict)  # entry -> rows it holds
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"entries": self.entries, "labels": self.labels_of, "reference": self.reference,
                "align": self.align, "stages": self.stages, "rows": self.rows,
                "maps": {s: [m.to_json() for m in ms] for s, ms in self.maps.items()},
                "pairs": self.pairs, "seconds": round(self.seconds, 3)}


def _ids(store: Store, entry: str) -> np.ndarray:
    ids = store.dataset_ids(entry)
    if ids is None:
        n = len(store.dataset_labels(entry))
        log.warning("entry %s was extracted before sample ids were stored; matching its rows by dataset "
                    "index (re-extract it to match by file)", entry[:12])
        return np.array([f"#{i}" for i in range(n)], dtype=object)
    return ids


def check_entries(store: Store, entries: Sequence[str], labels_of: Sequence[str]) -> list[dict]:
    """The entries' metadata; raise for fewer than two or for different class lists."""
    if len(entries) < 2:
        raise ParamError(f"compare needs at least two entries, got {len(entries)}",
                         "give two or more --checkpoint, --entry or configs (a glob counts each file)")
    metas = [store.entry_meta(e) for e in entries]
    first = list(metas[0].get("class_names") or [])
    for meta, name in zip(metas[1:], labels_of[1:]):
        names = list(meta.get("class_names") or [])
        if names != first:
            raise DatasetError(
                f"{name} has a different class list ({len(names)} classes: {', '.join(names[:4])}...) than "
                f"{labels_of[0]} ({len(first)}: {', '.join(first[:4])}...); compare matches rows by sample "
                "and needs the same classes", "compare entries of the same dataset")
    return metas


def check_stages(metas: list[dict], stages: Sequence[str], labels_of: Sequence[str]) -> list[str]:
    have = [set(m.get("stages", {})) for m in metas]
    common = set.intersection(*have)
    if not stages or list(stages) == ["all"]:
        out = network_order({s: 0 for s in common})
        if not out:
            raise StageError("the entries share no stage", "extract the same stages for each")
        return out
    for s in stages:
        for h, name in zip(have, labels_of):
            if s not in h:
                raise StageError(f"stage {s!r} is missing from {name} (it has: {', '.join(network_order({x: 0 for x in h}))})",
                                 f"pass --stage with a stage every entry has, or re-extract {name}")
    return network_order(list(stages))


def shared_rows(store: Store, entries: Sequence[str], stage: str, selection: RowSelection, reference: int,
                n_classes: int, labels_of: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Each entry's dataset indices of the selected samples all entries hold (same order), their ids, labels."""
    maps = []
    counts = []
    for e in entries:
        ids = _ids(store, e)
        present = sorted(store.present(e, [stage]))
        counts.append(len(present))
        maps.append({ids[i]: i for i in present})
    common = set(maps[0])
    for m in maps[1:]:
        common &= set(m)
    if not common:
        held = ", ".join(f"{name} holds {c}" for name, c in zip(labels_of, counts))
        raise DatasetError(f"the entries share no images in stage {stage} ({held} rows)",
                           "compare entries extracted over the same dataset")
    ref_map = maps[reference]
    ref_idx = np.array(sorted(ref_map[i] for i in common), dtype=np.int64)
    ref_ids = _ids(store, entries[reference])
    all_labels = store.dataset_labels(entries[reference])
    sub = all_labels[ref_idx]
    pos, _ = selection.rows(sub, n_classes)
    ref_idx = ref_idx[pos]
    ids = ref_ids[ref_idx]
    out = [np.array([m[i] for i in ids], dtype=np.int64) for m in maps]
    for e, idx, name in zip(entries, out, labels_of):
        lab = store.dataset_labels(e)[idx]
        bad = int(np.sum(lab != all_labels[ref_idx]))
        if bad:
            raise DatasetError(f"{bad} shared images have other labels in {name} than in "
                               f"{labels_of[reference]}", "compare entries of the same labelled dataset")
    if len(ids) < 4:
        raise FeatureError(f"only {len(ids)} shared row(s) of stage {stage} selected; a map needs at least 4",
                           "select more classes or samples, or extract more rows")
    return out, ids, all_labels[ref_idx].astype(np.int64)


def _write(store: Store, entry: str, meta: dict, stage: str, key: str, result, indices: np.ndarray,
           selection: RowSelection, labels: np.ndarray, n_jobs: int, name: str, extra: dict | None = None) -> dict:
    attrs = {
        "entry": entry, "stage": stage, "rows": int(len(indices)), "rows_sha256": rows_digest(indices),
        "params": result.params.to_dict(), "resolved": result.resolved,
        "kl_divergence": float(result.kl_divergence), "n_iter_run": int(result.n_iter_run),
        "seconds": float(result.seconds), "metrics": result.metrics, "opentsne": opentsne_version(),
        "n_jobs": n_jobs, "config_name": meta.get("config_name"), "checkpoint": meta.get("checkpoint"),
        "selection": selection.to_dict(), "rows_complete": False, "name": name, **(extra or {}),
    }
    extras = None
    if result.neighbors is not None:
        extras = row_scores(labels, result.neighbors, stored_predictions(store, entry, indices))
        attrs["knn_k"] = int(result.neighbors.shape[1])
    store.write_embedding(entry, key, result.coords, indices, attrs, extras)
    return attrs


def _cached(store: Store, entry: str, stage: str, key: str) -> CompareMap | None:
    info = store.embedding(entry, key)
    if info is None:
        return None
    coords, index = store.read_embedding(entry, key)
    a = info.attrs
    return CompareMap(entry, stage, key, coords, index, a["params"], a.get("metrics", {}), True,
                      a.get("name", key[:12]), 0.0, int(a.get("n_iter_run", 0)))


def _name(stage: str, p: EmbedParams, selection: RowSelection, n: int) -> str:
    stem = file_stem(stage, p.to_dict(), selection, True, n)
    return f"{stem}_align-{p.align}" if p.align else stem


def independent_map(store: Store, entry: str, meta: dict, stage: str, idx: np.ndarray, X: np.ndarray,
                    labels: np.ndarray, params: EmbedParams, selection: RowSelection, n_jobs: int,
                    progress) -> CompareMap:
    """The entry's plain map of these rows (the key `vistsne embed` gives the same rows)."""
    from .tsne import embed_many

    res = resolve(params, len(idx), X.shape[1])
    key = embedding_key(entry, stage, idx, params, res)
    hit = _cached(store, entry, stage, key)
    if hit is not None:
        return hit
    (result,) = list(thread_limited(embed_many(X, labels, [params], n_jobs=n_jobs, progress=progress,
                                               stage=stage), n_jobs))
    name = _name(stage, params, selection, len(idx))
    attrs = _write(store, entry, meta, stage, key, result, idx, selection, labels, n_jobs, name)
    return CompareMap(entry, stage, key, result.coords, idx, attrs["params"], result.metrics, False, name,
                      result.seconds, result.n_iter_run)


def aligned_map(store: Store, entry: str, meta: dict, stage: str, idx: np.ndarray, X: np.ndarray,
                labels: np.ndarray, params: EmbedParams, selection: RowSelection, n_jobs: int, progress, *,
                align: str, start: CompareMap, target: CompareMap, independent: CompareMap | None = None
                ) -> CompareMap:
    """A map optimised from ``start``'s coordinates (chain/reference) or ``independent`` only fitted
    (procrustes); either way Procrustes-fitted onto ``target`` last."""
    from .align import embed_from, procrustes

    p = replace(params, align=align, align_from=start.key)
    if align != "procrustes" and RESTART_WITHOUT_EXAGGERATION:
        p = replace(p, n_iter=max(1, p.n_iter - p.early_exaggeration_iter), early_exaggeration_iter=0)
    p = p.validate()
    res = resolve(p, len(idx), X.shape[1])
    key = embedding_key(entry, stage, idx, p, res)
    hit = _cached(store, entry, stage, key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    if align == "procrustes":
        assert independent is not None
        coords, fit = procrustes(independent.coords, target.coords)
        from .tsne import EmbedResult

        info = store.embedding(entry, independent.key)
        a = info.attrs if info is not None else {}
        knn = store.read_map_extra(entry, independent.key, "knn") if info is not None else None
        result = EmbedResult(params=p, resolved=a.get("resolved", res), coords=coords,
                             kl_divergence=float(a.get("kl_divergence", independent.metrics.get("kl_divergence", 0))),
                             n_iter_run=int(a.get("n_iter_run", 0)), seconds=time.perf_counter() - t0,
                             metrics=dict(independent.metrics), neighbors=knn)
    else:
        result = embed_from(X, labels, p, start.coords, n_jobs=n_jobs, progress=progress, stage=stage)
        coords, fit = procrustes(result.coords, target.coords)
        result.coords = coords
    name = _name(stage, p, selection, len(idx))
    extra = {"align": align, "align_from": start.key, "fit": {"scale": fit["scale"], "reflection": fit["reflection"]},
             "aligned_to": target.key}
    attrs = _write(store, entry, meta, stage, key, result, idx, selection, labels, n_jobs, name, extra)
    return CompareMap(entry, stage, key, result.coords, idx, attrs["params"], result.metrics, False, name,
                      result.seconds, result.n_iter_run)


def start_order(n: int, reference: int, align: str) -> list[tuple[int, int]]:
    """(entry, entry it starts from) in the order they are made, the reference first (its own start)."""
    order = [(reference, reference)]
    if align == "chain":
        order += [(i, i + 1) for i in range(reference - 1, -1, -1)]
        order += [(i, i - 1) for i in range(reference + 1, n)]
    else:
        order += [(i, reference) for i in range(n) if i != reference]
    return order


def pairs_of(n: int, reference: int) -> list[tuple[int, int]]:
    """Neighbours in the sequence, then each entry against the reference (each pair once)."""
    out = [(i, i + 1) for i in range(n - 1)]
    out += [(i, reference) for i in range(n) if i != reference and (i, reference) not in out
            and (reference, i) not in out]
    return out


def compare_entries(store: Store, entries: Sequence[str], stages: Sequence[str], params: EmbedParams,
                    selection: RowSelection = RowSelection(), *, labels_of: Sequence[str] | None = None,
                    align: str = DEFAULT_ALIGN, reference: int = -1, n_jobs: int = 1, progress=True,
                    top: int = 10) -> CompareResult:
    """Aligned maps of every entry and stage over the rows all share, and the numbers of each pair."""
    from .compare import pair_numbers

    t0 = time.perf_counter()
    entries = list(entries)
    labels_of = list(labels_of) if labels_of else [e[:12] for e in entries]
    if align not in ALIGN_METHODS:
        raise ParamError(f"unknown align {align!r}", f"use --align {' | '.join(ALIGN_METHODS)}")
    metas = check_entries(store, entries, labels_of)
    n = len(entries)
    if not -n <= int(reference) < n:
        raise ParamError(f"reference {reference} is out of range for {n} entries",
                         f"use --reference 0..{n - 1} (or -1, the last)")
    r = int(reference) % n
    params = params.validate()
    selection = selection.validate()
    stages = check_stages(metas, stages, labels_of)
    class_names = list(metas[0]["class_names"])
    out = CompareResult(entries, labels_of, r, align, class_names, stages)
    for stage in stages:
        idxs, ids, labels = shared_rows(store, entries, stage, selection, r, len(class_names), labels_of)
        out.rows[stage], out.ids[stage], out.labels[stage] = len(ids), ids, labels
        X = [store.read_rows(e, idx, stage).astype(np.float32, copy=False) for e, idx in zip(entries, idxs)]
        maps: list[CompareMap | None] = [None] * n
        ref = independent_map(store, entries[r], metas[r], stage, idxs[r], X[r], labels, params, selection,
                              n_jobs, progress)
        maps[r] = ref
        for i, s in start_order(n, r, align)[1:]:
            if align in ("procrustes", "none"):
                ind = independent_map(store, entries[i], metas[i], stage, idxs[i], X[i], labels, params,
                                      selection, n_jobs, progress)
                maps[i] = ind if align == "none" else aligned_map(
                    store, entries[i], metas[i], stage, idxs[i], X[i], labels, params, selection, n_jobs,
                    progress, align="procrustes", start=ref, target=ref, independent=ind)
            else:
                maps[i] = aligned_map(store, entries[i], metas[i], stage, idxs[i], X[i], labels, params,
                                      selection, n_jobs, progress, align=align, start=maps[s], target=ref)
        out.maps[stage] = maps
        pairs = []
        for a, b in pairs_of(n, r):
            nums = pair_numbers(X[a], X[b], labels, class_names, Ya=maps[a].coords, Yb=maps[b].coords,
                                top=top, n_jobs=n_jobs)
            nums["changed"] = [{"position": int(p), "dataset_index": int(idxs[b][p]),
                                "dataset_index_a": int(idxs[a][p]), "path": str(ids[p]),
                                "label": class_names[int(labels[p])], "jaccard": j}
                               for p, j in zip(nums.pop("changed_positions"), nums.pop("changed_jaccard"))]
            kind = "neighbours" if b == a + 1 else "reference"
            if b == a + 1 and b == r:
                kind = "neighbours, reference"
            pairs.append({"a": a, "b": b, "entry_a": entries[a], "entry_b": entries[b], "label_a": labels_of[a],
                          "label_b": labels_of[b], "kind": kind, **nums})
        out.pairs[stage] = pairs
    out.shared_counts = {e: int(len(store.present(e, []))) for e in entries}
    out.seconds = time.perf_counter() - t0
    return out


def pairs_table(result: CompareResult) -> str:
    """One line per pair and stage: the numbers to read first."""
    head = ["stage", "pair", "kind", "overlap", "null", "cka", "acc_feat_a", "acc_feat_b", "acc_map_a",
            "acc_map_b", "displ", "gained", "lost"]
    lines = []
    for stage, pairs in result.pairs.items():
        for p in pairs:
            g = ",".join(f"{c['class']}{c['change']:+.2f}" for c in p["classes"]["gained"][:2]) or "-"
            lo = ",".join(f"{c['class']}{c['change']:+.2f}" for c in p["classes"]["lost"][:2]) or "-"
            lines.append([stage, f"{p['label_a']} -> {p['label_b']}", p["kind"], f"{p['overlap']:.3f}",
                          f"{p['overlap_null']:.3f}", f"{p['cka']:.3f}", f"{p['knn_acc_features_a']:.3f}",
                          f"{p['knn_acc_features_b']:.3f}", f"{p.get('knn_acc_map_a', float('nan')):.3f}",
                          f"{p.get('knn_acc_map_b', float('nan')):.3f}", f"{p.get('displacement', float('nan')):.3f}",
                          g, lo])
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*row) for row in lines])
