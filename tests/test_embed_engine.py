"""The t-SNE engine and its parameters, on small real openTSNE runs (no mocks)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest

from vistsne.embed import (METHOD_SWITCH_N, EmbedParams, EmbedResult, SweepStats, check_data,
                           check_features, embed_many, resolve, sweep)
from vistsne.errors import FeatureError, ParamError

# Short runs keep the suite fast: 200 points, 150 iterations (100 exaggerated).
FAST = EmbedParams(n_iter=150, early_exaggeration_iter=100)


def blobs(n: int = 200, centers: int = 4, dims: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 10, size=(centers, dims))
    labels = np.arange(n) % centers
    X = means[labels] + rng.normal(0, 1, size=(n, dims))
    return X.astype(np.float32), labels


@pytest.fixture(scope="module")
def data():
    return blobs()


def run(X, labels, params, **kwargs) -> list[EmbedResult]:
    kwargs.setdefault("progress", False)
    return list(embed_many(X, labels, params, **kwargs))


# --- reproducibility ---------------------------------------------------------------

def test_same_seed_same_coords_other_seed_other_coords(data):
    X, y = data
    first = run(X, y, [FAST])[0]
    again = run(X, y, [FAST])[0]
    other = run(X, y, [EmbedParams(**{**FAST.to_dict(), "seed": 1})])[0]
    assert first.coords.dtype == np.float32 and first.coords.shape == (len(X), 2)
    np.testing.assert_array_equal(first.coords, again.coords)
    assert first.kl_divergence == again.kl_divergence
    assert not np.allclose(first.coords, other.coords)


def test_map_in_a_sweep_equals_the_map_alone(data):
    # Shared kNN graph (built for perplexity 30) must give the same map for
    # perplexity 10 as a run of perplexity 10 on its own (exact kNN, N < 1000).
    X, y = data
    alone = run(X, y, [EmbedParams(**{**FAST.to_dict(), "perplexity": 10})])[0]
    swept = {r.params.perplexity: r for r in run(X, y, sweep(FAST, perplexity=[10, 30]))}
    np.testing.assert_array_equal(alone.coords, swept[10.0].coords)
    assert swept[10.0].resolved["knn_graph_k"] == 90
    assert alone.resolved["knn_graph_k"] == 30


def test_progress_bars_do_not_change_the_map(data):
    X, y = data
    params = [EmbedParams(**{**FAST.to_dict(), "n_iter_without_progress": 0})]
    quiet = run(X, y, params, progress=False)[0]
    bars = []

    class Recorder:
        def __init__(self, total, desc):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    shown = run(X, y, params, progress=Recorder)[0]
    np.testing.assert_array_equal(quiet.coords, shown.coords)
    assert len(bars) == 1
    bar = bars[0]
    assert bar.closed and bar.total == FAST.n_iter and bar.n == shown.n_iter_run
    assert "perplexity 30" in bar.desc


# --- sweeps ------------------------------------------------------------------------

def test_sweep_is_the_product_in_stable_order():
    ps = sweep(FAST, seed=[0, 1], perplexity=[5, 30, 50])
    assert [(p.perplexity, p.seed) for p in ps] == [
        (5.0, 0), (5.0, 1), (30.0, 0), (30.0, 1), (50.0, 0), (50.0, 1)]
    assert ps == sweep(FAST, perplexity=[5, 30, 50], seed=[0, 1])
    assert all(p.n_iter == FAST.n_iter for p in ps)
    assert sweep(FAST) == [FAST.validate()]
    assert len(sweep(FAST, perplexity=[30, 30.0, "30"])) == 1


def test_sweep_rejects_unknown_fields_empty_lists_and_bad_values():
    with pytest.raises(ParamError, match="perplexty"):
        sweep(FAST, perplexty=[5])
    with pytest.raises(ParamError, match="no values"):
        sweep(FAST, seed=[])
    with pytest.raises(ParamError, match="n-components"):
        sweep(FAST, n_components=[2, 4])


def test_embed_many_yields_every_params_of_the_sweep(data):
    X, y = data
    params = sweep(FAST, perplexity=[5, 10], seed=[0, 1])
    results = run(X, y, params)
    assert len(results) == 4
    assert {r.params for r in results} == set(params)
    for r in results:
        assert r.resolved["k_neighbors"] == int(3 * r.params.perplexity)
        assert r.n_iter_run == FAST.n_iter
        assert r.seconds > 0
        assert np.isfinite(r.kl_divergence) and r.metrics["kl_divergence"] == r.kl_divergence


def test_embed_many_yields_lazily_but_checks_eagerly(data):
    X, y = data
    stats = SweepStats()
    gen = embed_many(X, y, sweep(FAST, perplexity=[5, 10]), progress=False, stats=stats)
    assert stats.knn_builds == 0  # nothing runs before the first result is asked for
    first = next(gen)
    assert isinstance(first, EmbedResult)
    assert len(list(gen)) == 1
    with pytest.raises(ParamError):  # raised by the call itself, not by next()
        embed_many(X, y, [EmbedParams(perplexity=500)], progress=False)


def test_sweep_shares_knn_graph_and_pca_init(data):
    X, y = data
    stats = SweepStats()
    run(X, y, sweep(FAST, perplexity=[5, 10, 30]), stats=stats)
    assert stats.knn_builds == 1
    assert stats.affinity_builds == 3
    assert stats.pca_inits == 1
    assert stats.preprocess_runs == 1

    stats = SweepStats()
    run(X, y, sweep(FAST, perplexity=[5, 10], seed=[0, 1]), stats=stats)
    assert (stats.knn_builds, stats.preprocess_runs, stats.pca_inits) == (1, 1, 2)


@pytest.mark.parametrize("method", ["bh", "fft"])
def test_sweep_runs_maps_side_by_side_and_matches_lone_runs(data, method):
    X, y = data
    params = sweep(replace(FAST, method=method), perplexity=[5, 10], seed=[0, 1])
    stats = SweepStats()
    together = run(X, y, params, n_jobs=2, stats=stats)
    assert (stats.max_parallel, stats.threads_per_map) == (2, 1)
    # each map ran on one thread, so it is bit for bit the map of a lone one-thread run
    for r in together:
        (alone,) = run(X, y, [r.params], n_jobs=1)
        np.testing.assert_array_equal(r.coords, alone.coords)
        assert r.metrics == alone.metrics
    # one map gets every thread
    stats = SweepStats()
    run(X, y, [params[0]], n_jobs=2, stats=stats)
    assert (stats.max_parallel, stats.threads_per_map) == (1, 2)


def test_schedule_splits_cores_between_maps():
    from vistsne.embed.tsne import schedule

    assert schedule(4, 1) == (1, 1)
    assert schedule(4, 2) == (2, 1)
    assert schedule(1, 8) == (1, 8)
    assert schedule(3, 8) == (3, 2)
    assert schedule(16, 8) == (8, 1)


def test_closing_a_sweep_stops_the_maps_still_running(data):
    from vistsne.embed.tsne import PROGRESS_EVERY

    X, y = data
    seen = []

    class Bar:
        def __init__(self, total, desc):
            seen.append(0)

        def update(self, n=1):
            seen[-1] += n

        def close(self):
            pass

    slow = EmbedParams(n_iter=20000, early_exaggeration_iter=100, n_iter_without_progress=0)
    params = [replace(FAST, seed=0), replace(slow, seed=1), replace(slow, seed=2)]
    gen = embed_many(X, y, params, n_jobs=2, progress=Bar)
    # No thread switch between reading the count and the generator's stop.set(): the map threads
    # run openTSNE's gradients without the GIL, but its iteration loop and the callbacks (where the
    # bar moves and the stop is seen) need it, so nothing moves the bar in between.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        first = next(gen)
        assert first.params.seed == 0
        at_close = seen[0]
        gen.close()  # the two long maps are dropped: they stop at their next check
    finally:
        sys.setswitchinterval(interval)
    assert seen[0] < FAST.n_iter + 2 * slow.n_iter
    assert len(seen) == 1  # one bar for the maps that run side by side
    assert at_close >= FAST.n_iter
    # what the code guarantees: each of the (at most 2) maps still running sees the stop at its next
    # callback, at most PROGRESS_EVERY iterations on, and its second phase (if it had not begun)
    # stops at its first callback: at most 2 x PROGRESS_EVERY more iterations per map
    assert seen[0] - at_close <= 2 * 2 * PROGRESS_EVERY


def test_feature_accuracy_is_computed_once_and_can_be_passed_in(data):
    X, y = data
    stats = SweepStats()
    results = run(X, y, sweep(FAST, perplexity=[5, 10]), stats=stats)
    assert stats.feature_acc_runs == 1
    known = results[0].metrics["knn_acc_features"]
    stats = SweepStats()
    (again,) = run(X, y, [FAST], stats=stats, feature_acc=0.123)
    assert stats.feature_acc_runs == 0 and again.metrics["knn_acc_features"] == 0.123
    from vistsne.embed import knn_accuracy

    assert known == knn_accuracy(X, y)


def test_each_pca_dims_gets_its_own_graph(data):
    X, y = data
    stats = SweepStats()
    results = run(X, y, sweep(FAST, pca_dims=[0, 5], perplexity=[5, 10]), stats=stats)
    assert (stats.preprocess_runs, stats.knn_builds, stats.pca_inits) == (2, 2, 2)
    assert sorted(r.resolved["pca_dims"] for r in results) == [0, 0, 5, 5]


# --- iterations and early stop ------------------------------------------------------

def test_n_iter_without_progress_stops_early(data):
    X, y = data
    params = EmbedParams(n_iter=3000, n_iter_without_progress=50)
    result = run(X, y, [params])[0]
    assert result.n_iter_run < params.n_iter
    assert result.n_iter_run % 50 == 0
    assert np.isfinite(result.kl_divergence)


def test_n_iter_is_respected_without_early_stop(data):
    X, y = data
    off = run(X, y, [EmbedParams(n_iter=300, n_iter_without_progress=0)])[0]
    assert off.n_iter_run == 300
    # A patience longer than the run can never trigger: same map as no check.
    patient = run(X, y, [EmbedParams(n_iter=300, n_iter_without_progress=300)])[0]
    assert patient.n_iter_run == 300
    np.testing.assert_array_equal(off.coords, patient.coords)


def test_early_exaggeration_only_run(data):
    X, y = data
    result = run(X, y, [EmbedParams(n_iter=100, early_exaggeration_iter=100)])[0]
    assert result.n_iter_run == 100


# --- components and initialisation --------------------------------------------------

def test_three_components_use_barnes_hut(data):
    X, y = data
    result = run(X, y, [EmbedParams(**{**FAST.to_dict(), "n_components": 3})])[0]
    assert result.coords.shape == (len(X), 3)
    assert result.resolved["method"] == "bh"
    assert np.isfinite(result.coords).all()


@pytest.mark.parametrize("init", ["pca", "spectral", "random"])
def test_one_component_and_every_init(data, init):
    X, y = data
    result = run(X, y, [EmbedParams(**{**FAST.to_dict(), "n_components": 1, "init": init})])[0]
    assert result.coords.shape == (len(X), 1)
    assert np.isfinite(result.coords).all()


def test_fft_method_runs(data):
    X, y = data
    result = run(X, y, [EmbedParams(**{**FAST.to_dict(), "method": "fft"})])[0]
    assert result.resolved["method"] == "fft"
    assert np.isfinite(result.coords).all()


# --- errors ---------------------------------------------------------------------------

def test_perplexity_too_large_names_the_largest_that_works():
    X, y = blobs(n=100)
    with pytest.raises(ParamError) as err:
        run(X, y, [EmbedParams(perplexity=50)])
    msg = str(err.value)
    assert msg == ("perplexity 50 is too large for 100 rows; the largest that works is 33; "
                   "use --perplexity 33 or less")
    assert "\n" not in msg
    check_data(EmbedParams(perplexity=33), 100, 2)  # the largest indeed works


def test_n_iter_below_exaggeration_phase():
    with pytest.raises(ParamError) as err:
        EmbedParams(n_iter=200).validate()
    assert str(err.value).startswith(
        "n-iter 200 is smaller than the early-exaggeration phase (250 iterations); "
        "use --n-iter 250 or more")


@pytest.mark.parametrize("n_components", [0, 4, -1])
def test_n_components_out_of_range(n_components):
    with pytest.raises(ParamError, match="n-components"):
        EmbedParams(n_components=n_components).validate()


@pytest.mark.parametrize("field,value", [
    ("init", "umap"), ("method", "exact"), ("perplexity", -5), ("perplexity", float("nan")),
    ("learning_rate", -1), ("learning_rate", "fast"), ("pca_dims", -2), ("seed", -1),
    ("n_iter_without_progress", -1), ("early_exaggeration", 0), ("theta", -0.1),
    ("initial_momentum", 1.5), ("early_exaggeration_iter", -1), ("n_iter", 2.5),
    ("n_components", True),
])
def test_bad_values_raise_one_line_param_errors(field, value):
    with pytest.raises(ParamError) as err:
        EmbedParams(**{field: value}).validate()
    msg = str(err.value)
    assert "\n" not in msg and "--" + field.replace("_", "-") in msg


def test_fft_with_three_components_is_refused():
    with pytest.raises(ParamError, match="--method bh"):
        EmbedParams(n_components=3, method="fft").validate()


def test_nan_and_inf_rows_name_count_and_stage(data):
    X, y = data
    X = X.copy()
    X[[3, 7], 0] = np.nan
    X[11, 2] = np.inf
    X[7, 1] = np.inf  # same row twice: still counted once
    with pytest.raises(FeatureError) as err:
        check_features(X, "backbone.layer4")
    msg = str(err.value)
    assert "3 of 200 rows" in msg and "backbone.layer4" in msg and "\n" not in msg
    with pytest.raises(FeatureError, match="3 of 200 rows.*'neck'"):
        run(X, y, [FAST], stage="neck")


def test_nan_rows_are_counted_across_chunks(monkeypatch):
    import vistsne.embed.tsne as tsne

    monkeypatch.setattr(tsne, "_CHECK_ROWS", 7)
    X = np.zeros((50, 3))
    X[[0, 6, 7, 49], 1] = np.nan
    with pytest.raises(FeatureError, match="4 of 50 rows"):
        check_features(X, "head")
    check_features(np.zeros((5, 2), dtype=np.int64), "head")  # integers are always finite
    with pytest.raises(FeatureError, match="shape"):
        check_features(np.zeros(5), "head")


def test_too_few_rows_or_classes():
    with pytest.raises(FeatureError, match="1 row"):
        check_data(EmbedParams(), 1, 2)
    with pytest.raises(FeatureError, match="1 class"):
        check_data(EmbedParams(), 100, 1)
    X, _ = blobs(n=100)
    with pytest.raises(FeatureError, match="1 class"):
        run(X, np.zeros(100, dtype=int), [EmbedParams(perplexity=10)])
    with pytest.raises(FeatureError, match="at least 2"):
        run(X[:1], np.array([0]), [EmbedParams(perplexity=10)])


def test_label_count_must_match_rows(data):
    X, y = data
    with pytest.raises(FeatureError, match="labels"):
        run(X, y[:-1], [FAST])


def test_pca_init_needs_enough_feature_dims():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 1))
    y = np.arange(60) % 2
    with pytest.raises(ParamError, match="--init spectral"):
        run(X, y, [EmbedParams(perplexity=5, n_iter=300)])


def test_no_params_is_an_error(data):
    X, y = data
    with pytest.raises(ParamError):
        run(X, y, [])


# --- resolve -----------------------------------------------------------------------

def test_resolve_learning_rate():
    def rates(p, n):
        r = resolve(p, n, 10)
        return r["learning_rate"], r["learning_rate_after"]

    # "auto": N over each phase's exaggeration, at least 200 (openTSNE's rule)
    assert rates(EmbedParams(), 1000) == (200.0, 1000.0)
    assert rates(EmbedParams(), 150) == (200.0, 200.0)
    assert rates(EmbedParams(), 12000) == (1000.0, 12000.0)
    assert rates(EmbedParams(early_exaggeration=4), 12000) == (3000.0, 12000.0)
    assert rates(EmbedParams(learning_rate=50), 12000) == (50.0, 50.0)


def test_resolve_pca_dims():
    # auto keeps every dim while an exact search over them fits the budget ...
    assert resolve(EmbedParams(), 1000, 101)["pca_dims"] == 0
    assert resolve(EmbedParams(), 20000, 512)["pca_dims"] == 0
    assert resolve(EmbedParams(), 10000, 2048)["pca_dims"] == 0
    # ... and reduces wide features to 50 dims beyond it
    assert resolve(EmbedParams(), 30000, 512)["pca_dims"] == 50
    assert resolve(EmbedParams(), 20000, 2048)["pca_dims"] == 50
    assert resolve(EmbedParams(), 10**6, 100)["pca_dims"] == 0  # never features of <= 100 dims
    assert resolve(EmbedParams(), 1000, 100)["pca_dims"] == 0
    assert resolve(EmbedParams(pca_dims=0), 1000, 2048)["pca_dims"] == 0
    r = resolve(EmbedParams(pca_dims=20), 1000, 2048)
    assert (r["pca_dims"], r["pca_dims_clamped"]) == (20, False)
    r = resolve(EmbedParams(pca_dims=500), 1000, 64)
    assert (r["pca_dims"], r["pca_dims_clamped"]) == (64, True)
    r = resolve(EmbedParams(pca_dims=500), 300, 2048)
    assert (r["pca_dims"], r["pca_dims_clamped"]) == (300, True)


def test_resolve_method_and_neighbours():
    assert resolve(EmbedParams(), METHOD_SWITCH_N - 1, 10)["method"] == "bh"
    assert resolve(EmbedParams(), METHOD_SWITCH_N, 10)["method"] == "fft"
    assert resolve(EmbedParams(n_components=1), METHOD_SWITCH_N, 10)["method"] == "fft"
    assert resolve(EmbedParams(n_components=3), 10 * METHOD_SWITCH_N, 10)["method"] == "bh"
    assert resolve(EmbedParams(method="fft"), 100, 10)["method"] == "fft"
    assert resolve(EmbedParams(perplexity=30), 1000, 10)["k_neighbors"] == 90
    assert resolve(EmbedParams(), 999, 10)["knn_method"] == "exact"
    assert resolve(EmbedParams(), 20000, 512)["knn_method"] == "exact"
    assert resolve(EmbedParams(), 30000, 512)["knn_method"] == "exact"  # over 50 PCA dims
    assert resolve(EmbedParams(pca_dims=0), 30000, 512)["knn_method"] == "hnsw"
    assert resolve(EmbedParams(), 10**6, 100)["knn_method"] == "hnsw"


def test_resolve_does_not_change_params_and_is_json():
    params = EmbedParams()
    r = resolve(params, 5000, 512)
    assert params.learning_rate == "auto" and params.pca_dims == "auto" and params.method == "auto"
    assert json.loads(json.dumps(r)) == r


# --- params round trip -----------------------------------------------------------------

def test_params_round_trip_through_json():
    params = EmbedParams(perplexity=12.5, learning_rate=300.0, pca_dims=0, init="spectral")
    d = json.loads(json.dumps(params.to_dict()))
    assert EmbedParams.from_dict(d) == params.validate()
    assert EmbedParams.from_dict({"perplexity": 10}) == EmbedParams(perplexity=10.0)
    with pytest.raises(ParamError, match="unknown"):
        EmbedParams.from_dict({"perplexity": 10, "colour": "red"})


def test_validate_normalises_types():
    params = EmbedParams(perplexity="30", n_iter="500", learning_rate="AUTO", init="PCA",
                         pca_dims="64").validate()
    assert params == EmbedParams(perplexity=30.0, n_iter=500, pca_dims=64)
    assert isinstance(params.perplexity, float) and isinstance(params.n_iter, int)
