"""Beyond the labels (issue 17): predictions, sample identity, suspects, colour by any field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vistsne.cli import cli
from vistsne.extract import ExtractParams, extract_entry
from vistsne.store import Store

from .conftest import DEMO_CONFIG, write_image_tree


def _invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def test_stored_predictions_equal_the_models_own_predict(tmp_path, random_checkpoint):
    import torch
    from mmengine.dataset import default_collate

    from vistsne.extract.config import load_config
    from vistsne.extract.model import build_dataset, build_model

    st = Store(str(tmp_path / "s.zarr"))
    res = extract_entry(st, ExtractParams(config=DEMO_CONFIG, checkpoint=random_checkpoint, max_num_class=3,
                                          max_num_samples=8, device="cpu"), progress=False)
    top = st.read_rows(res.entry, res.indices, what="pred_top5")
    scores = st.read_rows(res.entry, res.indices, what="score_top5")
    assert top.shape == (24, 5) and scores.shape == (24, 5) and top.dtype == np.int32
    cfg = load_config(DEMO_CONFIG).cfg
    model = build_model(cfg, "cpu", seed=0)
    model.load_state_dict(torch.load(random_checkpoint, weights_only=True)["state_dict"])
    ds = build_dataset(cfg)
    batch = default_collate([ds[int(i)] for i in res.indices])
    with torch.inference_mode():
        out = model.predict(**model.data_preprocessor(batch, False))
    want = torch.stack([o.pred_score for o in out])
    np.testing.assert_array_equal(top[:, 0], np.array([int(o.pred_label) for o in out]))
    ref_scores, ref_top = torch.topk(want, 5, dim=1)
    np.testing.assert_array_equal(top, ref_top.numpy())
    np.testing.assert_array_equal(scores, ref_scores.numpy())  # bit for bit on the CPU


def test_paths_point_at_the_real_files(tmp_path):
    tree = write_image_tree(tmp_path / "imgs", classes=("cat", "dog"), per_class=3)
    st = Store(str(tmp_path / "s.zarr"))
    res = extract_entry(st, ExtractParams(config=DEMO_CONFIG, images=str(tree), device="cpu"), progress=False)
    ids = st.dataset_ids(res.entry)
    labels = st.dataset_labels(res.entry)
    meta = st.entry_meta(res.entry)
    assert len(ids) == 6
    for i, p in enumerate(ids):
        assert (tree / p).is_file(), p
        assert p.split("/")[0] == meta["class_names"][labels[i]]
    # the same images read the same thumbnail as the file they name
    from PIL import Image

    thumb = st.read_rows(res.entry, np.array([0]), what="thumb")[0]
    img = np.asarray(Image.open(tree / ids[0]).convert("RGB").resize((48, 48)), dtype=np.float32)
    assert np.abs(thumb.astype(np.float32) - img).mean() < 12


@pytest.mark.slow
def test_flipped_labels_are_found(tmp_path):
    """Move 3 of 30 images to a wrong class folder: suspects ranks them first."""
    tree = write_image_tree(tmp_path / "imgs", classes=("red", "green", "blue"), per_class=10)
    moved = []
    for src, dst in (("red", "green"), ("green", "blue"), ("blue", "red")):
        f = sorted((tree / src).iterdir())[0]
        shutil.move(str(f), str(tree / dst / f"moved_{f.name}"))
        moved.append(f"{dst}/moved_{f.name}")
    store = str(tmp_path / "s.zarr")
    assert _invoke("-q", "extract", DEMO_CONFIG, "--images", tree, "--store", store, "--device", "cpu").exit_code == 0
    r = _invoke("-q", "suspects", "--store", store, "--top", "3", "--out", tmp_path / "figs", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert sorted(s["path"] for s in out["suspects"]) == sorted(moved)  # precision at k = 3: 1.0
    table = np.array(out["confusion"])
    assert table.sum() == 30 and table.shape == (3, 3)
    assert Path(out["sheet"]).is_file() and out["sheet"].endswith("_suspects.png")
    text = _invoke("suspects", "--store", store, "--top", "3", "--no-sheet").stdout
    assert all(m in text for m in moved) and "3 rows of 30 listed" in text


def test_suspect_scores_and_precision():
    from vistsne.embed.suspects import (confusion, label_scores, neighbour_votes, precision_at_k, ranking,
                                        suspect_scores)

    labels = np.array([0, 0, 0, 1, 1, 1])
    knn = np.array([[1, 2], [0, 2], [3, 4], [4, 5], [3, 5], [3, 4]])  # row 2 sits among class 1
    disagree, majority = neighbour_votes(labels, knn)
    assert disagree.tolist() == [0, 0, 1, 0, 0, 0] and majority.tolist() == [0, 0, 1, 1, 1, 1]
    table = confusion(labels, majority, 2)
    assert table.tolist() == [[2, 1], [0, 3]] and table.sum() == 6
    pred = np.array([[0, 1]] * 3 + [[1, 0]] * 2 + [[0, 1]])  # row 5: the model confidently says 0
    score = np.array([[0.9, 0.1]] * 5 + [[0.95, 0.05]])
    assert label_scores(labels, pred, score).tolist() == pytest.approx([0.9] * 5 + [0.05])
    both = suspect_scores(disagree, labels, pred, score)
    order = ranking(both, disagree)
    assert set(order[:2].tolist()) == {2, 5}
    truth = np.zeros(6, bool)
    truth[[2, 5]] = True
    assert precision_at_k(order, truth) == 1.0
    assert precision_at_k(ranking(disagree, disagree), truth) == 0.5  # the neighbours alone miss row 5


def test_color_by_every_field_and_the_errors(tmp_path):
    tree = write_image_tree(tmp_path / "imgs", classes=("a", "b", "c"), per_class=4)
    store = str(tmp_path / "s.zarr")
    # a head of this data's three classes (random init), so that predictions can be right or wrong
    three = ["--cfg-options", "model.head.num_classes=3"]
    assert _invoke("-q", "extract", DEMO_CONFIG, "--images", tree, *three, "--store", store,
                   "--device", "cpu").exit_code == 0
    assert _invoke("-q", "embed", "--store", store, "--stage", "pre_logits", "--perplexity", "3",
                   "--n-iter", "250").exit_code == 0
    out = tmp_path / "figs"
    for field in ("label", "prediction", "correct", "confidence", "suspect"):
        r = _invoke("-q", "render", "--store", store, "--out", out, "--color-by", field, "--json")
        assert r.exit_code == 0, r.output
        (f,) = json.loads(r.stdout)["files"]
        assert f.endswith(".png") and (field == "label" or f"_by-{field}" in f) and Path(f).stat().st_size > 0
    r = _invoke("-q", "render", "--store", store, "--out", out, "--color-by", "mood")
    assert r.exit_code == 2 and "unknown colour field 'mood'" in r.output
    # an entry without predictions: a model without a head (written as old entries were)
    st = Store(store)
    (key,) = st.entry_keys()
    for p in st.parts(key):
        grp = st.root["entries"][key]["parts"][p.name]
        for name in ("pred_top5", "score_top5"):
            del grp[name]
        extras = dict(grp.attrs["extras"])
        grp.attrs.update({"extras": {}, "arrays": {k: v for k, v in grp.attrs["arrays"].items() if k not in extras}})
    r = _invoke("-q", "render", "--store", store, "--out", out, "--color-by", "prediction")
    assert r.exit_code == 2 and "has no predictions" in r.output and "vistsne extract" in r.output
    # a head of other classes (the demo's ten digits) over three folders: said so
    other = str(tmp_path / "other.zarr")
    assert _invoke("-q", "extract", DEMO_CONFIG, "--images", tree, "--store", other, "--device", "cpu").exit_code == 0
    assert _invoke("-q", "embed", "--store", other, "--perplexity", "3", "--n-iter", "250").exit_code == 0
    r = _invoke("-q", "render", "--store", other, "--out", out, "--color-by", "confidence")
    assert r.exit_code == 2 and "the model predicts 10 classes of its own, not this data's 3" in r.output
