"""Maps: t-SNE coordinates of one stage over chosen rows, published under unique names.

Each write of map ``<ekey>`` is an attempt of its own,
``entries/<key>/embeddings/<ekey>~<uuid8>/``: its arrays first, then
``complete`` (with the record of its arrays and the time it completed) in one
attribute write. No writer ever deletes what another may be completing.
Readers take, per ekey, the complete attempt that completed first and hide
the others; ``gc`` removes complete duplicates and incomplete attempts of
dead writers. A map of an older version (stored under plain ``<ekey>``)
reads as one attempt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from ..errors import NotFoundError
from . import arrays, writers
from .arrays import Where

SEP = "~"


@dataclass
class EmbeddingInfo:
    key: str      # the map's key (ekey)
    entry: str
    attrs: dict
    name: str = ""  # the attempt's group name (``<ekey>~<uuid8>``; ``<ekey>`` for older maps)
    damaged: str = ""

    def __post_init__(self):
        self.name = self.name or self.key

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    @property
    def stage(self) -> str:
        return self.attrs.get("stage", "")

    @property
    def order(self) -> tuple[str, str]:
        """Sort key of 'first complete': when it completed, then its name."""
        return (str(self.attrs.get("completed") or self.attrs.get("created") or "~"), self.name)


def ekey_of(name: str) -> str:
    return name.split(SEP, 1)[0]


def short_name(name: str) -> str:
    """``<ekey12>~<uuid8>`` of an attempt's name (``<ekey12>`` for older maps)."""
    ekey, _, attempt = name.partition(SEP)
    return ekey[:12] + (SEP + attempt if attempt else "")


class MapsMixin:
    """The map-level methods of :class:`vistsne.store.Store`."""

    def _embeddings(self, key: str, create: bool = False):
        ents = self._entries()
        if ents is None:
            return None
        grp = ents[key]
        if "embeddings" not in grp:
            return arrays.require_group(grp, "embeddings") if create and not self.readonly else None
        return grp["embeddings"]

    def attempts(self, key: str, ekey: str | None = None) -> list[EmbeddingInfo]:
        """Every attempt (complete or not) of every map, or of map ``ekey``, by name."""
        base = f"entries/{key}/embeddings"
        if self.local:
            names = self._child_names(base, None)
        else:
            emb = self._embeddings(key)
            names = self._child_names(base, emb) if emb is not None else []
        out = []
        for name in names:
            if ekey is not None and ekey_of(name) != ekey:
                continue
            try:
                attrs = self._node_attrs(f"{base}/{name}")
            except (KeyError, FileNotFoundError):
                continue  # being created or removed right now
            except Exception as e:  # noqa: BLE001 - unreadable metadata: damage, never complete
                out.append(EmbeddingInfo(ekey_of(name), key, {}, name,
                                         damaged=f"its metadata is unreadable ({arrays.describe(e)})"))
                continue
            out.append(EmbeddingInfo(ekey_of(name), key, attrs, name))
        return out

    @staticmethod
    def _first_complete(infos: list[EmbeddingInfo]) -> dict[str, EmbeddingInfo]:
        first: dict[str, EmbeddingInfo] = {}
        for e in infos:
            if e.complete and (e.key not in first or e.order < first[e.key].order):
                first[e.key] = e
        return first

    def embedding_keys(self, key: str) -> list[str]:
        return sorted(self._first_complete(self.attempts(key)))

    def embeddings(self, key: str, complete_only: bool = True) -> list[EmbeddingInfo]:
        """One per map (its first complete attempt), by key; every attempt with ``complete_only=False``."""
        infos = self.attempts(key)
        if not complete_only:
            return infos
        first = self._first_complete(infos)
        return [first[k] for k in sorted(first)]

    def embedding(self, key: str, ekey: str) -> EmbeddingInfo | None:
        """Map ``ekey``'s first complete attempt, or None."""
        return self._first_complete(self.attempts(key, ekey_of(ekey))).get(ekey_of(ekey))

    def write_embedding(self, key: str, ekey: str, coords: np.ndarray, index: np.ndarray,
                        attrs: dict, extras: dict[str, np.ndarray] | None = None) -> str:
        """Publish a map as a new attempt; the attempt's name.

        ``extras``: more per-row arrays of the map (its rows' feature-space
        neighbours, ``knn``), read back with :meth:`read_map_extra`.
        """
        name = f"{ekey}{SEP}{uuid.uuid4().hex[:8]}"
        grp = self._embeddings(key, create=True).create_group(
            name, attributes={**attrs, "complete": False, "writer": writers.identity()})
        coords = np.asarray(coords, dtype=np.float32)
        n = len(index)
        rows = max(1, min(n, 1 << 16))
        rec = {"coords": arrays.write(grp, "coords", coords, (rows, coords.shape[1]), self._chunks),
               "index": arrays.write(grp, "index", np.asarray(index, dtype=np.int64), (rows,), self._chunks)}
        for name_, arr in (extras or {}).items():
            arr = np.asarray(arr)
            rec[name_] = arrays.write(grp, name_, arr, (rows,) + tuple(arr.shape[1:]), self._chunks)
        grp.attrs.update({"arrays": rec, "complete": True, "created": writers.now_iso(),
                          "completed": writers.now_iso_us()})  # written last
        return name

    def _map_attempt(self, key: str, ekey: str) -> EmbeddingInfo:
        if SEP in ekey:
            hits = [e for e in self.attempts(key, ekey_of(ekey)) if e.name == ekey and e.complete]
            info = hits[0] if hits else None
        else:
            info = self.embedding(key, ekey)
        if info is None:
            raise NotFoundError(f"no complete map {ekey[:12]} in entry {key[:12]}",
                                "list them with `vistsne store info KEY`")
        return info

    def read_embedding(self, key: str, ekey: str) -> tuple[np.ndarray, np.ndarray]:
        """(coords, dataset index) of map ``ekey`` (its first complete attempt), chunks checked."""
        info = self._map_attempt(key, ekey)
        node = f"map {short_name(info.name)}"
        wheres = [Where(key, node, "coords"), Where(key, node, "index")]
        opened = arrays.open_many(self.root.store, [f"entries/{key}/embeddings/{info.name}/{a}"
                                                    for a in ("coords", "index")], wheres)
        rec = info.attrs.get("arrays") or {}
        for arr, where in zip(opened, wheres):
            r = rec.get(where.array)
            if r and list(arr.shape) != list(r.get("shape", arr.shape)):
                raise arrays.damaged(where, f"its shape {tuple(arr.shape)} differs from the recorded "
                                            f"{tuple(r['shape'])}")
            if self.check_chunks:
                arrays.check_present(self._chunks, arr, where)
        coords, index = arrays.read_many([(a, slice(None), w) for a, w in zip(opened, wheres)])
        if coords.shape[0] != index.shape[0]:
            raise arrays.damaged(wheres[1], f"{index.shape[0]} rows against {coords.shape[0]} coordinates")
        return coords, index

    def read_map_extra(self, key: str, ekey: str, name: str) -> np.ndarray | None:
        """A per-row array stored with map ``ekey`` (None when the map has none of that name)."""
        info = self._map_attempt(key, ekey)
        rec = info.attrs.get("arrays") or {}
        if name not in rec:
            return None
        where = Where(key, f"map {short_name(info.name)}", name)
        (arr,) = arrays.open_many(self.root.store, [f"entries/{key}/embeddings/{info.name}/{name}"], [where])
        if list(arr.shape) != list(rec[name].get("shape", arr.shape)):
            raise arrays.damaged(where, f"its shape {tuple(arr.shape)} differs from the recorded "
                                        f"{tuple(rec[name]['shape'])}")
        if self.check_chunks:
            arrays.check_present(self._chunks, arr, where)
        return arrays.read_many([(arr, slice(None), where)])[0]

    def remove_embedding(self, key: str, ekey: str) -> None:
        """Remove map ``ekey`` (every attempt), or the one attempt named ``<ekey>~<uuid8>``."""
        emb = self._embeddings(key)
        if emb is None:
            return
        names = [ekey] if SEP in ekey else [e.name for e in self.attempts(key, ekey)]
        for name in names:
            self._drop_attempt(emb, name)

    def remove_embedding_attempt(self, key: str, name: str) -> None:
        """Remove one attempt by its group name (hidden first, then deleted)."""
        emb = self._embeddings(key)
        if emb is not None:
            self._drop_attempt(emb, name)

    def _drop_attempt(self, emb, name: str) -> None:
        writers.drop_group(emb, name, "complete")  # hidden first, then deleted
