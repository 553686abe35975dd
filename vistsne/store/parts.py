"""Parts: the rows of an entry, written one batch at a time, and reads of those rows.

A part is ``entries/<key>/parts/<stamp>-<uuid8>/`` with ``index``, ``label``,
``thumb`` and ``feat/<stage>``. Its attributes record the rows, the stages,
the writer and, at commit, each array's shape, chunk count and stored bytes;
``committed`` is written last, in the same write as that record. Parts never
change once committed, so each Store keeps the dataset indices of the parts
it has read (and the lookup built from them) until the set of part names
changes.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..errors import DamagedError, NotFoundError
from . import arrays, writers
from .arrays import Where


@dataclass
class PartInfo:
    name: str
    rows: int
    stages: dict[str, int]
    committed: bool
    created: str
    writer: dict = field(default_factory=dict)
    #: array path -> {"shape", "chunks", "bytes"} recorded at commit (empty for parts of older versions)
    arrays: dict = field(default_factory=dict)
    #: why the part's metadata cannot be read ("" when it can)
    damaged: str = ""
    #: per-row arrays beside the features (``pred_top5``, ``score_top5``): name -> trailing shape
    extras: dict = field(default_factory=dict)
    #: the side of its thumbnails in pixels; 0: the part stores none (no ``thumb`` array);
    #: None: a part of an older version, which always stored them
    thumb_size: int | None = None

    @property
    def has_thumbs(self) -> bool:
        return self.thumb_size != 0

    def writer_alive(self) -> bool:
        return writers.alive(self.writer)

    def array_names(self) -> list[str]:
        return ["index", "label", *(["thumb"] if self.has_thumbs else []), *(f"feat/{s}" for s in self.stages),
                *self.extras]

    def holds(self, what: str | None) -> bool:
        """Whether the part has feature stage (or extra array) ``what`` (None: any part)."""
        return what is None or what in self.stages or what in self.extras


@dataclass
class _Lookup:
    """dataset index -> (part, row) over committed parts, as sorted arrays."""

    names: tuple[str, ...]
    parts: list[PartInfo]
    index: np.ndarray  # sorted unique dataset indices
    part: np.ndarray   # position in ``parts`` of each
    row: np.ndarray    # row within that part


class PartsMixin:
    """The part-level methods of :class:`vistsne.store.Store`."""

    # ------------------------------------------------------------ listing
    def _parts(self, key: str, create: bool = False):
        """The zarr group of the entry's parts (None if it has none yet and ``create`` is False)."""
        grp = self._entry_group(key, create=create)
        if "parts" not in grp:
            return arrays.require_group(grp, "parts") if create and not self.readonly else None
        return grp["parts"]

    def parts(self, key: str) -> list[PartInfo]:
        """Every part of the entry, by name; unreadable ones with ``damaged`` set and not committed."""
        base = f"entries/{key}/parts"
        if self.local:
            names = self._child_names(base, None)
        else:
            try:
                pg = self._parts(key)
            except NotFoundError:
                return []
            names = self._child_names(base, pg) if pg is not None else []
        out = []
        for name in names:
            try:
                a = self._node_attrs(f"{base}/{name}")
            except (KeyError, FileNotFoundError):
                continue  # being created or removed right now
            except Exception as e:  # noqa: BLE001 - unreadable metadata is damage
                out.append(PartInfo(name=name, rows=0, stages={}, committed=False, created="",
                                    damaged=f"its metadata is unreadable ({arrays.describe(e)})"))
                continue
            out.append(PartInfo(name=name, rows=int(a.get("rows", 0)), stages=dict(a.get("stages", {})),
                                committed=bool(a.get("committed")), created=a.get("created", ""),
                                writer=a.get("writer", {}) or {}, arrays=dict(a.get("arrays", {}) or {}),
                                extras=dict(a.get("extras", {}) or {}),
                                thumb_size=None if a.get("thumb_size") is None else int(a["thumb_size"])))
        return out

    def _part_where(self, key: str, name: str, array: str) -> Where:
        return Where(key, f"part {name}", array)

    def _part_arrays(self, key: str, wanted: list[tuple[PartInfo, str]]) -> list[tuple[object, Where]]:
        """Arrays of committed parts (opened at most once per Store: parts do not change once
        committed), each checked against what its commit recorded."""
        out: list = [None] * len(wanted)
        todo = []
        for i, (p, array) in enumerate(wanted):
            where = self._part_where(key, p.name, array)
            hit = self._array_cache.get((key, p.name, array))
            if hit is not None:
                out[i] = (hit, where)
            else:
                todo.append((i, p, array, where))
        if todo:
            opened = arrays.open_many(self.root.store, [f"entries/{key}/parts/{p.name}/{a}" for _, p, a, _ in todo],
                                      [w for *_, w in todo])
            for (i, p, array, where), arr in zip(todo, opened):
                rec = p.arrays.get(array)
                if rec and list(arr.shape) != list(rec.get("shape", arr.shape)):
                    raise arrays.damaged(where, f"its shape {tuple(arr.shape)} differs from the recorded "
                                                f"{tuple(rec['shape'])}")
                self._array_cache[(key, p.name, array)] = arr
                out[i] = (arr, where)
        return out

    # ------------------------------------------------------------ writing
    def write_part(self, key: str, index: np.ndarray, labels: np.ndarray, thumbs: np.ndarray | None,
                   feats: dict[str, np.ndarray], extras: dict[str, np.ndarray] | None = None) -> str:
        """Write one batch of rows as a new part; it counts once committed.

        ``thumbs``: uint8 (n, s, s, 3), or None (or an array with no pixels)
        for a part without thumbnails (``--thumb-size 0``: no ``thumb``
        array). ``extras``: more per-row arrays (the model's top-5
        predictions and their scores), each (n, ...); read back with
        ``read_rows(what=name)``.
        """
        return self._write_part_into(self._parts(key, create=True), index, labels, thumbs, feats, extras)

    def _write_part_into(self, parent, index, labels, thumbs, feats, extras, stamp: str | None = None) -> str:
        """:meth:`write_part` under the zarr group ``parent`` (``parts``, or where compact builds one);
        ``stamp``: the first half of its name (default now; compact keeps its first part's, so that the
        merged part sorts where its rows did)."""
        n = len(index)
        extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
        stamp = stamp or _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}"
        grp = parent.create_group(name, attributes={
            "rows": n, "committed": False, "created": writers.now_iso(), "writer": writers.identity(),
            "stages": {k: int(v.shape[1]) for k, v in feats.items()},
            "extras": {k: [int(d) for d in v.shape[1:]] for k, v in extras.items()}})
        rows = max(1, min(n, 4096))
        sizes = self._chunks
        rec = {"index": arrays.write(grp, "index", np.asarray(index, dtype=np.int64), (rows,), sizes),
               "label": arrays.write(grp, "label", np.asarray(labels, dtype=np.int32), (rows,), sizes)}
        if thumbs is not None:
            thumbs = np.asarray(thumbs, dtype=np.uint8)
        if thumbs is None or thumbs.size == 0:
            thumbs = None  # --thumb-size 0: no thumb array
        if thumbs is not None:
            rec["thumb"] = arrays.write(grp, "thumb", thumbs, (max(1, min(n, 1024)),) + tuple(thumbs.shape[1:]),
                                        sizes)
        fg = arrays.require_group(grp, "feat")
        for stage, arr in feats.items():
            arr = np.asarray(arr)
            rec[f"feat/{stage}"] = arrays.write(fg, stage, arr, (rows, arr.shape[1]), sizes)
        for extra, arr in extras.items():
            rec[extra] = arrays.write(grp, extra, arr, (rows,) + tuple(arr.shape[1:]), sizes)
        thumb_size = int(thumbs.shape[1]) if thumbs is not None else 0
        grp.attrs.update({"arrays": rec, "thumb_size": thumb_size, "committed": True})  # the commit marker: last
        return name

    def remove_part(self, key: str, name: str) -> None:
        """Drop a part: its commit marker first (its rows read as missing from then on), then its data."""
        pg = self._parts(key)
        if pg is None or not writers.drop_group(pg, name, "committed"):
            return
        self._forget_part(key, name)

    # ------------------------------------------------------------ reading
    def _forget_part(self, key: str, name: str) -> None:
        self._index_cache.pop((key, name), None)
        for k in [k for k in self._array_cache if k[0] == key and k[1] == name]:
            del self._array_cache[k]
        for k in [k for k in self._lookups if k[0] == key]:
            del self._lookups[k]

    def _read_plans(self, key: str, items: list[tuple[PartInfo, str, np.ndarray | None]]) -> list[np.ndarray]:
        """For each (part, array, rows or None for all): those rows, reading only their chunks, every
        part's reads in one trip. Chunks are checked to exist first."""
        opened = self._part_arrays(key, [(p, a) for p, a, _ in items])
        plans, requests = [], []
        for (p, array, rows), (arr, where) in zip(items, opened):
            if rows is None:
                rows = np.arange(int(arr.shape[0]))
            plan = arrays.plan_rows(arr, rows, where)
            if self.check_chunks:
                arrays.check_present(self._chunks, arr, where, plan.cids)
            plans.append(plan)
            requests += [(arr, slice(lo, hi), where) for lo, hi in plan.runs]
        blocks = arrays.read_many(requests)
        out, at = [], 0
        for plan in plans:
            k = len(plan.runs)
            out.append(arrays.assemble(plan, blocks[at:at + k]) if k else
                       np.empty((0,), dtype=np.int64))
            at += k
        return out

    def _part_indices(self, key: str, infos: list[PartInfo], skip_damaged: bool) -> list[np.ndarray | None]:
        """Each part's dataset indices (cached per Store; None for a damaged part when skipping)."""
        out: list = [self._index_cache.get((key, p.name)) for p in infos]
        todo = [i for i, v in enumerate(out) if v is None]
        if not todo:
            return out
        try:
            got = self._read_plans(key, [(infos[i], "index", None) for i in todo])
        except DamagedError:
            if not skip_damaged and len(todo) > 1:
                raise
            got = []
            for i in todo:  # one by one, to know which part is damaged
                try:
                    got += self._read_plans(key, [(infos[i], "index", None)])
                except DamagedError:
                    if not skip_damaged:
                        raise
                    got.append(None)
        for i, idx in zip(todo, got):
            if idx is None:
                continue
            p = infos[i]
            if len(idx) != p.rows:
                err = arrays.damaged(self._part_where(key, p.name, "index"),
                                     f"it holds {len(idx)} rows, its part records {p.rows}")
                if not skip_damaged:
                    raise err
                continue
            idx = idx.astype(np.int64, copy=False)
            self._index_cache[(key, p.name)] = idx
            out[i] = idx
        return out

    def stored_stage(self, key: str, stage: str | None) -> str | None:
        """The stage whose arrays hold ``stage``'s features: itself, or the stage it is an alias of
        (identical stages are stored once; the entry's ``aliases`` name them)."""
        if stage is None:
            return None
        try:
            aliases = self.entry_meta(key).get("aliases") or {}
        except NotFoundError:
            return stage
        return aliases.get(stage) or stage

    def _lookup(self, key: str, stage: str | None, skip_damaged: bool = False) -> _Lookup:
        stage = self.stored_stage(key, stage)
        every = self.parts(key)
        infos = [p for p in every if p.committed and p.holds(stage)]
        names = tuple(p.name for p in infos)
        hit = self._lookups.get((key, stage, skip_damaged))
        if hit is not None and hit.names == names:
            return hit
        alive = {p.name for p in every if p.committed}
        for name in {k[1] for k in self._index_cache if k[0] == key} - alive:
            self._forget_part(key, name)  # parts that are gone (or no longer committed)
        got = self._part_indices(key, infos, skip_damaged)
        kept = [p for p, i in zip(infos, got) if i is not None]
        idx = [i for i in got if i is not None]
        if idx:
            cat = np.concatenate(idx)
            pid = np.repeat(np.arange(len(kept)), [len(i) for i in idx])
            row = np.concatenate([np.arange(len(i)) for i in idx])
            uniq, first = np.unique(cat, return_index=True)  # the first part (by name) wins
            look = _Lookup(names, kept, uniq, pid[first], row[first])
        else:
            e = np.empty(0, np.int64)
            look = _Lookup(names, kept, e, e, e)
        self._lookups[(key, stage, skip_damaged)] = look
        return look

    def row_map(self, key: str, stage: str | None = None) -> dict[int, tuple[str, int]]:
        """dataset index -> (part, row) over committed parts (with ``stage``)."""
        look = self._lookup(key, stage)
        names = [p.name for p in look.parts]
        return {int(d): (names[int(p)], int(r)) for d, p, r in zip(look.index, look.part, look.row)}

    def present(self, key: str, stages: Iterable[str], *, skip_damaged: bool = False) -> set[int]:
        """Dataset indices that hold every one of ``stages`` (any committed row for none)."""
        stages = list(stages)
        if not stages:
            return set(self._lookup(key, None, skip_damaged).index.tolist())
        sets = [self._lookup(key, s, skip_damaged).index for s in stages]
        out = sets[0]
        for s in sets[1:]:
            out = np.intersect1d(out, s, assume_unique=True)
        return set(out.tolist())

    def thumb_size(self, key: str) -> int:
        """The side of the entry's thumbnails in pixels (0: extracted with ``--thumb-size 0``, none stored)."""
        for p in self.parts(key):
            if not p.committed:
                continue
            if p.thumb_size is not None:
                return p.thumb_size
            rec = (p.arrays.get("thumb") or {}).get("shape")
            return int(rec[1]) if rec and len(rec) == 4 else 48  # parts of older versions: always 48
        return 0

    def _check_thumbs(self, key: str, look: _Lookup, part_of: np.ndarray) -> None:
        """Thumbnails are read only from parts that store them (one clear line otherwise)."""
        lacking = [i for i in np.unique(part_of).tolist() if not look.parts[i].has_thumbs]
        if lacking:
            raise NotFoundError(f"entry {key[:12]} stores no thumbnails (it was extracted with --thumb-size 0)",
                                "extract it again with --thumb-size N (8 to 256, e.g. 48) to store them")

    def read_rows(self, key: str, indices: np.ndarray, stage: str | None = None,
                  what: str = "feat") -> np.ndarray:
        """Rows of ``feat/<stage>``, ``label`` or ``thumb`` for dataset ``indices``, in order.

        Only the chunks that hold requested rows are read (all parts' reads in
        one trip); each is checked to exist first and to pass its checksum
        (a :class:`DamagedError` otherwise).
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        look = self._lookup(key, stage if what == "feat" else (None if what in ("label", "thumb", "index") else what))
        pos = np.searchsorted(look.index, indices)
        found = pos < len(look.index)
        found[found] = look.index[pos[found]] == indices[found]
        if not found.all():
            raise NotFoundError(f"entry {key[:12]} lacks {int((~found).sum())} of the requested rows"
                                + (f" for stage {stage}" if stage else ""),
                                "run `vistsne extract` with the same selection first")
        if len(indices) == 0:
            return np.empty((0,), dtype=np.float32)
        part_of, row_of = look.part[pos], look.row[pos]
        array = f"feat/{self.stored_stage(key, stage)}" if what == "feat" else what
        if what == "thumb":
            self._check_thumbs(key, look, part_of)
        # the rows of each part, in output order: one group per part (a run of output positions when
        # the request is sorted the way the parts were written, as every stage's own reads are)
        cuts = np.flatnonzero(np.diff(part_of)) + 1
        if len(np.unique(part_of[np.r_[0, cuts]])) == len(cuts) + 1:  # each part's rows are one run
            groups = [slice(int(a), int(b)) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(indices)])]
        else:
            order = np.argsort(part_of, kind="stable")
            groups = np.split(order, np.flatnonzero(np.diff(part_of[order])) + 1)
        items = [(look.parts[int(part_of[g][0])], array, row_of[g]) for g in groups]
        opened = self._part_arrays(key, [(p, a) for p, a, _ in items])
        first = opened[0][0]
        out = np.empty((len(indices),) + tuple(first.shape[1:]), dtype=first.dtype)
        direct, rest = [], []
        for g, (p, a, rows), (arr, where) in zip(groups, items, opened):
            lo = int(rows[0])
            if isinstance(g, slice) and arrays._is_range(rows, lo, len(rows)):
                direct.append((arr, lo, lo + len(rows), out[g], where))  # decoded straight into ``out``
            else:
                rest.append((g, (p, a, rows)))
        if direct:
            if self.check_chunks:
                for arr, lo, hi, _, where in direct:
                    cs = int(arr.chunks[0])
                    arrays.check_present(self._chunks, arr, where, range(lo // cs, (hi - 1) // cs + 1))
            arrays.read_into([(arr, slice(lo, hi), view, where) for arr, lo, hi, view, where in direct])
        if rest:
            values = self._read_plans(key, [it for _, it in rest])
            for (g, _), v in zip(rest, values):
                out[g] = v
        return out

    # ------------------------------------------------------------ sizes
    def size_bytes(self, key: str | None = None) -> int:
        if not self.local:
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
