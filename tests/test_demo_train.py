"""The demo's pieces: the Digits dataset, the demo config's model, the checkpoint trainer."""

from __future__ import annotations

import glob
import os
import tempfile

import numpy as np
import pytest

from tests.conftest import DEMO_CONFIG


def _build(**kwargs):
    import vistsne.extract.digits  # noqa: F401  (registers Digits)
    from mmpretrain.registry import DATASETS

    return DATASETS.build(dict(type="Digits", **kwargs))


def _images(ds) -> np.ndarray:
    return np.stack([ds.get_data_info(i)["img"] for i in range(len(ds))])


def test_digits_builds_through_the_registry():
    ds = _build(split="test")
    assert len(ds) == 540
    assert len(ds.metainfo["classes"]) == 10
    labels = np.asarray(ds.get_gt_labels())
    assert sorted(set(labels.tolist())) == list(range(10))
    item = ds[0]  # no pipeline: the data info itself
    img = item["img"]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert img.max() > 0 and (img[..., 0] == img[..., 2]).all()  # grey, repeated in RGB
    assert len(_build(split="train")) == 1257
    with pytest.raises(ValueError, match="split"):
        _build(split="val")


def test_digits_split_is_fixed_and_stratified():
    from sklearn.datasets import load_digits

    from vistsne.extract.digits import split_indices

    train, test = split_indices("train"), split_indices("test")
    np.testing.assert_array_equal(test, split_indices("test"))
    np.testing.assert_array_equal(train, split_indices("train"))
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == 1797
    target = load_digits().target
    all_counts = np.bincount(target, minlength=10)
    test_counts = np.bincount(target[test], minlength=10)
    assert np.all(np.abs(test_counts - 0.3 * all_counts) <= 1)
    # the dataset serves exactly that split, in that order
    np.testing.assert_array_equal(np.asarray(_build(split="test").get_gt_labels()), target[test])


def test_digits_expand_is_distinct_and_deterministic():
    a = _build(split="test", expand=700)
    b = _build(split="test", expand=700)
    assert len(a) == 700
    ia, ib = _images(a), _images(b)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a.get_gt_labels(), b.get_gt_labels())
    assert len(np.unique(ia.reshape(len(ia), -1), axis=0)) == 700
    np.testing.assert_array_equal(ia[:540], _images(_build(split="test")))  # originals first
    other = _images(_build(split="test", expand=700, seed=1))
    assert not np.array_equal(other[540:], ia[540:])


def test_demo_config_builds_its_model():
    import torch

    from vistsne.extract.config import load_config
    from vistsne.extract.model import build_model

    cfg = load_config(DEMO_CONFIG).cfg
    assert cfg.model.backbone.type == "ResNet_CIFAR" and cfg.model.backbone.depth == 18
    model = build_model(cfg, "cpu", seed=0)
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        feats = model.extract_feat(x, stage="backbone")
        pre = model.extract_feat(x, stage="pre_logits")
    assert tuple(feats[-1].shape) == (2, 512, 4, 4)  # CIFAR stem: 32 px -> 4x4 at the last stage
    assert tuple(pre.shape) == (2, 512)
    assert torch.isfinite(pre).all()


def _train_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "vistsne-train-*")))


def test_train_checkpoint_tiny_budget(tmp_path, capsys, monkeypatch):
    import torch

    # the Runner's work folder goes under a temporary folder of this test's own (other tests may train at once)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))

    from vistsne import demo
    from vistsne.extract.checkpoint import apply_checkpoint
    from vistsne.extract.config import load_config
    from vistsne.extract.model import build_model

    out = tmp_path / "sub" / "digits.pth"
    before = _train_dirs()
    threads = torch.get_num_threads()
    path = demo.train_checkpoint(DEMO_CONFIG, str(out), max_iters=2, seed=0)
    assert path == out and out.is_file()
    assert torch.get_num_threads() == threads  # restored
    assert _train_dirs() - before == set()  # the Runner's work folder is gone
    # no temp file left; one snapshot along the 2-iteration schedule (for `vistsne compare`)
    assert sorted(p.name for p in out.parent.iterdir()) == ["digits.pth", "digits_iter_1.pth"]
    snap = torch.load(out.parent / "digits_iter_1.pth", map_location="cpu", weights_only=True)
    assert set(snap) == {"state_dict", "meta"} and snap["meta"]["iter"] == 1
    assert demo.snapshot_paths(out) == [out.parent / "digits_iter_1.pth"]
    assert "training demo checkpoint" in capsys.readouterr().err

    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"state_dict", "meta"}
    info = ckpt["meta"]["vistsne"]
    assert info["iters"] == 2 and info["seed"] == 0 and info["threads"] == threads
    assert 0.0 <= info["test_accuracy"] <= 1.0 and info["train_seconds"] > 0
    assert ckpt["meta"]["dataset_meta"]["classes"] == [str(i) for i in range(10)]

    model = build_model(load_config(DEMO_CONFIG).cfg, "cpu", seed=1)
    res = apply_checkpoint(model, out)
    assert res["matched"] == len(model.state_dict())
    assert res["missing"] == res["unexpected"] == res["shape_mismatch"] == 0
    key = next(k for k in ckpt["state_dict"] if k.endswith("conv1.weight"))
    assert torch.equal(model.state_dict()[key], ckpt["state_dict"][key])

    # made once: an existing file is reused unless forced
    mtime = out.stat().st_mtime_ns
    assert demo.train_checkpoint(DEMO_CONFIG, str(out), max_iters=2) == out
    assert out.stat().st_mtime_ns == mtime
