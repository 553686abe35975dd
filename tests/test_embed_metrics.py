"""Map quality metrics on data with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from vistsne.embed import (METRIC_KEYS, EmbedParams, embed_many, knn_accuracy, map_metrics,
                           trustworthiness)
from vistsne.embed.metrics import trust_reference


def sk_knn_accuracy(X, y, k=10, folds=5, seed=0, stratified=True):
    """scikit-learn's own cross-validated k-NN accuracy, folds as vistsne documents them."""
    cv = (StratifiedKFold if stratified else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(KNeighborsClassifier(n_neighbors=k), X, y, cv=cv)
    return float(np.mean(predicted == y))


def noisy(n: int = 300, centers: int = 4, dims: int = 10, noise: float = 6.0, seed: int = 2):
    """Overlapping classes: accuracies well inside (0, 1), where a wrong vote or fold shows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, centers, size=n)
    means = rng.normal(0, 3.0, size=(centers, dims))
    return means[labels] + rng.normal(0, noise, size=(n, dims)), labels


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
    # the blobs are 20 sigma apart: every row's 10 nearest rows are of its own class
    assert m["knn_acc_features"] == 1.0
    assert m["knn_acc_features"] == sk_knn_accuracy(X, y)
    assert m["knn_acc_map"] == pytest.approx(sk_knn_accuracy(result.coords, y), abs=1e-12)
    assert m["trustworthiness"] == pytest.approx(sk_trustworthiness(X, result.coords, n_neighbors=10), abs=1e-12)
    assert m["kl_divergence"] == result.kl_divergence


def test_shuffled_labels_score_near_chance(blob_map):
    X, y, result = blob_map
    shuffled = np.random.default_rng(1).permutation(y)
    assert knn_accuracy(X, shuffled) < 0.3
    assert knn_accuracy(result.coords, shuffled) < 0.3
    assert knn_accuracy(X, shuffled) == sk_knn_accuracy(X, shuffled)
    assert knn_accuracy(result.coords, shuffled) == sk_knn_accuracy(result.coords, shuffled)


@pytest.mark.parametrize("k,folds,seed", [(10, 5, 0), (1, 5, 0), (5, 3, 7), (15, 10, 1)])
def test_knn_accuracy_equals_sklearns_cross_validated_classifier(k, folds, seed):
    X, y = noisy()
    ours = knn_accuracy(X, y, k=k, folds=folds, seed=seed)
    assert 0.3 < ours < 0.9  # a number that a wrong vote or fold would move
    assert ours == sk_knn_accuracy(X, y, k=k, folds=folds, seed=seed)


def test_knn_accuracy_known_answers():
    # perfectly separated clusters: accuracy 1.0, in any number of dimensions
    X, y = blobs(n=120, centers=4, dims=2)
    assert knn_accuracy(X, y) == 1.0
    assert knn_accuracy(X, y, k=1) == 1.0
    # two classes, each a tight pair far from the other: with k=1 every row finds its twin (1.0);
    # with k=3 (cut to the 3 training rows of each fold) the other class outvotes the twin (0.0)
    X4, y4 = np.array([[0.0], [0.1], [5.0], [5.1]]), np.array([0, 0, 1, 1])
    assert knn_accuracy(X4, y4, k=1) == 1.0
    assert knn_accuracy(X4, y4, k=3) == 0.0


def test_map_metrics_keys_and_types(blob_map):
    X, y, result = blob_map
    m = map_metrics(X, result.coords, y, kl=1.25)
    assert list(m) == list(METRIC_KEYS)
    assert all(isinstance(v, float) for v in m.values())
    assert m["kl_divergence"] == 1.25
    assert m["knn_acc_features"] == knn_accuracy(X, y)
    assert map_metrics(X, result.coords, y, kl=1.0, feature_acc=0.5)["knn_acc_features"] == 0.5
    assert m["knn_acc_map"] == knn_accuracy(result.coords, y)
    assert m["trustworthiness"] == trustworthiness(X, result.coords)
    # on overlapping classes, where the numbers are not 1: each value is scikit-learn's
    Xn, yn = noisy()
    Yn = Xn[:, :2]
    mn = map_metrics(Xn, Yn, yn, kl=0.0)
    assert mn["knn_acc_features"] == sk_knn_accuracy(Xn, yn)
    assert mn["knn_acc_map"] == sk_knn_accuracy(Yn, yn)
    assert mn["trustworthiness"] == pytest.approx(sk_trustworthiness(Xn, Yn, n_neighbors=10), abs=1e-12)
    assert mn["knn_acc_map"] < mn["knn_acc_features"] < 0.9 and mn["trustworthiness"] < 0.9


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
    # plain shuffled folds (a class of 2 cannot be stratified), scikit-learn's answer
    assert acc == sk_knn_accuracy(X, y, stratified=False)
    # the blobs are apart: only the two relabelled rows are missed (their neighbours are blob 0 and 1)
    assert acc == 58 / 60
    # Tiny data: fewer rows than k and folds.
    tiny = knn_accuracy(np.array([[0.0], [0.1], [5.0], [5.1]]), np.array([0, 0, 1, 1]))
    assert 0.0 <= tiny <= 1.0
    # 4 folds of one row; k is cut to the 3 training rows, of which 2 are of the other class
    assert tiny == 0.0
    assert knn_accuracy(np.array([[0.0], [0.1], [5.0], [5.1]]), np.array([0, 0, 1, 1]), k=1) == 1.0
    assert np.isnan(knn_accuracy(np.zeros((1, 2)), np.array([0])))


def test_trustworthiness_matches_sklearn_below_max_samples():
    X, _ = blobs(n=150)
    Y = X[:, :2]
    assert trustworthiness(X, Y, k=10) == pytest.approx(sk_trustworthiness(X, Y, n_neighbors=10))
    assert trustworthiness(X, Y, k=10) < 1.0  # two of 20 dims lose some neighbourhoods


def test_trustworthiness_known_answers():
    X, _ = noisy(n=200, dims=6)
    # a map equal to the features (or the same distances: rotated, shifted, scaled) is perfect
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(6, 6)))
    for Y in (X, 3.0 * X @ rotation + 7.0):
        assert trustworthiness(X, Y) == pytest.approx(1.0, abs=1e-12)
    # a shuffled map keeps no neighbourhoods: about 0.5, which is what chance gives
    shuffled = X[np.random.default_rng(4).permutation(len(X))]
    value = trustworthiness(X, shuffled)
    assert 0.4 < value < 0.6
    assert value == pytest.approx(sk_trustworthiness(X, shuffled, n_neighbors=10), abs=1e-12)
    assert trustworthiness(X, X[:, :2]) > value


def test_trustworthiness_subsamples_above_max_samples():
    X, _ = blobs(n=900)
    Y = X[:, :2] + np.random.default_rng(0).normal(0, 0.1, size=(900, 2))
    value = trustworthiness(X, Y, k=10, max_samples=200)
    assert 0.0 <= value <= 1.0
    assert value == trustworthiness(X, Y, k=10, max_samples=200)  # fixed subsample
    # the value of the subsample: 200 distinct rows, scored as scikit-learn scores them
    rows = trust_reference(X, max_samples=200).rows
    assert len(np.unique(rows)) == 200 and rows.max() < 900
    assert value == pytest.approx(sk_trustworthiness(X[rows], Y[rows], n_neighbors=10), abs=1e-12)
    assert trustworthiness(X, Y, k=10, max_samples=200, seed=1) != value  # another seed, other rows
    assert trustworthiness(X, X[:, ::-1], k=10, max_samples=200) == pytest.approx(1.0)


def test_trustworthiness_of_tiny_inputs():
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert np.isnan(trustworthiness(X, X))
    X5 = np.arange(10, dtype=float).reshape(5, 2)
    assert trustworthiness(X5, X5, k=10) == pytest.approx(1.0)
    # k is cut to 2 (below half of 5 rows): the reversed order keeps each row's 2 nearest rows
    assert trustworthiness(X5, X5[::-1], k=10) == pytest.approx(1.0)
    swapped = X5[[1, 0, 2, 3, 4]]  # two rows swap places in the map
    assert trustworthiness(X5, swapped, k=10) == pytest.approx(sk_trustworthiness(X5, swapped, n_neighbors=2))
    assert trustworthiness(X5, swapped, k=10) < 1.0
