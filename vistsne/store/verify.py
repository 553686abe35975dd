"""``vistsne store verify``: is what the store holds what was written?

The default check reads metadata only (and the small ``index`` arrays): every
committed part and complete map has the arrays its commit recorded, with the
recorded shapes, every chunk file exists, and the chunks add up to the
recorded stored size (which catches a truncated chunk without reading it).
``deep=True`` also reads every byte, so that each chunk's crc32c checksum
and its decompression are checked, and reports the throughput.

Each :class:`Problem` says what is wrong and which command deals with it:
``repair`` (damage: drop it and compute it again) or ``gc`` (leftovers of
interrupted runs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..errors import DamagedError, NotFoundError
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
        line = f"store verify: {self.entries} entries, {len(self.problems)} problems in {path}"
        if self.deep:
            line += (f"; read {self.bytes / 1e6:.1f} MB in {self.seconds:.1f}s "
                     f"({self.mb_per_s:.0f} MB/s)")
        return line


def _what(e: DamagedError) -> str:
    return getattr(e, "what", e.message)


def _check_array(store, group, path: str, where: arrays.Where, rec: dict | None, deep: bool,
                 stats: Stats) -> tuple[object | None, str | None]:
    """(the array or None, the first problem with it or None)."""
    try:
        arr = arrays.open_array(group, path, where)
    except DamagedError as e:
        return None, _what(e)
    if rec and list(arr.shape) != list(rec.get("shape", arr.shape)):
        return arr, f"its shape {tuple(arr.shape)} differs from the recorded {tuple(rec['shape'])}"
    keys = arrays.chunk_keys(arr)
    sizes = store._chunks.sizes(keys)
    stored = sum(s for s in sizes if s)
    stats.bytes += stored
    missing = [k for k, s in zip(keys, sizes) if s is None]
    prefix = len(arr.store_path.path) + 1
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return arr, f"chunk {missing[0][prefix:]}{more} missing (of {len(keys)})"
    if rec and rec.get("chunks") is not None and int(rec["chunks"]) != len(keys):
        return arr, f"{len(keys)} chunks, {rec['chunks']} recorded"
    empty = [k for k, s in zip(keys, sizes) if s == 0]
    if empty:
        return arr, f"chunk {empty[0][prefix:]} is empty (truncated)"
    if rec and rec.get("bytes") is not None and stored != int(rec["bytes"]):
        return arr, (f"its chunks hold {stored} bytes, {rec['bytes']} were written "
                     "(a truncated or rewritten chunk)")
    if deep:
        try:
            stats.decoded += arrays.deep_read(arr, where)
        except DamagedError as e:
            return arr, _what(e)
    return arr, None


def _check_part(store, key: str, p, entry_stages: dict, n_dataset: int | None, deep: bool,
                stats: Stats) -> list[Problem]:
    out: list[Problem] = []
    pg = store._parts(key)
    lens: dict[str, int] = {}
    opened = {}
    for name in p.array_names():
        where = store._part_where(key, p.name, name)
        arr, problem = _check_array(store, pg, f"{p.name}/{name}", where, p.arrays.get(name), deep, stats)
        if arr is not None:
            lens[name] = int(arr.shape[0])
            if name.startswith("feat/"):
                s = name[5:]
                dim = p.stages[s]
                if arr.ndim != 2 or arr.shape[1] != dim or entry_stages.get(s, dim) != dim:
                    out.append(Problem(key, "part", p.name, f"{name} has dim "
                                       f"{arr.shape[1] if arr.ndim == 2 else arr.shape}, expected "
                                       f"{entry_stages.get(s, dim)}", "repair", name))
        if problem:
            out.append(Problem(key, "part", p.name, problem, "repair", name))
        elif arr is not None:
            opened[name] = arr
    bad = {k: v for k, v in lens.items() if v != p.rows}
    if bad:
        out.append(Problem(key, "part", p.name, f"row counts {bad} differ from {p.rows}", "repair"))
    if "index" in opened and n_dataset is not None and not bad:
        where = store._part_where(key, p.name, "index")
        try:
            idx = arrays.read_all(store._chunks, opened["index"], where)
            if len(idx) and (idx.min() < 0 or idx.max() >= n_dataset):
                out.append(Problem(key, "part", p.name, "dataset index out of range", "repair", "index"))
        except DamagedError as e:
            out.append(Problem(key, "part", p.name, _what(e), "repair", "index"))
    return out


def _check_map(store, key: str, e, deep: bool, stats: Stats) -> list[Problem]:
    out: list[Problem] = []
    emb = store._embeddings(key)
    rec = e.attrs.get("arrays") or {}
    lens = {}
    for name in ("coords", "index"):
        where = arrays.Where(key, f"map {short_name(e.name)}", name)
        arr, problem = _check_array(store, emb, f"{e.name}/{name}", where, rec.get(name), deep, stats)
        if arr is not None:
            lens[name] = int(arr.shape[0])
        if problem:
            out.append(Problem(key, "map", e.name, problem, "repair", name))
    if len(lens) == 2 and lens["coords"] != lens["index"]:
        out.append(Problem(key, "map", e.name, "coords and index differ in length", "repair"))
    return out


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
    problems: list[Problem] = []
    n_dataset = None
    grp = store._entries()[key]
    if "dataset_labels" not in grp:
        problems.append(Problem(key, "labels", "", "dataset_labels missing", "repair"))
    else:
        arr, problem = _check_array(store, grp, "dataset_labels", arrays.Where(key, "", "dataset_labels"),
                                    None, deep, stats)
        if problem:
            problems.append(Problem(key, "labels", "", problem, "repair"))
        elif arr is not None:
            n_dataset = int(arr.shape[0])
    stages = dict(meta.get("stages", {}))
    for p in store.parts(key):
        if p.damaged:
            problems.append(Problem(key, "part", p.name, p.damaged, "repair"))
            continue
        if not p.committed:
            if not writers.live(p.writer, older_than, since=p.created):
                problems.append(Problem(key, "part", p.name, "uncommitted part (interrupted run)", "gc"))
            continue
        problems += _check_part(store, key, p, stages, n_dataset, deep, stats)
    for e in store.attempts(key):
        if e.damaged:
            problems.append(Problem(key, "map", e.name, e.damaged, "repair"))
        elif e.complete:
            problems += _check_map(store, key, e, deep, stats)
    return problems


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
