"""``vistsne store verify`` and ``vistsne store gc`` through the command line, and the default store.

The states they clean are built with the real library (``vistsne.store.Store``)
and real processes: a writer killed with SIGKILL in the middle of a part, a
writer that is still alive, entries without committed rows, maps whose stage
or rows are gone. Every command runs as ``python -m vistsne`` in its own
process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vistsne.store import Store

from .conftest import DEMO_CONFIG, ROOT, run_cli

#: A child process that starts a part of ENTRY in STORE and kills itself with SIGKILL half-way
#: through it: the index and label arrays are written, the thumbnails are not, nor the commit marker.
KILLED_WRITER = r"""
import os, signal, sys
import numpy as np
from vistsne.store import Store

class KillWhenRead:
    shape = (4, 48, 48, 3)

    def __array__(self, dtype=None, copy=None):
        os.kill(os.getpid(), signal.SIGKILL)

st = Store(sys.argv[1])
key = sys.argv[2]
index = np.asarray(sys.argv[3].split(","), dtype=np.int64)
dims = st.entry_meta(key)["stages"]
st.write_part(key, index, st.dataset_labels(key)[index], KillWhenRead(),
              {s: np.zeros((len(index), d), np.float32) for s, d in dims.items()})
print("not killed")
"""


class FailWhenRead:
    """Thumbnails that cannot be read: ``write_part`` stops after starting its part."""

    shape = (4, 48, 48, 3)

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("the camera fell off")


def _json(proc) -> object:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _killed_part(path: str, key: str, index) -> str:
    """Run KILLED_WRITER; return the name of the uncommitted part it left."""
    st = Store(path)
    before = {p.name for p in st.parts(key)}
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, path, key, ",".join(map(str, index))],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr  # really killed mid-write
    new = [p for p in Store(path).parts(key) if p.name not in before]
    assert len(new) == 1 and not new[0].committed and new[0].rows == len(index)
    assert new[0].writer["pid"] != os.getpid() and not new[0].writer_alive()
    return new[0].name


def _unused_rows(st: Store, key: str, label: int, n: int) -> np.ndarray:
    """``n`` dataset indices of class ``label`` that the entry does not hold yet."""
    have = st.present(key, [])
    labels = st.dataset_labels(key)
    free = [i for i in np.flatnonzero(labels == label).tolist() if i not in have]
    return np.array(free[:n], dtype=np.int64)


@pytest.mark.slow
def test_verify_and_gc_json_shapes_and_exit_codes(extracted):
    path, key = extracted
    # a healthy store: exit 0, nothing to report or remove
    ok = run_cli("store", "verify", "--json", "--store", path)
    assert ok.returncode == 0 and _json(ok) == {"entries": 1, "problems": []}
    text = run_cli("store", "verify", "--store", path)
    assert text.stdout.strip().splitlines()[-1].startswith("store verify: 1 entry, 0 problems")
    nothing = run_cli("store", "gc", "--json", "--store", path)
    assert nothing.returncode == 0 and _json(nothing) == {"parts": [], "entries": [], "embeddings": []}

    st = Store(path)
    # a writer that is still running (this process): its uncommitted part is no damage and is kept
    with pytest.raises(RuntimeError, match="camera"):
        st.write_part(key, _unused_rows(st, key, 3, 4), np.zeros(4, np.int32), FailWhenRead(),
                      {"pre_logits": np.zeros((4, 512), np.float32)})
    (live,) = [p.name for p in st.parts(key) if not p.committed]
    assert run_cli("store", "verify", "--json", "--store", path).returncode == 0
    # a writer killed with SIGKILL mid-part: verify reports it and exits 1
    dead = _killed_part(path, key, _unused_rows(st, key, 4, 4))
    bad = run_cli("store", "verify", "--json", "--store", path, check=False)
    assert bad.returncode == 1, bad.stderr
    report = _json(bad)
    assert set(report) == {"entries", "problems"} and report["entries"] == 1
    assert len(report["problems"]) == 1 and isinstance(report["problems"][0], str)
    assert report["problems"][0].startswith(f"{key[:12]}/{dead}: uncommitted part")
    text = run_cli("store", "verify", "--store", path, check=False)
    assert text.returncode == 1 and report["problems"][0] in text.stdout.splitlines()
    # gc removes the dead writer's part only
    gc = run_cli("store", "gc", "--json", "--store", path)
    assert gc.returncode == 0 and _json(gc) == {"parts": [f"{key[:12]}/{dead}"], "entries": [], "embeddings": []}
    names = {p.name for p in Store(path).parts(key)}
    assert dead not in names and live in names
    assert _json(run_cli("store", "verify", "--json", "--store", path)) == {"entries": 1, "problems": []}
    # no store at all: the usual one-line error, exit 2
    missing = run_cli("store", "verify", "--json", "--store", str(Path(path).parent / "none.zarr"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def _embed(path: str, key: str, *args) -> dict:
    proc = run_cli("-q", "embed", "--store", path, "--entry", key, "--stage", "pre_logits", "--perplexity", "5",
                   "--n-iter", "250", "--json", *args)
    (rec,) = _json(proc)
    return rec


@pytest.mark.slow
def test_gc_removes_empty_entries_and_orphaned_maps(extracted):
    path, key = extracted
    st = Store(path)
    stages = st.entry_meta(key)["stages"]
    # a fourth class, 20 rows, in a part of its own (real feature rows, shifted)
    idx0 = np.flatnonzero(st.dataset_labels(key) == 0)[:20]
    idx3 = _unused_rows(st, key, 3, 20)
    extra = st.write_part(key, idx3, st.dataset_labels(key)[idx3], st.read_rows(key, idx0, what="thumb"),
                          {s: st.read_rows(key, idx0, s) + 5.0 for s in stages})
    kept = _embed(path, key, "--max-num-class", "3", "--max-num-samples", "20")
    orphan_rows = _embed(path, key, "--max-num-class", "4", "--max-num-samples", "20")
    assert kept["rows"] == 60 and orphan_rows["rows"] == 80
    # a map of a stage the entry does not hold (any more)
    coords, index = st.read_embedding(key, kept["key"])
    gone_stage = hashlib.sha256(b"map of a stage that is gone").hexdigest()
    st.write_embedding(key, gone_stage, coords, index, {"stage": "backbone.2", "params": {"perplexity": 5.0}})
    # the fourth class's rows go: the 80-row map now points at rows that are no longer there
    st.remove_part(key, extra)
    assert len(st.present(key, ["pre_logits"])) == 60
    assert sorted(e.key for e in st.embeddings(key)) == sorted([kept["key"], orphan_rows["key"], gone_stage])

    # entries without any committed rows: a first run killed before it wrote its metadata, one killed
    # before its first part (both last changed long ago), and one that may be a first run still
    # starting (changed just now), which gc must leave alone
    labels = np.zeros(10, np.int32)
    no_meta, fresh, stale = (hashlib.sha256(n.encode()).hexdigest() for n in ("no-meta", "fresh", "stale"))
    st.create_entry(no_meta, {"config": "interrupted.py"}, labels)
    for k in (fresh, stale):
        st.create_entry(k, {"config": f"{k[:4]}.py", "class_names": ["a", "b"], "stages": {"neck": 8}}, labels)
    for k in (no_meta, stale):
        st.root["entries"][k].attrs.update({"updated": "2000-01-01T00:00:00+00:00"})

    gc = run_cli("store", "gc", "--json", "--store", path)
    removed = _json(gc)
    assert gc.returncode == 0 and set(removed) == {"parts", "entries", "embeddings"}
    assert removed["parts"] == []
    assert sorted(removed["entries"]) == sorted([no_meta[:12], stale[:12]])
    assert sorted(removed["embeddings"]) == sorted([f"{key[:12]}/{orphan_rows['key'][:12]}",
                                                    f"{key[:12]}/{gone_stage[:12]}"])
    after = Store(path)
    assert after.entry_keys() == sorted([key, fresh])
    assert [e.key for e in after.embeddings(key, complete_only=False)] == [kept["key"]]
    np.testing.assert_array_equal(after.read_embedding(key, kept["key"])[0], coords)
    assert len(after.present(key, ["pre_logits"])) == 60  # no feature row was touched
    # nothing left to do, and the store is healthy
    again = run_cli("store", "gc", "--json", "--store", path)
    assert _json(again) == {"parts": [], "entries": [], "embeddings": []}
    assert _json(run_cli("store", "verify", "--json", "--store", path)) == {"entries": 2, "problems": []}


def _cli_in(cwd: Path, *args, store_env: str | None):
    """``python -m vistsne ARGS`` in ``cwd``, with $VISTSNE_STORE set to ``store_env`` or unset."""
    env = dict(os.environ)
    env.pop("VISTSNE_STORE", None)
    if store_env is not None:
        env["VISTSNE_STORE"] = store_env
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "vistsne", *map(str, args)], capture_output=True, text=True,
                          cwd=str(cwd), env=env, timeout=600)


@pytest.mark.slow
def test_vistsne_store_environment_variable_is_the_default_store(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env_store = str(tmp_path / "from_env.zarr")
    x = _cli_in(cwd, "-q", "extract", DEMO_CONFIG, "--max-num-class", "1", "--max-num-samples", "2",
                "--device", "cpu", "--json", store_env=env_store)
    assert x.returncode == 0, x.stderr
    out = _json(x)
    assert out["store"] == env_store and out["new_rows"] == 2
    assert Store(env_store, mode="r").entry_keys() == [out["entry"]]
    assert not (cwd / "work_dirs").exists()  # the built-in default was not used
    ls = _cli_in(cwd, "store", "ls", "--json", store_env=env_store)
    assert ls.returncode == 0 and [r["key"] for r in _json(ls)] == [out["entry"]]
    # --store wins over the variable
    other = _cli_in(cwd, "store", "ls", "--json", "--store", tmp_path / "other.zarr", store_env=env_store)
    assert other.returncode == 2 and "other.zarr does not exist" in other.stderr
    # without the variable: work_dirs/vistsne.zarr below the current folder
    unset = _cli_in(cwd, "store", "ls", "--json", store_env=None)
    assert unset.returncode == 2 and f"store {os.path.join('work_dirs', 'vistsne.zarr')} does not exist" in unset.stderr
    gc = _cli_in(cwd, "store", "gc", "--json", store_env=None)
    assert gc.returncode == 0 and (cwd / "work_dirs" / "vistsne.zarr" / "zarr.json").is_file()
    assert Store(env_store, mode="r").entry_keys() == [out["entry"]]
