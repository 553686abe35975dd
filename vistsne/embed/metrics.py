"""Quality numbers for a map: k-NN accuracy (map and features) and trustworthiness.

scikit-learn is imported inside the functions so that importing this module
stays cheap.
"""

from __future__ import annotations

import warnings

import numpy as np

METRIC_KEYS = ("kl_divergence", "knn_acc_map", "knn_acc_features", "trustworthiness")


def _splits(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs: stratified when every class has ``folds`` members."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(labels)
    n_splits = max(2, min(int(folds), n))
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), labels))
    # Some class is smaller than the number of folds: stratification is not
    # possible for it, so fall back to plain shuffled folds.
    splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n)))


def knn_accuracy(X: np.ndarray, labels: np.ndarray, k: int = 10, folds: int = 5,
                 seed: int = 0) -> float:
    """Cross-validated k-NN classification accuracy of ``labels`` from the rows of ``X``.

    Folds are stratified where every class has at least ``folds`` members and
    plain shuffled folds otherwise; ``k`` is cut to the size of the training
    split. Returns the fraction of rows predicted correctly over all folds, or
    NaN with fewer than 2 rows.
    """
    from sklearn.neighbors import KNeighborsClassifier

    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but labels has {len(labels)}")
    if len(X) < 2:
        return float("nan")
    _, codes = np.unique(labels, return_inverse=True)
    correct = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for train, test in _splits(codes, folds, seed):
            clf = KNeighborsClassifier(n_neighbors=max(1, min(int(k), len(train))))
            clf.fit(X[train], codes[train])
            correct += int(np.sum(clf.predict(X[test]) == codes[test]))
    return correct / len(X)


def trustworthiness(X: np.ndarray, Y: np.ndarray, k: int = 10, max_samples: int = 2000,
                    seed: int = 0) -> float:
    """scikit-learn's trustworthiness of map ``Y`` for features ``X``, in [0, 1].

    With more than ``max_samples`` rows it is computed on a fixed random subset
    of that many rows (seeded by ``seed``), so memory stays O(max_samples^2)
    instead of O(N^2). ``k`` is cut below half the rows as scikit-learn
    requires; NaN when fewer than 3 rows leave no valid ``k``.
    """
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim == 1:
        X = X[:, None]
    if Y.ndim == 1:
        Y = Y[:, None]
    if len(X) != len(Y):
        raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")
    n = len(X)
    if n > max_samples:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=int(max_samples), replace=False))
        X, Y = X[idx], Y[idx]
        n = len(idx)
    k = min(int(k), (n - 1) // 2)  # scikit-learn needs k < n / 2
    if k < 1:
        return float("nan")
    value = sk_trustworthiness(np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64),
                               n_neighbors=k)
    return float(min(max(value, 0.0), 1.0))


def map_metrics(X: np.ndarray, Y: np.ndarray, labels: np.ndarray, kl: float,
                feature_acc: float | None = None) -> dict:
    """All quality numbers of map ``Y`` of features ``X``.

    Keys are exactly :data:`METRIC_KEYS`; values are floats. Pass
    ``feature_acc`` when the feature-space accuracy is already known (it does
    not depend on t-SNE parameters).
    """
    if feature_acc is None:
        feature_acc = knn_accuracy(X, labels)
    return {
        "kl_divergence": float(kl),
        "knn_acc_map": float(knn_accuracy(Y, labels)),
        "knn_acc_features": float(feature_acc),
        "trustworthiness": float(trustworthiness(X, Y)),
    }
