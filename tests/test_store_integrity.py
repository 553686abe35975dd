"""The store never lies: checksums, missing and truncated chunks, verify, repair.

Real stores on disk, damaged the way disks and people damage them: a chunk
file deleted, truncated, or with one byte flipped. Every read of damage is
one DamagedError line (never zeros, never a RuntimeError from the codec);
``vistsne store verify`` names it and exits 1; ``vistsne store repair``
drops it, after which the rows read as missing and the next write of them
(what ``vistsne extract`` does) reads back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vistsne.cli import cli
from vistsne.errors import DamagedError, NotFoundError
from vistsne.store import Store

from .conftest import run_cli
from .test_store_reads import KEY, add_part, chunk_file, feature, make_entry


def _verify(path, *args):
    r = CliRunner().invoke(cli, ["store", "verify", "--store", path, *args])
    return r.exit_code, r.output


def _damaged_store(path: str) -> tuple[Store, str, str]:
    """An entry with two parts: ``keep`` (rows 0..999) and ``hurt`` (rows 1000..10999, 3 chunks)."""
    st = make_entry(path)
    keep = add_part(st, np.arange(0, 1000))
    hurt = add_part(st, np.arange(1000, 11_000))
    return st, keep, hurt


def _one_line(e: Exception, part: str, array: str) -> str:
    text = str(e)
    assert "\n" not in text
    assert f"entry {KEY[:12]}" in text and f"part {part}" in text and f"array {array}" in text
    assert "vistsne store verify" in text and "vistsne store repair" in text and "re-extract" in text
    return text


def test_every_array_carries_a_crc32c_checksum(store_path):
    st, _, _ = _damaged_store(store_path)
    st.write_embedding(KEY, "e" * 64, np.ones((20, 2)), np.arange(20), {"stage": "s"})
    metas = [p for p in Path(store_path).rglob("zarr.json") if json.loads(p.read_text())["node_type"] == "array"]
    assert len(metas) == 1 + 2 * 4 + 2  # dataset labels, two parts of 4 arrays, a map's 2
    for p in metas:
        codecs = [c["name"] for c in json.loads(p.read_text())["codecs"]]
        assert codecs[-1] == "crc32c" and "zstd" in codecs, (p, codecs)
    # what each part's commit recorded
    for part in st.parts(KEY):
        assert set(part.arrays) == {"index", "label", "thumb", "feat/s"}
        assert part.arrays["feat/s"]["shape"] == [part.rows, 16]
        assert part.arrays["feat/s"]["chunks"] == -(-part.rows // 4096) and part.arrays["feat/s"]["bytes"] > 0


def test_a_deleted_chunk_fails_the_read_and_verify_names_it(store_path):
    st, keep, hurt = _damaged_store(store_path)
    assert _verify(store_path)[0] == 0
    os.remove(chunk_file(store_path, hurt, "feat/s", "c/1/0"))
    with pytest.raises(DamagedError) as e:
        st.read_rows(KEY, np.arange(0, 11_000), "s")
    assert "chunk c/1/0 missing" in _one_line(e.value, hurt, "feat/s")
    with pytest.raises(DamagedError):  # a fresh Store too: nothing was cached that hides it
        Store(store_path, mode="r").read_rows(KEY, np.array([6000]), "s")
    code, out = _verify(store_path)
    assert code == 1
    (problem,) = out.strip().splitlines()[:-1]
    assert problem.startswith(f"{KEY[:12]}/{hurt} feat/s: chunk c/1/0 missing") and "vistsne store repair" in problem
    assert out.strip().splitlines()[-1] == f"store verify: 1 entry, 1 problem in {store_path}"
    # through the command line, in its own process: one line, exit 2, no traceback
    proc = run_cli("embed", "--store", store_path, "--entry", KEY[:8], "--stage", "s", "--max-num-samples", "all",
                   "--perplexity", "5", "--n-iter", "250", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "is damaged (chunk c/1/0 missing)" in err[0] and "vistsne store repair" in err[0]


def test_a_truncated_chunk_is_caught_by_verify_and_deep_verify_and_repair_drops_the_part(store_path):
    st, keep, hurt = _damaged_store(store_path)
    f = chunk_file(store_path, hurt, "feat/s", "c/0/0")
    data = Path(f).read_bytes()
    Path(f).write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedError) as e:  # not a ValueError / RuntimeError from the codecs
        st.read_rows(KEY, np.array([1000]), "s")
    assert "fails its checksum" in _one_line(e.value, hurt, "feat/s")
    code, out = _verify(store_path)  # the size check sees it without reading
    assert code == 1 and "truncated or rewritten chunk" in out and hurt in out
    code, out = _verify(store_path, "--deep")
    assert code == 1 and hurt in out and "MB/s" in out.strip().splitlines()[-1]
    deep = json.loads(CliRunner().invoke(cli, ["store", "verify", "--deep", "--json", "--store", store_path]).stdout)
    assert deep["entries"] == 1 and len(deep["problems"]) == 1 and deep["bytes"] > 0 and deep["mb_per_s"] > 0

    # repair without --yes in a non-interactive shell: one line, nothing dropped
    no = CliRunner().invoke(cli, ["store", "repair", "--store", store_path])
    assert no.exit_code == 2 and "rerun with --yes" in no.output
    assert hurt in {p.name for p in Store(store_path).parts(KEY)}
    r = CliRunner().invoke(cli, ["store", "repair", "--yes", "--json", "--store", store_path])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parts"] == [f"{KEY[:12]}/{hurt}"]
    assert _verify(store_path) == (0, f"store verify: 1 entry, 0 problems in {store_path}\n")
    assert _verify(store_path, "--deep")[0] == 0
    # the dropped rows read as missing; the rest as written
    st = Store(store_path)
    assert st.present(KEY, ["s"]) == set(range(1000))
    with pytest.raises(NotFoundError, match="lacks 10000 of the requested rows"):
        st.read_rows(KEY, np.arange(0, 11_000), "s")
    np.testing.assert_array_equal(st.read_rows(KEY, np.arange(1000), "s"), feature(np.arange(1000), 16))
    # what extract then does: the missing rows again, in a new part
    todo = np.setdiff1d(np.arange(11_000), np.fromiter(st.present(KEY, ["s"]), np.int64))
    np.testing.assert_array_equal(todo, np.arange(1000, 11_000))
    add_part(st, todo)
    np.testing.assert_array_equal(st.read_rows(KEY, np.arange(11_000), "s"), feature(np.arange(11_000), 16))
    assert _verify(store_path, "--deep")[0] == 0


def test_a_flipped_byte_needs_the_deep_check(store_path):
    st, keep, hurt = _damaged_store(store_path)
    f = chunk_file(store_path, hurt, "thumb", "c/3/0/0/0")
    data = bytearray(Path(f).read_bytes())
    data[len(data) // 2] ^= 0x5A
    Path(f).write_bytes(bytes(data))
    assert _verify(store_path)[0] == 0  # same size, every chunk there: only reading tells
    code, out = _verify(store_path, "--deep")
    assert code == 1 and f"{hurt} thumb: a chunk fails its checksum: chunk c/3/0/0/0" in out
    with pytest.raises(DamagedError) as e:
        st.read_rows(KEY, np.array([1000 + 3 * 1024]), what="thumb")
    _one_line(e.value, hurt, "thumb")
    # rows of the part's other chunks still read
    assert st.read_rows(KEY, np.array([1000]), what="thumb").shape == (1, 48, 48, 3)


def test_arrays_without_checksums_still_read_and_their_damage_is_one_line(store_path):
    """A part as vistsne wrote it before the checksums: default codecs, no record of its arrays."""
    st = make_entry(store_path)
    add_part(st, np.arange(0, 50))
    idx = np.arange(50, 150)
    pg = st.root["entries"][KEY]["parts"]
    grp = pg.create_group("20200101T000000000000-0ldpart0")
    grp.attrs.update({"rows": 100, "committed": False, "created": "2020-01-01T00:00:00+00:00",
                      "writer": {"host": "h", "pid": 1}, "stages": {"s": 16}})
    grp.create_array("index", data=idx, chunks=(100,))
    grp.create_array("label", data=(idx % 3).astype(np.int32), chunks=(100,))
    grp.create_array("thumb", data=np.ones((100, 48, 48, 3), np.uint8), chunks=(100, 48, 48, 3))
    grp.require_group("feat").create_array("s", data=feature(idx, 16), chunks=(100, 16))
    grp.attrs.update({"committed": True})
    assert "crc32c" not in json.dumps(json.loads(Path(chunk_file(store_path, grp.basename, "feat/s", "zarr.json"))
                                                 .read_text())["codecs"])
    np.testing.assert_array_equal(st.read_rows(KEY, np.arange(150), "s"), feature(np.arange(150), 16))
    assert _verify(store_path, "--deep")[0] == 0
    f = chunk_file(store_path, grp.basename, "feat/s", "c/0/0")
    Path(f).write_bytes(Path(f).read_bytes()[:20])
    with pytest.raises(DamagedError) as e:
        Store(store_path).read_rows(KEY, idx, "s")
    assert "cannot be decompressed" in _one_line(e.value, grp.basename, "feat/s")
    assert _verify(store_path, "--deep")[0] == 1


def test_a_damaged_map_is_refused_reported_and_dropped(store_path):
    st = make_entry(store_path)
    add_part(st, np.arange(0, 100))
    ekey = "m" * 64
    name = st.write_embedding(KEY, ekey, np.ones((100_000, 2)), np.arange(100_000) % 100, {"stage": "s"})
    os.remove(os.path.join(store_path, "entries", KEY, "embeddings", name, "coords", "c", "1", "0"))
    with pytest.raises(DamagedError, match=r"map m{12}~\w{8} array coords is damaged \(chunk c/1/0 missing\)"):
        st.read_embedding(KEY, ekey)
    code, out = _verify(store_path)
    assert code == 1 and f"{KEY[:12]}/embeddings/{'m' * 12}~" in out and "vistsne embed" in out
    r = CliRunner().invoke(cli, ["store", "repair", "--yes", "--store", store_path])
    assert r.exit_code == 0 and "dropped 0 parts, 1 maps" in r.output
    assert st.embedding(KEY, ekey) is None and _verify(store_path)[0] == 0


def test_damaged_dataset_labels_are_dropped_and_the_entry_waits_for_extract(store_path):
    st = make_entry(store_path)
    add_part(st, np.arange(0, 100))
    os.remove(os.path.join(store_path, "entries", KEY, "dataset_labels", "c", "0"))
    with pytest.raises(DamagedError, match="array dataset_labels is damaged"):
        st.dataset_labels(KEY)
    assert _verify(store_path)[0] == 1
    assert CliRunner().invoke(cli, ["store", "repair", "--yes", "--store", store_path]).exit_code == 0
    assert not st.has_entry(KEY)  # extract sees no entry, writes labels and metadata again, keeps the parts
    st.create_entry(KEY, {"class_names": ["a", "b", "c"]}, np.arange(30_000) % 3)
    assert st.has_entry(KEY) and len(st.present(KEY, ["s"])) == 100 and _verify(store_path)[0] == 0


def test_verify_on_a_store_without_problems_prints_one_line(store_path):
    _damaged_store(store_path)
    assert _verify(store_path) == (0, f"store verify: 1 entry, 0 problems in {store_path}\n")
    r = CliRunner().invoke(cli, ["store", "repair", "--store", store_path])
    assert r.exit_code == 0 and r.output.strip() == f"store repair: nothing damaged in {store_path}"
