"""Quality numbers for a map: k-NN accuracy (map and features) and trustworthiness.

scikit-learn is imported inside the functions so that importing this module
stays cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .neighbors import _float_rows, cv_folds, knn_accuracy_from_graph, nearest

METRIC_KEYS = ("kl_divergence", "knn_acc_map", "knn_acc_features", "trustworthiness")


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
        for train, test in cv_folds(codes, folds, seed):
            clf = KNeighborsClassifier(n_neighbors=max(1, min(int(k), len(train))))
            clf.fit(X[train], codes[train])
            correct += int(np.sum(clf.predict(X[test]) == codes[test]))
    return correct / len(X)


@dataclass(frozen=True)
class TrustReference:
    """The feature-space half of :func:`trustworthiness`, shared by every map of the same rows.

    ``rows``: the (sub)sample of row indices; ``sq_dist``: their squared
    distances in feature space (float64, m x m, ``inf`` on the diagonal).
    """

    rows: np.ndarray
    sq_dist: np.ndarray


def _sample_rows(n: int, max_samples: int, seed: int) -> np.ndarray:
    """All rows, or a fixed random subset of ``max_samples`` of them (sorted)."""
    if n <= max_samples:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_samples), replace=False))


def _sq_distances(A: np.ndarray) -> np.ndarray:
    """Squared euclidean distances between the rows of ``A`` (float64, centred first)."""
    A = np.asarray(A, dtype=np.float64)
    A = A - A.mean(axis=0)
    sq = np.einsum("ij,ij->i", A, A)
    d2 = A @ A.T  # in place from here on: no N x N temporaries
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, np.inf)
    return d2


def trust_reference(X: np.ndarray, max_samples: int = 2000, seed: int = 0) -> TrustReference:
    """Prepare :func:`trustworthiness` for features ``X`` (compute once, use for many maps)."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    rows = _sample_rows(len(X), int(max_samples), seed)
    return TrustReference(rows, _sq_distances(X[rows]))


def trustworthiness(X: np.ndarray | None, Y: np.ndarray, k: int = 10, max_samples: int = 2000,
                    seed: int = 0, reference: TrustReference | None = None) -> float:
    """Trustworthiness of map ``Y`` for features ``X`` at ``k``, in [0, 1].

    The same number as scikit-learn's ``sklearn.manifold.trustworthiness``
    (wherever no two distances tie), computed without sorting N x N matrices:
    the rank of each of a row's ``k`` map neighbours in feature space is a
    count of the rows nearer than it. With more than ``max_samples`` rows it is
    computed on a fixed random subset of that many rows (seeded by ``seed``),
    so memory stays O(max_samples^2) instead of O(N^2). ``reference`` (from
    :func:`trust_reference` with the same ``max_samples`` and ``seed``) skips
    the feature-space work; ``X`` may then be None. ``k`` is cut below half the
    rows as scikit-learn requires; NaN when fewer than 3 rows leave no valid ``k``.
    """
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if reference is None:
        if X is None:
            raise ValueError("trustworthiness needs X or a reference")
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")
        reference = trust_reference(X, max_samples, seed)
    rows, dx = reference.rows, reference.sq_dist
    if len(rows) and rows[-1] >= len(Y):
        raise ValueError(f"the reference holds rows up to {rows[-1]} but Y has {len(Y)}")
    n = len(rows)
    k = min(int(k), (n - 1) // 2)  # scikit-learn needs k < n / 2
    if k < 1:
        return float("nan")
    near = nearest(np.asarray(Y[rows], dtype=np.float64), k)  # each row's k map neighbours
    penalty = 0
    chunk = max(1, 2**22 // (k * n))
    for start in range(0, n, chunk):
        block = dx[start:start + chunk]
        thr = np.take_along_axis(block, near[start:start + chunk], axis=1)
        ranks = np.count_nonzero(block[:, None, :] < thr[:, :, None], axis=2) + 1  # 1 = nearest
        penalty += int(np.sum(np.maximum(ranks - k, 0)))
    value = 1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))
    return float(min(max(value, 0.0), 1.0))


def graph_knn_accuracy(X: np.ndarray, labels: np.ndarray, k: int = 10, folds: int = 5,
                       seed: int = 0) -> float:
    """:func:`knn_accuracy` by one neighbour search instead of one per fold.

    Finds each row's ``3k`` nearest rows once (exactly: a k-d tree for maps of
    up to 3 dims, a brute-force search otherwise) and reads the
    cross-validated accuracy off that graph with
    :func:`~vistsne.embed.neighbors.knn_accuracy_from_graph`: the same folds and
    votes, so the same number wherever no two distances tie.
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but labels has {len(labels)}")
    n = len(X)
    if n < 2:
        return float("nan")
    # float32 features stay float32 (scikit-learn upcasts chunk by chunk): no float64 N x D copy
    neighbors = nearest(_float_rows(X), min(n - 1, 3 * int(k)))
    return knn_accuracy_from_graph(X, labels, neighbors, k=k, folds=folds, seed=seed)


def placed_knn_accuracy(Y_ref: np.ndarray, labels_ref: np.ndarray, Y_new: np.ndarray, labels_new: np.ndarray,
                        k: int = 10) -> float:
    """How often a placed row's ``k`` nearest rows of the reference map vote for its own label.

    The accuracy of the rows placed into a ``--subsample`` map: the subsample is the
    training set, the placed rows the test set (plain majority, ties to the smallest
    label, as scikit-learn's ``KNeighborsClassifier``). NaN with no placed rows.
    """
    labels_new = np.asarray(labels_new).reshape(-1)
    if len(labels_new) == 0:
        return float("nan")
    from sklearn.neighbors import KNeighborsClassifier

    Y_ref = np.asarray(Y_ref, dtype=np.float64).reshape(len(labels_ref), -1)
    Y_new = np.asarray(Y_new, dtype=np.float64).reshape(len(labels_new), -1)
    clf = KNeighborsClassifier(n_neighbors=max(1, min(int(k), len(Y_ref))),
                               algorithm="kd_tree" if Y_ref.shape[1] <= 3 else "brute")
    clf.fit(Y_ref, np.asarray(labels_ref).reshape(-1))
    correct = 0
    for start in range(0, len(Y_new), 100000):
        correct += int(np.sum(clf.predict(Y_new[start:start + 100000]) == labels_new[start:start + 100000]))
    return correct / len(labels_new)


def map_metrics(X: np.ndarray, Y: np.ndarray, labels: np.ndarray, kl: float,
                feature_acc: float | None = None,
                trust_ref: TrustReference | None = None) -> dict:
    """All quality numbers of map ``Y`` of features ``X``.

    Keys are exactly :data:`METRIC_KEYS`; values are floats. Pass
    ``feature_acc`` when the feature-space accuracy is already known and
    ``trust_ref`` when the feature-space half of the trustworthiness is (both
    depend on the rows only, not on t-SNE parameters).
    """
    if feature_acc is None:
        feature_acc = graph_knn_accuracy(X, labels)
    return {
        "kl_divergence": float(kl),
        "knn_acc_map": float(graph_knn_accuracy(Y, labels)),
        "knn_acc_features": float(feature_acc),
        "trustworthiness": float(trustworthiness(X, Y, reference=trust_ref)),
    }
