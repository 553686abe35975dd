"""``vistsne store gc``: remove what interrupted runs left, and nothing a live writer owns.

Removed:

- uncommitted parts whose writer is dead (a process on this host that no
  longer runs, its pid and start time checked), or, for writers on other
  hosts, older than ``older_than`` seconds;
- markers of dead writers (``entries/<key>/writers/<id>``);
- entries without any committed part, unless a live writer is registered on
  them or they changed less than ``grace`` seconds ago (a first run may be
  starting: its entry exists before its first part commits);
- map attempts that never completed, of dead writers; complete duplicates of
  a map (concurrent embeds of one key), keeping the first complete one; and
  maps whose stage or rows are no longer in the entry.

Damaged data is ``vistsne store repair``'s and is left alone here.
"""

from __future__ import annotations

import os
import time

from ..errors import DamagedError, NotFoundError
from . import writers
from .writers import age_seconds


def _entry_age(store, key: str, meta: dict, stamps: list) -> float:
    """Seconds since anything of the entry last changed, as far as it records.

    An entry that records no time at all (a group a writer has just made) is
    aged by its folder's modification time where the store is local.
    """
    ages = [age_seconds(meta.get("updated")), age_seconds(meta.get("created"))]
    ages += [age_seconds(s) for s in stamps if s]
    if min(ages) == float("inf") and store.local:
        try:
            ages.append(max(0.0, time.time() - os.stat(os.path.join(store.path, "entries", key)).st_mtime))
        except OSError:
            pass
    return min(ages)


def _live_writers(store, key: str, older_than: float, prune: bool) -> bool:
    live = False
    for wid, w in store.writers(key).items():
        if writers.live(w, older_than):
            live = True
        elif prune:
            store.remove_writer_marker(key, wid)
    return live


def collect_garbage(store, older_than: float = 3600.0, grace: float = 60.0) -> dict:
    """Remove leftovers (see the module docs); what was removed, by kind."""
    removed: dict[str, list[str]] = {"parts": [], "entries": [], "embeddings": []}
    for key in store.entry_keys():
        try:
            meta = store.entry_meta(key)
        except NotFoundError:
            continue
        except Exception:  # noqa: BLE001 - unreadable metadata: `vistsne store repair`'s
            continue
        stamps = [w.get("since") for w in store.writers(key).values()]
        live = _live_writers(store, key, older_than, prune=True)
        for p in store.parts(key):
            if p.committed or p.damaged:
                continue
            stamps.append(p.created)
            if writers.live(p.writer, older_than, since=p.created):
                live = True
            else:
                store.remove_part(key, p.name)
                removed["parts"].append(f"{key[:12]}/{p.name}")
        committed = [p for p in store.parts(key) if p.committed]
        if not committed:
            if live or _entry_age(store, key, meta, stamps) <= grace:
                continue
            if _live_writers(store, key, older_than, prune=False):  # registered since the first look
                continue
            store.remove_entry(key)
            removed["entries"].append(key[:12])
            continue
        removed["embeddings"] += _collect_maps(store, key, meta, older_than)
    return removed


def _collect_maps(store, key: str, meta: dict, older_than: float) -> list[str]:
    out: list[str] = []
    stages = set(meta.get("stages", {}))
    by_key: dict[str, list] = {}
    for e in store.attempts(key):
        by_key.setdefault(e.key, []).append(e)
    present: dict[str, set[int]] = {}
    for ekey, atts in sorted(by_key.items()):
        tag = f"{key[:12]}/{ekey[:12]}"
        for e in atts:
            if e.damaged or e.complete:
                continue
            if not writers.live(e.attrs.get("writer"), older_than):
                store.remove_embedding_attempt(key, e.name)
                out.append(tag)
        done = sorted((e for e in atts if e.complete and not e.damaged), key=lambda e: e.order)
        if not done:
            continue
        first = done[0]
        if first.stage not in stages:
            orphan = True
        else:
            if first.stage not in present:
                try:
                    present[first.stage] = store.present(key, [first.stage])
                except DamagedError:
                    present[first.stage] = None
            if present[first.stage] is None:
                continue  # damaged rows: repair first, then decide
            try:
                _, index = store.read_embedding(key, first.name)
            except DamagedError:
                continue
            orphan = not set(index.tolist()) <= present[first.stage]
        if orphan:
            for e in done:
                store.remove_embedding_attempt(key, e.name)
            out.append(tag)
            continue
        for e in done[1:]:  # complete duplicates: readers see the first only
            store.remove_embedding_attempt(key, e.name)
            out.append(tag)
    return out
