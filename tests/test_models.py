"""Every stage of the model families users have, with real mmpretrain models.

Each test writes a small config that inherits a packaged mmpretrain config and
shrinks it (tiny archs, 32 px inputs), builds it with seeded random weights
(nothing is downloaded) and extracts a 2-class x 2-image tree into a real
store. Models built from one seed and one arch share their weights, which lets
the tests check stored features against each other (e.g. a ViT's ``raw``
tokens against its ``cls_token`` and ``featmap`` outputs).
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vistsne.errors import ParamError, StageError
from vistsne.extract import ExtractParams, extract_entry
from vistsne.store import Store

from .conftest import write_image_tree

SIZE = 32
PIPELINE = (f"[dict(type='LoadImageFromFile'), dict(type='Resize', scale=({SIZE}, {SIZE})), "
            "dict(type='PackInputs')]")
TINY_VIT = "dict(_delete_=True, embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Two classes of two 32 px images: four rows per extraction."""
    return write_image_tree(tmp_path_factory.mktemp("models") / "images", classes=("cat", "dog"),
                            per_class=2, size=SIZE)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Random init only: a torch.hub weight download fails the test (models are built
    without ``init_weights``, so pretrained ``init_cfg``s are never followed)."""
    import torch.hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to download weights: {args[:1]}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _config(tmp_path: Path, name: str, base: str, body: str) -> str:
    """A config inheriting ``mmpretrain::<base>`` with a small test pipeline."""
    path = tmp_path / f"{name}.py"
    path.write_text(f"_base_ = ['mmpretrain::{base}']\n" + textwrap.dedent(body)
                    + f"\ntest_dataloader = dict(batch_size=4, num_workers=0, "
                      f"dataset=dict(pipeline={PIPELINE}))\n")
    return str(path)


def _vit(tmp_path: Path, out_type: str, **backbone) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in backbone.items())
    return _config(tmp_path, f"vit_{out_type}{len(backbone)}", "vision_transformer/vit-base-p16_64xb64_in1k.py", f"""
        model = dict(
            backbone=dict(arch={TINY_VIT}, img_size={SIZE}, patch_size=8, init_cfg=None,
                          out_type={out_type!r}{extra}),
            head=dict(in_channels=32, hidden_dim=48, num_classes=2))
        """)


def _run(config: str, store_path: str, tree: Path | None, **kw):
    params = ExtractParams(config=config, images=None if tree is None else str(tree), device="cpu",
                           num_workers=0, **kw)
    return extract_entry(Store(store_path), params, progress=False)


def _features(store_path: str, res, rows: int = 4) -> dict[str, np.ndarray]:
    """Every stored stage of ``res``, checked for shape and finiteness."""
    st = Store(store_path, mode="r")
    assert res.rows == rows and len(res.indices) == rows
    out = {}
    for stage, dim in res.stages.items():
        f = st.read_rows(res.entry, res.indices, stage)
        assert f.shape == (rows, dim), stage
        assert np.isfinite(f).all(), stage
        out[stage] = f
    labels = st.read_rows(res.entry, res.indices, what="label")
    assert sorted(labels.tolist()) == [0, 0, 1, 1]
    return out


def _close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ ViT


def test_vit_every_out_type(tmp_path, tree, store_path, caplog):
    vit_log = logging.getLogger("vistsne")
    vit_log.addHandler(caplog.handler)  # the CLI may have stopped propagation
    caplog.set_level(logging.INFO, logger="vistsne")
    try:
        # featmap in batches of one: its note is made once, not once per batch
        res = {ot: _run(_vit(tmp_path, ot), store_path, tree, batch_size=1 if ot == "featmap" else 4)
               for ot in ("cls_token", "raw", "featmap", "avg_featmap")}
        res["raw_cls"] = _run(_vit(tmp_path, "raw"), store_path, tree, pool="cls")
    finally:
        vit_log.removeHandler(caplog.handler)
    # two layers: the last (default) out index is 1; no neck; a 48-d hidden layer in the head
    for ot in ("cls_token", "raw", "avg_featmap", "raw_cls"):
        assert res[ot].stages == {"backbone.1": 32, "pre_logits": 48}, ot
        assert "the model has no neck; no neck stage stored" in res[ot].notes
    # the head's hidden layer cannot take a (N,C,H,W) map: pre_logits is skipped, and said so
    assert res["featmap"].stages == {"backbone.1": 32}
    assert sum("pre_logits failed" in n for n in res["featmap"].notes) == 1
    assert "no neck stage stored" in caplog.text and "pre_logits failed" in caplog.text
    assert len({r.entry for r in res.values()}) == 5

    f = {k: _features(store_path, r)["backbone.1"] for k, r in res.items()}
    cls_tok, raw_mean, raw_cls, featmap, avg = (f["cls_token"], f["raw"], f["raw_cls"], f["featmap"],
                                               f["avg_featmap"])
    # one seed, one arch: the same weights, so the outputs relate exactly
    _close(raw_cls, cls_tok)  # --pool cls on raw tokens takes token 0 ...
    assert np.abs(raw_mean - raw_cls).max() > 1e-3  # ... which is not the token mean
    n_patches = (SIZE // 8) ** 2
    _close(raw_mean * (n_patches + 1), featmap * n_patches + cls_tok, rtol=1e-4, atol=1e-4)
    # avg_featmap: the patch-token mean through a fresh LayerNorm (weight 1, bias 0)
    normed = (featmap - featmap.mean(1, keepdims=True)) / np.sqrt(featmap.var(1, keepdims=True) + 1e-6)
    _close(avg, normed, rtol=1e-3, atol=1e-4)
    st = Store(store_path, mode="r")
    pre_raw = st.read_rows(res["raw"].entry, res["raw"].indices, "pre_logits")
    pre_raw_cls = st.read_rows(res["raw_cls"].entry, res["raw_cls"].indices, "pre_logits")
    pre_cls = st.read_rows(res["cls_token"].entry, res["cls_token"].indices, "pre_logits")
    _close(pre_raw_cls, pre_cls)  # the head on token 0 is the head on the class token
    assert np.abs(pre_raw - pre_cls).max() > 1e-4


def test_vit_batch_of_one_and_vis_stage(tmp_path, tree):
    cfg = _vit(tmp_path, "raw")
    big = _run(cfg, str(tmp_path / "a.zarr"), tree, batch_size=4)
    one = _run(cfg, str(tmp_path / "b.zarr"), tree, batch_size=1)
    assert one.entry == big.entry and one.stages == big.stages
    fa, fb = _features(str(tmp_path / "a.zarr"), big), _features(str(tmp_path / "b.zarr"), one)
    for s in fa:
        _close(fb[s], fa[s])
    only = _run(cfg, str(tmp_path / "c.zarr"), tree, vis_stage="pre_logits", batch_size=1)
    assert only.stages == {"pre_logits": 48}
    _close(_features(str(tmp_path / "c.zarr"), only)["pre_logits"], fa["pre_logits"])


def test_vit_without_class_token_refuses_pool_cls(tmp_path, tree, store_path):
    cfg = _vit(tmp_path, "raw", with_cls_token=False)
    with pytest.raises(ParamError, match="class token"):
        _run(cfg, store_path, tree, pool="cls")
    res = _run(cfg, store_path, tree)  # the token mean needs none
    assert res.stages == {"backbone.1": 32, "pre_logits": 48}
    _features(store_path, res)


# ---------------------------------------------------------------- ResNet


def test_resnet_multi_output_backbone_and_neck(tmp_path, tree, store_path):
    cfg = _config(tmp_path, "r18", "resnet/resnet18_8xb32_in1k.py", """
        model = dict(backbone=dict(out_indices=(0, 1, 2, 3)), head=dict(num_classes=2))
        """)
    res = _run(cfg, store_path, tree)
    assert res.stages == {"backbone.0": 64, "backbone.1": 128, "backbone.2": 256, "backbone.3": 512,
                          "neck.0": 64, "neck.1": 128, "neck.2": 256, "neck.3": 512, "pre_logits": 512}
    assert res.notes == []
    f = _features(store_path, res)
    # the GlobalAveragePooling neck pools each backbone output; the head reads the last
    for i in range(4):
        _close(f[f"neck.{i}"], f[f"backbone.{i}"])
    _close(f["pre_logits"], f["neck.3"])
    # out_indices in any order: outputs come in stage order, and are named so
    rev = _run(cfg, store_path, tree, cfg_options=("model.backbone.out_indices=(3,1)",))
    assert rev.entry != res.entry
    assert rev.stages == {"backbone.1": 128, "backbone.3": 512, "neck.0": 128, "neck.1": 512,
                          "pre_logits": 512}
    g = _features(store_path, rev)
    _close(g["backbone.1"], f["backbone.1"])
    _close(g["backbone.3"], f["backbone.3"])
    # --vis-stage neck stores the neck's outputs only, from the same forward pass
    neck = _run(cfg, str(tmp_path / "neck.zarr"), tree, vis_stage="neck")
    assert neck.stages == {"neck.0": 64, "neck.1": 128, "neck.2": 256, "neck.3": 512}


def test_resnet_cifar_packaged_config_and_batch_of_one(tmp_path, tree):
    cfg = "mmpretrain::resnet/resnet18_8xb16_cifar10.py"  # as shipped: its pipeline is PackInputs only
    a = _run(cfg, str(tmp_path / "a.zarr"), tree, batch_size=3)
    b = _run(cfg, str(tmp_path / "b.zarr"), tree, batch_size=1)
    assert a.stages == b.stages == {"backbone.3": 512, "neck": 512, "pre_logits": 512}
    fa, fb = _features(str(tmp_path / "a.zarr"), a), _features(str(tmp_path / "b.zarr"), b)
    for s in fa:
        _close(fb[s], fa[s])
    _close(fa["neck"], fa["backbone.3"])


# ------------------------------------------------- Swin, ConvNeXt, MobileNetV2


def test_swin_stages_batch_of_one_and_pool_cls_on_maps(tmp_path, tree):
    cfg = _config(tmp_path, "swin", "swin_transformer/swin-tiny_16xb64_in1k.py", f"""
        model = dict(
            backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
                          img_size={SIZE}, window_size=2, pad_small_map=True, drop_path_rate=0.),
            head=dict(in_channels=128, num_classes=2))
        """)
    a = _run(cfg, str(tmp_path / "a.zarr"), tree, batch_size=4)
    b = _run(cfg, str(tmp_path / "b.zarr"), tree, batch_size=1)
    assert a.stages == b.stages == {"backbone.3": 128, "neck": 128, "pre_logits": 128}
    fa, fb = _features(str(tmp_path / "a.zarr"), a), _features(str(tmp_path / "b.zarr"), b)
    for s in fa:
        _close(fb[s], fa[s])
    _close(fa["neck"], fa["backbone.3"])
    # Swin's outputs are (N,C,H,W) maps: --pool cls averages them, and says so
    c = _run(cfg, str(tmp_path / "c.zarr"), tree, pool="cls", vis_stage="backbone")
    assert c.stages == {"backbone.3": 128}
    assert any("--pool cls applies to token outputs" in n for n in c.notes)
    _close(_features(str(tmp_path / "c.zarr"), c)["backbone.3"], fa["backbone.3"])


def test_convnext_has_no_neck(tmp_path, tree, store_path):
    cfg = _config(tmp_path, "convnext", "convnext/convnext-tiny_32xb128_in1k.py", """
        model = dict(backbone=dict(arch='atto', drop_path_rate=0.), head=dict(in_channels=320, num_classes=2))
        """)
    res = _run(cfg, store_path, tree, batch_size=3)
    # ConvNeXt pools before its final norm: a (N,C) output, stored as is
    assert res.stages == {"backbone.3": 320, "pre_logits": 320}
    assert res.notes == ["the model has no neck; no neck stage stored"]
    f = _features(store_path, res)
    _close(f["pre_logits"], f["backbone.3"])
    with pytest.raises(StageError, match="no neck"):
        _run(cfg, store_path, tree, vis_stage="neck")


def test_mobilenet_v2(tmp_path, tree, store_path):
    cfg = _config(tmp_path, "mnv2", "mobilenet_v2/mobilenet-v2_8xb32_in1k.py", """
        model = dict(backbone=dict(widen_factor=0.25), head=dict(num_classes=2))
        """)
    res = _run(cfg, store_path, tree)
    assert res.stages == {"backbone.7": 1280, "neck": 1280, "pre_logits": 1280}
    f = _features(store_path, res)
    _close(f["neck"], f["backbone.7"])


def test_lenet_squeezed_batch_of_one(tmp_path, tree):
    """LeNet5 squeezes its features: a batch of one must still store (1, C) rows."""
    cfg = tmp_path / "lenet.py"
    cfg.write_text("_base_ = ['mmpretrain::lenet/lenet5_mnist.py']\n"
                   "test_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(pipeline=["
                   "dict(type='LoadImageFromFile', color_type='grayscale'), "
                   f"dict(type='Resize', scale=({SIZE}, {SIZE})), dict(type='PackInputs')]))\n")
    a = _run(str(cfg), str(tmp_path / "a.zarr"), tree)
    b = _run(str(cfg), str(tmp_path / "b.zarr"), tree, batch_size=1)
    assert a.stages == b.stages == {"backbone.0": 10, "pre_logits": 10}
    fa, fb = _features(str(tmp_path / "a.zarr"), a), _features(str(tmp_path / "b.zarr"), b)
    for s in fa:
        _close(fb[s], fa[s])


# ------------------------------------------------------- self-supervised


def _mae(tmp_path: Path, tree: Path) -> tuple[str, str]:
    cfg = tmp_path / "mae.py"
    cfg.write_text(textwrap.dedent(f"""
        _base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']
        model = dict(
            backbone=dict(arch={TINY_VIT}, img_size={SIZE}, patch_size=8),
            neck=dict(patch_size=8, embed_dim=32, decoder_embed_dim=16, decoder_depth=1,
                      decoder_num_heads=2, num_patches={(SIZE // 8) ** 2}),
            head=dict(patch_size=8))
        """))
    # MAE configs define no test_dataloader: it comes from a --test-cfg
    test = tmp_path / "mae_test.py"
    test.write_text(f"test_dataloader = dict(batch_size=4, num_workers=0, dataset=dict("
                    f"type='CustomDataset', data_root={str(tree)!r}, with_label=True, pipeline={PIPELINE}))\n")
    return str(cfg), str(test)


def test_mae_stores_backbone_only(tmp_path, tree, store_path):
    cfg, test_cfg = _mae(tmp_path, tree)
    res = _run(cfg, store_path, None, test_cfg=test_cfg)
    assert res.stages == {"backbone.1": 32}
    assert res.notes == ["MAE extracts backbone features only; no neck or pre_logits stage stored",
                         "MAE has no classification head: no predictions stored"]
    mean = _features(store_path, res)["backbone.1"]
    # the unmasked encoder: the same weights give the same rows with --images and a batch of one
    one = _run(cfg, str(tmp_path / "one.zarr"), tree, test_cfg=test_cfg, batch_size=1)
    _close(_features(str(tmp_path / "one.zarr"), one)["backbone.1"], mean)
    cls = _run(cfg, store_path, None, test_cfg=test_cfg, pool="cls")
    assert cls.stages == {"backbone.1": 32}
    assert np.abs(_features(store_path, cls)["backbone.1"] - mean).max() > 1e-3
    assert _run(cfg, store_path, None, test_cfg=test_cfg, vis_stage="backbone").cached
    for stage in ("neck", "pre_logits"):
        with pytest.raises(StageError, match="extract_feat has no stage"):
            _run(cfg, store_path, None, test_cfg=test_cfg, vis_stage=stage)


# ------------------------------------------- every stage in one pass (issue 18)


def test_backbone_stages_all_for_convnext_swin_and_vit(tmp_path, tree):
    """``--backbone-stages all``: every ConvNeXt and Swin stage, every ViT layer, in one forward pass."""
    convnext = _config(tmp_path, "convnext_all", "convnext/convnext-tiny_32xb128_in1k.py", """
        model = dict(backbone=dict(arch='atto', drop_path_rate=0.), head=dict(in_channels=320, num_classes=2))
        """)
    res = _run(convnext, str(tmp_path / "c.zarr"), tree, backbone_stages="all")
    assert [s for s in res.stages if s.startswith("backbone")] == [f"backbone.{i}" for i in range(4)]
    assert res.stages["backbone.0"] == 40 and res.stages["backbone.3"] == 320
    swin = _config(tmp_path, "swin_all", "swin_transformer/swin-tiny_16xb64_in1k.py", f"""
        model = dict(
            backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
                          img_size={SIZE}, window_size=2, pad_small_map=True, drop_path_rate=0.),
            head=dict(in_channels=128, num_classes=2))
        """)
    res = _run(swin, str(tmp_path / "s.zarr"), tree, backbone_stages="all")
    assert [res.stages[f"backbone.{i}"] for i in range(4)] == [16, 32, 64, 128]
    vit = _vit(tmp_path, "cls_token")
    res = _run(vit, str(tmp_path / "v.zarr"), tree, backbone_stages="all")
    assert [s for s in res.stages if s.startswith("backbone")] == ["backbone.0", "backbone.1"]  # 2 layers
    only_first = _run(vit, str(tmp_path / "v1.zarr"), tree, backbone_stages=(0,))
    np.testing.assert_allclose(_features(str(tmp_path / "v1.zarr"), only_first)["backbone.0"],
                               _features(str(tmp_path / "v.zarr"), res)["backbone.0"], rtol=1e-5, atol=1e-6)
