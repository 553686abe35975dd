"""The store at scale (issue 16): thumbnail sizes (``--thumb-size``, 0 for none, the default by the
rows selected), reads straight into the output, and the extract's key memo that makes a cache hit
skip the config's parse. Real stores, the demo model, real image trees and real processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from vistsne.errors import NotFoundError, ParamError
from vistsne.extract import ExtractParams
from vistsne.extract.entry import MEMO_FILE, entry_key, extract_entry
from vistsne.extract.params import thumb_default
from vistsne.hashing import cache_dir
from vistsne.store import Store

from .conftest import DEMO_CONFIG, run_cli, write_image_tree
from .test_store_reads import KEY, add_part, feature, make_entry


def test_thumb_default_by_rows_and_range():
    assert [thumb_default(n) for n in (1, 20_000, 20_001, 100_000, 100_001, 1_281_167)] == [48, 48, 32, 32, 16, 16]
    for ok in (0, 8, 256):
        assert ExtractParams(config="x.py", thumb_size=ok).validate().thumb_size == ok
    for bad in (1, 7, 257, -1):
        with pytest.raises(ParamError, match="--thumb-size"):
            ExtractParams(config="x.py", thumb_size=bad).validate()
    p = ExtractParams(config="x.py")
    assert p.with_thumb_size(2_000).thumb_size == 48 and p.with_thumb_size(50_000).thumb_size == 32
    assert ExtractParams(config="x.py", thumb_size=0).with_thumb_size(10**6).thumb_size == 0


def test_default_thumb_size_keeps_the_keys_of_entries_made_at_48(tmp_path):
    tree = write_image_tree(tmp_path / "images")
    auto = entry_key(ExtractParams(config=DEMO_CONFIG, images=str(tree)))
    assert auto.params.thumb_size == 48
    assert auto.key == entry_key(ExtractParams(config=DEMO_CONFIG, images=str(tree), thumb_size=48)).key
    assert auto.key != entry_key(ExtractParams(config=DEMO_CONFIG, images=str(tree), thumb_size=0)).key
    # the key memo gives the key the parse gives
    memo = cache_dir() / MEMO_FILE
    assert memo.is_file()
    memo.unlink()
    assert entry_key(ExtractParams(config=DEMO_CONFIG, images=str(tree))).key == auto.key


def test_key_memo_misses_when_the_config_or_the_images_change(tmp_path):
    tree = write_image_tree(tmp_path / "images")
    cfg = tmp_path / "cfg.py"
    cfg.write_text(f"_base_ = [{DEMO_CONFIG!r}]\n")
    a = entry_key(ExtractParams(config=str(cfg), images=str(tree)))
    assert a._loaded is not None  # parsed
    b = entry_key(ExtractParams(config=str(cfg), images=str(tree)))
    assert b._loaded is None and b.key == a.key  # from the memo: no parse
    cfg.write_text(f"_base_ = [{DEMO_CONFIG!r}]\nmodel = dict(backbone=dict(depth=34))\n")
    os.utime(cfg, ns=(time.time_ns(), time.time_ns() + 5 * 10**9))
    c = entry_key(ExtractParams(config=str(cfg), images=str(tree)))
    assert c._loaded is not None and c.key != a.key  # the changed config is parsed again
    # a changed, an added and a removed image each change the key, memo or not
    keys = {c.key}
    img = tree / "cat" / "000.png"
    os.utime(img, ns=(time.time_ns(), time.time_ns() + 9 * 10**9))
    keys.add(entry_key(ExtractParams(config=str(cfg), images=str(tree))).key)
    (tree / "dog" / "new.png").write_bytes(img.read_bytes())
    keys.add(entry_key(ExtractParams(config=str(cfg), images=str(tree))).key)
    os.remove(tree / "owl" / "001.png")
    keys.add(entry_key(ExtractParams(config=str(cfg), images=str(tree))).key)
    assert len(keys) == 4
    # the memo's key is the parse's key
    d = entry_key(ExtractParams(config=str(cfg), images=str(tree)))
    (cache_dir() / MEMO_FILE).unlink()
    assert entry_key(ExtractParams(config=str(cfg), images=str(tree))).key == d.key


def test_parts_without_thumbnails(store_path):
    st = make_entry(store_path)
    idx = np.arange(10, 30)
    st.write_part(KEY, idx, (idx % 3).astype(np.int32), None, {"s": feature(idx, 16)})
    assert st.thumb_size(KEY) == 0
    assert np.array_equal(st.read_rows(KEY, idx, stage="s"), feature(idx, 16))
    with pytest.raises(NotFoundError, match="--thumb-size"):
        st.read_rows(KEY, idx, what="thumb")
    assert "0 problems" in run_cli("store", "verify", "--deep", "--store", store_path).stdout
    other = make_entry(store_path + "2")
    add_part(other, np.arange(5))
    assert other.thumb_size(KEY) == 48


def test_reads_in_any_order_equal_the_rows_written(store_path):
    """The read straight into the output (each part's rows one run) and the general path agree."""
    st = make_entry(store_path)
    for lo in range(0, 3000, 500):
        add_part(st, np.arange(lo, lo + 500))
    rng = np.random.default_rng(0)
    for sel in (np.arange(3000), np.arange(250, 2750), np.arange(3000)[::-1], rng.permutation(3000)[:700],
                np.r_[np.arange(1000, 1500), np.arange(0, 500)], np.array([7])):
        assert np.array_equal(st.read_rows(KEY, sel, stage="s"), feature(sel, 16))
        assert np.array_equal(st.read_rows(KEY, sel, what="label"), (sel % 3).astype(np.int32))


@pytest.mark.slow
def test_thumb_size_zero_end_to_end(tmp_path, store_path):
    """extract --thumb-size 0 -> embed -> render (png and the page) -> suspects sheet, through the CLI."""
    tree = write_image_tree(tmp_path / "images", per_class=10)
    out = tmp_path / "figs"
    common = ["--store", store_path]
    doc = json.loads(run_cli("extract", DEMO_CONFIG, "--images", tree, "--thumb-size", "0", "--json",
                             *common).stdout.strip().splitlines()[-1])
    st = Store(store_path, mode="r")
    meta = st.entry_meta(doc["entry"])
    assert meta["thumb_size"] == 0 and meta["extract"]["thumb_size"] == 0 and st.thumb_size(doc["entry"]) == 0
    assert not any(os.path.exists(os.path.join(store_path, "entries", doc["entry"], "parts", p.name, "thumb"))
                   for p in st.parts(doc["entry"]))
    run_cli("embed", "--entry", doc["entry"], "--stage", "pre_logits", "--n-iter", "300", "--perplexity", "5",
            *common)
    run_cli("render", "--entry", doc["entry"], "--format", "png,html", "--out", out, *common)
    assert sorted(p.suffix for p in out.iterdir()) == [".html", ".png"]
    page = next(out.glob("*.html")).read_text()
    assert "data:image/png" not in page or page.count("data:image/png") < 5  # no per-point thumbnails
    proc = run_cli("suspects", "--entry", doc["entry"], "--stage", "pre_logits", "--top", "5", "--out", out,
                   *common)
    assert "--thumb-size 48" in proc.stderr + proc.stdout
    assert list(out.glob("*suspects*.png"))
    # the same images at the default size are another entry (thumbnails are stored content)
    doc48 = json.loads(run_cli("extract", DEMO_CONFIG, "--images", tree, "--json",
                               *common).stdout.strip().splitlines()[-1])
    assert doc48["entry"] != doc["entry"] and Store(store_path, mode="r").thumb_size(doc48["entry"]) == 48


def test_selected_rows_count_the_images_of_the_chosen_class_folders():
    from vistsne.extract.entry import _selected_rows

    counts = {"a": 15_000, "b": 15_000, "c": 80_000, ".hidden": 10**6}
    every = ExtractParams(config="x.py", images="tree", max_num_class=None, max_num_samples=None)
    assert _selected_rows(every, None, counts) == 110_000
    assert every.with_thumb_size(_selected_rows(every, None, counts)).thumb_size == 16
    two = ExtractParams(config="x.py", images="tree", max_num_class=2, max_num_samples=None)
    assert _selected_rows(two, None, counts) == 30_000  # -> 32 px
    capped = ExtractParams(config="x.py", images="tree", class_idx=(2,), max_num_samples=100)
    assert _selected_rows(capped, None, counts) == 100
    # without an image tree, a small bound is taken as it is (no dataset is built)
    assert _selected_rows(ExtractParams(config="x.py"), None, None) == 2_000


def test_a_selection_counted_on_the_dataset_is_remembered():
    """``all`` on a config's own dataset: counted once (the dataset is built), then from the memo."""
    every = ExtractParams(config=DEMO_CONFIG, max_num_class=None, max_num_samples=None)
    a = entry_key(every)
    assert a.params.thumb_size == 48  # the digits' 540 test images
    memo = json.loads((cache_dir() / MEMO_FILE).read_text())
    assert any(v.get("rows") and 540 in v["rows"].values() for v in memo.values())
    b = entry_key(every)
    assert b._loaded is None and b.key == a.key == entry_key(
        ExtractParams(config=DEMO_CONFIG, max_num_class=None, max_num_samples=None, thumb_size=48)).key
