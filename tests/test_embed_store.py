"""Stage two through the store and the CLI: cached maps, selection, sweeps, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from vistsne.cli import cli
from vistsne.embed import EmbedParams, SweepStats
from vistsne.embed.entry import embed_entry
from vistsne.selection import RowSelection
from vistsne.errors import FeatureError, NotFoundError, ParamError, StageError
from vistsne.store import Store

from .conftest import DEMO_CONFIG, STAGES_CONFIG

FAST = dict(n_iter=300, perplexity=8)


def _invoke(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


def test_embed_is_cached_and_stored(extracted):
    path, key = extracted
    st = Store(path)
    stats = SweepStats()
    first = embed_entry(st, key, ["pre_logits"], [EmbedParams(**FAST)], progress=False, stats=stats)
    assert len(first) == 1 and not first[0].cached and stats.knn_builds == 1
    rec = first[0]
    coords, index = st.read_embedding(key, rec.key)
    assert coords.dtype == np.float32 and coords.shape == (60, 2) and len(index) == 60
    attrs = st.embedding(key, rec.key).attrs
    for k in ("params", "kl_divergence", "n_iter_run", "seconds", "metrics", "resolved", "opentsne"):
        assert k in attrs
    assert set(attrs["metrics"]) == {"kl_divergence", "knn_acc_map", "knn_acc_features", "trustworthiness"}
    again_stats = SweepStats()
    again = embed_entry(st, key, ["pre_logits"], [EmbedParams(**FAST)], progress=False, stats=again_stats)
    assert again[0].cached and again[0].key == rec.key and again_stats.knn_builds == 0
    np.testing.assert_array_equal(st.read_embedding(key, rec.key)[0], coords)


def test_a_retune_reuses_the_stored_feature_accuracy(extracted):
    path, key = extracted
    st = Store(path)
    sel = RowSelection(None, 3, 10)
    stats = SweepStats()
    (a,) = embed_entry(st, key, ["backbone.3"], [EmbedParams(**FAST, seed=7)], sel, progress=False, stats=stats)
    assert stats.feature_acc_runs == 1
    stats = SweepStats()
    (b,) = embed_entry(st, key, ["backbone.3"], [EmbedParams(**FAST, seed=8)], sel, progress=False, stats=stats)
    assert not b.cached and stats.feature_acc_runs == 0  # read off the first map's attributes
    assert b.metrics["knn_acc_features"] == a.metrics["knn_acc_features"]
    stats = SweepStats()
    embed_entry(st, key, ["backbone.3"], [EmbedParams(**FAST, seed=7)], RowSelection(None, 3, 9),
                progress=False, stats=stats)
    assert stats.feature_acc_runs == 1  # other rows: computed anew


def test_key_covers_stage_rows_and_params(tmp_path):
    from vistsne.extract import ExtractParams, extract_entry

    st = Store(str(tmp_path / "s.zarr"))
    key = extract_entry(st, ExtractParams(config=DEMO_CONFIG, backbone_stages=(2, 3), max_num_class=3,
                                          max_num_samples=20, device="cpu"), progress=False).entry
    a = embed_entry(st, key, ["pre_logits"], [EmbedParams(**FAST)], progress=False)[0]
    b = embed_entry(st, key, ["backbone.2"], [EmbedParams(**FAST)], progress=False)[0]
    c = embed_entry(st, key, ["pre_logits"], [EmbedParams(**FAST, seed=1)], progress=False)[0]
    d = embed_entry(st, key, ["pre_logits"], [EmbedParams(**FAST)], RowSelection(max_num_samples=10),
                    progress=False)[0]
    assert len({a.key, b.key, c.key, d.key}) == 4 and d.rows == 30
    # identical stages are one stage: the same map, whichever name asks for it
    e = embed_entry(st, key, ["neck.1"], [EmbedParams(**FAST)], progress=False)[0]
    assert st.entry_meta(key)["aliases"]["pre_logits"] == "backbone.3"
    assert e.key == a.key and e.cached


def test_subset_selection_uses_cached_rows_only(extracted):
    path, key = extracted
    r = _invoke("embed", "--store", path, "--entry", key[:8], "--stage", "pre_logits", "--class-idx", "0",
                "--class-idx", "2", "--max-num-samples", "15", "--perplexity", "4", "--n-iter", "300", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out) == 1 and out[0]["rows"] == 30
    st = Store(path)
    _, index = st.read_embedding(key, out[0]["key"])
    assert set(st.read_rows(key, index, what="label").tolist()) == {0, 2}


def test_fewer_cached_rows_than_asked_says_so(extracted):
    path, key = extracted
    r = _invoke("embed", "--store", path, "--stage", "pre_logits", "--max-num-class", "3", "--max-num-samples", "50",
                "--perplexity", "5", "--n-iter", "300")
    assert r.exit_code == 0, r.output
    assert "holds 60 of the 150 rows" in r.stderr and "vistsne extract" in r.stderr
    assert "--max-num-samples 50" in r.stderr


def test_sweep_is_the_product_and_json_shape(extracted):
    path, key = extracted
    r = _invoke("embed", "--store", path, "--stage", "pre_logits", "--perplexity", "5,10", "--seed", "0,1",
                "--n-iter", "300", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert sorted((o["params"]["perplexity"], o["params"]["seed"]) for o in out) == [
        (5.0, 0), (5.0, 1), (10.0, 0), (10.0, 1)]
    for o in out:
        assert set(o) == {"key", "entry", "stage", "rows", "params", "cached", "seconds", "metrics"}
        assert set(o["metrics"]) == {"kl_divergence", "knn_acc_map", "knn_acc_features", "trustworthiness"}
    table = _invoke("embed", "--store", path, "--stage", "pre_logits", "--perplexity", "5,10", "--seed", "0,1",
                    "--n-iter", "300")
    rows = table.stdout.strip().splitlines()
    assert table.exit_code == 0 and "knn_map" in rows[0]
    assert sum(line.rstrip().endswith("cached") for line in rows[1:-1]) == 4
    assert "4 maps (0 new, 4 cached)" in table.stdout


def test_stage_all_and_entry_by_config(extracted):
    path, key = extracted
    r = _invoke("embed", STAGES_CONFIG, "--store", path, "--stage", "all", "--perplexity", "5", "--n-iter", "300",
                "--max-num-class", "3", "--max-num-samples", "20", "--json")
    assert r.exit_code == 0, r.output
    assert sorted(o["stage"] for o in json.loads(r.stdout)) == ["backbone.3", "neck", "pre_logits"]


@pytest.mark.parametrize("args,needle", [
    (["--stage", "neck.7"], "unknown stage 'neck.7'; this entry has: backbone.3, neck, pre_logits"),
    (["--perplexity", "40"], "perplexity 40 is too large for 60 rows; the largest that works is 19"),
    (["--n-iter", "100"], "n-iter 100 is smaller than the early-exaggeration phase"),
    (["--n-components", "4"], "n-components"),
    (["--class-idx", "1", "--max-num-samples", "1"], "t-SNE needs at least 2"),
    (["--entry", "ffff"], "no entry 'ffff'"),
])
def test_cli_errors(extracted, args, needle):
    path, _ = extracted
    r = _invoke("embed", "--store", path, "--stage", "pre_logits", *args)
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and "Traceback" not in r.output


def test_one_class_is_an_error(extracted):
    path, key = extracted
    with pytest.raises(FeatureError, match="1 class.*at least 2"):
        embed_entry(Store(path), key, ["pre_logits"], [EmbedParams(**{**FAST, "perplexity": 2})],
                    RowSelection(class_idx=(1,)), progress=False)


def test_no_entry_for_config_names_the_extract_command(extracted, random_checkpoint):
    path, _ = extracted
    r = _invoke("embed", STAGES_CONFIG, "--checkpoint", random_checkpoint, "--store", path)
    assert r.exit_code == 2
    assert "no entry for" in r.stderr and f"vistsne extract {STAGES_CONFIG} --checkpoint" in r.stderr


def test_nan_features_are_reported_with_count_and_stage(extracted):
    path, key = extracted
    st = Store(path)
    dims = st.entry_meta(key)["stages"]
    labels = st.dataset_labels(key)
    idx = np.flatnonzero(labels == 3)[:20]  # a fourth class, written by hand with 3 bad rows
    feats = {s: np.ones((len(idx), d), np.float32) + np.arange(len(idx))[:, None] for s, d in dims.items()}
    feats["neck"][:3, 0] = np.nan
    feats["neck"][5, 1] = np.inf
    st.write_part(key, idx, labels[idx], np.zeros((len(idx), 48, 48, 3), np.uint8), feats)
    with pytest.raises(FeatureError, match="4 of 80 rows .*stage 'neck'"):
        embed_entry(st, key, ["neck"], [EmbedParams(**FAST)], RowSelection(max_num_class=4, max_num_samples=20),
                    progress=False)


def test_empty_store_is_an_error(tmp_path):
    r = _invoke("embed", "--store", str(tmp_path / "new.zarr"))
    assert r.exit_code == 2, r.output
    assert "does not exist" in r.stderr or "no entries" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(tmp_path / "new.zarr") in errors[0] and "Traceback" not in r.output
    with pytest.raises(NotFoundError):
        Store(str(tmp_path / "fresh.zarr")).latest_entry()


def test_params_validated_before_anything(extracted):
    path, key = extracted
    with pytest.raises(ParamError):
        embed_entry(Store(path), key, ["pre_logits"], [EmbedParams(init="umap")], progress=False)
    with pytest.raises(StageError):
        embed_entry(Store(path), key, ["logits"], [EmbedParams()], progress=False)
