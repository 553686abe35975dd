"""A new user's first hour (issue 15): one test per rough edge, on a real 22-class image folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vistsne.cli import cli

from .conftest import DEMO_CONFIG, ROOT, STAGES_CONFIG, run_cli, write_image_tree

CLASSES = tuple(f"c{i:02d}" for i in range(21)) + ("Über",)
FAST = ["--n-iter", "250", "--perplexity", "5"]


def _invoke(*args, input=None):
    return CliRunner().invoke(cli, [*map(str, args)], input=input)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """22 classes x 3 images (one class name not ASCII), extracted with --max-num-class all."""
    root = tmp_path_factory.mktemp("first_hour")
    tree = write_image_tree(root / "my_images", classes=CLASSES, per_class=3)
    store = str(root / "store.zarr")
    r = _invoke("-q", "extract", STAGES_CONFIG, "--images", tree, "--store", store, "--max-num-class", "all",
                "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    return tree, store, json.loads(r.stdout)["entry"]


def test_1_default_selection_is_announced_and_names_say_what_they_hold(folder, tmp_path):
    tree, store, key = folder
    r = _invoke("embed", "--store", store, "--stage", "pre_logits", *FAST)
    assert r.exit_code == 0, r.output
    assert "stage pre_logits holds 66 rows; using the default selection of 60" in r.output
    assert "--max-num-class all --max-num-samples all" in r.output
    r = _invoke("-q", "embed", "--store", store, "--stage", "pre_logits", *FAST, "--max-num-class", "all")
    assert r.exit_code == 0, r.output
    out = tmp_path / "figs"
    r = _invoke("-q", "render", "--store", store, "--stage", "pre_logits", "--out", out, "--json")
    names = sorted(Path(f).name for f in json.loads(r.stdout)["files"])
    assert f"{key[:12]}_pre_logits_p5_s0_it250.png" in names  # the default selection: no token
    assert f"{key[:12]}_pre_logits_p5_s0_it250_c-all.png" in names  # all classes: says so
    assert not any(re.search(r"_r[0-9a-f]{6}", n) for n in names)  # no digests


def test_2_stages_in_network_order_everywhere(folder, tmp_path):
    tree, store, key = folder
    r = _invoke("-q", "embed", "--store", store, "--stage", "all", *FAST, "--json")
    assert [o["stage"] for o in json.loads(r.stdout)] == ["backbone.3", "neck", "pre_logits"]
    ls = json.loads(_invoke("store", "ls", "--store", store, "--json").stdout)
    assert list(ls[0]["stages"]) == ["backbone.3", "neck", "pre_logits"]
    from vistsne.stages import network_order

    assert network_order(["pre_logits", "neck", "backbone.10", "backbone.2", "neck.1", "neck.0"]) == [
        "backbone.2", "backbone.10", "neck", "neck.0", "neck.1", "pre_logits"]


def test_3_a_seed_sweep_is_one_sheet(folder, tmp_path):
    tree, store, key = folder
    r = _invoke("-q", "embed", "--store", store, "--stage", "neck", "--stage", "pre_logits", "--n-iter", "250",
                "--perplexity", "4,6", "--seed", "0,1")
    assert r.exit_code == 0, r.output
    out = tmp_path / "sheets"
    r = _invoke("-q", "render", "--store", store, "--stage", "neck", "--stage", "pre_logits", "--out", out,
                "--json")
    sheets = [Path(f).name for f in json.loads(r.stdout)["files"] if "_sheet" in f]
    assert sheets == [f"{key[:12]}_sheet_perplexity-seed.png"]
    from vistsne.render.entry import choose_embeddings, load_map, sheet_grid, sweep_groups
    from vistsne.store import Store

    st = Store(store, mode="r")
    maps = [load_map(st, key, e, st.entry_meta(key), with_thumbs=False)
            for e in choose_embeddings(st, key, ["neck", "pre_logits"])
            if e.attrs["params"]["n_iter"] == 250 and e.attrs["params"]["perplexity"] in (4.0, 6.0)
            and e.attrs["rows_complete"]]
    (group,) = sweep_groups(maps).values()
    grid, rows, cols = sheet_grid(group)
    assert rows == ["neck", "pre_logits"]
    assert cols == ["perplexity 4, seed 0", "perplexity 4, seed 1", "perplexity 6, seed 0", "perplexity 6, seed 1"]
    assert all(c is not None for row in grid for c in row)


def test_4_progress_names_the_stage_and_what_differs(folder):
    tree, store, key = folder
    r = run_cli("embed", "--store", store, "--stage", "neck", "--n-iter", "250", "--perplexity", "3,7")
    assert "t-SNE neck" in r.stderr and "perplexity 7" in r.stderr and "t-SNE 1/1" not in r.stderr


def test_7_a_closed_pipe_is_quiet(folder):
    tree, store, key = folder
    proc = subprocess.run(f"{sys.executable} -m vistsne store info {key[:12]} --store {store} | head -1",
                          shell=True, capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert proc.stdout.startswith("key: ") and proc.stderr == ""


def test_9_a_missing_store_from_the_environment_names_the_variable(tmp_path):
    missing = str(tmp_path / "nowhere.zarr")
    r = run_cli("embed", env={"VISTSNE_STORE": missing}, check=False)
    assert r.returncode == 2
    assert f"store {missing} (from $VISTSNE_STORE) does not exist" in r.stderr and "set VISTSNE_STORE" in r.stderr
    assert not os.path.exists(missing)  # embed never creates a store


def test_13_ls_tells_two_folders_apart(folder, tmp_path):
    tree, store, key = folder
    other = write_image_tree(tmp_path / "other_images", classes=("a", "b"), per_class=2)
    assert _invoke("-q", "extract", DEMO_CONFIG, "--images", other, "--store", store, "--device", "cpu").exit_code == 0
    text = _invoke("store", "ls", "--store", store).stdout
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["key", "config", "checkpoint", "data", "rows"]
    assert any(f"images {tree}" in line and "3/class" in line for line in lines)
    assert any(f"images {other}" in line and "2/class" in line for line in lines)
    assert any("digits_three_stages.py" in line for line in lines[1:-1])  # the name, never cut from the left
    assert any("digits_resnet18.py" in line for line in lines[1:-1])
    assert lines[-1].startswith("store ls: ")


def test_14_info_prints_names_as_they_are_and_short_numbers(folder):
    tree, store, key = folder
    r = _invoke("-q", "embed", "--entry", key, "--store", store, "--stage", "pre_logits", *FAST)
    assert r.exit_code == 0, r.output
    text = _invoke("store", "info", key[:12], "--store", store).stdout
    assert "Über" in text and "\\u00dc" not in text
    maps = [line for line in text.splitlines() if line.startswith("  ") and "rows=" in line]
    assert maps and all(re.search(r"knn_acc_map=\d\.\d{1,3}( |$)", m) for m in maps)
    assert all(re.search(r"rows=\d+", m) for m in maps)


def test_15_rm_says_what_it_removes_asks_and_takes_yes_and_json(tmp_path):
    tree = write_image_tree(tmp_path / "imgs", classes=("a", "b"), per_class=2)
    store = str(tmp_path / "s.zarr")
    key = json.loads(_invoke("-q", "extract", DEMO_CONFIG, "--images", tree, "--store", store, "--device", "cpu",
                             "--json").stdout)["entry"]
    r = _invoke("store", "rm", key[:12], "--store", store, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["removed"] == key and out["rows"] == 4 and out["maps"] == 0
    key = json.loads(_invoke("-q", "extract", DEMO_CONFIG, "--images", tree, "--store", store, "--device", "cpu",
                             "--json").stdout)["entry"]
    r = _invoke("store", "rm", key[:12], "--store", store, "--yes")
    assert r.exit_code == 0 and f"removed entry {key[:12]} (digits_resnet18.py, random init, images {tree}): 4 rows, " \
                                  "0 maps" in r.stdout


def test_15_rm_asks_on_a_terminal(tmp_path):
    """On a terminal, rm asks first; answering no keeps the entry."""
    import pty

    tree = write_image_tree(tmp_path / "imgs", classes=("a", "b"), per_class=2)
    store = str(tmp_path / "s.zarr")
    key = json.loads(_invoke("-q", "extract", DEMO_CONFIG, "--images", tree, "--store", store, "--device", "cpu",
                             "--json").stdout)["entry"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: vistsne on a terminal
        os.chdir(str(ROOT))
        os.execv(sys.executable, [sys.executable, "-m", "vistsne", "store", "rm", key[:12], "--store", store])
    seen = b""
    while b"remove entry" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, b"n\n")
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 1 and b"Aborted" in seen
    from vistsne.store import Store

    assert Store(store, mode="r").entry_keys() == [key]


def test_16_run_takes_json_and_debug_and_a_failed_run_leaves_no_folder(tmp_path):
    wd = tmp_path / "wd"
    store = str(tmp_path / "s.zarr")
    base = [DEMO_CONFIG, "--store", store, "--work-dir", wd, "--max-num-class", "2", "--max-num-samples", "6",
            "--device", "cpu", "--n-iter", "250"]
    r = run_cli("run", *base, "--perplexity", "500", check=False)
    assert r.returncode == 2 and "perplexity 500 is too large" in r.stderr
    assert not wd.exists() or not any(wd.iterdir())  # no empty tsne_<time>/ left behind
    r = run_cli("run", *base, "--perplexity", "3", "--json", "--show")
    out = json.loads(r.stdout)
    assert out["rows"] == 12 and len(out["maps"]) == 1 and Path(out["out_dir"]).is_dir()
    assert "no display" in r.stderr  # --show, headless: says so
    r = run_cli("run", *base, "--perplexity", "3", "--debug", "--format", "gif", check=False)
    assert r.returncode != 0 and "Traceback" in r.stderr


def _model_option_names():
    """The options model_options adds for a command that only picks an entry."""
    import click

    from vistsne.cli import model_options

    cmd = click.command()(model_options(lambda **kw: None, picks_only=True))
    return [p.name for p in cmd.params]


def test_17_help_shows_defaults_and_says_what_options_do(tmp_path):
    r = run_cli("run", "--help")
    text = " ".join(r.stdout.split())
    for default in ("(default: 30.0)", "(default: 1000)", "(default: random)", "(default: 200.0)"):
        assert default in text
    assert "logs and models" not in text
    r = run_cli("render", "--help")
    text = " ".join(r.stdout.split())
    picked = _model_option_names()
    assert len(picked) >= 9 and text.count("Only picks the stored entry") == len(picked)
    assert "--trust-checkpoint" not in text
    make = (ROOT / "Makefile").read_text()
    assert "OUT         ?= work_dirs/figures" in make
    assert 'default=os.path.join("work_dirs", "figures")' in (ROOT / "vistsne" / "cli.py").read_text()


def test_18_counts_are_singular_when_one(folder):
    tree, store, key = folder
    r = _invoke("embed", "--store", store, "--entry", key[:12], "--stage", "neck", *FAST)
    assert "1 map (" in r.output and "over 1 stage in" in r.output


def test_19_a_changed_folder_says_what_changed(tmp_path):
    from PIL import Image

    tree = write_image_tree(tmp_path / "imgs", classes=("a", "b"), per_class=3)
    store = str(tmp_path / "s.zarr")
    assert _invoke("-q", "extract", DEMO_CONFIG, "--images", tree, "--store", store, "--device", "cpu").exit_code == 0
    Image.new("RGB", (32, 32)).save(tree / "a" / "new.png")
    (tree / "b" / "000.png").unlink()
    r = _invoke("-q", "embed", DEMO_CONFIG, "--images", tree, "--store", store, *FAST)
    assert r.exit_code == 2
    assert "1 file added (e.g. a/new.png), 1 removed (e.g. b/000.png)" in r.output
    assert "vistsne extract" in r.output and "--images" in r.output
