"""The zarr feature store: the only module that touches zarr.

Layout (zarr v3)::

    <store>/
      zarr.json                        root group, attrs {"vistsne_store": SCHEMA}
      entries/<key>/                   one feature entry (config x checkpoint x data)
        zarr.json                      attrs: provenance, class_names, stages {name: dim}
        dataset_labels                 int32 (n_dataset,): every sample's label
        parts/<part>/                  rows written by one flush of one extract run
          zarr.json                    attrs: rows, stages, writer, committed (last)
          index   int64 (n,)           dataset indices
          label   int32 (n,)
          thumb   uint8 (n, 48, 48, 3)
          feat/<stage>  float (n, dim) one array per stored stage
        embeddings/<ekey>/             one t-SNE map of one stage over chosen rows
          zarr.json                    attrs: params, resolved, metrics, ..., complete (last)
          coords  float32 (n, d)
          index   int64 (n,)

Crash safety: a part or an embedding counts only once its ``committed`` /
``complete`` attribute is set, which is written after its arrays. zarr writes
each key atomically (temporary file + rename on local disk; one object PUT
elsewhere), so an interrupted run leaves rows that read as missing. Each
writer adds its own part under a fresh name, so concurrent extractions into
one entry never write the same key; duplicates are resolved on read.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from .errors import NotFoundError, StoreError

STORE_SCHEMA = 1
DEFAULT_STORE = os.path.join("work_dirs", "vistsne.zarr")


def default_store_path() -> str:
    return os.environ.get("VISTSNE_STORE") or DEFAULT_STORE


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _is_url(path: str) -> bool:
    return "://" in str(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class PartInfo:
    name: str
    rows: int
    stages: dict[str, int]
    committed: bool
    created: str
    writer: dict = field(default_factory=dict)

    def writer_alive(self) -> bool:
        w = self.writer or {}
        if w.get("host") != socket.gethostname():
            return False
        return _pid_alive(int(w.get("pid", -1)))


@dataclass
class EmbeddingInfo:
    key: str
    entry: str
    attrs: dict

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    @property
    def stage(self) -> str:
        return self.attrs.get("stage", "")


class Store:
    """A feature store at a local path or any fsspec URL that zarr accepts."""

    def __init__(self, path: str | os.PathLike | None = None, *, mode: str = "a"):
        import zarr  # local import: keeps `vistsne --help` fast

        self.path = str(path or default_store_path())
        self.readonly = mode == "r"
        try:
            if mode == "r":
                if not _is_url(self.path) and not os.path.exists(self.path):
                    raise NotFoundError(
                        f"store {self.path} does not exist",
                        "run `vistsne extract CONFIG` first, or pass --store")
                self.root = zarr.open_group(self.path, mode="r")
            else:
                if not _is_url(self.path):
                    os.makedirs(self.path, exist_ok=True)
                self.root = zarr.open_group(self.path, mode="a")
                if self.root.attrs.get("vistsne_store") != STORE_SCHEMA:
                    self.root.attrs.update({"vistsne_store": STORE_SCHEMA})
        except (PermissionError, OSError) as e:
            if isinstance(e, FileNotFoundError) and mode == "r":
                raise NotFoundError(f"store {self.path} does not exist",
                                    "run `vistsne extract CONFIG` first, or pass --store") from e
            raise StoreError(f"store {self.path} is not writable ({e.__class__.__name__}: "
                             f"{getattr(e, 'strerror', None) or e})",
                             "pass --store with a folder you can write to") from e
        except NotFoundError:
            raise
        except Exception as e:  # zarr raises its own errors for foreign folders
            raise StoreError(f"cannot open store {self.path}: {e}",
                             "pass --store with a vistsne store or an empty folder") from e
        if self.root.attrs.get("vistsne_store") not in (None, STORE_SCHEMA):
            raise StoreError(f"store {self.path} has schema {self.root.attrs.get('vistsne_store')}, "
                             f"this vistsne reads {STORE_SCHEMA}", "use a new --store")

    # ----------------------------------------------------------------- entries
    def _entries(self):
        if "entries" not in self.root:
            if self.readonly:
                return None
            return self.root.require_group("entries")
        return self.root["entries"]

    def entry_keys(self) -> list[str]:
        ents = self._entries()
        return sorted(ents.group_keys()) if ents is not None else []

    def has_entry(self, key: str) -> bool:
        ents = self._entries()
        return ents is not None and key in ents and "class_names" in ents[key].attrs

    def resolve_entry(self, prefix: str) -> str:
        """A full entry key from a unique prefix."""
        keys = self.entry_keys()
        if prefix in keys:
            return prefix
        hits = [k for k in keys if k.startswith(prefix)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            shown = ", ".join(k[:12] for k in keys[:8]) or "none"
            raise NotFoundError(f"no entry {prefix!r} in store {self.path} (entries: {shown})",
                                "list them with `vistsne store ls`")
        raise NotFoundError(f"entry prefix {prefix!r} is ambiguous ({len(hits)} entries match)",
                            "give more characters of the key")

    def latest_entry(self) -> str:
        metas = [(self.entry_meta(k).get("updated", ""), k) for k in self.entry_keys()
                 if self.has_entry(k)]
        if not metas:
            raise NotFoundError(f"store {self.path} holds no entries",
                                "run `vistsne extract CONFIG` first")
        return max(metas)[1]

    def entry_meta(self, key: str) -> dict:
        ents = self._entries()
        if ents is None or key not in ents:
            raise NotFoundError(f"no entry {key[:12]} in store {self.path}",
                                "list them with `vistsne store ls`")
        return dict(ents[key].attrs)

    def create_entry(self, key: str, meta: dict, dataset_labels: np.ndarray) -> None:
        """Write an entry's metadata and the labels of every dataset sample.

        Idempotent: concurrent writers write the same content; the labels
        array goes first, so an entry with ``class_names`` always has labels.
        """
        grp = self._entries().require_group(key)
        if "dataset_labels" not in grp:
            try:
                grp.create_array("dataset_labels", data=np.asarray(dataset_labels, dtype=np.int32),
                                 chunks=(max(1, min(len(dataset_labels), 1 << 16)),))
            except Exception:
                if "dataset_labels" not in grp:  # not a lost race: a real error
                    raise
        meta = dict(meta)
        meta.setdefault("stages", {})
        meta["updated"] = now_iso()
        grp.attrs.update(meta)

    def update_entry_meta(self, key: str, **changes) -> None:
        grp = self._entries()[key]
        attrs = dict(grp.attrs)
        stages = dict(attrs.get("stages", {}))
        stages.update(changes.pop("stages", {}) or {})
        grp.attrs.update({**changes, "stages": stages, "updated": now_iso()})

    def dataset_labels(self, key: str) -> np.ndarray:
        return np.asarray(self._entries()[key]["dataset_labels"][:])

    def remove_entry(self, key: str) -> None:
        del self._entries()[key]

    # ------------------------------------------------------------------- parts
    def _parts(self, key: str):
        grp = self._entries()[key]
        if "parts" not in grp:
            return None if self.readonly else grp.require_group("parts")
        return grp["parts"]

    def parts(self, key: str) -> list[PartInfo]:
        parts = self._parts(key)
        if parts is None:
            return []
        out = []
        for name in sorted(parts.group_keys()):
            a = dict(parts[name].attrs)
            out.append(PartInfo(name=name, rows=int(a.get("rows", 0)), stages=dict(a.get("stages", {})),
                                committed=bool(a.get("committed")), created=a.get("created", ""),
                                writer=a.get("writer", {})))
        return out

    def write_part(self, key: str, index: np.ndarray, labels: np.ndarray, thumbs: np.ndarray,
                   feats: dict[str, np.ndarray]) -> str:
        """Write one batch of rows as a new part; it counts once committed."""
        n = len(index)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}"
        writer = {"host": socket.gethostname(), "pid": os.getpid()}
        grp = self._parts(key).require_group(name)
        grp.attrs.update({"rows": n, "committed": False, "created": now_iso(), "writer": writer,
                          "stages": {k: int(v.shape[1]) for k, v in feats.items()}})
        rows = max(1, min(n, 4096))
        grp.create_array("index", data=np.asarray(index, dtype=np.int64), chunks=(rows,))
        grp.create_array("label", data=np.asarray(labels, dtype=np.int32), chunks=(rows,))
        grp.create_array("thumb", data=np.asarray(thumbs, dtype=np.uint8),
                         chunks=(min(n, 1024),) + tuple(thumbs.shape[1:]))
        fg = grp.require_group("feat")
        for stage, arr in feats.items():
            fg.create_array(stage, data=arr, chunks=(min(n, 4096), arr.shape[1]))
        grp.attrs.update({"committed": True})  # the commit marker: written last
        return name

    def row_map(self, key: str, stage: str | None = None) -> dict[int, tuple[str, int]]:
        """dataset index -> (part, row) over committed parts (with ``stage``)."""
        parts = self._parts(key)
        out: dict[int, tuple[str, int]] = {}
        if parts is None:
            return out
        for p in self.parts(key):
            if not p.committed or (stage is not None and stage not in p.stages):
                continue
            idx = parts[p.name]["index"][:]
            for row, di in enumerate(idx.tolist()):
                out.setdefault(di, (p.name, row))
        return out

    def present(self, key: str, stages: Iterable[str]) -> set[int]:
        """Dataset indices that hold every one of ``stages``."""
        stages = list(stages)
        parts = self._parts(key)
        if parts is None:
            return set()
        have: dict[str, set[int]] = {s: set() for s in stages}
        any_rows: set[int] = set()
        for p in self.parts(key):
            if not p.committed:
                continue
            idx = set(parts[p.name]["index"][:].tolist())
            any_rows |= idx
            for s in stages:
                if s in p.stages:
                    have[s] |= idx
        if not stages:
            return any_rows
        return set.intersection(*have.values())

    def read_rows(self, key: str, indices: np.ndarray, stage: str | None = None,
                  what: str = "feat") -> np.ndarray:
        """Rows of ``feat/<stage>``, ``label`` or ``thumb`` for dataset ``indices``, in order."""
        indices = np.asarray(indices, dtype=np.int64)
        rmap = self.row_map(key, stage if what == "feat" else None)
        missing = [int(i) for i in indices if int(i) not in rmap]
        if missing:
            raise NotFoundError(f"entry {key[:12]} lacks {len(missing)} of the requested rows"
                                + (f" for stage {stage}" if stage else ""),
                                "run `vistsne extract` with the same selection first")
        parts = self._parts(key)
        by_part: dict[str, list[tuple[int, int]]] = {}
        for pos, di in enumerate(indices.tolist()):
            pname, row = rmap[di]
            by_part.setdefault(pname, []).append((pos, row))
        out = None
        for pname, pairs in by_part.items():
            arr = parts[pname]["feat"][stage] if what == "feat" else parts[pname][what]
            data = arr[:]
            pos = np.array([p for p, _ in pairs])
            rows = np.array([r for _, r in pairs])
            if out is None:
                out = np.empty((len(indices),) + data.shape[1:], dtype=data.dtype)
            out[pos] = data[rows]
        if out is None:
            out = np.empty((0,), dtype=np.float32)
        return out

    def remove_part(self, key: str, name: str) -> None:
        del self._parts(key)[name]

    def size_bytes(self, key: str | None = None) -> int:
        if _is_url(self.path):
            return 0
        root = os.path.join(self.path, "entries", key) if key else self.path
        total = 0
        for dirpath, _, files in os.walk(root):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
        return total

    # -------------------------------------------------------------- embeddings
    def _embeddings(self, key: str):
        grp = self._entries()[key]
        if "embeddings" not in grp:
            return None if self.readonly else grp.require_group("embeddings")
        return grp["embeddings"]

    def embedding_keys(self, key: str) -> list[str]:
        emb = self._embeddings(key)
        return sorted(emb.group_keys()) if emb is not None else []

    def embeddings(self, key: str, complete_only: bool = True) -> list[EmbeddingInfo]:
        emb = self._embeddings(key)
        if emb is None:
            return []
        out = [EmbeddingInfo(k, key, dict(emb[k].attrs)) for k in sorted(emb.group_keys())]
        return [e for e in out if e.complete or not complete_only]

    def embedding(self, key: str, ekey: str) -> EmbeddingInfo | None:
        emb = self._embeddings(key)
        if emb is None or ekey not in emb:
            return None
        info = EmbeddingInfo(ekey, key, dict(emb[ekey].attrs))
        return info if info.complete else None

    def write_embedding(self, key: str, ekey: str, coords: np.ndarray, index: np.ndarray,
                        attrs: dict) -> None:
        emb = self._embeddings(key)
        if ekey in emb:
            del emb[ekey]  # an incomplete leftover of an interrupted run
        grp = emb.require_group(ekey)
        grp.attrs.update({**attrs, "complete": False})
        n = len(index)
        grp.create_array("coords", data=np.asarray(coords, dtype=np.float32),
                         chunks=(max(1, min(n, 1 << 16)), coords.shape[1]))
        grp.create_array("index", data=np.asarray(index, dtype=np.int64), chunks=(max(1, min(n, 1 << 16)),))
        grp.attrs.update({"complete": True, "created": now_iso()})  # written last

    def read_embedding(self, key: str, ekey: str) -> tuple[np.ndarray, np.ndarray]:
        grp = self._embeddings(key)[ekey]
        return np.asarray(grp["coords"][:]), np.asarray(grp["index"][:])

    def remove_embedding(self, key: str, ekey: str) -> None:
        del self._embeddings(key)[ekey]

    # ------------------------------------------------------------------ checks
    def verify_entry(self, key: str) -> list[str]:
        """Problems with one entry's shapes and completeness (empty: healthy)."""
        problems = []
        try:
            meta = self.entry_meta(key)
        except NotFoundError:
            return [f"{key[:12]}: missing"]
        if "class_names" not in meta:
            return [f"{key[:12]}: no metadata (an interrupted first run); `vistsne store gc` removes it"]
        try:
            n_dataset = self._entries()[key]["dataset_labels"].shape[0]
        except KeyError:
            return [f"{key[:12]}: dataset_labels missing"]
        parts = self._parts(key)
        for p in self.parts(key):
            if not p.committed:
                if not p.writer_alive():
                    problems.append(f"{key[:12]}/{p.name}: uncommitted part (interrupted run); "
                                    "`vistsne store gc` removes it")
                continue
            grp = parts[p.name]
            try:
                idx = grp["index"][:]
                lens = {"index": len(idx), "label": grp["label"].shape[0], "thumb": grp["thumb"].shape[0]}
                for s, dim in p.stages.items():
                    a = grp["feat"][s]
                    lens[f"feat/{s}"] = a.shape[0]
                    if a.shape[1] != dim or meta.get("stages", {}).get(s, dim) != dim:
                        problems.append(f"{key[:12]}/{p.name}: feat/{s} has dim {a.shape[1]}, expected {dim}")
                bad = {k: v for k, v in lens.items() if v != p.rows}
                if bad:
                    problems.append(f"{key[:12]}/{p.name}: row counts {bad} differ from {p.rows}")
                if len(idx) and (idx.min() < 0 or idx.max() >= n_dataset):
                    problems.append(f"{key[:12]}/{p.name}: dataset index out of range")
            except Exception as e:  # noqa: BLE001 - any read failure is damage
                problems.append(f"{key[:12]}/{p.name}: unreadable ({e.__class__.__name__}: {e})")
        for e in self.embeddings(key, complete_only=False):
            if not e.complete:
                continue
            try:
                coords, index = self.read_embedding(key, e.key)
                if coords.shape[0] != index.shape[0]:
                    problems.append(f"{key[:12]}/embeddings/{e.key[:12]}: coords and index differ in length")
            except Exception as ex:  # noqa: BLE001
                problems.append(f"{key[:12]}/embeddings/{e.key[:12]}: unreadable ({ex})")
        return problems

    def iter_entries(self) -> Iterator[tuple[str, dict]]:
        for k in self.entry_keys():
            try:
                yield k, self.entry_meta(k)
            except NotFoundError:
                continue
