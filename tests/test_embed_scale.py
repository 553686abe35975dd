"""Embed at any N: the approximate graph past the budget, --subsample with transform, the memory
and subsample errors, and no float64 copy of the features (small N throughout; scale is measured
in benchmarks/scale_embed.py)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import vistsne.embed.params as eparams
import vistsne.resources as resources
from vistsne.cli import cli
from vistsne.embed import EmbedParams
from vistsne.embed.entry import embed_entry
from vistsne.embed.metrics import graph_knn_accuracy
from vistsne.embed.neighbors import KnnIndex, exact_knn
from vistsne.embed.params import memory_estimate, resolve
from vistsne.embed.tsne import balanced_subsample, embed_many, preprocess
from vistsne.errors import ParamError, ResourceError
from vistsne.selection import RowSelection
from vistsne.store import Store

FAST = dict(n_iter=300, early_exaggeration_iter=100, n_iter_without_progress=0)


def _digits(n=1200):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:n].astype(np.float32), y[:n]


def _recall(a, b):
    return float(np.mean([len(np.intersect1d(x, y)) for x, y in zip(a, b)]) / a.shape[1])


def test_hnsw_graph_is_close_to_exact_without_self():
    X, _ = _digits(800)
    exact_i, exact_d = exact_knn(X, 30)
    idx, dist = KnnIndex(X, "hnsw", seed=0).graph(30)
    assert idx.shape == dist.shape == (800, 30) and idx.dtype == np.int64 and dist.dtype == np.float64
    assert not np.any(idx == np.arange(800)[:, None])  # never a row's own neighbour
    assert np.all(np.diff(dist, axis=1) >= -1e-4)  # nearest first, euclidean (not squared) distances
    assert _recall(idx, exact_i) > 0.97
    np.testing.assert_allclose(dist[:, 0], exact_d[:, 0], rtol=1e-3, atol=1e-3)
    qi, qd = KnnIndex(X[:500], "hnsw").query(X[500:], 5)  # new rows: their neighbours among the index
    ei, _ = KnnIndex(X[:500], "exact").query(X[500:], 5)
    assert qi.max() < 500 and _recall(qi, ei) > 0.95


def test_compact_hnsw_graph_holds_the_same_values_in_half_the_bytes():
    X, _ = _digits(800)
    index = KnnIndex(X, "hnsw", seed=0)  # one index: both answers read the same graph
    wide_i, wide_d = index.graph(30)
    idx, dist = index.graph(30, compact=True)
    assert idx.dtype == np.int32 and dist.dtype == np.float32
    assert np.array_equal(idx, wide_i) and np.array_equal(dist.astype(np.float64), wide_d)
    assert idx.nbytes + dist.nbytes == (wide_i.nbytes + wide_d.nbytes) // 2


@pytest.mark.parametrize("compact", [False, True])
def test_affinities_are_opentsnes_bit_for_bit(compact):
    from openTSNE.affinity import joint_probabilities_nn

    from vistsne.embed.tsne import _affinities

    X, _ = _digits(900)
    idx, dist = KnnIndex(X, "hnsw", seed=0).graph(60, compact=compact)
    for k, perplexity in ((60, 20.0), (36, 12.0)):  # the whole graph, and its first k columns
        ref = joint_probabilities_nn(idx[:, :k].astype(np.int64), dist[:, :k].astype(np.float64), [perplexity],
                                     symmetrize=True, n_jobs=2)
        P = _affinities(idx, dist, perplexity, k, 2)
        assert P.dtype == np.float64 and P.shape == ref.shape
        assert np.array_equal(P.indptr, ref.indptr) and np.array_equal(P.indices, ref.indices)
        assert np.array_equal(P.data, ref.data)  # not merely close: the maps stay those of the cache


@pytest.mark.slow
def test_approximate_graph_past_a_lowered_budget_gives_a_sane_map(monkeypatch):
    X, y = _digits()
    p = EmbedParams(**FAST)
    assert resolve(p, len(X), X.shape[1])["knn_method"] == "exact"
    exact = next(embed_many(X, y, [p], n_jobs=2, progress=False))
    monkeypatch.setattr(eparams, "EXACT_KNN_BUDGET", 1.0)
    monkeypatch.setattr(eparams, "EXACT_KNN_MAX_N", 10)
    assert resolve(p, len(X), X.shape[1])["knn_method"] == eparams.APPROX_KNN == "hnsw"
    approx = next(embed_many(X, y, [p], n_jobs=2, progress=False))
    assert approx.resolved["knn_method"] == "hnsw"
    assert approx.coords.shape == (len(X), 2) and np.isfinite(approx.coords).all()
    assert approx.metrics["knn_acc_map"] > 0.9
    assert abs(approx.metrics["knn_acc_map"] - exact.metrics["knn_acc_map"]) < 0.03


def test_balanced_subsample_is_fixed_and_even():
    y = np.repeat(np.arange(4), [50, 50, 50, 5])
    rows = balanced_subsample(y, 61)
    assert len(rows) == 61 and np.all(np.diff(rows) > 0)
    assert np.bincount(y[rows]).tolist() == [19, 19, 18, 5]  # the small class gives all it has
    assert np.array_equal(rows, balanced_subsample(y, 61))
    assert len(balanced_subsample(y, 500)) == len(y)


@pytest.mark.slow
def test_subsample_and_transform_write_a_map_of_every_row(extracted):
    path, key = extracted
    runner = CliRunner()
    args = ["embed", "--entry", key, "--stage", "pre_logits", "--perplexity", "5", "--n-iter", "300",
            "--early-exaggeration-iter", "100", "--n-jobs", "2", "--store", path]
    r = runner.invoke(cli, [*args, "--subsample", "30"])
    assert r.exit_code == 0, r.output
    summary = r.output.strip().splitlines()[-1]
    assert "subsample 30 of 60 rows" in summary and "placed" in summary
    st = Store(path, mode="r")
    infos = [i for i in st.embeddings(key) if (i.attrs.get("params") or {}).get("subsample") == 30]
    assert len(infos) == 1
    a = infos[0].attrs
    coords, index = st.read_embedding(key, infos[0].key)
    assert coords.shape == (60, 2) and len(np.unique(index)) == 60 and np.isfinite(coords).all()
    assert a["resolved"]["subsample"] == 30 and a["resolved"]["placed"] == 30
    assert a["resolved"]["placement"] == "opentsne-transform"
    for name in ("knn_acc_subsample", "knn_acc_placed", "knn_acc_map"):
        assert 0.0 <= a["metrics"][name] <= 1.0
    assert "sub30" in a["name"]
    # its figure says how it was made, and both accuracies
    out = Path(path).parent / "sub_figs"
    r = runner.invoke(cli, ["render", "--entry", key, "--stage", "pre_logits", "--embedding", infos[0].key,
                            "--format", "html", "--out", str(out), "--store", path])
    assert r.exit_code == 0, r.output
    page = next(out.glob("*.html")).read_text()
    assert "30 embedded, 30 placed" in page
    assert f"({a['metrics']['knn_acc_placed']:.3f} placed)" in page
    # the same map without --subsample is another map (the parameter is in the key)
    plain = embed_entry(st.__class__(path), key, ["pre_logits"],
                        [EmbedParams(perplexity=5, n_iter=300, early_exaggeration_iter=100)], progress=False)
    assert plain[0].key != infos[0].key and "subsample" not in plain[0].params


def test_subsample_larger_than_the_rows_is_one_line(extracted):
    path, key = extracted
    r = CliRunner().invoke(cli, ["embed", "--entry", key, "--stage", "pre_logits", "--subsample", "1000",
                                 "--store", path])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "subsample 1000 is larger than the 60 rows" in errors[0]
    assert "--subsample 60 or less" in errors[0] and "Traceback" not in r.output
    assert not list(Store(path, mode="r").embeddings(key))
    with pytest.raises(ParamError, match="larger than"):
        resolve(EmbedParams(subsample=11), 10, 4)


def test_a_selection_that_does_not_fit_in_memory_is_refused_before_any_work(extracted, monkeypatch):
    path, key = extracted
    monkeypatch.setattr(resources, "available_memory", lambda: 10**6)
    r = CliRunner().invoke(cli, ["embed", "--entry", key, "--stage", "pre_logits", "--store", path])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "GB of memory" in errors[0] and "available" in errors[0]
    assert "Traceback" not in r.output and not list(Store(path, mode="r").embeddings(key))
    # where a subsample would fit, the line names one (and --pca-dims for wide features)
    X = np.random.default_rng(0).standard_normal((20000, 512)).astype(np.float32)
    y = np.arange(len(X)) % 10
    need = memory_estimate(EmbedParams(pca_dims=0), len(X), 512)["total"]
    monkeypatch.setattr(resources, "available_memory", lambda: need - 1)
    with pytest.raises(ResourceError, match=r"needs about .* GB.*--subsample \d+.*--pca-dims 50"):
        embed_many(X, y, [EmbedParams(pca_dims=0)], progress=False)


def test_no_float64_copy_of_the_features():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 128)).astype(np.float32)
    same = preprocess(X, 0)
    assert same.dtype == np.float32 and np.shares_memory(same, X)
    assert preprocess(X[:100].astype(np.float16), 0).dtype == np.float32
    W = rng.standard_normal((3000, 512)).astype(np.float32)
    graph_knn_accuracy(W[:50], np.arange(50) % 7)  # scikit-learn's one-time set-up outside the count
    tracemalloc.start()
    try:
        out = preprocess(X, 16)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        graph_knn_accuracy(W, np.arange(len(W)) % 7)
        _, peak_acc = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.dtype == np.float32 and out.shape == (20000, 16)
    # a float64 copy alone would be 2 x the features' bytes
    assert peak < 1.5 * X.nbytes, peak / X.nbytes
    assert peak_acc < 1.5 * W.nbytes, peak_acc / W.nbytes


def test_memory_estimate_grows_with_rows_and_shrinks_with_subsample():
    big = memory_estimate(EmbedParams(), 1_000_000, 512)
    sub = memory_estimate(EmbedParams(subsample=100_000), 1_000_000, 512)
    assert big["total"] > sub["total"] > sub["features"] == big["features"] == 1_000_000 * 512 * 4
    assert resolve(EmbedParams(), 1_000_000, 512)["method"] == "fft"
    assert resolve(EmbedParams(), 1_000_000, 512)["knn_method"] == "hnsw"


def test_sampled_feature_accuracy_estimates_the_full_one():
    from vistsne.embed.neighbors import sampled_knn_accuracy

    X, y = _digits(1000)
    full = graph_knn_accuracy(X, y)
    assert sampled_knn_accuracy(X, y, np.arange(len(X))) == pytest.approx(full, abs=0.002)
    rows = np.sort(np.random.default_rng(0).choice(len(X), 400, replace=False))
    assert abs(sampled_knn_accuracy(X, y, rows) - full) < 0.03


def test_fft_grid_is_capped_by_widening_the_boxes(monkeypatch):
    """Past FFT_MAX_BOXES boxes a side the boxes widen (openTSNE's ints_in_interval), set again every
    GRID_EVERY iterations from the span; the cap is in the resolved values (the key); the map stays sane."""
    from openTSNE import TSNEEmbedding

    from vistsne.embed.tsne import GRID_EVERY, fft_interval

    assert fft_interval(np.array([[0.0, 0.0], [40.0, 10.0]]), 150) == 1.0  # narrow: openTSNE's own grid
    assert fft_interval(np.array([[0.0, 0.0], [600.0, 10.0]]), 150) == 4.0
    X, y = _digits(1200)
    widths = []
    real = TSNEEmbedding.optimize

    def recording(self, *args, **kw):
        widths.append(kw.get("ints_in_interval"))
        return real(self, *args, **kw)

    monkeypatch.setattr(TSNEEmbedding, "optimize", recording)
    plain = next(embed_many(X, y, [EmbedParams(method="fft", **FAST)], n_jobs=2, progress=False))
    assert plain.resolved["fft_max_boxes"] == eparams.FFT_MAX_BOXES
    assert set(widths) == {1.0}  # 1,200 rows never span 150 units: openTSNE's grid throughout
    assert len(widths) == FAST["n_iter"] // GRID_EVERY
    widths.clear()
    monkeypatch.setattr(eparams, "FFT_MAX_BOXES", 4)
    capped = next(embed_many(X, y, [EmbedParams(method="fft", **FAST)], n_jobs=2, progress=False))
    assert capped.resolved["fft_max_boxes"] == 4 and capped.n_iter_run == FAST["n_iter"]
    assert widths[0] == 1.0 and max(widths) > 1.0  # the map grew past 4 units: wider boxes
    assert capped.metrics["knn_acc_map"] > plain.metrics["knn_acc_map"] - 0.05
    bh = resolve(EmbedParams(method="bh"), 1200, 64)
    assert "fft_max_boxes" not in bh  # Barnes-Hut maps keep their keys
