"""Extraction on several ranks (issue 13): torchrun with gloo on the CPU, faults, slurm's arguments.

Real processes (``python -m torch.distributed.run``), real stores in temporary folders.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from vistsne.errors import ParamError
from vistsne.extract import ExtractParams, extract_entry
from vistsne.store import Store

from .conftest import DEMO_CONFIG, ROOT, run_cli

SEL = ["--max-num-class", "3", "--max-num-samples", "10"]  # 30 rows of the digits test split


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_", "TORCHELASTIC"))}
    env.update(PYTHONUNBUFFERED="1", VISTSNE_DIST_TIMEOUT="60", **extra)
    return env


def _torchrun(nproc: int, *args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "vistsne", "extract", DEMO_CONFIG, "--device", "cpu", "--launcher", "pytorch", *map(str, args)]


def _stored(store_path: str) -> tuple[str, dict]:
    """The one entry's committed rows: dataset index -> every stored value of that row."""
    st = Store(store_path, mode="r")
    (key,) = st.entry_keys()
    meta = st.entry_meta(key)
    committed = [p for p in st.parts(key) if p.committed]
    idx = np.array(sorted(st.present(key, [])), np.int64)
    out = {"index": idx, "part_rows": sum(p.rows for p in committed)}
    for s in meta["stages"]:
        out[f"feat/{s}"] = st.read_rows(key, idx, s)
    for what in ("label", "thumb"):
        out[what] = st.read_rows(key, idx, what=what)
    return key, out


def test_launcher_is_validated_and_stays_out_of_the_cache_key():
    with pytest.raises(ParamError, match="unknown --launcher 'mpi'.*none, pytorch, slurm"):
        ExtractParams(config=DEMO_CONFIG, launcher="mpi").validate()
    one = ExtractParams(config=DEMO_CONFIG).key_fields()
    assert ExtractParams(config=DEMO_CONFIG, launcher="pytorch").key_fields() == one
    assert ExtractParams(config=DEMO_CONFIG, launcher="slurm").key_fields() == one


def test_launchers_outside_their_launcher_fail_with_one_line(store_path):
    for launcher, var in (("slurm", "SLURM_PROCID"), ("pytorch", "RANK")):
        r = run_cli("extract", DEMO_CONFIG, "--store", store_path, "--device", "cpu", "--launcher", launcher,
                    env=_env(), check=False, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and var in lines[0] and f"--launcher {launcher} needs" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    assert not os.path.exists(store_path)  # refused before the store was opened
    r = run_cli("extract", DEMO_CONFIG, "--launcher", "mpi", check=False, timeout=120)
    assert r.returncode == 2 and "'mpi' is not one of 'none', 'pytorch', 'slurm'" in r.stderr


def test_run_accepts_the_launcher():
    from vistsne.run import build_parser

    args = build_parser().parse_args(["cfg.py", "--launcher", "slurm"])
    assert args.launcher == "slurm"
    assert build_parser().parse_args(["cfg.py"]).launcher == "none"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cfg.py", "--launcher", "mpi"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_slurm_launcher_in_a_one_task_job_step(store_path):
    """--launcher slurm through mmengine's init_dist, with the variables srun sets for one task."""
    env = _env(SLURM_PROCID="0", SLURM_NTASKS="1", SLURM_LOCALID="0", SLURM_NODELIST="localhost",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    r = run_cli("extract", DEMO_CONFIG, "--store", store_path, "--device", "cpu", "--launcher", "slurm",
                "--max-num-class", "2", "--max-num-samples", "3", "--json", env=env, timeout=400)
    import json

    res = json.loads(r.stdout)
    assert res["rows"] == 6 and res["new_rows"] == 6


@pytest.mark.slow
def test_two_ranks_store_every_row_once_equal_to_one_process(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU) into a fresh entry == one process, bit for bit."""
    two, one = str(tmp_path / "two.zarr"), str(tmp_path / "one.zarr")
    proc = subprocess.run(_torchrun(2, "--store", two, *SEL, "--batch-size", "4", "--flush-rows", "4"),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = [ln for ln in proc.stdout.splitlines() if ln.startswith("extract:")]
    assert len(summary) == 1, proc.stdout  # rank 0 alone prints it
    assert "30 rows (30 new rows computed, 0 cached)" in summary[0] and "2 ranks" in summary[0]
    assert "img/s" in summary[0]
    # a different batch size in the single process: per-sample results must not depend on the batch
    params = ExtractParams(config=DEMO_CONFIG, device="cpu", max_num_class=3, max_num_samples=10, batch_size=7)
    ref = extract_entry(Store(one), params, progress=False)
    key2, a = _stored(two)
    key1, b = _stored(one)
    assert key1 == key2 == ref.entry  # the launcher is not part of the key
    assert len(a["index"]) == 30 and a["part_rows"] == 30  # every selected row, exactly once
    np.testing.assert_array_equal(a["index"], ref.indices)
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name  # bit for bit
    # both ranks wrote parts (the shares were disjoint, not one rank doing everything)
    writers = {p.writer.get("pid") for p in Store(two, mode="r").parts(key2) if p.committed}
    assert len(writers) == 2
    # again: a cache hit on every rank, and the one summary says so
    again = subprocess.run(_torchrun(2, "--store", two, *SEL), cwd=ROOT, env=_env(), capture_output=True,
                           text=True, timeout=500)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "cache hit, no inference" in again.stdout


def _rank_pids(parent: int) -> dict[int, int]:
    """LOCAL_RANK -> pid of torchrun's workers."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        except (OSError, ValueError, IndexError):
            continue
        if b"LOCAL_RANK" in env:
            out[int(env[b"LOCAL_RANK"])] = int(pid)
    return out


@pytest.mark.slow
def test_a_killed_rank_stops_the_others_and_one_rank_completes_the_entry(tmp_path):
    store_path = str(tmp_path / "store.zarr")
    sel = ["--max-num-class", "10", "--max-num-samples", "30"]  # 300 rows
    proc = subprocess.Popen(_torchrun(2, "--store", store_path, *sel, "--batch-size", "2", "--flush-rows", "4"),
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 400
        committed = 0
        while time.time() < deadline and committed < 16:  # both ranks are committing parts
            time.sleep(0.5)
            if proc.poll() is not None:  # the job ended before the kill: show the ranks' own error lines
                err = proc.communicate()[1]
                said = [ln for ln in err.splitlines() if "error" in ln.lower() and "elastic" not in ln]
                pytest.fail(f"the job exited {proc.returncode} before a rank was killed: {said[:6]} {err[-800:]}")
            if os.path.exists(store_path):
                st = Store(store_path, mode="r")
                keys = st.entry_keys()
                if keys:
                    committed = sum(p.rows for p in st.parts(keys[0]) if p.committed)
        assert committed >= 16, "the extraction never got going"
        pids = _rank_pids(proc.pid)
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL)
        t_kill = time.time()
        out, err = proc.communicate(timeout=120)
        stopped = time.time() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and stopped < 90, (stopped, err[-2000:])
    survivor_gone = not os.path.exists(f"/proc/{pids[0]}")
    assert survivor_gone
    st = Store(store_path, mode="r")
    (key,) = st.entry_keys()
    kept = len(st.present(key, []))
    assert 0 < kept < 300
    # the next run, with one rank, computes only the missing rows, each once
    params = ExtractParams(config=DEMO_CONFIG, device="cpu", max_num_class=10, max_num_samples=30, batch_size=16)
    res = extract_entry(Store(store_path), params, progress=False)
    assert res.rows == 300 and res.new_rows == 300 - kept
    _, rows = _stored(store_path)
    assert len(rows["index"]) == 300 and rows["part_rows"] == 300  # no row twice
