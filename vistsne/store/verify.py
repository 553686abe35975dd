"""``vistsne store verify``: is what the store holds what was written?

The default check reads metadata only (and the small ``index`` arrays): every
committed part and complete map has the arrays its commit recorded, with the
recorded shapes, every chunk file exists, and the chunks add up to the
recorded stored size (which catches a truncated chunk without reading it).
``deep=True`` also reads every stored byte and checks each chunk's crc32c
(the check zarr's codec makes on every read; bytes that pass it are the
bytes written), and reports the throughput; arrays written before the
checksums are read through zarr instead, so that their decompression is
checked.

Each :class:`Problem` says what is wrong and which command deals with it:
``repair`` (damage: drop it and compute it again) or ``gc`` (leftovers of
interrupted runs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import DamagedError, NotFoundError, VistsneError
from . import arrays, writers
from .maps import short_name

_FIX = {
    ("repair", "part"): "`vistsne store repair` drops it, then `vistsne extract` recomputes its rows",
    ("repair", "map"): "`vistsne store repair` drops it, then `vistsne embed` recomputes it",
    ("repair", "labels"): "`vistsne store repair` drops it, then `vistsne extract` writes it again",
    ("repair", "entry"): "`vistsne store repair` removes the entry; extract it again",
}


@dataclass
class Problem:
    entry: str
    kind: str      # "entry" | "labels" | "part" | "map"
    name: str      # the part's or map attempt's name ("" for the entry and its labels)
    message: str   # what is wrong
    action: str    # "repair" | "gc"
    array: str = ""

    @property
    def path(self) -> str:
        k = self.entry[:12]
        return {"part": f"{k}/{self.name}", "map": f"{k}/embeddings/{short_name(self.name)}",
                "labels": f"{k}/dataset_labels"}.get(self.kind, k)

    def __str__(self) -> str:
        arr = f" {self.array}" if self.array and self.kind in ("part", "map") else ""
        fix = _FIX.get((self.action, self.kind)) or (
            "`vistsne store gc` removes it" if self.action == "gc" else "")
        return f"{self.path}{arr}: {self.message}" + (f"; {fix}" if fix else "")

    def to_json(self) -> dict:
        return {**asdict(self), "text": str(self)}


@dataclass
class Stats:
    bytes: int = 0      # stored (compressed) bytes of the arrays checked
    decoded: int = 0    # bytes decoded by deep reads


@dataclass
class VerifyReport:
    entries: int
    problems: list[Problem]
    deep: bool
    bytes: int
    decoded_bytes: int
    seconds: float
    damaged: list[Problem] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        out = {"entries": self.entries, "problems": [str(p) for p in self.problems]}
        if self.deep:
            out.update({"bytes": self.bytes, "decoded_bytes": self.decoded_bytes,
                        "seconds": round(self.seconds, 3), "mb_per_s": round(self.mb_per_s, 1)})
        return out

    def summary(self, path: str) -> str:
        n, k = self.entries, len(self.problems)
        line = (f"store verify: {n} {'entry' if n == 1 else 'entries'}, "
                f"{k} problem{'' if k == 1 else 's'} in {path}")
        if self.deep:
            line += (f"; read {self.bytes / 1e6:.1f} MB in {self.seconds:.1f}s "
                     f"({self.mb_per_s:.0f} MB/s)")
        return line


def _what(e: DamagedError) -> str:
    return getattr(e, "what", e.message)


@dataclass
class _Target:
    """One array to check: where it is, what its commit recorded, whose problem it is."""

    kind: str
    name: str
    array: str
    path: str
    where: arrays.Where
    rec: dict | None = None


class _Checker:
    """Checks the arrays of one entry: metadata and chunk files at once; with ``deep``, every
    chunk read and decoded, many chunks per trip to zarr (decoding runs on several threads)."""

    def __init__(self, store, key: str, deep: bool, stats: Stats):
        self.store, self.key, self.deep, self.stats = store, key, deep, stats
        self.problems: list[Problem] = []
        self._bad: set[tuple[str, str, str]] = set()
        self._pending: list[tuple[object, object, _Target, str, int]] = []
        self._crc: list[tuple[_Target, str, str]] = []  # (target, chunk key, key within the array)
        self._pending_bytes = 0

    def add(self, t: _Target | tuple[str, str, str], message: str, action: str = "repair") -> None:
        kind, name, array = (t.kind, t.name, t.array) if isinstance(t, _Target) else t
        if (kind, name, array) in self._bad:
            return  # one problem per array: the first
        self._bad.add((kind, name, array))
        self.problems.append(Problem(self.key, kind, name, message, action, array))

    def is_bad(self, t: _Target) -> bool:
        return (t.kind, t.name, t.array) in self._bad

    def open(self, targets: list[_Target]) -> list:
        """The targets' arrays (None for those whose metadata is gone), their chunk files checked."""
        opened = arrays.open_many(self.store.root.store, [t.path for t in targets], [t.where for t in targets],
                                  raise_first=False)
        out = []
        for t, arr in zip(targets, opened):
            if isinstance(arr, DamagedError):
                self.add(t, _what(arr))
                out.append(None)
                continue
            problem = self._files(t, arr)
            if problem:
                self.add(t, problem)
            elif self.deep:
                self._queue(t, arr)
            out.append(arr)
        return out

    def _files(self, t: _Target, arr) -> str | None:
        rec = t.rec
        if rec and list(arr.shape) != list(rec.get("shape", arr.shape)):
            return f"its shape {tuple(arr.shape)} differs from the recorded {tuple(rec['shape'])}"
        keys = arrays.chunk_keys(arr)
        sizes = self.store._chunks.sizes(keys)
        stored = sum(s for s in sizes if s)
        self.stats.bytes += stored
        prefix = len(arr.store_path.path) + 1
        missing = [k for k, s in zip(keys, sizes) if s is None]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            return f"chunk {missing[0][prefix:]}{more} missing (of {len(keys)})"
        if rec and rec.get("chunks") is not None and int(rec["chunks"]) != len(keys):
            return f"{len(keys)} chunks, {rec['chunks']} recorded"
        empty = [k for k, s in zip(keys, sizes) if s == 0]
        if empty:
            return f"chunk {empty[0][prefix:]} is empty (truncated)"
        if rec and rec.get("bytes") is not None and stored != int(rec["bytes"]):
            return f"its chunks hold {stored} bytes, {rec['bytes']} were written (a truncated or rewritten chunk)"
        return None

    def _queue(self, t: _Target, arr) -> None:
        """Every chunk of ``arr``, for the next flush: its stored bytes read and their crc32c checked,
        or, for arrays without checksums (older versions), read through zarr and decoded."""
        if arrays.has_checksums(arr):
            prefix = len(arr.store_path.path) + 1
            for k in arrays.chunk_keys(arr):
                self._crc.append((t, k, k[prefix:]))
            if len(self._crc) >= 256:
                self._flush_crc()
            return
        if arr.ndim == 0:
            self._pending.append((arr, (), t, "c", int(arr.nbytes)))
            return
        n, cs = int(arr.shape[0]), int(arr.chunks[0])
        row_bytes = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize
        prefix = len(arr.store_path.path) + 1
        for c in range(int(arr.cdata_shape[0])):
            lo, hi = c * cs, min(n, (c + 1) * cs)
            self._pending.append((arr, slice(lo, hi), t, arrays.chunk_keys(arr, [c])[0][prefix:],
                                  (hi - lo) * row_bytes))
            self._pending_bytes += (hi - lo) * row_bytes
            if self._pending_bytes >= arrays.DEEP_BLOCK_BYTES:
                self.flush()

    def _flush_crc(self) -> None:
        todo, self._crc = self._crc, []
        for (t, _, chunk), bad in zip(todo, self.store._chunks.crc_failures([k for _, k, _ in todo])):
            if bad is None:
                self.add(t, f"chunk {chunk} missing")
            elif bad:
                self.add(t, f"a chunk fails its checksum: chunk {chunk}")

    def flush(self) -> None:
        self._flush_crc()
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        results = arrays._gather([arr.getitem(sel) for arr, sel, *_ in pending])
        for res, (_, _, t, chunk, nbytes) in zip(results, pending):
            if isinstance(res, (VistsneError, MemoryError)):
                raise res
            if isinstance(res, BaseException):
                self.add(t, f"{arrays.describe(res)}: chunk {chunk}")
            else:
                self.stats.decoded += nbytes

    def read(self, items: list[tuple[_Target, object]]) -> list:
        """Whole arrays (small ones: indices), in one trip; None where damaged."""
        results = arrays._gather([arr.getitem(slice(None)) for _, arr in items])
        out = []
        for res, (t, _) in zip(results, items):
            if isinstance(res, BaseException):
                self.add(t, arrays.describe(res))
                out.append(None)
            else:
                out.append(np.asarray(res))
        return out


def _part_targets(key: str, p) -> list[_Target]:
    return [_Target("part", p.name, a, f"entries/{key}/parts/{p.name}/{a}", arrays.Where(key, f"part {p.name}", a),
                    p.arrays.get(a)) for a in p.array_names()]


def _map_targets(key: str, e) -> list[_Target]:
    rec = e.attrs.get("arrays") or {}
    return [_Target("map", e.name, a, f"entries/{key}/embeddings/{e.name}/{a}",
                    arrays.Where(key, f"map {short_name(e.name)}", a), rec.get(a))
            for a in ("coords", "index", *(n for n in rec if n not in ("coords", "index")))]


def verify_entry(store, key: str, deep: bool = False, stats: Stats | None = None,
                 older_than: float = 3600.0) -> list[Problem]:
    """Problems with one entry (empty: healthy)."""
    stats = stats if stats is not None else Stats()
    try:
        meta = store.entry_meta(key)
    except NotFoundError:
        return [Problem(key, "entry", "", "missing", "")]
    except Exception as e:  # noqa: BLE001 - unreadable metadata
        return [Problem(key, "entry", "", f"its metadata is unreadable ({arrays.describe(e)})", "repair")]
    if "class_names" not in meta:
        return [Problem(key, "entry", "", "no metadata (an interrupted first run)", "gc")]
    ck = _Checker(store, key, deep, stats)
    labels = _Target("labels", "", "dataset_labels", f"entries/{key}/dataset_labels",
                     arrays.Where(key, "", "dataset_labels"))
    (larr,) = ck.open([labels])
    n_dataset = None if larr is None or ck.is_bad(labels) else int(larr.shape[0])
    if larr is None:
        ck.problems[-1].message = "dataset_labels missing"
    stages = dict(meta.get("stages", {}))
    indices = []  # (target, array, part) of healthy index arrays, read at the end for the range check
    for p in store.parts(key):
        if p.damaged:
            ck.add(("part", p.name, ""), p.damaged)
            continue
        if not p.committed:
            if not writers.live(p.writer, older_than, since=p.created):
                ck.add(("part", p.name, ""), "uncommitted part (interrupted run)", "gc")
            continue
        targets = _part_targets(key, p)
        opened = ck.open(targets)
        lens = {}
        for t, arr in zip(targets, opened):
            if arr is None:
                continue
            lens[t.array] = int(arr.shape[0])
            if t.array.startswith("feat/"):
                dim = p.stages[t.array[5:]]
                want = stages.get(t.array[5:], dim)
                if arr.ndim != 2 or arr.shape[1] != dim or want != dim:
                    got = arr.shape[1] if arr.ndim == 2 else tuple(arr.shape)
                    ck.add(t, f"{t.array} has dim {got}, expected {want}")
        bad = {k: v for k, v in lens.items() if v != p.rows}
        if bad:
            ck.add(("part", p.name, ""), f"row counts {bad} differ from {p.rows}")
        elif opened[0] is not None and not ck.is_bad(targets[0]) and n_dataset is not None:
            indices.append((targets[0], opened[0]))
    for e in store.attempts(key):
        if e.damaged:
            ck.add(("map", e.name, ""), e.damaged)
        elif e.complete:
            opened = ck.open(_map_targets(key, e))
            if all(a is not None for a in opened) and opened[0].shape[0] != opened[1].shape[0]:
                ck.add(("map", e.name, ""), "coords and index differ in length")
    ck.flush()
    for (t, _), idx in zip(indices, ck.read(indices)):
        if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= n_dataset):
            ck.add(t, "dataset index out of range")
    return ck.problems


def verify_store(store, deep: bool = False) -> VerifyReport:
    """Every entry's problems, with the bytes checked and the time it took."""
    t0 = time.perf_counter()
    stats = Stats()
    keys = store.entry_keys()
    problems: list[Problem] = []
    for k in keys:
        problems += verify_entry(store, k, deep=deep, stats=stats)
    seconds = time.perf_counter() - t0
    return VerifyReport(len(keys), problems, deep, stats.bytes, stats.decoded, seconds,
                        [p for p in problems if p.action == "repair"])
