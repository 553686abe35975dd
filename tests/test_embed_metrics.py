"""Map quality metrics on data with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from vistsne.embed import (METRIC_KEYS, EmbedParams, embed_many, knn_accuracy, map_metrics,
                           trustworthiness)


def blobs(n: int = 300, centers: int = 10, dims: int = 20, spread: float = 20.0,
          seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, spread, size=(centers, dims))
    labels = np.arange(n) % centers
    return means[labels] + rng.normal(0, 1, size=(n, dims)), labels


@pytest.fixture(scope="module")
def blob_map():
    X, y = blobs()
    params = EmbedParams(n_iter=300, early_exaggeration_iter=150, perplexity=20)
    result = next(embed_many(X, y, [params], progress=False))
    return X, y, result


def test_separated_blobs_score_high(blob_map):
    X, y, result = blob_map
    m = result.metrics
    assert set(m) == set(METRIC_KEYS)
    assert m["knn_acc_features"] > 0.95
    assert m["knn_acc_map"] > 0.95
    assert m["trustworthiness"] > 0.9


def test_shuffled_labels_score_near_chance(blob_map):
    X, y, result = blob_map
    shuffled = np.random.default_rng(1).permutation(y)
    assert knn_accuracy(X, shuffled) < 0.3
    assert knn_accuracy(result.coords, shuffled) < 0.3


def test_map_metrics_keys_and_types(blob_map):
    X, y, result = blob_map
    m = map_metrics(X, result.coords, y, kl=1.25)
    assert list(m) == list(METRIC_KEYS)
    assert all(isinstance(v, float) for v in m.values())
    assert m["kl_divergence"] == 1.25
    assert m["knn_acc_features"] == knn_accuracy(X, y)
    assert map_metrics(X, result.coords, y, kl=1.0, feature_acc=0.5)["knn_acc_features"] == 0.5


def test_knn_accuracy_is_deterministic_and_handles_string_labels():
    X, y = blobs(n=120, centers=3)
    names = np.array(["cat", "dog", "eel"])[y]
    assert knn_accuracy(X, names) == knn_accuracy(X, y) == knn_accuracy(X, y)


def test_knn_accuracy_with_classes_smaller_than_folds():
    X, y = blobs(n=60, centers=3)
    y = y.copy()
    y[:2] = 7  # a class with 2 members (< 5 folds)
    acc = knn_accuracy(X, y, k=10, folds=5)
    assert 0.0 <= acc <= 1.0
    # Tiny data: fewer rows than k and folds.
    tiny = knn_accuracy(np.array([[0.0], [0.1], [5.0], [5.1]]), np.array([0, 0, 1, 1]))
    assert 0.0 <= tiny <= 1.0
    assert np.isnan(knn_accuracy(np.zeros((1, 2)), np.array([0])))


def test_trustworthiness_matches_sklearn_below_max_samples():
    X, _ = blobs(n=150)
    Y = X[:, :2]
    assert trustworthiness(X, Y, k=10) == pytest.approx(sk_trustworthiness(X, Y, n_neighbors=10))


def test_trustworthiness_subsamples_above_max_samples():
    X, _ = blobs(n=900)
    Y = X[:, :2] + np.random.default_rng(0).normal(0, 0.1, size=(900, 2))
    value = trustworthiness(X, Y, k=10, max_samples=200)
    assert 0.0 <= value <= 1.0
    assert value == trustworthiness(X, Y, k=10, max_samples=200)  # fixed subsample
    assert trustworthiness(X, X[:, ::-1], k=10, max_samples=200) == pytest.approx(1.0)


def test_trustworthiness_of_tiny_inputs():
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert np.isnan(trustworthiness(X, X))
    X5 = np.arange(10, dtype=float).reshape(5, 2)
    assert trustworthiness(X5, X5, k=10) == pytest.approx(1.0)
