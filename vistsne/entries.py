"""Finding, summarising and cleaning entries: store logic shared by the stages."""

from __future__ import annotations

import datetime as _dt
from .store import Store


def entry_summary(store: Store, key: str) -> dict:
    meta = store.entry_meta(key)
    parts = store.parts(key)
    complete = bool(meta.get("class_names")) and any(p.committed for p in parts) and all(
        p.committed for p in parts)
    return {
        "key": key,
        "config": meta.get("config"),
        "checkpoint": meta.get("checkpoint"),
        "complete": complete,
        "rows": len(store.present(key, [])) if meta.get("class_names") else 0,
        "stages": dict(meta.get("stages", {})),
        "embeddings": len(store.embeddings(key)),
        "size_bytes": store.size_bytes(key),
        "created": meta.get("created"),
    }


def entry_summaries(store: Store) -> list[dict]:
    return [entry_summary(store, k) for k in store.entry_keys()]


def _age_seconds(iso: str) -> float:
    try:
        t = _dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return float("inf")
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()


def collect_garbage(store: Store, older_than: float = 3600.0) -> dict:
    """Remove uncommitted parts of dead writers, empty entries, and bad embeddings.

    A part is removed when its writer process on this host is gone, or, for
    writers on other hosts, when it is older than ``older_than`` seconds. An
    embedding is removed when incomplete (interrupted) or orphaned: its stage
    or rows are no longer in the entry.
    """
    removed: dict[str, list[str]] = {"parts": [], "entries": [], "embeddings": []}
    import socket

    host = socket.gethostname()
    for key in store.entry_keys():
        meta = store.entry_meta(key)
        live = False
        for p in store.parts(key):
            if p.committed:
                continue
            same_host = (p.writer or {}).get("host") == host
            dead = (not p.writer_alive()) if same_host else _age_seconds(p.created) > older_than
            if dead:
                store.remove_part(key, p.name)
                removed["parts"].append(f"{key[:12]}/{p.name}")
            else:
                live = True
        committed = [p for p in store.parts(key) if p.committed]
        if not committed and not live and (not meta.get("class_names")
                                           or _age_seconds(meta.get("updated", "")) > 60):
            store.remove_entry(key)
            removed["entries"].append(key[:12])
            continue
        stages = set(meta.get("stages", {}))
        present_by_stage: dict[str, set[int]] = {}
        for e in store.embeddings(key, complete_only=False):
            if not e.complete:
                store.remove_embedding(key, e.key)
                removed["embeddings"].append(f"{key[:12]}/{e.key[:12]}")
                continue
            if e.stage not in stages:
                orphan = True
            else:
                if e.stage not in present_by_stage:
                    present_by_stage[e.stage] = store.present(key, [e.stage])
                _, index = store.read_embedding(key, e.key)
                orphan = not set(index.tolist()) <= present_by_stage[e.stage]
            if orphan:
                store.remove_embedding(key, e.key)
                removed["embeddings"].append(f"{key[:12]}/{e.key[:12]}")
    return removed
