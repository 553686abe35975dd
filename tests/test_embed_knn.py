"""The exact kNN graph and the metrics read off it, against scikit-learn's own answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from vistsne.embed.neighbors import exact_knn, knn_accuracy_from_graph
from vistsne.embed.metrics import graph_knn_accuracy, knn_accuracy, trust_reference, trustworthiness


def noisy_classes(n=400, dims=16, classes=5, noise=3.0, seed=0):
    """Overlapping classes, so that accuracies are neither 0 nor 1 and mistakes matter."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    means = rng.normal(0, 2.0, size=(classes, dims))
    return means[labels] + rng.normal(0, noise, size=(n, dims)), labels


def brute(X, k):
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.sqrt(np.take_along_axis(d, idx, axis=1))


def test_exact_knn_is_the_brute_force_answer_without_self():
    X, _ = noisy_classes(n=300)
    idx, dist = exact_knn(X, 12)
    ref_idx, ref_dist = brute(X, 12)
    assert idx.shape == dist.shape == (300, 12) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)
    assert not np.any(idx == np.arange(300)[:, None])
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_exact_knn_duplicates_are_neighbours_at_zero():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [9.0, 1.0]])
    idx, dist = exact_knn(X, 1)
    assert idx[0, 0] == 1 and idx[1, 0] == 0 and dist[0, 0] == dist[1, 0] == 0.0
    with pytest.raises(ValueError):
        exact_knn(X, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_from_graph_equals_the_per_fold_classifier(seed):
    X, y = noisy_classes(seed=seed)
    expected = knn_accuracy(X, y)
    assert 0.3 < expected < 0.95  # a number that mistakes can move
    idx, _ = exact_knn(X, 30)
    assert knn_accuracy_from_graph(X, y, idx) == expected
    assert graph_knn_accuracy(X, y) == expected


def test_accuracy_from_a_narrow_graph_falls_back_to_a_search():
    X, y = noisy_classes(seed=3)
    idx, _ = exact_knn(X, 11)  # many rows hold fewer than 10 neighbours outside their fold
    assert knn_accuracy_from_graph(X, y, idx) == knn_accuracy(X, y)


def test_accuracy_from_graph_with_classes_smaller_than_folds_and_string_labels():
    X, y = noisy_classes(n=60, seed=4)
    labels = np.array([f"c{v}" for v in y])
    labels[:2] = "rare"  # a class of 2 rows: plain folds, as knn_accuracy does
    idx, _ = exact_knn(X, 30)
    assert knn_accuracy_from_graph(X, labels, idx) == knn_accuracy(X, labels)


def test_graph_accuracy_of_2d_maps_equals_the_per_fold_classifier():
    rng = np.random.default_rng(5)
    Y = rng.normal(size=(500, 2))
    y = (Y[:, 0] + 0.7 * rng.normal(size=500) > 0).astype(int) + 2 * (Y[:, 1] > 0)
    assert graph_knn_accuracy(Y, y) == knn_accuracy(Y, y)


@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_trustworthiness_equals_sklearn_for_random_maps(k):
    X, _ = noisy_classes(n=250, seed=6)
    Y = X[:, :2] + np.random.default_rng(7).normal(0, 2.0, size=(250, 2))
    ours = trustworthiness(X, Y, k=k)
    assert ours == pytest.approx(sk_trustworthiness(X, Y, n_neighbors=k), abs=1e-12)
    assert 0.5 < ours < 0.99


def test_trustworthiness_subsample_and_shared_reference():
    X, _ = noisy_classes(n=700, seed=8)
    Y = X[:, :2] + np.random.default_rng(9).normal(0, 1.0, size=(700, 2))
    ref = trust_reference(X, max_samples=300, seed=0)
    assert len(ref.rows) == 300 and ref.sq_dist.shape == (300, 300)
    rows = ref.rows
    expected = sk_trustworthiness(X[rows], Y[rows], n_neighbors=10)
    assert trustworthiness(X, Y, max_samples=300) == pytest.approx(expected, abs=1e-12)
    assert trustworthiness(None, Y, reference=ref) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError):
        trustworthiness(None, Y[:100], reference=ref)
