"""The arrays the store writes, and reads that never return what was not written.

Every array gets zarr v3's ``crc32c`` codec after its compressor, so each
chunk carries a checksum of its compressed bytes, and is written with every
chunk present (``write_empty_chunks``: zarr would otherwise skip chunks that
equal the fill value, and a missing chunk could not be told from a lost
one). What was written is recorded next to the data (:func:`write` returns
``{"shape", "chunks", "bytes"}``), for ``vistsne store verify``.

Reads go through :func:`plan_rows`, :func:`check_present` and
:func:`read_many`: the chunk files a read needs are checked to exist first
(zarr fills a missing chunk with zeros, which the store must never hand
out), only those chunks are read, and a chunk that fails its checksum or
does not decompress raises one :class:`~vistsne.errors.DamagedError` line
naming the entry, the part or map, the array and the fix. Arrays written
before the checksums (no ``crc32c`` codec) still read; their damage shows as a
decompression error.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import DamagedError, VistsneError

#: The fix every damage message names.
FIX = "run `vistsne store verify`, then `vistsne store repair` or re-extract"
#: Bytes decoded per trip when ``verify --deep`` reads arrays without checksums through zarr.
DEEP_BLOCK_BYTES = 64 << 20


@dataclass(frozen=True)
class Where:
    """Which array a message is about: ``entry <key12> part <name> array feat/pre_logits``."""

    entry: str
    node: str  # "part <name>", "map <ekey12>", "" (the entry itself)
    array: str

    def __str__(self) -> str:
        node = f" {self.node}" if self.node else ""
        return f"entry {self.entry[:12]}{node} array {self.array}"


#: Tries of :func:`require_group` while another process is creating the same group.
GROUP_TRIES = 20


def require_group(parent, name: str):
    """``parent[name]``, created when missing, safe when another process creates it at the same time.

    zarr's ``require_group`` looks, then creates, and raises ``ContainsGroupError`` when another
    process created the group in between (seen under load: two writers of one map). Then the group
    exists, so it is opened; a ``zarr.json`` not yet complete reads as missing for a moment, so
    that is tried again.
    """
    from zarr.errors import ContainsGroupError

    for attempt in range(GROUP_TRIES):
        try:
            return parent.require_group(name)
        except (ContainsGroupError, FileExistsError, KeyError, json.JSONDecodeError):
            if attempt == GROUP_TRIES - 1:
                raise
            time.sleep(0.005 * (attempt + 1))


def compressors():
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return (ZstdCodec(level=0, checksum=False), Crc32cCodec())


def has_checksums(arr) -> bool:
    """Whether each stored chunk ends in a crc32c of the bytes before it (the last codec is crc32c)."""
    codecs = arr.metadata.codecs
    return bool(codecs) and type(codecs[-1]).__name__ == "Crc32cCodec"


def crc_ok(data: bytes | memoryview) -> bool:
    """Whether a stored chunk's last 4 bytes are the crc32c of the rest (as zarr's codec checks it)."""
    import google_crc32c  # zarr's own dependency for its crc32c codec

    if len(data) < 4:
        return False
    view = np.frombuffer(data, dtype=np.uint8)
    return np.uint32(google_crc32c.value(view[:-4])).tobytes() == view[-4:].tobytes()


class Chunks:
    """Existence and sizes of chunk files: ``os.stat`` in a local folder, zarr's store API elsewhere."""

    def __init__(self, zstore, local_root: str | None):
        self.zstore = zstore
        self.local_root = local_root

    def crc_failures(self, keys: Sequence[str]) -> list[bool | None]:
        """For each chunk key: True if its checksum fails, False if it holds, None if it is missing."""
        if self.local_root is not None:
            out: list[bool | None] = []
            for k in keys:
                try:
                    with open(os.path.join(self.local_root, k), "rb") as f:
                        out.append(not crc_ok(f.read()))
                except FileNotFoundError:
                    out.append(None)
            return out
        from zarr.core.buffer import default_buffer_prototype

        got = _gather([self.zstore.get(k, prototype=default_buffer_prototype()) for k in keys])
        return [None if b is None or isinstance(b, BaseException) else not crc_ok(b.to_bytes()) for b in got]

    def sizes(self, keys: Sequence[str]) -> list[int | None]:
        """The size of each key's value, None where there is none."""
        if self.local_root is not None:
            out: list[int | None] = []
            for k in keys:
                try:
                    out.append(os.stat(os.path.join(self.local_root, k)).st_size)
                except FileNotFoundError:
                    out.append(None)
            return out
        import asyncio

        from zarr.core.sync import sync

        async def one(k):
            try:
                return await self.zstore.getsize(k)
            except (FileNotFoundError, KeyError):
                return None

        async def all_():
            return await asyncio.gather(*(one(k) for k in keys))

        return list(sync(all_()))


def chunk_keys(arr, row_chunks: Iterable[int] | None = None) -> list[str]:
    """Store keys of the array's chunks (only those of the given row chunks, if given)."""
    grid = arr.cdata_shape
    rows = range(grid[0]) if row_chunks is None else (int(c) for c in row_chunks)
    prefix = arr.store_path.path
    enc = arr.metadata.encode_chunk_key
    if len(grid) == 0:
        return [f"{prefix}/{enc(())}"]
    rest = [range(n) for n in grid[1:]]
    return [f"{prefix}/{enc((r, *c))}" for r in rows for c in itertools.product(*rest)]


def describe(exc: BaseException) -> str:
    """What a failed chunk read means, in a few words."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "checksum" in text.lower():
        return "a chunk fails its checksum"
    if "decompress" in text.lower() or "zstd" in text.lower() or "blosc" in text.lower():
        return "a chunk cannot be decompressed"
    if isinstance(exc, (KeyError, FileNotFoundError)):
        return f"its data is missing ({text[:80]})" if text else "its data is missing"
    return f"{exc.__class__.__name__}: {text[:120]}"


def damaged(where: Where, what: str) -> DamagedError:
    """One line: which array, what is wrong with it (kept as ``.what``), and the fix."""
    err = DamagedError(f"{where} is damaged ({what})", FIX)
    err.what = what
    err.where = where
    return err


def check_present(chunks: Chunks, arr, where: Where, row_chunks: Iterable[int] | None = None) -> None:
    """Raise unless every chunk file of ``row_chunks`` (default: all) exists."""
    keys = chunk_keys(arr, row_chunks)
    sizes = chunks.sizes(keys)
    missing = [k for k, s in zip(keys, sizes) if s is None]
    if missing:
        rel = missing[0][len(arr.store_path.path) + 1:]
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise damaged(where, f"chunk {rel}{more} missing")


def _gather(coros: list) -> list:
    """Run coroutines concurrently in one trip to zarr's event loop; results or exceptions, in order."""
    import asyncio

    from zarr.core.sync import sync

    async def all_():
        return await asyncio.gather(*coros, return_exceptions=True)

    return list(sync(all_())) if coros else []


def open_many(zstore, paths: Sequence[str], wheres: Sequence[Where], *, raise_first: bool = True) -> list:
    """Open arrays by store path, all in one trip (an AsyncArray each).

    A missing or unreadable one raises a DamagedError (or, with
    ``raise_first=False``, stands in the list in its place).
    """
    import zarr.api.asynchronous as za

    got = _gather([za.open_array(store=zstore, path=p, mode="r", zarr_format=3) for p in paths])
    out: list = []
    for arr, where in zip(got, wheres):
        if isinstance(arr, (VistsneError, MemoryError)):
            raise arr
        if isinstance(arr, BaseException):
            what = ("its metadata is missing" if isinstance(arr, (KeyError, FileNotFoundError))
                    else f"its metadata is unreadable: {describe(arr)}")
            err = damaged(where, what)
            err.__cause__ = arr
            if raise_first:
                raise err
            arr = err
        out.append(arr)
    return out


def read_many(requests: Sequence[tuple[object, object, Where]]) -> list[np.ndarray]:
    """``arr[sel]`` for each (async array, selection, where), all in one trip; the first damage raises."""
    got = _gather([arr.getitem(sel) for arr, sel, _ in requests])
    out = []
    for res, (_, _, where) in zip(got, requests):
        if isinstance(res, (VistsneError, MemoryError)):
            raise res
        if isinstance(res, BaseException):
            raise damaged(where, describe(res)) from res
        out.append(np.asarray(res))
    return out


#: Reads in flight per trip of :func:`read_into`. All at once, 1,000 parts' chunks were all held
#: before any was decoded: peak RSS 4.4-5.0 GB for a 2 GB read of 1,000,000 x 512 float32 rows,
#: 13.7-14.9 s; 16 at a time: 2.2 GB, 10.4-11.4 s (64: 2.2 GB, 11.8 s), the 2-core machine.
READ_BATCH = 16


def read_into(requests: Sequence[tuple[object, object, np.ndarray, Where]]) -> None:
    """``out[...] = arr[sel]`` for each (async array, row slice, out, where), :data:`READ_BATCH` at a
    time, each chunk decoded straight into ``out`` (no block in between: at a million rows, every
    fresh gigabyte costs seconds of page faults); the first damage raises."""
    from zarr.core.buffer import default_buffer_prototype

    nd = default_buffer_prototype().nd_buffer
    got = []
    for i in range(0, len(requests), READ_BATCH):
        got += _gather([arr.get_orthogonal_selection((sel,), out=nd.from_numpy_array(out))
                        for arr, sel, out, _ in requests[i:i + READ_BATCH]])
    for res, (_, _, _, where) in zip(got, requests):
        if isinstance(res, (VistsneError, MemoryError)):
            raise res
        if isinstance(res, BaseException):
            raise damaged(where, describe(res)) from res


@dataclass
class RowPlan:
    """Which slices of an array to read for some of its rows, and how to put them in order."""

    uniq: np.ndarray      # the rows, sorted, once each
    inverse: np.ndarray   # position in ``uniq`` of each requested row
    cids: np.ndarray      # row chunks they lie in
    runs: list[tuple[int, int]]  # slices [lo, hi) of consecutive needed chunks


def plan_rows(arr, rows: np.ndarray, where: Where) -> RowPlan:
    """Read only the chunks that hold ``rows``: consecutive ones as one slice (all: the whole array)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    n = int(arr.shape[0])
    uniq, inverse = np.unique(rows, return_inverse=True)
    if len(uniq) and (uniq[0] < 0 or uniq[-1] >= n):
        raise damaged(where, f"it holds {n} rows, fewer than its part records")
    cs = int(arr.chunks[0])
    cids = np.unique(uniq // cs)
    runs = [(int(r[0]) * cs, min(n, (int(r[-1]) + 1) * cs))
            for r in np.split(cids, np.flatnonzero(np.diff(cids) != 1) + 1) if len(r)]
    return RowPlan(uniq, inverse.reshape(-1), cids, runs)


def assemble(plan: RowPlan, blocks: Sequence[np.ndarray]) -> np.ndarray:
    """The requested rows, in the requested order, from the blocks read for ``plan.runs``."""
    pieces = []
    for (lo, hi), block in zip(plan.runs, blocks):
        a, b = np.searchsorted(plan.uniq, [lo, hi])
        pieces.append(block if b - a == hi - lo else block[plan.uniq[a:b] - lo])  # every row: no copy
    values = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if _is_range(plan.inverse, 0, len(values)):
        return values  # asked in order, once each
    return values[plan.inverse]


def _is_range(a: np.ndarray, start: int, n: int) -> bool:
    """Whether ``a`` is exactly ``start, start + 1, ..., start + n - 1``."""
    return len(a) == n and (n == 0 or (int(a[0]) == start and int(a[-1]) == start + n - 1
                                       and bool(np.all(np.diff(a) == 1))))


def write(group, name: str, data: np.ndarray, chunks: tuple[int, ...], sizes: Chunks | None) -> dict:
    """Create ``group/name`` from ``data`` with checksums and every chunk written; its record."""
    arr = group.create_array(name, data=data, chunks=chunks, compressors=compressors(),
                             config={"write_empty_chunks": True})
    rec = {"shape": [int(s) for s in arr.shape], "chunks": int(np.prod(arr.cdata_shape, dtype=np.int64))}
    if sizes is not None:
        got = sizes.sizes(chunk_keys(arr))
        if all(s is not None for s in got):
            rec["bytes"] = int(sum(got))
    return rec
