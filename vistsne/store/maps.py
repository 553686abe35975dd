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
            return grp.require_group("embeddings") if create and not self.readonly else None
        return grp["embeddings"]

    def attempts(self, key: str, ekey: str | None = None) -> list[EmbeddingInfo]:
        """Every attempt (complete or not) of every map, or of map ``ekey``, by name."""
        emb = self._embeddings(key)
        if emb is None:
            return []
        out = []
        for name in self._child_names(f"entries/{key}/embeddings", emb):
            if ekey is not None and ekey_of(name) != ekey:
                continue
            try:
                attrs = dict(emb[name].attrs)
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
                        attrs: dict) -> str:
        """Publish a map as a new attempt; the attempt's name."""
        name = f"{ekey}{SEP}{uuid.uuid4().hex[:8]}"
        grp = self._embeddings(key, create=True).create_group(
            name, attributes={**attrs, "complete": False, "writer": writers.identity()})
        coords = np.asarray(coords, dtype=np.float32)
        n = len(index)
        rows = max(1, min(n, 1 << 16))
        rec = {"coords": arrays.write(grp, "coords", coords, (rows, coords.shape[1]), self._chunks),
               "index": arrays.write(grp, "index", np.asarray(index, dtype=np.int64), (rows,), self._chunks)}
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

    def _map_array(self, key: str, info: EmbeddingInfo, array: str):
        where = Where(key, f"map {short_name(info.name)}", array)
        arr = arrays.open_array(self._embeddings(key), f"{info.name}/{array}", where)
        rec = (info.attrs.get("arrays") or {}).get(array)
        if rec and list(arr.shape) != list(rec.get("shape", arr.shape)):
            raise arrays.damaged(where, f"its shape {tuple(arr.shape)} differs from the recorded "
                                        f"{tuple(rec['shape'])}")
        return arr, where

    def read_embedding(self, key: str, ekey: str) -> tuple[np.ndarray, np.ndarray]:
        """(coords, dataset index) of map ``ekey`` (its first complete attempt)."""
        info = self._map_attempt(key, ekey)
        c_arr, c_where = self._map_array(key, info, "coords")
        i_arr, i_where = self._map_array(key, info, "index")
        coords = arrays.read_all(self._chunks, c_arr, c_where, check=self.check_chunks)
        index = arrays.read_all(self._chunks, i_arr, i_where, check=self.check_chunks)
        if coords.shape[0] != index.shape[0]:
            raise arrays.damaged(i_where, f"{index.shape[0]} rows against {coords.shape[0]} coordinates")
        return coords, index

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
        try:
            grp = emb[name]
            if grp.attrs.get("complete"):
                grp.attrs.update({"complete": False, "dropped": writers.now_iso()})  # hidden first
        except (KeyError, FileNotFoundError):
            return
        except Exception:  # noqa: BLE001 - unreadable metadata: nothing counts it as complete
            pass
        try:
            del emb[name]
        except (KeyError, FileNotFoundError):
            pass
