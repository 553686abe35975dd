"""Stage three through the store and the CLI: files, names, choices, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from vistsne.cli import cli
from vistsne.embed import EmbedParams
from vistsne.embed.entry import embed_entry
from vistsne.store import Store

from .conftest import ROOT

FAST = dict(n_iter=300, perplexity=8)


def _invoke(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


@pytest.fixture
def embedded(extracted):
    path, key = extracted
    st = Store(path)
    recs = embed_entry(st, key, ["pre_logits", "neck"], [EmbedParams(**FAST), EmbedParams(**{**FAST, "perplexity": 4})],
                       progress=False)
    return path, key, recs


def test_one_file_per_embedding_and_a_sweep_sheet(embedded, tmp_path):
    path, key, recs = embedded
    out = tmp_path / "figs"
    r = _invoke("render", "--store", path, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["files"]
    pngs = sorted(p for p in files if p.endswith(".png"))
    maps = [p for p in pngs if "_sheet_" not in p and "_depth_" not in p]
    assert len(maps) == 4
    assert len([p for p in pngs if "_depth_" in p]) == 2  # one separation-by-depth figure per perplexity
    names = {p.rsplit("/", 1)[-1] for p in maps}
    assert f"{key[:12]}_pre_logits_p8_s0_it300_r" in "".join(sorted(names))  # rows differ from the default
    sheet = [p for p in pngs if "_sheet_" in p]
    assert len(sheet) == 1
    Image.open(sheet[0]).verify()
    # the sheet's grid: stages as rows, perplexities as columns, every cell filled
    from vistsne.render.entry import choose_embeddings, load_map, sheet_grid, sweep_groups

    st = Store(path)
    meta = st.entry_meta(key)
    loaded = [load_map(st, key, e, meta, with_thumbs=False) for e in choose_embeddings(st, key)]
    (group,) = sweep_groups(loaded).values()
    grid, rows, cols = sheet_grid(group)
    assert sorted(rows) == ["neck", "pre_logits"] and cols == ["perplexity 4", "perplexity 8"]
    assert all(cell is not None for row in grid for cell in row)
    assert {m.info["params"]["perplexity"] for m in grid[0]} == {4.0, 8.0}
    for p in maps:
        Image.open(p).verify()
    # names are stable across runs
    again = json.loads(_invoke("render", "--store", path, "--out", out, "--json").stdout)["files"]
    assert sorted(again) == sorted(files)


def test_latest_stage_and_key_choice(embedded, tmp_path):
    path, key, recs = embedded
    r = _invoke("render", "--store", path, "--out", tmp_path / "a", "--embedding", "latest", "--json")
    assert r.exit_code == 0, r.output
    # one map per stage (and a depth figure when the two latest maps happen to share their parameters)
    assert len([f for f in json.loads(r.stdout)["files"] if "_sheet_" not in f and "_depth_" not in f]) == 2
    r = _invoke("render", "--store", path, "--out", tmp_path / "b", "--stage", "neck", "--embedding",
                recs[0].key[:10] if recs[0].stage == "neck" else next(x.key for x in recs if x.stage == "neck")[:10],
                "--json", "--format", "svg,pdf")
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["files"]
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["pdf", "svg"]


def test_html_page_is_self_contained(embedded, tmp_path):
    path, key, _ = embedded
    r = _invoke("render", "--store", path, "--out", tmp_path, "--format", "html", "--json")
    assert r.exit_code == 0, r.output
    (page,) = json.loads(r.stdout)["files"]
    text = open(page).read()
    import re

    assert "data:image/" in text
    assert not re.findall(r"<script[^>]*\bsrc\s*=", text, flags=re.I)
    assert not re.findall(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", text, flags=re.I)


def test_3d_map_and_mosaic(extracted, tmp_path):
    path, key = extracted
    embed_entry(Store(path), key, ["pre_logits"], [EmbedParams(**FAST, n_components=3)], progress=False)
    r = _invoke("render", "--store", path, "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert any("_d3" in f for f in json.loads(r.stdout)["files"])
    embed_entry(Store(path), key, ["neck"], [EmbedParams(**FAST)], progress=False)
    r = _invoke("render", "--store", path, "--out", tmp_path / "m", "--stage", "neck", "--mosaic", "--json")
    assert r.exit_code == 0, r.output
    assert any(f.endswith("_mosaic.png") for f in json.loads(r.stdout)["files"])


@pytest.mark.parametrize("extra,needle", [
    (["--format", "jpg"], "unknown format 'jpg'"),
    (["--embedding", "abcdef"], "embedding abcdef not found"),
    (["--stage", "backbone.3"], "vistsne embed --entry"),
])
def test_errors(embedded, tmp_path, extra, needle):
    path, key, _ = embedded
    r = _invoke("render", "--store", path, "--out", tmp_path, *extra)
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_error_unwritable_out_and_empty_store(embedded, tmp_path):
    path, key, _ = embedded
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _invoke("render", "--store", path, "--out", blocker / "sub")
    assert r.exit_code == 2 and "not writable" in r.stderr
    empty = tmp_path / "empty.zarr"
    Store(str(empty))
    r = _invoke("render", "--store", empty, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "holds no entries" in r.stderr
    r = _invoke("render", "--store", tmp_path / "missing.zarr", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_entry_without_embeddings_names_the_embed_command(extracted, tmp_path):
    path, key = extracted
    r = _invoke("render", "--store", path, "--out", tmp_path)
    assert r.exit_code == 2 and f"vistsne embed --entry {key[:12]}" in r.stderr


def test_render_reads_only_the_store(embedded, tmp_path):
    """No model, no dataset, no t-SNE: render never imports torch or openTSNE."""
    path, key, _ = embedded
    code = ("import sys\nfrom vistsne.cli import main\n"
            "try:\n"
            f"    main(['-q', 'render', '--store', {path!r}, '--out', {str(tmp_path)!r}])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print(sorted(m for m in ('torch', 'openTSNE', 'mmpretrain', 'mmengine') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_selection_options_pick_the_maps_of_that_selection(extracted, tmp_path):
    """render --max-num-samples N draws only the maps over the rows that selection takes; none: every map."""
    path, key = extracted
    st = Store(path)
    from vistsne.selection import RowSelection

    (full,) = embed_entry(st, key, ["pre_logits"], [EmbedParams(**FAST)], progress=False)
    (two,) = embed_entry(st, key, ["pre_logits"], [EmbedParams(**{**FAST, "perplexity": 1})],
                         selection=RowSelection(max_num_samples=2), progress=False)
    assert two.rows < full.rows

    def files(*args):
        r = _invoke("render", "--store", path, "--out", tmp_path / "out", "--format", "png", "--json", *args)
        assert r.exit_code == 0, r.output
        return sorted(p.rsplit("/", 1)[-1] for p in json.loads(r.stdout)["files"] if "_sheet_" not in p)

    every = files()
    assert len(every) == 2
    (only_two,) = files("--max-num-samples", "2")
    assert f"_r{two.rows}" in only_two or "_n2" in only_two
    # the entry holds fewer rows than either limit asks for: all and the default take the same rows, one map
    assert files("--max-num-samples", "all") == [n for n in every if n != only_two]
    # a selection without maps: one line naming the embed command that makes them
    r = _invoke("render", "--store", path, "--out", tmp_path / "c", "--max-num-class", "1")
    assert r.exit_code != 0 and "has no maps over --max-num-class 1" in r.output
    assert f"vistsne embed --entry {key[:12]} --max-num-class 1" in r.output and "Traceback" not in r.output
