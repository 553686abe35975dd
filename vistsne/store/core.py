"""The feature store: opening it, its entries, and who writes them.

Layout (zarr v3)::

    <store>/
      zarr.json                        root group, attrs {"vistsne_store": SCHEMA}
      .vistsne/locks/                  lock files of attribute updates (local folders only)
      entries/<key>/                   one feature entry (config x checkpoint x data)
        zarr.json                      attrs: provenance, class_names, stages {name: dim}
        dataset_labels                 int32 (n_dataset,): every sample's label
        writers/<id>/                  a marker per live writer: attrs {host, pid, start, since}
        parts/<part>/                  rows written by one flush of one extract run
          zarr.json                    attrs: rows, stages, writer, arrays, committed (last)
          index   int64 (n,)           dataset indices
          label   int32 (n,)
          thumb   uint8 (n, 48, 48, 3)
          feat/<stage>  float (n, dim) one array per stored stage
        embeddings/<ekey>~<uuid8>/     one attempt at a t-SNE map of one stage over chosen rows
          zarr.json                    attrs: params, resolved, metrics, ..., arrays, complete (last)
          coords  float32 (n, d)
          index   int64 (n,)

Every array carries a crc32c checksum per chunk and is written with every
chunk present; reads check both (:mod:`vistsne.store.arrays`).

Crash safety: a part or a map counts only once its ``committed`` /
``complete`` attribute is set, which is written after its arrays. zarr writes
each key atomically (temporary file + rename on local disk; one object PUT
elsewhere), so an interrupted run leaves rows that read as missing. Each
writer adds its own parts and map attempts under fresh names, so concurrent
writers never write the same key; duplicates are resolved on read.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from typing import Iterator

import numpy as np

from ..errors import NotFoundError, StoreError, VistsneError
from . import arrays, attrs, writers
from .maps import EmbeddingInfo, MapsMixin
from .parts import PartInfo, PartsMixin
from .writers import now_iso

STORE_SCHEMA = 1
DEFAULT_STORE = os.path.join("work_dirs", "vistsne.zarr")

__all__ = ["Store", "PartInfo", "EmbeddingInfo", "STORE_SCHEMA", "DEFAULT_STORE", "default_store_path",
           "now_iso"]

#: Names in a store's folder that are not zarr nodes and say nothing about whose folder it is.
_OURS = {attrs.LOCK_DIR}
#: Looks at a URL that holds objects but no readable group yet (another process creating the
#: store at that moment) before it is refused as foreign (sleeps of 0.1 s, 0.2 s, ...: 4.5 s in all).
URL_OPEN_TRIES = 10


def default_store_path() -> str:
    return os.environ.get("VISTSNE_STORE") or DEFAULT_STORE


def missing_store(path: str, what: str = "does not exist") -> NotFoundError:
    """The one-line error for a store that is not there, naming where its path came from."""
    if os.environ.get("VISTSNE_STORE") and path == os.environ["VISTSNE_STORE"]:
        return NotFoundError(f"store {path} (from $VISTSNE_STORE) {what}",
                             "set VISTSNE_STORE to an existing store, pass --store, or run `vistsne extract CONFIG` "
                             "to create it")
    return NotFoundError(f"store {path} {what}", "run `vistsne extract CONFIG` first, or pass --store")


def _is_url(path: str) -> bool:
    return "://" in str(path)


def _foreign_names(folder: str) -> list[str]:
    """What a folder holds besides the root zarr.json and vistsne's own bookkeeping."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [n for n in names if n != "zarr.json" and n not in _OURS and not n.endswith(".partial")]


def _open_or_join(zarr, path: str, tries: int = 20):
    """``zarr.open_group(path, mode="a")``, safe when other processes create the same store at once.

    Two writers that both find no group both try to create it; the later one gets zarr's
    ``ContainsGroupError`` (seen with the ranks of one torchrun job). The group exists then: open it.
    """
    from zarr.errors import ContainsGroupError

    for attempt in range(tries):
        try:
            return zarr.open_group(path, mode="a")
        except ContainsGroupError:
            if attempt == tries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


class Store(PartsMixin, MapsMixin):
    """A feature store at a local path or any fsspec URL that zarr accepts.

    ``mode="r"`` opens an existing store for reading; any other mode opens or
    creates one. A folder that is neither empty nor a vistsne store, a zarr
    group of someone else, and a store of a newer schema are refused before
    anything is written.
    """

    #: Check that the chunks a read needs exist (zarr would fill missing ones with zeros).
    check_chunks = True

    def __init__(self, path: str | os.PathLike | None = None, *, mode: str = "a"):
        import zarr  # local import: keeps `vistsne --help` fast

        self.path = str(path or default_store_path())
        self.readonly = mode == "r"
        self.local = not _is_url(self.path)
        self._index_cache: dict[tuple[str, str], np.ndarray] = {}
        self._array_cache: dict[tuple[str, str, str], object] = {}
        self._lookups: dict = {}
        self._entries_group = None
        try:
            if self.local:
                self._check_folder()
            else:
                self._check_url(zarr)
            if self.readonly:
                self.root = zarr.open_group(self.path, mode="r")
            else:
                if self.local:
                    os.makedirs(self.path, exist_ok=True)
                self.root = _open_or_join(zarr, self.path)
            self._check_root()
            if not self.readonly and self.root.attrs.get("vistsne_store") != STORE_SCHEMA:
                self._update_attrs("", {"vistsne_store": STORE_SCHEMA})
                self.root = zarr.open_group(self.path, mode="a")
        except VistsneError:
            raise
        except (PermissionError, OSError) as e:
            if isinstance(e, FileNotFoundError) and self.readonly:
                raise missing_store(self.path) from e
            raise StoreError(f"store {self.path} is not writable ({e.__class__.__name__}: "
                             f"{getattr(e, 'strerror', None) or e})",
                             "pass --store with a folder you can write to") from e
        except Exception as e:  # zarr raises its own errors for foreign folders
            first = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            raise StoreError(f"cannot open store {self.path}: {first}",
                             "pass --store with a vistsne store or a new folder") from e
        self._chunks = arrays.Chunks(self.root.store, self.path if self.local else None)

    # ----------------------------------------------------------------- opening
    def _refuse(self, what: str) -> StoreError:
        return StoreError(f"{self.path} {what}",
                          "pass --store with a new folder (or an existing vistsne store)")

    def _check_folder(self) -> None:
        """Refuse a local path that is not ours, before zarr writes anything into it."""
        p = self.path
        if not os.path.exists(p):
            if self.readonly:
                raise missing_store(p)
            return
        if not os.path.isdir(p):
            raise StoreError(f"cannot open store {p}: it is a file, not a folder",
                             "pass --store with a new folder or a vistsne store")
        zj = os.path.join(p, "zarr.json")
        # listed before zarr.json is looked for: a store another process creates meanwhile writes its
        # zarr.json before anything else, so whatever this listing holds of it, zarr.json is seen below
        foreign = _foreign_names(p)
        if not os.path.exists(zj):
            if foreign:
                raise self._refuse("is not a vistsne store and not empty")
            if self.readonly:
                raise missing_store(p, "is empty")
            return
        for attempt in range(10):  # another process creating this store may be writing it this moment
            try:
                with open(zj, "rb") as f:
                    meta = json.loads(f.read().decode("utf-8"))
                break
            except (OSError, ValueError) as e:
                if attempt == 9:
                    raise StoreError(f"store {p} has an unreadable zarr.json ({e.__class__.__name__}: {e})",
                                     "pass --store with a vistsne store or a new folder") from e
                time.sleep(0.1)
        if not isinstance(meta, dict) or meta.get("node_type") != "group":
            raise self._refuse(f"is a zarr {meta.get('node_type', 'node') if isinstance(meta, dict) else 'node'}, "
                               "not a vistsne store")
        self._check_schema(meta.get("attributes") or {}, bool(_foreign_names(p)))

    def _check_schema(self, root_attrs: dict, has_children: bool) -> None:
        schema = root_attrs.get("vistsne_store")
        if schema is None:
            if has_children or root_attrs:
                raise self._refuse("is a zarr group that is not a vistsne store")
            return  # an empty group: ours to stamp
        if schema == STORE_SCHEMA:
            return
        if isinstance(schema, int) and schema > STORE_SCHEMA:
            raise StoreError(f"store {self.path} has schema {schema}, newer than the {STORE_SCHEMA} this "
                             "vistsne reads", "upgrade vistsne, or pass --store with a new folder")
        raise StoreError(f"store {self.path} has an unknown schema {schema!r} (this vistsne reads {STORE_SCHEMA})",
                         "pass --store with a new folder")

    def _check_root(self) -> None:
        """The schema once more, as zarr opened it (a store created meanwhile by another writer)."""
        if self.local:
            return  # checked on disk before zarr opened it
        self._check_schema(dict(self.root.attrs), bool(list(self.root.group_keys()) + list(self.root.array_keys())))

    def _check_url(self, zarr) -> None:
        """Refuse a URL that is not ours, before zarr writes anything there."""
        self._check_reachable()
        for attempt in range(URL_OPEN_TRIES):
            try:
                probe = zarr.open_group(self.path, mode="r")
            except (KeyError, FileNotFoundError):
                probe = None
            if probe is not None:
                self._check_schema(dict(probe.attrs), bool(list(probe.group_keys()) + list(probe.array_keys())))
                return
            names = self._url_names()
            if not names:
                break
            # not a group, yet something is there: another process (a rank of the same job) may be
            # creating this store this moment, its objects listed before its root zarr.json could be
            # read; look again before calling the place foreign
            if attempt == URL_OPEN_TRIES - 1:
                raise self._refuse("is not a vistsne store and not empty")
            time.sleep(0.1 * (attempt + 1))
        if self.readonly:
            raise NotFoundError(f"store {self.path} does not exist",
                                "run `vistsne extract CONFIG` first, or pass --store")

    def _url_names(self) -> list[str]:
        """What the URL holds (a fresh listing, not fsspec's cached one); [] when it cannot be listed."""
        try:
            import fsspec

            fs, where = fsspec.core.url_to_fs(self.path)
            fs.invalidate_cache(where)
            return fs.ls(where, detail=False) if fs.exists(where) else []
        except Exception:  # noqa: BLE001 - cannot list: let zarr decide
            return []

    def _check_reachable(self) -> None:
        """One clean line for a URL whose server cannot be reached (one plain request, no zarr
        coroutines left behind to complain at exit)."""
        try:
            import fsspec

            fs, where = fsspec.core.url_to_fs(self.path)
            fs.exists(where)
        except (ImportError, ValueError) as e:  # no filesystem for this protocol (s3fs not installed, ...)
            raise StoreError(f"cannot open store {self.path}: {e}",
                             "install the fsspec filesystem of this URL (s3fs for s3://, gcsfs for gs://)") from e
        except FileNotFoundError:
            return
        except Exception as e:  # noqa: BLE001 - connection refused, DNS, credentials, ...
            first = str(e).splitlines()[0] if str(e) else ""
            raise StoreError(f"store {self.path} cannot be reached ({e.__class__.__name__}: {first})",
                             "check the URL, the endpoint (AWS_ENDPOINT_URL for S3-compatible servers), the "
                             "credentials and the network of every rank") from e

    def check_writable(self) -> None:
        """Prove the store can be written (a probe key is created and deleted); one clean line if not."""
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only", "open it with mode='a' to write")
        key = f".vistsne-probe-{uuid.uuid4().hex[:12]}"
        try:
            if self.local:
                probe = os.path.join(self.path, key)
                with open(probe, "wb") as f:
                    f.write(b"probe")
                os.remove(probe)
            else:
                from zarr.core.buffer import default_buffer_prototype
                from zarr.core.sync import sync

                zs = self.root.store
                sync(zs.set(key, default_buffer_prototype().buffer.from_bytes(b"probe")))
                sync(zs.delete(key))
        except Exception as e:  # noqa: BLE001 - any failure to write means: not writable
            reason = getattr(e, "strerror", None) or (str(e).splitlines()[0] if str(e) else "")
            raise StoreError(f"store {self.path} is not writable ({e.__class__.__name__}: {reason})",
                             "pass --store with a folder you can write to, or fix its permissions") from e

    # --------------------------------------------------------------- plumbing
    def _child_names(self, path: str, group) -> list[str]:
        """Sorted names of the sub-groups at ``path`` (a folder listing where the store is local)."""
        if self.local:
            try:
                with os.scandir(os.path.join(self.path, path)) as it:
                    return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            return sorted(group.group_keys())
        except (KeyError, FileNotFoundError):
            return []

    def _node_attrs(self, path: str) -> dict:
        """The attributes of the node at ``path`` as stored now; KeyError if there is none.

        A local store's ``zarr.json`` is read directly (no trip through zarr's
        event loop, which costs milliseconds a call on a busy machine).
        """
        if self.local:
            try:
                with open(os.path.join(self.path, path, "zarr.json"), "rb") as f:
                    meta = json.loads(f.read())
            except (FileNotFoundError, NotADirectoryError) as e:
                raise KeyError(path) from e
            if not isinstance(meta, dict):
                raise ValueError(f"{path}/zarr.json is not a JSON object")
            return dict(meta.get("attributes") or {})
        return dict(self.root[path].attrs)

    def _node_exists(self, path: str) -> bool:
        if self.local:
            return os.path.exists(os.path.join(self.path, path, "zarr.json"))
        try:
            self.root[path]
        except (KeyError, FileNotFoundError):
            return False
        return True

    def _lock(self, name: str):
        return attrs.locked(self.path if self.local else None, name)

    def _update_attrs(self, path: str, changes: dict) -> dict:
        """Merge ``changes`` into the attributes of the group at ``path`` (re-read right before)."""
        if path == "":
            with self._lock(""):
                import zarr

                root = zarr.open_group(self.path, mode="a")
                merged = attrs.merge(dict(root.attrs), changes)
                root.attrs.put(merged)
                return merged
        return attrs.update(self.root, self.path if self.local else None, path, changes)

    # ----------------------------------------------------------------- entries
    def _entries(self):
        """The ``entries`` group (created in write mode; None in read mode while there is none)."""
        if self._entries_group is None:
            if "entries" not in self.root:
                if self.readonly:
                    return None
                self._entries_group = arrays.require_group(self.root, "entries")
            else:
                self._entries_group = self.root["entries"]
        return self._entries_group

    def _entry_group(self, key: str, create: bool = False):
        ents = self._entries()
        if ents is None:
            raise NotFoundError(f"no entry {key[:12]} in store {self.path}", "list them with `vistsne store ls`")
        if key in ents:
            return ents[key]
        if not create:
            raise NotFoundError(f"no entry {key[:12]} in store {self.path}", "list them with `vistsne store ls`")
        with self._lock(f"entries/{key}"):
            return arrays.require_group(ents, key)

    def entry_keys(self) -> list[str]:
        ents = self._entries()
        if ents is None:
            return []
        names = self._child_names("entries", ents)
        if self.local:  # a folder being created or removed is no entry
            names = [n for n in names if os.path.exists(os.path.join(self.path, "entries", n, "zarr.json"))]
        return names

    def has_entry(self, key: str) -> bool:
        """Whether the entry exists with its metadata and its dataset labels."""
        try:
            meta = self._node_attrs(f"entries/{key}")
        except (KeyError, FileNotFoundError):
            return False
        return "class_names" in meta and self._node_exists(f"entries/{key}/dataset_labels")

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
        try:
            return self._node_attrs(f"entries/{key}")
        except (KeyError, FileNotFoundError):
            raise NotFoundError(f"no entry {key[:12]} in store {self.path}",
                                "list them with `vistsne store ls`") from None

    def create_entry(self, key: str, meta: dict, dataset_labels: np.ndarray,
                     sample_ids: list[str] | None = None) -> None:
        """Write an entry's metadata, the labels of every dataset sample and, if given, their ids.

        ``sample_ids``: each sample's identity (its file path relative to the
        dataset root, or the dataset's own id), so that rows can be traced back
        to images and matched across entries. Idempotent: concurrent writers
        write the same content; the arrays go first, so an entry with
        ``class_names`` always has labels. The metadata is merged into what is
        there (another writer's stages stay).
        """
        grp = self._entry_group(key, create=True)
        if sample_ids is not None and "dataset_ids" not in grp:
            # UTF-8 bytes and offsets: plain uint8/int64 arrays that any zarr v3 reader can read
            encoded = [str(s).encode("utf-8") for s in sample_ids]
            offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
            np.cumsum([len(b) for b in encoded], out=offsets[1:])
            blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            try:
                ig = grp.create_group("dataset_ids")
                arrays.write(ig, "offsets", offsets, (max(1, min(len(offsets), 1 << 16)),), None)
                arrays.write(ig, "utf8", blob if len(blob) else np.zeros(0, np.uint8),
                             (max(1, min(len(blob), 1 << 22)),), None)
                ig.attrs.update({"count": len(encoded)})  # written last: the ids are complete
            except Exception:
                if "dataset_ids" not in grp:
                    raise
        if "dataset_labels" not in grp:
            labels = np.asarray(dataset_labels, dtype=np.int32)
            try:
                arrays.write(grp, "dataset_labels", labels, (max(1, min(len(labels), 1 << 16)),), None)
            except Exception:
                if "dataset_labels" not in grp:  # not a lost race: a real error
                    raise
        meta = dict(meta)
        meta.setdefault("stages", {})
        meta["updated"] = now_iso()
        self._update_attrs(f"entries/{key}", meta)

    def update_entry_meta(self, key: str, **changes) -> None:
        """Merge ``changes`` into the entry's metadata (dicts such as ``stages`` key by key)."""
        self._entry_group(key)
        self._update_attrs(f"entries/{key}", {**changes, "updated": now_iso()})

    def dataset_labels(self, key: str) -> np.ndarray:
        where = arrays.Where(key, "", "dataset_labels")
        if not self._node_exists(f"entries/{key}"):
            raise NotFoundError(f"no entry {key[:12]} in store {self.path}", "list them with `vistsne store ls`")
        (arr,) = arrays.open_many(self.root.store, [f"entries/{key}/dataset_labels"], [where])
        if self.check_chunks:
            arrays.check_present(self._chunks, arr, where)
        return arrays.read_many([(arr, slice(None), where)])[0]

    def dataset_ids(self, key: str) -> np.ndarray | None:
        """Every dataset sample's id (file path relative to the dataset root, or the dataset's own id);
        None for entries written before ids were stored."""
        base = f"entries/{key}/dataset_ids"
        if not self._node_exists(base) or "count" not in self._node_attrs(base):
            return None
        paths = [f"{base}/offsets", f"{base}/utf8"]
        wheres = [arrays.Where(key, "", f"dataset_ids/{n}") for n in ("offsets", "utf8")]
        arrs = arrays.open_many(self.root.store, paths, wheres)
        if self.check_chunks:
            for arr, where in zip(arrs, wheres):
                arrays.check_present(self._chunks, arr, where)
        offsets, blob = arrays.read_many([(a, slice(None), w) for a, w in zip(arrs, wheres)])
        data = np.asarray(blob, dtype=np.uint8).tobytes()
        return np.array([data[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)

    def drop_dataset_labels(self, key: str) -> None:
        """Remove a damaged ``dataset_labels``: the entry reads as absent until `extract` writes it again."""
        grp = self._entry_group(key)
        try:
            del grp["dataset_labels"]
        except (KeyError, FileNotFoundError):
            pass

    def remove_entry(self, key: str) -> None:
        self._lookups = {k: v for k, v in self._lookups.items() if k[0] != key}
        self._index_cache = {k: v for k, v in self._index_cache.items() if k[0] != key}
        self._array_cache = {k: v for k, v in self._array_cache.items() if k[0] != key}
        del self._entries()[key]

    def iter_entries(self) -> Iterator[tuple[str, dict]]:
        for k in self.entry_keys():
            try:
                yield k, self.entry_meta(k)
            except NotFoundError:
                continue

    # ----------------------------------------------------------------- writers
    def register_writer(self, key: str) -> str:
        """Mark this process as a writer of entry ``key`` (creating the entry's group); the marker's id.

        ``vistsne store gc`` removes nothing of an entry while a live writer is
        registered on it. Prefer :meth:`writing`, which unregisters on exit.
        """
        grp = self._entry_group(key, create=True)
        wid = uuid.uuid4().hex[:12]
        arrays.require_group(grp, "writers").create_group(wid, attributes=writers.identity())
        return wid

    def unregister_writer(self, key: str, wid: str) -> None:
        try:
            del self._entry_group(key)["writers"][wid]
        except (KeyError, FileNotFoundError, NotFoundError):
            pass

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[str]:
        """``with store.writing(key): ...`` -- this process is a registered writer of ``key`` inside."""
        wid = self.register_writer(key)
        try:
            yield wid
        finally:
            self.unregister_writer(key, wid)

    def writers(self, key: str) -> dict[str, dict]:
        """Registered writers of entry ``key``: marker id -> {host, pid, start, since}."""
        try:
            grp = self._entry_group(key)
        except NotFoundError:
            return {}
        if "writers" not in grp:
            return {}
        wg = grp["writers"]
        out = {}
        for wid in self._child_names(f"entries/{key}/writers", wg):
            try:
                out[wid] = dict(wg[wid].attrs)
            except Exception:  # noqa: BLE001 - a marker being removed, or unreadable: no writer
                continue
        return out

    def remove_writer_marker(self, key: str, wid: str) -> None:
        self.unregister_writer(key, wid)

    # ------------------------------------------------------------------ checks
    def verify_entry(self, key: str, deep: bool = False) -> list[str]:
        """Problems with one entry's metadata, shapes and chunks, one line each (empty: healthy)."""
        from .verify import verify_entry

        return [str(p) for p in verify_entry(self, key, deep=deep)]
