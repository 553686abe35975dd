"""One row per entry for ``vistsne store ls``."""

from __future__ import annotations

from ..errors import NotFoundError


def entry_summary(store, key: str) -> dict:
    meta = store.entry_meta(key)
    parts = store.parts(key)
    complete = bool(meta.get("class_names")) and any(p.committed for p in parts) and all(
        p.committed for p in parts)
    rows = 0
    if meta.get("class_names"):
        look = store._lookup(key, None, skip_damaged=True)  # a damaged part's rows are not counted
        rows = len(look.index)
        complete = complete and len(look.parts) == len(look.names)
    return {
        "key": key,
        "config": meta.get("config"),
        "checkpoint": meta.get("checkpoint"),
        "complete": complete,
        "rows": rows,
        "stages": dict(meta.get("stages", {})),
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
