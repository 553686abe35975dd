"""The embed stage over an entry of the store: choose rows, reuse cached maps, store new ones.

:func:`embed_entry` is this package's store-level entry point (as
``extract_entry`` and ``render_entry`` are the others'). It reads features
only when some map is not cached, and stores with every map its own file
name (``name``), so that render needs nothing from this package.

An embedding's key is a sha256 over the entry key, the stage, the selected
rows, every t-SNE parameter (and the values derived from them), the openTSNE
version and vistsne's engine version. A repeated embed is a cache hit that runs no optimisation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import FeatureError, StageError
from ..hashing import sha256_json
from ..hints import did_you_mean, extract_command_for
from ..selection import RowSelection, rows_digest, rows_held
from ..stages import network_order
from ..store import Store
from .params import ENGINE_VERSION, EmbedParams, resolve

log = logging.getLogger("vistsne")


def opentsne_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openTSNE")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


@dataclass
class EmbedRecord:
    key: str
    entry: str
    stage: str
    rows: int
    params: dict
    resolved: dict
    cached: bool
    seconds: float
    metrics: dict
    n_iter_run: int = 0
    attrs: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        return {"key": self.key, "entry": self.entry, "stage": self.stage, "rows": self.rows,
                "params": self.params, "cached": self.cached, "seconds": round(self.seconds, 3),
                "metrics": self.metrics}


def embedding_key(entry: str, stage: str, indices: np.ndarray, params: EmbedParams, resolved: dict) -> str:
    return sha256_json({"entry": entry, "stage": stage, "rows": rows_digest(indices),
                        "params": params.to_dict(), "resolved": resolved, "opentsne": opentsne_version(),
                        "engine": ENGINE_VERSION})


def known_feature_accuracy(store: Store, entry: str, stage: str, rows_sha256: str) -> float | None:
    """The feature-space 10-NN accuracy of these rows, if a stored map already holds it.

    It depends on the entry, the stage and the rows only, so any complete map
    of the same rows carries the number; a re-tune then skips computing it.
    """
    for info in store.embeddings(entry):
        a = info.attrs
        if a.get("stage") == stage and a.get("rows_sha256") == rows_sha256:
            value = (a.get("metrics") or {}).get("knn_acc_features")
            if isinstance(value, (int, float)):
                return float(value)
    return None


def resolve_stages(meta: dict, stages: Sequence[str]) -> list[str]:
    """The stored stages asked for, in network order (``all``: every one)."""
    have = network_order(meta.get("stages", {}))
    if not have:
        raise StageError("the entry has no stored stages yet", f"run `{extract_command_for(meta)}` first")
    if not stages or list(stages) == ["all"]:
        return have
    out = []
    for s in stages:
        if s not in have:
            raise StageError(f"unknown stage {s!r}; this entry has: {', '.join(have)}",
                             f"{did_you_mean(s, have)}pass one of those with --stage, or all")
        out.append(s)
    return network_order(out)


def stage_names(meta: dict, stages: Sequence[str]) -> dict[str, list[str]]:
    """The stored stage of each requested one, with every name it goes by: identical stages are
    stored once (the entry's ``aliases``), so they are embedded once and shown under all their names."""
    aliases = {a: c for a, c in (meta.get("aliases") or {}).items() if c}
    out: dict[str, list[str]] = {}
    for s in stages:
        out.setdefault(aliases.get(s, s), [])
    for name in network_order(meta.get("stages", {})):
        canon = aliases.get(name, name)
        if canon in out and name not in out[canon]:
            out[canon].append(name)
    return {c: network_order([c, *names]) for c, names in out.items()}


def select_cached_rows(store: Store, entry: str, stage: str, selection: RowSelection,
                       wanted: np.ndarray | None = None) -> np.ndarray:
    """The selected rows of ``stage`` that the entry holds.

    Warns when some are missing (naming the extract command that adds them),
    and says in one line when the stage holds more rows than the default
    selection takes (naming the flags that take them all).
    """
    meta = store.entry_meta(entry)
    if wanted is None:
        wanted, _ = selection.rows(store.dataset_labels(entry), len(meta["class_names"]))
    present = store.present(entry, [stage])
    have = rows_held(wanted, present)
    if len(have) < len(wanted):
        flags = ["--max-num-class", "all" if selection.max_num_class is None else str(selection.max_num_class),
                 "--max-num-samples",
                 "all" if selection.max_num_samples is None else str(selection.max_num_samples)]
        if selection.class_idx:
            flags = [f for c in selection.class_idx for f in ("--class-idx", str(c))] + flags[2:]
        log.warning("entry %s holds %d of the %d rows asked for (stage %s); embedding those. "
                    "To add the rest: %s", entry[:12], len(have), len(wanted), stage,
                    extract_command_for(meta, flags))
    if selection.is_default and len(present) > len(have):
        log.info("stage %s holds %d rows; using the default selection of %d (the first %d classes, at most "
                 "%d each); pass --max-num-class all --max-num-samples all to take them all", stage,
                 len(present), len(have), selection.max_num_class, selection.max_num_samples)
    return have


def file_stem(stage: str, params: dict, selection: RowSelection, complete: bool, rows: int) -> str:
    """The stored map's own file name, e.g. ``pre_logits_p30_s0``; render writes ``<entry12>_<stem>``.

    Parameters that differ from the defaults add short tokens (``_it500``,
    ``_init-random``); a non-default selection adds what it holds (``_c50``,
    ``_nall``); rows fewer than the selection asks for add their count (``_r401``).
    """
    name = f"{stage}_p{_num(params.get('perplexity'))}_s{params.get('seed')}"
    for field_name, tok in NAME_TOKENS:
        if field_name in params and params[field_name] != DEFAULT_PARAMS.get(field_name):
            name += f"_{tok}{_num(params[field_name])}"
    if selection.token():
        name += f"_{selection.token()}"
    if not complete:
        name += f"_r{rows}"
    return name.replace("/", "-").replace(" ", "")


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


DEFAULT_PARAMS = EmbedParams().to_dict()
# short tokens for parameters that differ from the defaults, in file names
NAME_TOKENS = [("n_iter", "it"), ("early_exaggeration", "ee"), ("learning_rate", "lr"), ("init", "init-"),
               ("n_components", "d"), ("pca_dims", "pca"), ("method", ""), ("n_iter_without_progress", "nwp"),
               ("subsample", "sub")]


def embed_entry(store: Store, entry: str, stages: Sequence[str], params_list: Sequence[EmbedParams],
                selection: RowSelection = RowSelection(), *, n_jobs: int = 1, progress=True,
                stats=None) -> list[EmbedRecord]:
    """Every (stage, params) map of an entry: cached ones read, missing ones computed and stored."""
    from .tsne import check_features, check_memory, embed_many

    meta = store.entry_meta(entry)
    names_of = stage_names(meta, resolve_stages(meta, stages))
    stages = network_order(names_of)
    params_list = [p.validate() for p in params_list]
    selection = selection.validate()
    wanted, _ = selection.rows(store.dataset_labels(entry), len(meta["class_names"]))
    records: list[EmbedRecord] = []
    for stage in stages:
        indices = select_cached_rows(store, entry, stage, selection, wanted)
        if len(indices) < 2:
            raise FeatureError(f"only {len(indices)} row(s) of stage {stage} selected; t-SNE needs at least 2",
                               "select more classes or samples, or extract more rows")
        dim = int(meta["stages"][stage])  # the width is in the metadata: no feature read for a cache hit
        keyed = []
        for p in params_list:
            res = resolve(p, len(indices), dim)
            keyed.append((p, res, embedding_key(entry, stage, indices, p, res)))
        todo = []
        for p, res, key in keyed:
            info = store.embedding(entry, key)
            if info is not None:
                a = info.attrs
                records.append(EmbedRecord(key, entry, stage, len(indices), a["params"], a["resolved"], True,
                                           0.0, a["metrics"], a.get("n_iter_run", 0), a))
            else:
                todo.append((p, key))
        if not todo:
            continue
        # before any read: will these maps fit in memory? (float16 features also get a float32 copy)
        stored = str((meta.get("extract") or {}).get("dtype", "float32"))
        check_memory([p for p, _ in todo], len(indices), dim, 6 if stored == "float16" else 4, n_jobs)
        X = store.read_rows(entry, indices, stage)
        labels = store.read_rows(entry, indices, what="label")
        predictions = stored_predictions(store, entry, indices) if same_classes(meta) else None
        check_features(X, stage)
        keys = {sha256_json(p.to_dict()): key for p, key in todo}
        t_stage = time.perf_counter()
        feature_acc = known_feature_accuracy(store, entry, stage, rows_digest(indices))
        maps = embed_many(X.astype(np.float32, copy=False), labels, [p for p, _ in todo], n_jobs=n_jobs,
                          progress=progress, stats=stats, stage=stage, feature_acc=feature_acc)
        for result in thread_limited(maps, n_jobs):
            key = keys[sha256_json(result.params.to_dict())]
            attrs = {
                "entry": entry, "stage": stage, "rows": int(len(indices)),
                "rows_sha256": rows_digest(indices),
                "params": result.params.to_dict(), "resolved": result.resolved,
                "kl_divergence": float(result.kl_divergence), "n_iter_run": int(result.n_iter_run),
                "seconds": float(result.seconds), "metrics": result.metrics,
                "opentsne": opentsne_version(), "n_jobs": n_jobs,
                "config_name": meta.get("config_name"), "checkpoint": meta.get("checkpoint"),
                "selection": selection.to_dict(), "rows_complete": bool(len(indices) == len(wanted)),
                "stage_names": names_of[stage],
                "name": file_stem(stage, result.params.to_dict(), selection, len(indices) == len(wanted),
                                  len(indices)),
            }
            extras = None
            if result.neighbors is not None:
                extras = row_scores(labels, result.neighbors, predictions)
                attrs["knn_k"] = int(result.neighbors.shape[1])
                attrs["suspect_uses_predictions"] = predictions is not None
            store.write_embedding(entry, key, result.coords, indices, attrs, extras)
            records.append(EmbedRecord(key, entry, stage, len(indices), attrs["params"], result.resolved,
                                       False, result.seconds, result.metrics, result.n_iter_run, attrs))
        log.debug("stage %s: %d maps in %.1fs", stage, len(todo), time.perf_counter() - t_stage)
    return records


def same_classes(meta: dict) -> bool:
    """Whether the head predicts the dataset's own classes (so a prediction can be right or wrong)."""
    pc = meta.get("prediction_classes")
    return pc is None or list(pc) == list(meta.get("class_names") or [])


def stored_predictions(store: Store, entry: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(top-5 classes, their scores)`` of these rows, when the entry holds predictions for all of them."""
    if not set(indices.tolist()) <= store.present(entry, ["pred_top5", "score_top5"]):
        return None
    return store.read_rows(entry, indices, what="pred_top5"), store.read_rows(entry, indices, what="score_top5")


def row_scores(labels: np.ndarray, knn: np.ndarray, predictions=None) -> dict[str, np.ndarray]:
    """What a map stores per row beside its coordinates: its feature-space neighbours and the
    label-error scores read off them (:mod:`vistsne.embed.suspects`)."""
    from .suspects import neighbour_votes, suspect_scores

    disagree, majority = neighbour_votes(labels, knn)
    pred_top, score_top = predictions if predictions is not None else (None, None)
    return {"knn": np.asarray(knn, dtype=np.int32), "disagree": disagree,
            "majority": majority.astype(np.int32),
            "suspect": suspect_scores(disagree, labels, pred_top, score_top)}


def thread_limited(results, n_jobs: int):
    """Yield from ``results`` with BLAS and OpenMP (PCA, kNN, metrics) held to ``n_jobs`` threads."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(limits=max(1, int(n_jobs))):
        yield from results


def subsample_summary(records: Sequence[EmbedRecord]) -> str:
    """``subsample 20000 of 100000 rows (the rest placed by openTSNE transform): 10-NN acc 0.951 subsample,
    0.948 placed`` for each ``--subsample`` map, joined by ``; `` ("" when there is none)."""
    out = []
    for r in records:
        m, res = r.metrics or {}, r.resolved or {}
        if "knn_acc_placed" in m and res.get("subsample"):
            out.append(f"subsample {res['subsample']} of {r.rows} rows (the rest placed by openTSNE transform): "
                       f"10-NN acc {m.get('knn_acc_subsample', float('nan')):.3f} subsample, "
                       f"{m['knn_acc_placed']:.3f} placed")
    return "; ".join(out)


def _lr_text(lr, lr_after) -> str:
    """The learning rate(s) of a map: ``5833>70000`` when the phase after the exaggeration has its own."""
    if not isinstance(lr, (int, float)):
        return str(lr)
    if isinstance(lr_after, (int, float)) and lr_after != lr:
        return f"{lr:.0f}>{lr_after:.0f}"
    return f"{lr:.0f}"


def metrics_table(records: Sequence[EmbedRecord]) -> str:
    """One table per call: parameters and metrics of every map, for picking by numbers."""
    head = ["key", "stage", "rows", "perp", "n_iter", "ee", "lr", "init", "dim", "seed", "KL", "knn_map",
            "knn_feat", "trust", "iters", "time"]
    lines = []
    for r in records:
        p, m = r.params, r.metrics
        lr = r.resolved.get("learning_rate", p.get("learning_rate"))
        lr_after = r.resolved.get("learning_rate_after", lr)
        lines.append([r.key[:10], r.stage, str(r.rows), f"{p['perplexity']:g}", str(p["n_iter"]),
                      f"{p['early_exaggeration']:g}", _lr_text(lr, lr_after),
                      str(p["init"]), str(p["n_components"]), str(p["seed"]),
                      f"{m.get('kl_divergence', float('nan')):.3f}", f"{m.get('knn_acc_map', float('nan')):.3f}",
                      f"{m.get('knn_acc_features', float('nan')):.3f}", f"{m.get('trustworthiness', float('nan')):.3f}",
                      str(r.n_iter_run), "cached" if r.cached else f"{r.seconds:.1f}s"])
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*row) for row in lines])


# ---------------------------------------------------------------- suspects
@dataclass
class SuspectReport:
    """The rows of one map most likely mislabelled or confused, and the stage's confusion table."""

    entry: str
    stage: str
    embedding: str
    rows: int
    uses_predictions: bool
    items: list[dict]
    confusion: np.ndarray
    class_names: list[str]

    def to_json(self) -> dict:
        return {"entry": self.entry, "stage": self.stage, "embedding": self.embedding, "rows": self.rows,
                "uses_predictions": self.uses_predictions, "suspects": self.items,
                "confusion": self.confusion.tolist(), "class_names": self.class_names}


def suspects_entry(store: Store, entry: str, ekey: str, top: int = 50) -> SuspectReport:
    """The ``top`` most suspect rows of map ``ekey`` (scores stored with the map at embed time)."""
    from ..errors import NotFoundError
    from .suspects import confusion, ranking

    info = store.embedding(entry, ekey)
    if info is None:
        raise NotFoundError(f"entry {entry[:12]} has no complete map {ekey[:12]}", "run `vistsne embed` first")
    meta = store.entry_meta(entry)
    _, index = store.read_embedding(entry, ekey)
    disagree = store.read_map_extra(entry, ekey, "disagree")
    majority = store.read_map_extra(entry, ekey, "majority")
    suspect = store.read_map_extra(entry, ekey, "suspect")
    if disagree is None or majority is None or suspect is None:
        raise NotFoundError(f"map {ekey[:12]} was stored before label-error scores were",
                            "embed it again with other parameters (e.g. --seed 1), or remove it with "
                            "`vistsne store gc` after `vistsne store rm`")
    labels = store.read_rows(entry, index, what="label").astype(np.int64)
    predictions = stored_predictions(store, entry, index)
    ids = store.dataset_ids(entry)
    names = list(meta["class_names"])
    pred_names = list(meta.get("prediction_classes") or names)
    order = ranking(suspect, disagree)[:max(0, int(top))]
    items = []
    for pos in order.tolist():
        di = int(index[pos])
        item = {"position": pos, "dataset_index": di, "path": str(ids[di]) if ids is not None else None,
                "label": names[labels[pos]], "neighbour_majority": names[int(majority[pos])],
                "disagree": round(float(disagree[pos]), 4), "suspect": round(float(suspect[pos]), 4),
                "prediction": None, "confidence": None}
        if predictions is not None:
            item["prediction"] = pred_names[int(predictions[0][pos, 0])]
            item["confidence"] = round(float(predictions[1][pos, 0]), 4)
        items.append(item)
    stage = " = ".join(info.attrs.get("stage_names") or [info.stage])
    return SuspectReport(entry, stage, ekey, len(index), bool(info.attrs.get("suspect_uses_predictions")), items,
                         confusion(labels, majority, len(names)), names)
