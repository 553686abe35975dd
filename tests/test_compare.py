"""`vistsne compare`: pair numbers, alignment, row matching by sample identity, figures and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import DEMO_CONFIG, run_cli, write_image_tree


def _blobs(n=300, d=20, k=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n // k)
    centres = rng.normal(scale=6.0, size=(k, d))
    return (centres[labels] + rng.normal(size=(len(labels), d))).astype(np.float32), labels


# ------------------------------------------------------------------ pure numbers
def test_orthogonal_rotation_gives_overlap_and_cka_one():
    from vistsne.embed.compare import knn_sets, linear_cka, neighbour_overlap

    X, _ = _blobs()
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(X.shape[1], X.shape[1])))
    Y = X @ Q * 2.5 + 3.0
    overlap, per_row = neighbour_overlap(knn_sets(X), knn_sets(Y))
    assert overlap == pytest.approx(1.0)
    assert per_row.min() == pytest.approx(1.0)
    assert linear_cka(X, Y) == pytest.approx(1.0, abs=1e-9)


def test_row_permuted_pairing_scores_near_the_null():
    from vistsne.embed.compare import knn_sets, linear_cka, neighbour_overlap, permuted_overlap

    X, _ = _blobs(n=400)
    perm = np.random.default_rng(2).permutation(len(X))
    na, nb = knn_sets(X), knn_sets(X[perm])
    null = permuted_overlap(na, knn_sets(X))
    overlap, _ = neighbour_overlap(na, nb)
    assert overlap < 0.05 and null < 0.05
    assert abs(overlap - null) < 0.02
    assert permuted_overlap(na, na) < 0.05  # even the same space scores the null when rows are shuffled
    assert linear_cka(X, X[perm]) < 0.3


def test_class_changes_and_most_changed_rows():
    from vistsne.embed.compare import class_changes, knn_sets, most_changed, neighbour_overlap

    X, labels = _blobs()
    Y = X.copy()
    rng = np.random.default_rng(3)
    Y[labels == 2] = rng.normal(scale=6.0, size=(int(np.sum(labels == 2)), X.shape[1]))  # class 2 scattered
    na, nb = knn_sets(X), knn_sets(Y)
    ch = class_changes(labels, na, nb, [f"c{i}" for i in range(5)])
    assert ch["lost"][0]["class"] == "c2" and ch["lost"][0]["change"] < -0.3
    _, per_row = neighbour_overlap(na, nb)
    top = most_changed(per_row, 10)
    assert np.all(labels[top] == 2)


def test_procrustes_undoes_rotation_reflection_and_scale():
    from vistsne.embed.align import procrustes
    from vistsne.embed.compare import displacement

    Y, _ = _blobs(d=2)
    a = 0.7
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([1, -1])
    moved = Y @ R * 3.0 + np.array([5.0, -2.0])
    back, fit = procrustes(moved, Y)
    assert displacement(back, Y) < 1e-5
    assert fit["reflection"] and fit["scale"] == pytest.approx(1 / 3.0, rel=1e-5)


def test_natural_sort_of_checkpoint_globs(tmp_path):
    from vistsne.compare import checkpoint_step, expand_checkpoints, natural_key
    from vistsne.errors import CheckpointError

    for n in (10, 2, 1, 21):
        (tmp_path / f"epoch_{n}.pth").write_bytes(b"x")
    got = expand_checkpoints([str(tmp_path / "epoch_*.pth")])
    assert [Path(p).name for p in got] == ["epoch_1.pth", "epoch_2.pth", "epoch_10.pth", "epoch_21.pth"]
    assert sorted(["iter_100", "iter_20"], key=natural_key) == ["iter_20", "iter_100"]
    assert checkpoint_step(got[2], 5) == ("epoch", 10)  # not a checkpoint: the file name
    assert checkpoint_step("model.pth", 3) == ("position", 3)
    assert checkpoint_step(None, 3) == ("init", 0)
    with pytest.raises(CheckpointError, match="matches no file"):
        expand_checkpoints([str(tmp_path / "nothing_*.pth")])


def test_default_embedding_keys_are_unchanged():
    from vistsne.embed import EmbedParams
    from vistsne.embed.entry import embedding_key
    from vistsne.embed.params import resolve
    from vistsne.hashing import sha256_json

    old = {"perplexity": 30.0, "n_iter": 750, "early_exaggeration": 12.0, "learning_rate": "auto",
           "n_components": 2, "init": "pca", "n_iter_without_progress": 300, "pca_dims": "auto", "seed": 0,
           "early_exaggeration_iter": 250, "initial_momentum": 0.5, "final_momentum": 0.8, "theta": 0.5,
           "method": "auto"}
    p = EmbedParams().validate()
    assert p.to_dict() == old
    idx = np.arange(50)
    res = resolve(p, 50, 8)
    from vistsne.embed.entry import opentsne_version, rows_digest
    from vistsne.embed.params import ENGINE_VERSION

    expected = sha256_json({"entry": "e", "stage": "s", "rows": rows_digest(idx), "params": old,
                            "resolved": res, "opentsne": opentsne_version(), "engine": ENGINE_VERSION})
    assert embedding_key("e", "s", idx, p, res) == expected
    aligned = EmbedParams(align="chain", align_from="abc").validate()
    assert aligned.to_dict()["align"] == "chain" and aligned.to_dict()["align_from"] == "abc"
    assert embedding_key("e", "s", idx, aligned, res) != expected
    assert EmbedParams.from_dict(aligned.to_dict()) == aligned


@pytest.mark.slow
def test_identical_features_give_near_identical_aligned_maps_of_the_same_quality():
    from vistsne.embed import EmbedParams
    from vistsne.embed.align import embed_from, procrustes
    from vistsne.embed.compare import displacement
    from vistsne.embed.tsne import embed_many

    X, labels = _blobs(n=400, d=30, k=8)
    p = EmbedParams(perplexity=20, n_iter=500)
    (ref,) = list(embed_many(X, labels, [p], progress=False))
    (ind,) = list(embed_many(X, labels, [EmbedParams(perplexity=20, n_iter=500, seed=1)], progress=False))
    # as compare runs it: from the reference's layout, the normal phase only
    again = embed_from(X, labels, EmbedParams(perplexity=20, n_iter=250, early_exaggeration_iter=0,
                                              align="chain", align_from="k"), ref.coords)
    aligned, _ = procrustes(again.coords, ref.coords)
    assert displacement(aligned, ref.coords) < 0.1
    for key in ("knn_acc_map", "trustworthiness"):
        assert abs(again.metrics[key] - ind.metrics[key]) <= 0.01, key


# ------------------------------------------------------------------ figures
def _data(n_maps=3, n=60):
    from vistsne.render.colors import class_colors
    from vistsne.render.compare import CompareData

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), n // 3)
    coords = [rng.normal(size=(n, 2)) * (1 + i) for i in range(n_maps)]
    thumbs = rng.integers(0, 255, size=(n, 16, 16, 3), dtype=np.uint8)
    names = ["a", "b", "c"]
    return CompareData(["pre_logits"], [f"epoch_{i + 1}" for i in range(n_maps)],
                       [("epoch", i + 1) for i in range(n_maps)], names, list(class_colors(names)),
                       {"pre_logits": coords}, {"pre_logits": labels}, {"pre_logits": np.arange(n) * 2},
                       {"pre_logits": np.array([f"{names[c]}/{i:03d}.png" for i, c in enumerate(labels)],
                                               dtype=object)},
                       {"pre_logits": [{"knn_acc_map": 0.5 + 0.1 * i} for i in range(n_maps)]},
                       {"pre_logits": [0.6 + 0.1 * i for i in range(n_maps)]}, "chain",
                       {"pre_logits": thumbs})


def test_animation_sheet_curve_and_page_are_written_and_valid(tmp_path):
    from PIL import Image

    from vistsne.render.compare import HOLD_FRAMES, TWEEN_FRAMES, write_animation, write_curve, write_sheet
    from vistsne.render.compare_page import write_compare_page

    data = _data()
    files = write_animation(data, tmp_path / "anim_pre_logits", mp4=False)
    with Image.open(files[0]) as im:
        assert im.format == "GIF"
        # Pillow merges the identical hold frames into one longer frame
        assert im.n_frames == 3 + 2 * (TWEEN_FRAMES - 1)
        assert HOLD_FRAMES > 1
    for f in (write_sheet(data, tmp_path / "sheet.png"), write_curve(data, tmp_path / "curve.png")):
        with Image.open(f) as im:
            assert im.format == "PNG" and im.size[0] > 200
    page = write_compare_page(data, tmp_path / "page.html").read_text()
    assert "vistsneCompare" in page and 'name="step"' not in page  # bokeh keeps names in its JSON
    assert '"step"' in page and "x2" in page and "data:image/png;base64," in page
    assert "http://" not in page.split("<body")[0].replace("http://www.w3.org", "")
    assert not list(tmp_path.glob("*.tmp*"))


# ------------------------------------------------------------------ store level, real model
@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Image trees: A; B (A's images minus some, plus others: another order and other indices);
    C (another class list); D (the same classes, no image in common with A)."""
    root = tmp_path_factory.mktemp("trees")
    a = write_image_tree(root / "A", per_class=8, seed=0)
    b = root / "B"
    shutil.copytree(a, b)
    for cls in ("cat", "dog", "owl"):
        for i in (0, 3):
            (b / cls / f"{i:03d}.png").unlink()
    write_image_tree(root / "extra", per_class=3, seed=5)
    for cls in ("cat", "dog", "owl"):
        for f in (root / "extra" / cls).iterdir():
            shutil.copy(f, b / cls / f"0{f.name}")  # 0000.png sorts first: every index shifts
    c = write_image_tree(root / "C", classes=("cat", "dog", "owl", "yak"), per_class=4, seed=0)
    d = write_image_tree(root / "D", per_class=4, seed=9)
    for cls in ("cat", "dog", "owl"):
        for f in (d / cls).iterdir():
            f.rename(d / cls / f"x{f.name}")
    return {"A": str(a), "B": str(b), "C": str(c), "D": str(d)}


@pytest.fixture(scope="module")
def two_entries(trees, tmp_path_factory):
    from vistsne.extract import ExtractParams, extract_entry
    from vistsne.store import Store

    path = str(tmp_path_factory.mktemp("cmp") / "store.zarr")
    st = Store(path)
    keys = {}
    for name in ("A", "B", "C", "D"):
        keys[name] = extract_entry(st, ExtractParams(config=DEMO_CONFIG, images=trees[name], device="cpu",
                                                     vis_stage="pre_logits"), progress=False).entry
    return path, keys


@pytest.mark.slow
def test_rows_are_matched_by_sample_identity_and_maps_are_cached(two_entries, tmp_path):
    from vistsne.embed import EmbedParams
    from vistsne.embed.compare_entry import compare_entries
    from vistsne.store import Store

    path, keys = two_entries
    st = Store(path)
    ids_a, ids_b = st.dataset_ids(keys["A"]), st.dataset_ids(keys["B"])
    shared = set(ids_a.tolist()) & set(ids_b.tolist())
    assert len(shared) == 18
    p = EmbedParams(perplexity=4, n_iter=300)
    res = compare_entries(st, [keys["A"], keys["B"]], ["pre_logits"], p, labels_of=["A", "B"], align="chain",
                          progress=False)
    ma, mb = res.maps["pre_logits"]
    assert res.rows["pre_logits"] == 18
    assert list(ids_a[ma.indices]) == list(ids_b[mb.indices]) == list(res.ids["pre_logits"])
    assert not np.array_equal(ma.indices, mb.indices)  # the same images sit at other positions
    # the same model over the same images: the same features, so identical neighbourhoods
    pair = res.pairs["pre_logits"][0]
    assert pair["overlap"] == pytest.approx(1.0) and pair["cka"] == pytest.approx(1.0, abs=1e-4)
    assert pair["overlap_null"] < 0.8
    # two identical entries: near-identical aligned maps, far closer than the same map paired at random
    # (18 rows move more than the 400 of the array test; the random pairing scores about 1.16 here, the
    # aligned pair 0.31; an unaligned or wrongly matched pair scores near the null)
    from vistsne.embed.compare import displacement

    rng = np.random.default_rng(0)
    null = np.mean([displacement(mb.coords[rng.permutation(18)], mb.coords) for _ in range(20)])
    assert pair["displacement"] < 0.3 * null, (pair["displacement"], null)
    assert ma.params["align"] == "chain" and "align" not in mb.params  # B, the last, is the reference
    assert st.embedding(keys["A"], ma.key).attrs["name"].endswith("align-chain")
    again = compare_entries(st, [keys["A"], keys["B"]], ["pre_logits"], p, labels_of=["A", "B"], align="chain",
                            progress=False)
    assert all(m.cached for m in again.maps["pre_logits"])
    proc = compare_entries(st, [keys["A"], keys["B"]], ["pre_logits"], p, labels_of=["A", "B"],
                           align="procrustes", progress=False)
    assert proc.maps["pre_logits"][0].params["align"] == "procrustes"


def _fails(args, out: Path, match: str):
    proc = run_cli("-q", "compare", *args, "--out", str(out), check=False, timeout=900)
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], proc.stderr
    assert not out.exists() or not any(out.iterdir())
    return lines[0]


@pytest.mark.slow
def test_each_error_is_one_line_and_writes_nothing(two_entries, tmp_path):
    path, keys = two_entries
    s = ["--store", path]
    out = tmp_path / "figs"
    _fails([*s, "--entry", keys["A"]], out, "at least two entries")
    _fails([*s, "--entry", keys["A"], "--entry", keys["D"]], out, "share no images")
    msg = _fails([*s, "--entry", keys["A"], "--entry", keys["C"]], out, "different class list")
    assert "by sample" in msg
    _fails([*s, "--entry", keys["A"], "--entry", keys["B"], "--stage", "neck"], out, "missing from")
    _fails([*s, DEMO_CONFIG, "--checkpoint", str(tmp_path / "epoch_*.pth")], out, "matches no file")


@pytest.mark.slow
def test_compare_command_writes_the_figures_and_json(two_entries, tmp_path):
    import json

    path, keys = two_entries
    out = tmp_path / "figs"
    proc = run_cli("-q", "compare", "--store", path, "--entry", keys["A"], "--entry", keys["B"],
                   "--perplexity", "4", "--n-iter", "300", "--out", str(out), "--json", timeout=900)
    doc = json.loads(proc.stdout)
    assert doc["align"] == "procrustes" and doc["rows"]["pre_logits"] == 18  # the default
    pair = doc["pairs"]["pre_logits"][0]
    for k in ("overlap", "overlap_null", "cka", "knn_acc_features_a", "knn_acc_map_b", "displacement",
              "classes", "changed"):
        assert k in pair
    assert pair["changed"][0]["path"] and "dataset_index" in pair["changed"][0]
    names = sorted(p.name.split("_", 3)[-1] for p in out.iterdir())
    assert any(n.endswith("sheet.png") for n in names) and any(n.endswith(".gif") for n in names)
    assert any(n.endswith("accuracy.png") for n in names) and any(n.endswith(".html") for n in names)
