"""One row per entry for ``vistsne store ls``."""

from __future__ import annotations

import os

import numpy as np

from ..errors import NotFoundError
from ..stages import network_order


def _name(value) -> str | None:
    """A config or checkpoint argument as a short name: the file's name, or a URL's last part."""
    if not value:
        return None
    text = str(value).split("?")[0].rstrip("/")
    return text.rsplit("/", 1)[-1] if "://" in text or "::" in text else os.path.basename(text)


def data_source(meta: dict) -> str:
    """Where the entry's images came from: the ``--images`` folder, else the config's test dataset."""
    if meta.get("images"):
        return f"images {meta['images']}"
    ds = meta.get("dataset") or {}
    if not ds:
        return "the config's test set"
    where = ds.get("data_root") or ""
    split = f" {ds['split']}" if ds.get("split") else ""
    return f"{ds.get('type', 'dataset')}{split}" + (f" at {where}" if where else "")


def entry_summary(store, key: str) -> dict:
    meta = store.entry_meta(key)
    parts = store.parts(key)
    complete = bool(meta.get("class_names")) and any(p.committed for p in parts) and all(
        p.committed for p in parts)
    rows = 0
    per_class = None
    if meta.get("class_names"):
        look = store._lookup(key, None, skip_damaged=True)  # a damaged part's rows are not counted
        rows = len(look.index)
        complete = complete and len(look.parts) == len(look.names)
        if rows:
            counts = np.bincount(store.dataset_labels(key)[look.index], minlength=len(meta["class_names"]))
            held = counts[counts > 0]
            per_class = {"classes": int(len(held)), "min": int(held.min()), "max": int(held.max())}
    stages = dict(meta.get("stages", {}))
    return {
        "key": key,
        "config": meta.get("config"),
        "config_name": _name(meta.get("config")),
        "checkpoint": meta.get("checkpoint"),
        "checkpoint_name": _name(meta.get("checkpoint")) or "random init",
        "data": data_source(meta),
        "complete": complete,
        "rows": rows,
        "per_class": per_class,
        "partial_checkpoint": meta.get("partial_checkpoint"),
        "stages": {s: stages[s] for s in network_order(stages)},
        "embeddings": len(store.embeddings(key)),
        "size_bytes": store.size_bytes(key),
        "created": meta.get("created"),
    }


def entry_summaries(store) -> list[dict]:
    out = []
    for k in store.entry_keys():
        try:
            out.append(entry_summary(store, k))
        except NotFoundError:  # removed while listing
            continue
    return out
