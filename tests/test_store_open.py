"""Opening a store: what is refused before anything is written, and proving it can be written.

A store of a newer schema, a zarr group that is not ours and a folder of
other files are refused with one line, and left exactly as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vistsne.cli import cli
from vistsne.errors import NotFoundError, StoreError
from vistsne.store import STORE_SCHEMA, Store

from .conftest import run_cli, write_image_tree
from .test_store_reads import KEY, add_part, make_entry


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _root_attrs(path) -> dict:
    return json.loads((Path(path) / "zarr.json").read_text())["attributes"]


def test_a_newer_schema_is_refused_before_anything_is_written(store_path):
    st = make_entry(store_path)
    st.root.attrs.update({"vistsne_store": STORE_SCHEMA + 1})
    before = _snapshot(Path(store_path))
    for mode in ("a", "r"):
        with pytest.raises(StoreError) as e:
            Store(store_path, mode=mode)
        assert "\n" not in str(e.value)
        assert f"has schema {STORE_SCHEMA + 1}, newer than the {STORE_SCHEMA} this vistsne reads" in str(e.value)
        assert "upgrade vistsne" in str(e.value)
    assert _snapshot(Path(store_path)) == before and _root_attrs(store_path)["vistsne_store"] == STORE_SCHEMA + 1
    proc = run_cli("store", "gc", "--store", store_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "newer than" in proc.stderr


def test_a_foreign_zarr_group_is_refused_and_not_stamped(tmp_path):
    foreign = tmp_path / "theirs.zarr"
    st = make_entry(str(tmp_path / "ours.zarr"))
    # a zarr group of someone else, made with the zarr the store uses (no zarr import here)
    other = type(st.root).from_store(str(foreign), attributes={"owner": "someone else"})
    other.create_array("weights", data=np.ones(4, np.float32), chunks=(4,))
    before = _snapshot(foreign)
    for mode in ("a", "r"):
        with pytest.raises(StoreError, match="theirs.zarr is a zarr group that is not a vistsne store; "
                                             "pass --store with a new folder"):
            Store(str(foreign), mode=mode)
    assert _snapshot(foreign) == before and "vistsne_store" not in _root_attrs(foreign)
    # an empty zarr group is fine: it becomes a store
    empty = tmp_path / "empty.zarr"
    type(st.root).from_store(str(empty))
    assert "vistsne_store" not in _root_attrs(empty)
    Store(str(empty))
    assert _root_attrs(empty)["vistsne_store"] == STORE_SCHEMA


def test_a_folder_that_is_not_a_store_and_not_empty_is_refused(tmp_path):
    images = write_image_tree(tmp_path / "images")
    before = _snapshot(images)
    with pytest.raises(StoreError) as e:
        Store(str(images))
    assert str(e.value) == (f"{images} is not a vistsne store and not empty; "
                            "pass --store with a new folder (or an existing vistsne store)")
    with pytest.raises(StoreError, match="is not a vistsne store and not empty"):
        Store(str(images), mode="r")
    for args in (["store", "gc"], ["store", "ls"], ["store", "verify"]):
        r = CliRunner().invoke(cli, [*args, "--store", str(images)])
        assert r.exit_code == 2 and r.output.strip().splitlines() == [f"error: {e.value}"]
    assert _snapshot(images) == before and not (images / "zarr.json").exists()
    # an empty folder becomes a store; a missing one is created (write) or reported (read)
    (tmp_path / "new").mkdir()
    Store(str(tmp_path / "new"))
    assert _root_attrs(tmp_path / "new")["vistsne_store"] == STORE_SCHEMA
    with pytest.raises(NotFoundError, match="does not exist"):
        Store(str(tmp_path / "absent"), mode="r")
    Store(str(tmp_path / "absent"))
    assert (tmp_path / "absent" / "zarr.json").is_file()


def _make_read_only(folder: Path) -> str | None:
    """Make ``folder`` (recursively) read-only; how, or None if nothing here can."""
    subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"x")
    except PermissionError:
        return "chmod"
    probe.unlink()  # root ignores the mode bits: try the immutable attribute
    subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
    if shutil.which("chattr") is None:
        return None
    if subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True).returncode != 0:
        return None
    try:
        probe.write_bytes(b"x")
    except PermissionError:
        return "chattr"
    probe.unlink()
    subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
    return None


def _make_writable(folder: Path, how: str | None) -> None:
    if how == "chattr":
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
    subprocess.run(["chmod", "-R", "u+w", str(folder)], capture_output=True)


def test_a_read_only_store_reads_and_check_writable_says_why_it_cannot_write(store_path):
    st = make_entry(store_path)
    add_part(st, np.arange(10))
    folder = Path(store_path)
    how = _make_read_only(folder)
    if how is None:
        _make_writable(folder, how)
        pytest.skip("neither chmod nor chattr +i makes a folder read-only here (root without chattr support)")
    try:
        st = Store(store_path)  # opening an existing store writes nothing
        with pytest.raises(StoreError) as e:
            st.check_writable()
        text = str(e.value)
        assert "\n" not in text and f"store {store_path} is not writable" in text
        assert "pass --store with a folder you can write to, or fix its permissions" in text
        assert len(st.present(KEY, ["s"])) == 10 and Store(store_path, mode="r").entry_keys() == [KEY]
        for args in (["store", "gc"], ["store", "repair", "--yes"], ["store", "rm", KEY[:8]]):
            r = CliRunner().invoke(cli, [*args, "--store", store_path])
            assert r.exit_code == 2 and r.output.strip() == f"error: {text}", (args, r.output)
        assert CliRunner().invoke(cli, ["store", "ls", "--store", store_path]).exit_code == 0
    finally:
        _make_writable(folder, how)
    Store(store_path).check_writable()
    assert not [n for n in os.listdir(store_path) if n.startswith(".vistsne-probe")]


def _open_store(path):
    from vistsne.store import Store

    Store(path)


def test_processes_creating_one_store_at_once_all_open_it(tmp_path):
    """The ranks of one torchrun job create the store at the same moment: none may fail (zarr's own
    open_group(mode="a") raises ContainsGroupError for the later of two creators)."""
    import multiprocessing

    from vistsne.store import Store

    ctx = multiprocessing.get_context("spawn")
    for i in range(8):
        path = str(tmp_path / f"s{i}.zarr")
        procs = [ctx.Process(target=_open_store, args=(path,)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0], i
        Store(path, mode="r")  # and it is a vistsne store
