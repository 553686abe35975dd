"""Embeddings through the store: choose rows, reuse cached maps, store new ones.

An embedding's key is a sha256 over the entry key, the stage, the selected
rows, every t-SNE parameter (and the values derived from them), the openTSNE
version and vistsne's engine version. A repeated embed is a cache hit that runs no optimisation.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..entries import extract_command
from ..errors import FeatureError, StageError
from ..hashing import sha256_json
from ..selection import select_rows
from ..store import Store
from .params import ENGINE_VERSION, EmbedParams, resolve

log = logging.getLogger("vistsne")


def opentsne_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openTSNE")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


@dataclass(frozen=True)
class RowSelection:
    """Which cached rows to embed; the same meaning as in extract."""

    class_idx: tuple[int, ...] | None = None
    max_num_class: int = 20
    max_num_samples: int = 100


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


def rows_digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()


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
    have = list(meta.get("stages", {}))
    if not stages or list(stages) == ["all"]:
        if not have:
            raise StageError("the entry has no stored stages yet", "run `vistsne extract` first")
        return have
    out = []
    for s in stages:
        if s not in have:
            raise StageError(f"unknown stage {s!r}; this entry has: {', '.join(have)}",
                             "pass one of those with --stage, or all")
        out.append(s)
    return out


def select_cached_rows(store: Store, entry: str, stage: str, selection: RowSelection) -> np.ndarray:
    """The selected rows of ``stage`` that the entry holds; warns when some are missing."""
    meta = store.entry_meta(entry)
    wanted, _ = select_rows(store.dataset_labels(entry), len(meta["class_names"]), selection.class_idx,
                            selection.max_num_class, selection.max_num_samples)
    present = store.present(entry, [stage])
    have = np.array([i for i in wanted.tolist() if i in present], dtype=np.int64)
    if len(have) < len(wanted):
        extra = ["--max-num-class", str(selection.max_num_class), "--max-num-samples",
                 str(selection.max_num_samples)]
        for c in selection.class_idx or ():
            extra += ["--class-idx", str(c)]
        if meta.get("test_cfg"):
            extra += ["--test-cfg", meta["test_cfg"]]
        if meta.get("images"):
            extra += ["--images", meta["images"]]
        log.warning("entry %s holds %d of the %d rows asked for (stage %s); embedding those. "
                    "To add the rest: %s", entry[:12], len(have), len(wanted), stage,
                    extract_command(meta.get("config", "CONFIG"), meta.get("checkpoint"), extra))
    return have


def embed_entry(store: Store, entry: str, stages: Sequence[str], params_list: Sequence[EmbedParams],
                selection: RowSelection = RowSelection(), *, n_jobs: int = 1, progress=True,
                stats=None) -> list[EmbedRecord]:
    """Every (stage, params) map of an entry: cached ones read, missing ones computed and stored."""
    from .tsne import check_features, embed_many

    meta = store.entry_meta(entry)
    stages = resolve_stages(meta, stages)
    params_list = [p.validate() for p in params_list]
    records: list[EmbedRecord] = []
    for stage in stages:
        indices = select_cached_rows(store, entry, stage, selection)
        if len(indices) < 2:
            raise FeatureError(f"only {len(indices)} row(s) of stage {stage} selected; t-SNE needs at least 2",
                               "select more classes or samples, or extract more rows")
        X = store.read_rows(entry, indices, stage)
        labels = store.read_rows(entry, indices, what="label")
        keyed = []
        for p in params_list:
            res = resolve(p, len(indices), X.shape[1])
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
        check_features(X, stage)
        keys = {sha256_json(p.to_dict()): key for p, key in todo}
        t_stage = time.perf_counter()
        feature_acc = known_feature_accuracy(store, entry, stage, rows_digest(indices))
        for result in embed_many(X.astype(np.float32, copy=False), labels, [p for p, _ in todo],
                                 n_jobs=n_jobs, progress=progress, stats=stats, stage=stage,
                                 feature_acc=feature_acc):
            key = keys[sha256_json(result.params.to_dict())]
            attrs = {
                "entry": entry, "stage": stage, "rows": int(len(indices)),
                "rows_sha256": rows_digest(indices),
                "params": result.params.to_dict(), "resolved": result.resolved,
                "kl_divergence": float(result.kl_divergence), "n_iter_run": int(result.n_iter_run),
                "seconds": float(result.seconds), "metrics": result.metrics,
                "opentsne": opentsne_version(), "n_jobs": n_jobs,
                "config_name": meta.get("config_name"), "checkpoint": meta.get("checkpoint"),
            }
            store.write_embedding(entry, key, result.coords, indices, attrs)
            records.append(EmbedRecord(key, entry, stage, len(indices), attrs["params"], result.resolved,
                                       False, result.seconds, result.metrics, result.n_iter_run, attrs))
        log.debug("stage %s: %d maps in %.1fs", stage, len(todo), time.perf_counter() - t_stage)
    return records


def metrics_table(records: Sequence[EmbedRecord]) -> str:
    """One table per call: parameters and metrics of every map, for picking by numbers."""
    head = ["key", "stage", "rows", "perp", "n_iter", "ee", "lr", "init", "dim", "seed", "KL", "knn_map",
            "knn_feat", "trust", "iters", "time"]
    lines = []
    for r in records:
        p, m = r.params, r.metrics
        lr = r.resolved.get("learning_rate", p.get("learning_rate"))
        lines.append([r.key[:10], r.stage, str(r.rows), f"{p['perplexity']:g}", str(p["n_iter"]),
                      f"{p['early_exaggeration']:g}", f"{lr:.0f}" if isinstance(lr, (int, float)) else str(lr),
                      str(p["init"]), str(p["n_components"]), str(p["seed"]),
                      f"{m.get('kl_divergence', float('nan')):.3f}", f"{m.get('knn_acc_map', float('nan')):.3f}",
                      f"{m.get('knn_acc_features', float('nan')):.3f}", f"{m.get('trustworthiness', float('nan')):.3f}",
                      str(r.n_iter_run), "cached" if r.cached else f"{r.seconds:.1f}s"])
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*row) for row in lines])
