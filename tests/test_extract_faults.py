"""Extract under faults and mistakes: nothing half-made is left, nothing wrong is stored (issues 14, 15)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vistsne.errors import CheckpointError, ConfigError, DatasetError, FeatureError
from vistsne.extract import ExtractParams, entry_key, extract_entry
from vistsne.store import Store

from .conftest import DEMO_CONFIG, ROOT, run_cli, write_image_tree

SMALL = dict(max_num_class=2, max_num_samples=4, device="cpu")


def _extract(store_path, **kw):
    params = ExtractParams(config=kw.pop("config", DEMO_CONFIG), **{**SMALL, **kw})
    return extract_entry(Store(store_path), params, progress=False)


def _entries(store_path) -> list[str]:
    if not os.path.exists(store_path):
        return []
    return Store(store_path, mode="r").entry_keys()


def test_unreadable_checkpoint_leaves_no_entry_and_latest_is_unchanged(tmp_path, store_path):
    good = _extract(store_path)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    r = run_cli("extract", DEMO_CONFIG, "--checkpoint", junk, "--store", store_path, "--max-num-class", "2",
                "--max-num-samples", "4", "--device", "cpu", check=False)
    assert r.returncode == 2 and "is not a readable checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert _entries(store_path) == [good.entry]  # no empty entry was created
    # the next plain embed still takes the good entry
    e = run_cli("-q", "embed", "--store", store_path, "--stage", "pre_logits", "--perplexity", "2",
                "--n-iter", "250", "--json", check=False)
    assert e.returncode == 0, e.stderr
    assert good.entry[:12] in e.stdout


def test_a_model_that_fails_to_build_leaves_no_entry(store_path):
    r = run_cli("extract", DEMO_CONFIG, "--store", store_path, "--cfg-options", "model.backbone.depht=50",
                "--device", "cpu", check=False)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the model of") and "depht" in line
    assert "check --cfg-options model.backbone.depht=50" in line and "internal error" not in line
    r = run_cli("extract", DEMO_CONFIG, "--store", store_path, "--cfg-options", "model.backbone.depth=7",
                "--device", "cpu", check=False)
    assert r.returncode == 2 and "cannot be built" in r.stderr and "depth=7" in r.stderr
    assert _entries(store_path) == []


def _partial_checkpoint(tmp_path, random_checkpoint) -> Path:
    import torch

    state = torch.load(random_checkpoint, weights_only=True)
    sd = state["state_dict"]
    sd.pop("head.fc.bias")
    sd["backbone.conv1.weight"] = torch.zeros(1, 1, 1, 1)  # another shape
    path = tmp_path / "other_arch.pth"
    torch.save(state, path)
    return path


def test_partial_checkpoint_is_refused_unless_allowed_and_then_recorded(tmp_path, store_path, random_checkpoint):
    path = _partial_checkpoint(tmp_path, random_checkpoint)
    with pytest.raises(CheckpointError, match=r"leaves 1 of the model's \d+ weights unloaded and 1 of another "
                                              r"shape.*--allow-partial-checkpoint"):
        _extract(store_path, checkpoint=str(path))
    assert _entries(store_path) == []
    res = _extract(store_path, checkpoint=str(path), allow_partial_checkpoint=True)
    meta = Store(store_path).entry_meta(res.entry)
    assert meta["partial_checkpoint"]["missing"] == 1 and meta["partial_checkpoint"]["shape_mismatch"] == 1
    info = run_cli("store", "info", res.entry[:12], "--store", store_path)
    assert "partial_checkpoint" in info.stdout and '"missing": 1' in info.stdout


def test_checkpoint_replaced_between_key_and_load_is_refused(tmp_path, store_path, random_checkpoint):
    """A `latest.pth` rewritten by a training run is never stored under the old file's key."""
    import torch

    from vistsne.extract.entry import _run_inference

    ckpt = tmp_path / "latest.pth"
    shutil.copy(random_checkpoint, ckpt)
    params = ExtractParams(config=DEMO_CONFIG, checkpoint=str(ckpt), **SMALL).validate()
    info = entry_key(params)  # hashes the file as it is now
    state = torch.load(ckpt, weights_only=True)
    state["state_dict"]["head.fc.bias"] += 1.0
    torch.save(state, ckpt)  # a new epoch lands
    with pytest.raises(CheckpointError, match="changed while vistsne was reading it"):
        _run_inference(params, info, Store(store_path), False, time.perf_counter())
    assert _entries(store_path) == []


def test_float16_overflow_is_refused_with_a_fix_that_works(tmp_path, store_path, random_checkpoint):
    import torch

    state = torch.load(random_checkpoint, weights_only=True)
    for k, v in state["state_dict"].items():
        if k.endswith("conv1.weight") or k.endswith("conv2.weight"):
            v.mul_(30.0)  # activations grow past float16's range
    big = tmp_path / "big.pth"
    torch.save(state, big)
    with pytest.raises(FeatureError, match=r"beyond float16's largest \(65504\).*--dtype float32"):
        _extract(store_path, checkpoint=str(big), dtype="float16")
    assert _entries(store_path) == []
    res = _extract(store_path, checkpoint=str(big), dtype="float32")  # the suggested fix
    assert res.new_rows == 8


def test_images_key_does_not_hold_the_absolute_root(tmp_path):
    a = write_image_tree(tmp_path / "a" / "imgs")
    b = tmp_path / "b" / "imgs"
    shutil.copytree(a, b)  # copy2: the same names, sizes and mtimes
    ka = entry_key(ExtractParams(config=DEMO_CONFIG, images=str(a))).key
    kb = entry_key(ExtractParams(config=DEMO_CONFIG, images=str(b))).key
    assert ka == kb
    (b / "cat" / "000.png").touch()
    os.utime(b / "cat" / "000.png", (1, 1))
    assert entry_key(ExtractParams(config=DEMO_CONFIG, images=str(b))).key != ka


def test_mixed_image_sizes_give_one_short_line_and_image_size_fixes_it(tmp_path, store_path):
    from PIL import Image

    tree = write_image_tree(tmp_path / "imgs")
    Image.new("RGB", (2000, 2000), (90, 10, 10)).save(tree / "cat" / "big.png")
    r = run_cli("extract", DEMO_CONFIG, "--images", tree, "--store", store_path, "--device", "cpu",
                "--batch-size", "16", check=False)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(errors[0]) < 300, errors
    assert "2000x2000" in errors[0] and "--image-size" in errors[0]
    assert _entries(store_path) == []
    ok = run_cli("-q", "extract", DEMO_CONFIG, "--images", tree, "--image-size", "32", "--store", store_path,
                 "--device", "cpu", "--batch-size", "16", "--json")
    assert '"new_rows": 13' in ok.stdout


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_signal_during_a_part_write_waits_for_the_commit_and_is_raised_once_after():
    """SIGTERM/SIGINT arriving while a part is written must not interrupt the write: the
    interrupt's own flush would then write the same rows again (a row stored twice)."""
    from vistsne.extract.entry import _Interrupted, _SignalGate

    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    # pytest run as a shell's background job (or under nohup) starts with SIGINT ignored, which
    # the gate keeps (checked below): give this process Python's own Ctrl-C handler for the test
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig, raised in ((signal.SIGTERM, _Interrupted), (signal.SIGINT, KeyboardInterrupt)):
        gate = _SignalGate()
        gate.install()
        try:
            written = []
            with pytest.raises(raised):
                with gate.writing_part():
                    os.kill(os.getpid(), sig)
                    time.sleep(0.05)  # the handler runs here, inside the write
                    written.append(True)  # ... and the write goes on to its end
            assert written == [True] and gate.pending is None
            with pytest.raises(raised):  # outside a write, the signal is raised at once
                os.kill(os.getpid(), sig)
                time.sleep(1)
        finally:
            gate.restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == old[1]
    # a signal the caller ignores stays ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        gate = _SignalGate()
        gate.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        gate.restore()
    finally:
        signal.signal(signal.SIGINT, old[0])


def test_interrupt_commits_the_rows_already_computed(store_path):
    """SIGINT (Ctrl-C) and SIGTERM commit the buffer first, so "committed rows are kept" is true."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        args = [sys.executable, "-m", "vistsne", "extract", DEMO_CONFIG, "--store", store_path,
                "--max-num-samples", "60", "--batch-size", "2", "--flush-rows", "100000", "--device", "cpu"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # a shell's background job starts with SIGINT ignored (and so would the child): give it back
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, preexec_fn=_default_sigint)
        try:
            deadline = time.time() + 240
            while time.time() < deadline:  # wait until the model is running batches
                time.sleep(0.5)
                if os.path.exists(store_path) and Store(store_path, mode="r").entry_keys():
                    time.sleep(1.5)
                    break
                assert proc.poll() is None, proc.communicate()
            before = _entries(store_path)
            assert before, "the extraction never started"
            # nothing is committed yet: the buffer holds up to 100,000 rows
            assert not any(p.committed for p in Store(store_path, mode="r").parts(before[0]))
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        assert "committed rows are kept" in err
        st = Store(store_path)
        kept = len(st.present(before[0], ["pre_logits"]))
        assert kept > 0, err  # what was computed is there
        res = _extract(store_path, max_num_class=20, max_num_samples=60, batch_size=16)
        assert res.new_rows == 540 - kept and res.rows == 540
        shutil.rmtree(store_path)


@pytest.mark.slow
def test_dataloader_workers_under_spawn(tmp_path):
    """Workers started with spawn (macOS, Windows, Python 3.14) can pickle the rows and the collate."""
    code = (
        "import multiprocessing as mp, sys, json\n"
        "mp.set_start_method('spawn', force=True)\n"
        "from vistsne.extract import ExtractParams, extract_entry\n"
        "from vistsne.store import Store\n"
        "import numpy as np\n"
        "if __name__ == '__main__':\n"
        "    out = {}\n"
        f"    for w in (0, 1):\n"
        f"        st = Store(sys.argv[1] + str(w))\n"
        f"        r = extract_entry(st, ExtractParams(config={DEMO_CONFIG!r}, max_num_class=2, max_num_samples=6,"
        " device='cpu', num_workers=w, batch_size=4), progress=False)\n"
        "        out[w] = st.read_rows(r.entry, r.indices, 'pre_logits').tolist()\n"
        "    print(json.dumps(out[0] == out[1]))\n"
    )
    script = tmp_path / "spawn_check.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "s")], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "true"


def test_a_config_folder_is_named_as_a_folder(tmp_path, store_path):
    r = run_cli("extract", str(ROOT / "configs"), "--store", store_path, check=False)
    assert r.returncode == 2 and "is a folder, not a config file" in r.stderr
    assert "digits_resnet18.py" in r.stderr


def test_cache_key_refuses_unstable_reprs():
    from vistsne.hashing import canonical_json

    class Thing:
        pass

    with pytest.raises(TypeError, match="differs between processes"):
        canonical_json({"a": Thing()})
    assert canonical_json({"t": Thing}) == canonical_json({"t": Thing})
    assert "Thing" in canonical_json({"t": Thing})


def test_available_cores_follows_the_affinity():
    from vistsne.resources import available_cores

    assert available_cores() == min(len(os.sched_getaffinity(0)), os.cpu_count())
    if len(os.sched_getaffinity(0)) > 1:
        code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
                "from vistsne.resources import available_cores; print(available_cores())")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))
        assert out.stdout.strip() == "1", out.stderr


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_is_named_in_one_line_and_good_rows_are_kept(tmp_path, workers):
    tree = write_image_tree(tmp_path / "imgs", classes=("a", "b"), per_class=6)
    (tree / "b" / "003.png").write_bytes(b"not a png at all")
    store = str(tmp_path / "s.zarr")
    r = run_cli("extract", DEMO_CONFIG, "--images", tree, "--store", store, "--device", "cpu", "--batch-size", "2",
                "--flush-rows", "2", "--num-workers", str(workers), check=False)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "b/003.png cannot be read" in errors[0] and "Traceback" not in r.stderr
    assert "remove or replace it, then run the same command" in errors[0]
    st = Store(store, mode="r")
    (key,) = st.entry_keys()
    kept = st.present(key, ["pre_logits"])
    assert len(kept) >= 6  # every row before the bad image (class a, then b/000-002) was committed
    (tree / "b" / "003.png").unlink()
    res = _extract(store, images=str(tree), max_num_class=20, max_num_samples=100)
    assert res.rows == 11 and res.new_rows == 11 and res.entry != key  # the fixed folder is other data


def test_declared_minimum_versions_have_what_the_code_uses():
    """pyproject admits no torch without safe_globals and no zarr whose local store writes non-atomically."""
    import re as _re

    import torch
    import zarr

    text = (ROOT / "pyproject.toml").read_text()
    torch_min = tuple(int(x) for x in _re.search(r'"torch>=(\d+)\.(\d+)', text).groups())
    zarr_min = tuple(int(x) for x in _re.search(r'"zarr>=(\d+)\.(\d+)', text).groups())
    assert torch_min >= (2, 5) and zarr_min >= (3, 1)
    assert hasattr(torch.serialization, "safe_globals")
    from zarr.storage import _local

    assert "partial" in open(_local.__file__).read()  # temporary file, then rename
    assert tuple(int(x) for x in zarr.__version__.split(".")[:2]) >= zarr_min
