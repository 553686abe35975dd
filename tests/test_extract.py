"""Stage one on real models and real stores: keys, caching, growth, safety, errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vistsne.cli import cli
from vistsne.errors import (CheckpointError, ConfigError, DatasetError, ParamError, StageError,
                            StoreError, UnsafeCheckpointError)
from vistsne.extract import ExtractParams, entry_key, extract_entry
from vistsne.store import Store

from .conftest import DEMO_CONFIG, ROOT, run_cli

SMALL = dict(max_num_samples=6, device="cpu")


def _extract(store_path, **kw):
    params = ExtractParams(config=kw.pop("config", DEMO_CONFIG), **{**SMALL, **kw})
    return extract_entry(Store(store_path), params, progress=False)


def test_round_trip_and_cache_hit(store_path):
    res = _extract(store_path, max_num_class=3)
    assert not res.cached and res.rows == 18 and res.new_rows == 18
    assert res.stages == {"backbone.3": 512, "neck": 512, "pre_logits": 512}
    st = Store(store_path, mode="r")
    meta = st.entry_meta(res.entry)
    assert meta["class_names"] == [str(i) for i in range(10)]
    assert meta["checkpoint_sha256"] == "none" and "torch" in meta["versions"]
    feats = st.read_rows(res.entry, res.indices, "pre_logits")
    assert feats.shape == (18, 512) and feats.dtype == np.float32 and np.isfinite(feats).all()
    labels = st.read_rows(res.entry, res.indices, what="label")
    assert sorted(set(labels.tolist())) == [0, 1, 2]
    thumbs = st.read_rows(res.entry, res.indices, what="thumb")
    assert thumbs.shape == (18, 48, 48, 3) and thumbs.dtype == np.uint8 and thumbs.max() > 0
    # neck output of GlobalAveragePooling equals the pooled backbone output
    np.testing.assert_allclose(st.read_rows(res.entry, res.indices, "neck"),
                               st.read_rows(res.entry, res.indices, "backbone.3"), rtol=1e-5, atol=1e-6)
    again = _extract(store_path, max_num_class=3)
    assert again.cached and again.new_rows == 0 and again.entry == res.entry
    assert st.verify_entry(res.entry) == []


def test_incremental_growth_computes_only_new_rows(store_path):
    first = _extract(store_path, max_num_class=2, max_num_samples=3)
    assert first.new_rows == 6
    more = _extract(store_path, max_num_class=3, max_num_samples=4)
    assert more.entry == first.entry and more.rows == 12 and more.new_rows == 6
    assert set(first.indices) <= set(more.indices)
    fewer = _extract(store_path, class_idx=(1,), max_num_samples=2)
    assert fewer.cached and fewer.rows == 2


def test_features_are_deterministic_across_runs(tmp_path):
    a = _extract(str(tmp_path / "a.zarr"), max_num_class=2, max_num_samples=3)
    b = _extract(str(tmp_path / "b.zarr"), max_num_class=2, max_num_samples=3, batch_size=1)
    fa = Store(str(tmp_path / "a.zarr")).read_rows(a.entry, a.indices, "pre_logits")
    fb = Store(str(tmp_path / "b.zarr")).read_rows(b.entry, b.indices, "pre_logits")
    assert a.entry == b.entry  # batch size is not in the key
    np.testing.assert_allclose(fa, fb, rtol=1e-4, atol=1e-5)  # a batch of one works


def test_key_changes_with_checkpoint_bytes_and_model_config(tmp_path, random_checkpoint):
    base = entry_key(ExtractParams(config=DEMO_CONFIG)).key
    assert entry_key(ExtractParams(config=DEMO_CONFIG, batch_size=3, num_workers=1, device="cpu")).key == base
    with_ckpt = entry_key(ExtractParams(config=DEMO_CONFIG, checkpoint=random_checkpoint)).key
    assert with_ckpt != base
    copy = tmp_path / "copy.pth"
    data = bytearray(Path(random_checkpoint).read_bytes())
    copy.write_bytes(bytes(data))
    assert entry_key(ExtractParams(config=DEMO_CONFIG, checkpoint=str(copy))).key == with_ckpt
    data[-10] ^= 0xFF  # one byte changed in the same file: a new key
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert entry_key(ExtractParams(config=DEMO_CONFIG, checkpoint=str(copy))).key != with_ckpt
    other = entry_key(ExtractParams(config=DEMO_CONFIG, cfg_options=("model.head.num_classes=11",))).key
    assert other != base
    assert entry_key(ExtractParams(config=DEMO_CONFIG, pool="cls")).key != base


def test_key_is_stable_across_processes():
    code = ("from vistsne.extract import ExtractParams, entry_key;"
            f"print(entry_key(ExtractParams(config={DEMO_CONFIG!r})).key)")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           check=True).stdout.strip() for _ in range(2)}
    assert len(keys) == 1
    assert keys.pop() == entry_key(ExtractParams(config=DEMO_CONFIG)).key


def test_cache_hit_imports_neither_torch_nor_mmpretrain(store_path):
    _extract(store_path, max_num_class=2, max_num_samples=2)
    code = ("import sys, json\n"
            "from vistsne.cli import main\n"
            "try:\n"
            f"    main(['extract', {DEMO_CONFIG!r}, '--store', {store_path!r}, '--max-num-class', '2',"
            " '--max-num-samples', '2', '--json'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'mmpretrain': 'mmpretrain' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["cached"] is True
    assert json.loads(lines[-1]) == {"torch": False, "mmpretrain": False}


def test_images_folder_and_vis_stage(tmp_path, image_tree, store_path):
    res = _extract(store_path, images=str(image_tree), vis_stage="backbone")
    assert res.rows == 12 and list(res.stages) == ["backbone.3"]
    meta = Store(store_path).entry_meta(res.entry)
    assert meta["class_names"] == ["cat", "dog", "owl"]
    # every stage later: the backbone rows are recomputed with the rest, once
    full = _extract(store_path, images=str(image_tree), vis_stage="all")
    assert set(full.stages) == {"backbone.3", "neck", "pre_logits"} and full.new_rows == 12
    assert _extract(store_path, images=str(image_tree), vis_stage="neck").cached
    # thumbnails show the images themselves (RGB order kept)
    st = Store(store_path)
    thumbs = st.read_rows(res.entry, res.indices, what="thumb")
    labels = st.read_rows(res.entry, res.indices, what="label")
    cat = thumbs[labels == 0].reshape(-1, 3).mean(0)
    assert cat[0] > cat[1] and cat[0] > cat[2]  # the "cat" images are red


def test_changed_images_are_not_served_stale(tmp_path, image_tree, store_path):
    a = _extract(store_path, images=str(image_tree))
    from PIL import Image

    Image.new("RGB", (32, 32), (255, 255, 255)).save(image_tree / "cat" / "000.png")
    os.utime(image_tree / "cat" / "000.png", ns=(time.time_ns(), time.time_ns() + 5 * 10**9))
    b = _extract(store_path, images=str(image_tree))
    assert b.entry != a.entry and not b.cached


def test_float16_and_cli_json(store_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["extract", DEMO_CONFIG, "--store", store_path, "--max-num-class", "2",
                            "--max-num-samples", "2", "--dtype", "float16", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == {"entry", "cached", "rows", "new_rows", "stages", "seconds", "store", "partial_checkpoint"}
    assert out["partial_checkpoint"] is None
    assert out["rows"] == 4 and out["new_rows"] == 4 and out["cached"] is False
    st = Store(store_path)
    part = st.parts(out["entry"])[0]
    stored = st.stored_stage(out["entry"], "pre_logits")  # pre_logits = backbone.3 here: stored once
    assert st.root["entries"][out["entry"]]["parts"][part.name]["feat"][stored].dtype == np.float16


def test_bfloat16_precision_is_its_own_entry_close_to_float32(store_path, random_checkpoint):
    full = _extract(store_path, checkpoint=random_checkpoint, max_num_class=3, vis_stage="pre_logits")
    fast = _extract(store_path, checkpoint=random_checkpoint, max_num_class=3, vis_stage="pre_logits",
                    precision="bfloat16")
    assert fast.entry != full.entry and not fast.cached  # other numbers: never served for float32
    st = Store(store_path, mode="r")
    assert st.entry_meta(fast.entry)["extract"]["precision"] == "bfloat16"
    assert "precision" not in st.entry_meta(full.entry)["extract"]  # float32 keys are those of every earlier run
    a = st.read_rows(full.entry, full.indices, "pre_logits")
    b = st.read_rows(fast.entry, fast.indices, "pre_logits")
    assert b.dtype == np.float32 and not np.array_equal(a, b)  # autocast really ran
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99, cos.min()
    # later stages pick the entry by the same flag, and float32 by default
    for flags, want in (([], full.entry), (["--precision", "bfloat16"], fast.entry)):
        r = CliRunner().invoke(cli, ["embed", DEMO_CONFIG, "--checkpoint", random_checkpoint, *flags,
                                     "--n-iter", "60", "--early-exaggeration-iter", "20", "--perplexity", "4",
                                     "--max-num-class", "3", "--max-num-samples", "6", "--store", store_path, "--json"])
        assert r.exit_code == 0, r.output
        maps = json.loads(r.stdout.strip().splitlines()[-1])
        assert {m["entry"] for m in maps} == {want}
    again = _extract(store_path, checkpoint=random_checkpoint, max_num_class=3, vis_stage="pre_logits",
                     precision="bfloat16")
    assert again.cached and again.entry == fast.entry


def test_float16_precision_on_the_cpu_is_one_line_naming_bfloat16(store_path):
    r = run_cli("extract", DEMO_CONFIG, "--precision", "float16", "--device", "cpu", "--max-num-samples", "2",
                "--store", store_path, check=False)
    assert r.returncode != 0
    assert "--precision bfloat16" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not Path(store_path).exists() or not Store(store_path, mode="r").entry_keys()  # nothing half-made


def test_bfloat16_on_a_cpu_without_bfloat16_units_says_it_is_emulated(caplog):
    from vistsne.extract.model import Precision, native_cpu_bfloat16

    with caplog.at_level(logging.WARNING, logger="vistsne"):
        Precision("float32", "cpu")
        assert not caplog.records  # float32 never warns
        Precision("bfloat16", "cpu")
    warned = [r.getMessage() for r in caplog.records if "no bfloat16 units" in r.getMessage()]
    # this CPU's own answer decides: one line naming the fix where bfloat16 is emulated, none where native
    assert len(warned) == (0 if native_cpu_bfloat16() else 1), warned
    assert all("--precision float32" in m for m in warned)


def test_the_cli_says_bfloat16_is_emulated_when_it_computes_and_not_on_a_cache_hit(store_path):
    from vistsne.extract.model import native_cpu_bfloat16

    args = ("extract", DEMO_CONFIG, "--precision", "bfloat16", "--device", "cpu", "--max-num-class", "2",
            "--max-num-samples", "2", "--store", store_path)
    first, hit = run_cli(*args), run_cli(*args)
    lines = [ln for ln in first.stderr.splitlines() if "no bfloat16 units" in ln]
    assert len(lines) == (0 if native_cpu_bfloat16() else 1), first.stderr
    assert all("--precision float32" in ln for ln in lines)
    assert "cache hit" in hit.stdout + hit.stderr and "no bfloat16 units" not in hit.stderr  # nothing computed


def _stopped(pid: int, timeout: float = 10.0) -> bool:
    """Wait until process ``pid`` is stopped (SIGSTOP delivered): state T in /proc."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
def test_resume_after_kill(store_path):
    # one row per batch and per part, so that the writer spends much of its time inside a part
    args = [sys.executable, "-m", "vistsne", "extract", DEMO_CONFIG, "--store", store_path,
            "--max-num-samples", "60", "--batch-size", "1", "--flush-rows", "1", "--device", "cpu", "-h"]
    args.remove("-h")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    key = None
    uncommitted: set[str] = set()
    rng = np.random.default_rng(0)
    try:
        while time.time() < deadline:
            time.sleep(0.5 if key is None else float(rng.uniform(0.0, 0.02)))
            assert proc.poll() is None, proc.communicate()  # still running: the kill is mid-run
            if not os.path.exists(os.path.join(store_path, "entries")):
                continue
            if key is None:
                st = Store(store_path, mode="r")
                keys = st.entry_keys()
                if keys and sum(p.committed for p in st.parts(keys[0])) >= 2:
                    key = keys[0]
                continue
            # freeze the writer and look: kill it only while a part is started and not committed,
            # so that what the kill leaves is exactly what was seen
            proc.send_signal(signal.SIGSTOP)
            assert _stopped(proc.pid)
            try:
                parts = Store(store_path, mode="r").parts(key)
            except Exception:  # noqa: BLE001 - frozen in the middle of a metadata write: look again
                parts = []
            started = [p for p in parts if not p.committed]
            # a part's attributes are written one by one: wait for one that names its writer
            if started and all("pid" in (p.writer or {}) for p in started):
                uncommitted = {p.name for p in started}
                break
            proc.send_signal(signal.SIGCONT)
        assert key is not None, "no part was committed in time"
        assert uncommitted, "the writer was never caught inside a part"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    st = Store(store_path)
    assert {p.name for p in st.parts(key) if not p.committed} == uncommitted
    done = st.present(key, ["pre_logits"])
    assert 0 < len(done) < 540  # the digits test split holds 540 rows
    # what is there reads back; what is missing reads as missing
    st.read_rows(key, np.array(sorted(done)), "pre_logits")
    res = _extract(store_path, max_num_samples=60, batch_size=8)
    assert res.entry == key and res.rows == 540 and res.new_rows == 540 - len(done)
    assert _extract(store_path, max_num_samples=60).cached
    problems = Store(store_path).verify_entry(key)
    assert len(problems) == len(uncommitted)  # the killed run's part, and nothing else
    assert all("uncommitted" in p for p in problems)
    assert {p.split(":")[0].split("/")[1] for p in problems} == uncommitted
    r = CliRunner().invoke(cli, ["store", "gc", "--store", store_path, "--json"])
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(r.stdout)["parts"]) == sorted(f"{key[:12]}/{name}" for name in uncommitted)
    assert Store(store_path).verify_entry(key) == []
    assert len(Store(store_path).present(key, ["pre_logits"])) == 540


@pytest.mark.slow
def test_two_concurrent_extractions_into_one_entry(store_path):
    args = [sys.executable, "-m", "vistsne", "-q", "extract", DEMO_CONFIG, "--store", store_path,
            "--max-num-samples", "12", "--batch-size", "8", "--flush-rows", "8", "--device", "cpu", "--json"]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    entries = {json.loads(o.strip().splitlines()[-1])["entry"] for o, _ in outs}
    assert len(entries) == 1
    key = entries.pop()
    st = Store(store_path)
    assert st.verify_entry(key) == []
    res = _extract(store_path, max_num_samples=12)
    assert res.cached and res.rows == 120
    feats = st.read_rows(key, res.indices, "pre_logits")
    assert feats.shape == (120, 512) and np.isfinite(feats).all()


# ------------------------------------------------------------------- errors
def test_error_config_not_found(store_path):
    with pytest.raises(ConfigError, match="not found"):
        _extract(store_path, config="configs/nope/missing.py")


def test_error_no_test_dataloader(tmp_path, store_path):
    cfg = tmp_path / "no_loader.py"
    cfg.write_text("_base_ = ['mmpretrain::_base_/models/resnet18_cifar.py']\n")
    with pytest.raises(ConfigError, match="--test-cfg"):
        _extract(store_path, config=str(cfg))


def test_errors_checkpoint(tmp_path, store_path):
    with pytest.raises(CheckpointError, match="not found"):
        _extract(store_path, checkpoint=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        _extract(store_path, checkpoint=str(junk))
    empty = tmp_path / "wrong.pth"
    import torch

    torch.save({"state_dict": {"foo.weight": torch.zeros(3)}}, empty)
    with pytest.raises(CheckpointError, match="matches none"):
        _extract(store_path, checkpoint=str(empty))
    unreadable = tmp_path / "locked.pth"
    unreadable.write_bytes(b"x")
    unreadable.chmod(0)
    if not os.access(unreadable, os.R_OK):  # root reads everything
        with pytest.raises(CheckpointError, match="not readable"):
            _extract(store_path, checkpoint=str(unreadable))


def test_error_checkpoint_url_unreachable(store_path):
    t = time.perf_counter()
    with pytest.raises(CheckpointError, match="could not be fetched.*download it yourself"):
        _extract(store_path, checkpoint="http://127.0.0.1:9/resnet18.pth")
    assert time.perf_counter() - t < 30


def test_unsafe_checkpoint_refused_and_trusted(tmp_path, store_path, random_checkpoint):
    import torch

    state = torch.load(random_checkpoint, weights_only=True)
    state["meta"]["evil"] = Path("/tmp")  # any non-allow-listed global
    bad = tmp_path / "unsafe.pth"
    torch.save(state, bad)
    with pytest.raises(UnsafeCheckpointError, match=r"pathlib\..*--trust-checkpoint"):
        _extract(store_path, checkpoint=str(bad), max_num_class=1, max_num_samples=1)
    res = _extract(store_path, checkpoint=str(bad), max_num_class=1, max_num_samples=1, trust_checkpoint=True)
    assert res.new_rows == 1


def test_runner_checkpoint_loads_safely(tmp_path, store_path):
    """A checkpoint saved by mmengine's Runner (message hub, history buffers) loads weights-only."""
    from vistsne.demo import train_checkpoint
    from vistsne.extract.checkpoint import load_checkpoint_file
    from vistsne.extract.config import load_config
    from mmengine.runner import Runner

    cfg = load_config(DEMO_CONFIG, import_custom_modules=True).cfg
    cfg.work_dir = str(tmp_path / "runner")
    cfg.train_cfg = dict(by_epoch=False, max_iters=1, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1, by_epoch=False)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_dataloader.batch_size = 4
    cfg.log_level = "WARNING"
    Runner.from_cfg(cfg).train()
    ckpt = tmp_path / "runner" / "iter_1.pth"
    loaded = load_checkpoint_file(ckpt)
    assert "message_hub" in loaded and "state_dict" in loaded
    res = _extract(store_path, checkpoint=str(ckpt), max_num_class=1, max_num_samples=1)
    assert res.new_rows == 1
    assert callable(train_checkpoint)
    # the weights loaded are the trained ones, bit for bit, and they are what extraction used:
    # a plain checkpoint of the same state_dict gives the same features, random init other ones
    import torch

    full = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert loaded["state_dict"].keys() == full["state_dict"].keys()
    for name, tensor in full["state_dict"].items():
        assert torch.equal(loaded["state_dict"][name], tensor), name
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": full["state_dict"]}, plain)
    same = _extract(store_path, checkpoint=str(plain), max_num_class=1, max_num_samples=1)
    init = _extract(store_path, max_num_class=1, max_num_samples=1)
    assert len({res.entry, same.entry, init.entry}) == 3
    st = Store(store_path)
    import hashlib

    assert st.entry_meta(res.entry)["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    feats = {r.entry: st.read_rows(r.entry, r.indices, "pre_logits") for r in (res, same, init)}
    np.testing.assert_array_equal(feats[res.entry], feats[same.entry])
    assert not np.allclose(feats[res.entry], feats[init.entry], rtol=1e-3, atol=1e-4)


def test_error_dataset_missing(tmp_path, store_path):
    with pytest.raises(DatasetError, match="--images"):
        _extract(store_path, config="configs/resnet/resnet18_8xb16_cifar10.py",
                 cfg_options=(f"test_dataloader.dataset.data_root={tmp_path / 'nothing'}",))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no class folders"):
        _extract(store_path, images=str(empty))
    with pytest.raises(DatasetError, match="does not exist"):
        _extract(store_path, images=str(tmp_path / "absent"))


def test_error_class_index_out_of_range(store_path):
    with pytest.raises(ParamError, match="out of range.*10 classes"):
        _extract(store_path, class_idx=(12,))


def test_error_unknown_stage(tmp_path, image_tree, store_path):
    cfg = tmp_path / "no_neck.py"
    cfg.write_text(f"_base_ = [{DEMO_CONFIG!r}]\nmodel = dict(neck=None, head=dict(in_channels=512))\n")
    with pytest.raises(StageError, match="no neck"):
        _extract(store_path, config=str(cfg), vis_stage="neck")
    res = _extract(store_path, config=str(cfg), vis_stage="all", max_num_class=1, max_num_samples=1)
    assert "neck" not in res.stages and any("no neck" in n for n in res.notes)


def test_error_store_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "store.zarr").write_text("a file, not a folder")
    with pytest.raises(StoreError, match="not writable|cannot open"):
        Store(str(ro / "store.zarr"))


@pytest.mark.parametrize("args,needle", [
    (["extract", "configs/nope.py"], "config configs/nope.py not found"),
    (["extract", DEMO_CONFIG, "--checkpoint", "http://127.0.0.1:9/x.pth"], "could not be fetched"),
    (["extract", DEMO_CONFIG, "--class-idx", "99"], "out of range"),
])
def test_cli_errors_are_one_line_without_traceback(args, needle, store_path):
    proc = run_cli(*args, "--store", store_path, check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert errors == [err[-1]] and needle in err[-1] and "Traceback" not in proc.stderr


def test_cli_debug_shows_traceback(store_path):
    proc = run_cli("--debug", "extract", "configs/nope.py", "--store", store_path, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_seed_style_and_package_config_resolution(caplog):
    import logging

    from vistsne.extract.config import resolve_config_path

    with caplog.at_level(logging.INFO, logger="vistsne"):
        seed_style = resolve_config_path("configs/resnet/resnet18_8xb16_cifar10.py")
        said = [r.getMessage() for r in caplog.records if r.name.startswith("vistsne")]
        caplog.clear()
        package = resolve_config_path("mmpretrain::resnet/resnet18_8xb16_cifar10.py")
        local = resolve_config_path(DEMO_CONFIG)
        quiet = [r.getMessage() for r in caplog.records if r.name.startswith("vistsne")]
    assert seed_style == package and seed_style.is_file()
    assert local == Path(DEMO_CONFIG)
    # the seed-style path is not on disk: the log says where the config came from, once
    assert said == ["config configs/resnet/resnet18_8xb16_cifar10.py is not on disk; using mmpretrain's "
                    "packaged configs/resnet/resnet18_8xb16_cifar10.py"]
    assert quiet == []  # a package config and a file on disk are what they say: nothing to log


def test_store_commands(store_path):
    res = _extract(store_path, max_num_class=2, max_num_samples=2)
    runner = CliRunner()
    ls = runner.invoke(cli, ["store", "ls", "--store", store_path, "--json"])
    assert ls.exit_code == 0, ls.output
    rows = json.loads(ls.stdout)
    assert rows[0]["key"] == res.entry and rows[0]["rows"] == 4 and rows[0]["complete"] is True
    assert set(rows[0]) == {"key", "config", "config_name", "checkpoint", "checkpoint_name", "data", "complete",
                            "rows", "per_class", "partial_checkpoint", "stages", "embeddings", "size_bytes",
                            "created"}
    assert rows[0]["per_class"] == {"classes": 2, "min": 2, "max": 2} and rows[0]["checkpoint_name"] == "random init"
    assert rows[0]["data"] == "Digits test"
    info = runner.invoke(cli, ["store", "info", res.entry[:8], "--store", store_path, "--json"])
    assert json.loads(info.stdout)["checkpoint_sha256"] == "none"
    assert runner.invoke(cli, ["store", "verify", "--store", store_path]).exit_code == 0
    # damage: a part's array loses rows -> verify exits non-zero
    st = Store(store_path)
    part = st.parts(res.entry)[0].name
    grp = st.root["entries"][res.entry]["parts"][part]
    del grp["label"]
    grp.create_array("label", data=np.zeros(1, np.int32))
    bad = runner.invoke(cli, ["store", "verify", "--store", store_path])
    assert bad.exit_code == 1 and "row counts" in bad.output
    rm = runner.invoke(cli, ["store", "rm", res.entry[:10], "--store", store_path])
    assert rm.exit_code == 0 and Store(store_path).entry_keys() == []


def test_fsspec_url_store():
    """Any fsspec URL zarr accepts: here fsspec's in-memory filesystem."""
    url = "memory://vistsne-test/store.zarr"
    res = _extract(url, max_num_class=2, max_num_samples=2)
    st = Store(url)
    assert st.entry_keys() == [res.entry] and st.verify_entry(res.entry) == []
    assert st.read_rows(res.entry, res.indices, "pre_logits").shape == (4, 512)
    assert _extract(url, max_num_class=2, max_num_samples=2).cached


def test_mismatched_checkpoint_keys_are_reported(tmp_path, store_path, random_checkpoint, caplog):
    import logging

    import torch

    state = torch.load(random_checkpoint, weights_only=True)
    sd = state["state_dict"]
    sd.pop("head.fc.bias")
    sd["extra.layer.weight"] = torch.zeros(2)
    sd["backbone.conv1.weight"] = torch.zeros(1, 1, 1, 1)  # another shape
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with caplog.at_level(logging.WARNING, logger="vistsne"):
        res = _extract(store_path, checkpoint=str(path), max_num_class=1, max_num_samples=1,
                       allow_partial_checkpoint=True)
    text = caplog.text
    assert res.new_rows == 1
    assert "1 checkpoint keys are not in the model, e.g. extra.layer.weight" in text
    assert "1 model weights are missing from the checkpoint (left at init), e.g. head.fc.bias" in text
    assert "1 checkpoint keys have another shape than the model's, e.g. backbone.conv1.weight" in text


def test_loader_workers_default_to_the_config_capped_below_the_cores(monkeypatch):
    from vistsne.extract.entry import loader_workers

    monkeypatch.setattr("vistsne.extract.entry.available_cores", lambda: 2)
    assert loader_workers(None, {"num_workers": 5}) == 1  # 2 cores: one left for the forward pass
    assert loader_workers(None, {"num_workers": 0}) == 0  # never raised
    assert loader_workers(None, {}) == 0
    assert loader_workers(3, {"num_workers": 5}) == 3  # --num-workers is taken as given
    monkeypatch.setattr("vistsne.extract.entry.available_cores", lambda: 16)
    assert loader_workers(None, {"num_workers": 5}) == 5
    monkeypatch.setattr("vistsne.extract.entry.available_cores", lambda: 1)
    assert loader_workers(None, {"num_workers": 5}) == 1
