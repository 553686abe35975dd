"""``vistsne store repair``: drop what is damaged, so that the next run computes it again.

The damage is what a deep verify finds (:func:`vistsne.store.verify.verify_store`
with ``deep=True``: every byte read, every checksum checked). A damaged part
is dropped by first clearing its commit marker (from then on its rows read as
missing, to every reader) and then deleting it; the next ``vistsne extract``
with the same selection recomputes exactly those rows. A damaged map attempt
is hidden and deleted the same way (``vistsne embed`` recomputes it); damaged
``dataset_labels`` are deleted (``vistsne extract`` writes them again); an
entry whose own metadata is unreadable is removed. Leftovers of interrupted
runs are ``gc``'s, and are left alone here.
"""

from __future__ import annotations

from .maps import short_name
from .verify import Problem, VerifyReport, verify_store


def plan_repair(store) -> tuple[VerifyReport, list[Problem]]:
    """(the deep verify report, the problems repair would act on, one per part/map/labels/entry)."""
    report = verify_store(store, deep=True)
    plan: dict[tuple[str, str, str], Problem] = {}
    for p in report.problems:
        if p.action == "repair":
            plan.setdefault((p.entry, p.kind, p.name), p)
    return report, list(plan.values())


def apply_repair(store, plan: list[Problem]) -> dict:
    """Drop everything in ``plan``; what was dropped, by kind."""
    done: dict[str, list[str]] = {"parts": [], "embeddings": [], "dataset_labels": [], "entries": []}
    gone = {p.entry for p in plan if p.kind == "entry"}
    for key in sorted(gone):
        store.remove_entry(key)
        done["entries"].append(key[:12])
    for p in plan:
        if p.entry in gone:
            continue
        if p.kind == "part":
            store.remove_part(p.entry, p.name)
            done["parts"].append(f"{p.entry[:12]}/{p.name}")
        elif p.kind == "map":
            store.remove_embedding_attempt(p.entry, p.name)
            done["embeddings"].append(f"{p.entry[:12]}/{short_name(p.name)}")
        elif p.kind == "labels":
            store.drop_dataset_labels(p.entry)
            done["dataset_labels"].append(p.entry[:12])
    return done
