"""Neighbour search: the one module that finds nearest neighbours, and what a graph answers.

:func:`exact_knn` finds every row's ``k`` nearest other rows (euclidean) by a
brute-force search in chunks, so memory stays far below N x N.

On the 512-d features of `make bench` this exact graph gave t-SNE maps a
higher 10-NN accuracy than PCA to 50 dims plus Annoy's approximate graph
(the accuracy of scikit-learn's exact t-SNE, which the reference tool runs),
at about the same cost up to 20,000 rows.

:class:`KnnIndex` is the search behind a map's graph: exact (that search),
hnswlib's HNSW (past the exact budget; chosen by measurement, see
``vistsne.embed.params.APPROX_KNN``) or openTSNE's Annoy, each giving the graph
of its own rows and the neighbours of new rows (``--subsample``'s placement).
Every search runs on the features' own float32 (no float64 copy of an N x D array).

:func:`knn_accuracy_from_graph` turns such a graph into the cross-validated
k-NN accuracy of the labels without another search. :func:`nearest` serves
the metrics (map and feature neighbours); :func:`cv_folds` are the folds both
accuracies use. Nothing here imports the metrics: they depend on this module.
"""

from __future__ import annotations

import numpy as np


def _thread_limit(n_jobs: int):
    """A context that runs BLAS and OpenMP with at most ``n_jobs`` threads."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=max(1, int(n_jobs)))


def exact_knn(X: np.ndarray, k: int, *, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: ``(indices int64, distances float64)``, both N x k.

    Neighbours are sorted by distance. A row is never its own neighbour;
    identical rows are each other's neighbours at distance 0. ``k`` must be in
    [1, N-1]. scikit-learn's brute-force search does the work in chunks (one
    GEMM per chunk; float32 input is upcast chunk by chunk, never as a whole),
    on ``n_jobs`` threads.
    """
    from sklearn.neighbors import NearestNeighbors

    X = _float_rows(X)
    n = X.shape[0]
    k = int(k)
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} needs 1 <= k <= n-1 with n={n}")
    with _thread_limit(n_jobs):
        distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors()
    return np.asarray(indices, dtype=np.int64), np.asarray(distances, dtype=np.float64)


def _float_rows(X: np.ndarray) -> np.ndarray:
    """``X`` as float32 or float64, whichever it is (other dtypes become float32): no float64 copy."""
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    return X


#: hnswlib's build settings (the graph's degree and the build's search width; openTSNE's own HNSW
#: wrapper uses the same) and the least search width of a query (``ef``: at least 2 k).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_MIN = 64
#: Rows queried at once (bounds the (rows, k + 1) result buffers).
QUERY_ROWS = 65536


class KnnIndex:
    """A neighbour search over the rows of ``X``: their own graph, and the neighbours of new rows.

    ``method``: ``"exact"`` (brute force, :func:`exact_knn`), ``"hnsw"`` (hnswlib) or
    ``"annoy"`` (openTSNE's Annoy). Both answers are ``(indices int64, distances float64)``,
    nearest first, euclidean distances; the graph never lists a row as its own neighbour.
    ``seed`` fixes the approximate indices' randomness.
    """

    def __init__(self, X: np.ndarray, method: str, *, n_jobs: int = 1, seed: int = 0):
        self.X = _float_rows(X)
        self.method = str(method)
        self.n_jobs = max(1, int(n_jobs))
        self.seed = int(seed)
        self._index = None
        if self.method not in ("exact", "hnsw", "annoy"):
            raise ValueError(f"unknown kNN method {method!r}")

    def graph(self, k: int, compact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest other rows (``1 <= k <= N - 1``).

        ``compact``: hnswlib's graph comes as int32 indices and float32 distances (the precision
        hnswlib computes in, so no value changes; half the memory: 0.72 GB a million rows at
        k = 90, against 1.44 GB); the other backends' answers are as documented above.
        """
        n, k = self.X.shape[0], int(k)
        if not 1 <= k <= n - 1:
            raise ValueError(f"k={k} needs 1 <= k <= n-1 with n={n}")
        if self.method == "exact":
            return exact_knn(self.X, k, n_jobs=self.n_jobs)
        if self.method == "annoy":
            from openTSNE.nearest_neighbors import Annoy

            self._index = Annoy(self.X, k, metric="euclidean", n_jobs=self.n_jobs, random_state=self.seed)
            idx, dist = self._index.build()
            return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=np.float64)
        index = self._hnsw()
        out_i = np.empty((n, k), dtype=np.int32 if compact and n < 2 ** 31 else np.int64)
        out_d = np.empty((n, k), dtype=np.float32 if compact else np.float64)
        index.set_ef(max(HNSW_EF_MIN, 2 * (k + 1)))
        for start in range(0, n, QUERY_ROWS):
            stop = min(n, start + QUERY_ROWS)
            labels, sq = index.knn_query(self.X[start:stop], k=k + 1, num_threads=self.n_jobs)
            labels = labels.astype(np.int64, copy=False)
            # drop each row itself (where the search found it; else the farthest hit)
            own = labels == np.arange(start, stop)[:, None]
            own[~own.any(axis=1), -1] = True  # hnswlib lists each label once: one True per row
            keep = ~own
            out_i[start:stop] = labels[keep].reshape(-1, k)
            out_d[start:stop] = np.sqrt(np.maximum(sq[keep].reshape(-1, k), 0.0))
        return out_i, out_d

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of ``X`` to each row of ``Q`` (new rows: none of them is excluded)."""
        Q = _float_rows(Q)
        k = int(k)
        if self.method == "exact":
            from sklearn.neighbors import NearestNeighbors

            with _thread_limit(self.n_jobs):
                d, i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(self.X).kneighbors(Q)
            return np.asarray(i, dtype=np.int64), np.asarray(d, dtype=np.float64)
        if self.method == "annoy":
            if self._index is None:
                self.graph(min(k, self.X.shape[0] - 1))
            i, d = self._index.query(Q, k)
            return np.asarray(i, dtype=np.int64), np.asarray(d, dtype=np.float64)
        index = self._hnsw()
        index.set_ef(max(HNSW_EF_MIN, 2 * k))
        out_i = np.empty((len(Q), k), dtype=np.int64)
        out_d = np.empty((len(Q), k), dtype=np.float64)
        for start in range(0, len(Q), QUERY_ROWS):
            stop = min(len(Q), start + QUERY_ROWS)
            labels, sq = index.knn_query(Q[start:stop], k=k, num_threads=self.n_jobs)
            out_i[start:stop] = labels
            out_d[start:stop] = np.sqrt(np.maximum(sq, 0.0))
        return out_i, out_d

    def _hnsw(self):
        if self._index is None:
            import hnswlib

            index = hnswlib.Index(space="l2", dim=int(self.X.shape[1]))
            index.init_index(max_elements=int(self.X.shape[0]), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M,
                             random_seed=self.seed)
            for start in range(0, self.X.shape[0], QUERY_ROWS):  # hnswlib copies each batch as float32
                index.add_items(self.X[start:start + QUERY_ROWS], np.arange(start, min(start + QUERY_ROWS,
                                                                                         self.X.shape[0])),
                                num_threads=self.n_jobs)
            self._index = index
        return self._index


def cv_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
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


def nearest(Y: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows of ``Y``, nearest first (a k-d tree up to 3 dims, else brute force)."""
    from sklearn.neighbors import NearestNeighbors

    algorithm = "kd_tree" if Y.shape[1] <= 3 else "brute"
    return NearestNeighbors(n_neighbors=k, algorithm=algorithm).fit(Y).kneighbors(return_distance=False)


def _fold_ids(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold of every row, as :func:`vistsne.embed.metrics.knn_accuracy` splits them."""
    fold = np.empty(len(labels), dtype=np.int64)
    for f, (_, test) in enumerate(cv_folds(labels, folds, seed)):
        fold[test] = f
    return fold


def knn_accuracy_from_graph(X: np.ndarray, labels: np.ndarray, neighbors: np.ndarray,
                            k: int = 10, folds: int = 5, seed: int = 0) -> float:
    """:func:`~vistsne.embed.metrics.knn_accuracy` of ``X``, read off an exact kNN graph of ``X``.

    For a row in fold f, its k nearest rows outside fold f are the first k
    entries of its (sorted) neighbour list that lie outside f; the vote is a
    plain majority, ties going to the smallest label, as scikit-learn's
    ``KNeighborsClassifier``. The few rows whose list holds fewer than k
    such entries are classified by a direct search. The folds are the same as
    ``knn_accuracy``'s, so the two agree wherever no two distances tie.
    """
    X = np.asarray(X)
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    if n < 2:
        return float("nan")
    _, codes = np.unique(labels, return_inverse=True)
    fold = _fold_ids(codes, folds, seed)
    n_classes = int(codes.max()) + 1
    correct = 0
    short = []
    k_train = {f: max(1, min(int(k), int(np.sum(fold != f)))) for f in np.unique(fold)}
    other = fold[neighbors] != fold[:, None]  # N x K: neighbour outside the row's fold
    rank = np.cumsum(other, axis=1)
    for f, kk in k_train.items():
        rows = np.flatnonzero(fold == f)
        ok = rank[rows, -1] >= kk
        short.extend(rows[~ok].tolist())
        rows = rows[ok]
        if not len(rows):
            continue
        use = other[rows] & (rank[rows] <= kk)
        votes = np.zeros((len(rows), n_classes), dtype=np.int64)
        r_idx, c_idx = np.nonzero(use)
        np.add.at(votes, (r_idx, codes[neighbors[rows][r_idx, c_idx]]), 1)
        correct += int(np.sum(votes.argmax(axis=1) == codes[rows]))
    for i in short:
        train = np.flatnonzero(fold != fold[i])
        kk = k_train[fold[i]]
        d = np.einsum("ij,ij->i", X[train] - X[i], X[train] - X[i], dtype=np.float64)
        near = train[np.lexsort((train, d))[:kk]]
        votes = np.bincount(codes[near], minlength=n_classes)
        correct += int(votes.argmax() == codes[i])
    return correct / n


def sampled_knn_accuracy(X: np.ndarray, labels: np.ndarray, rows: np.ndarray, k: int = 10, folds: int = 5,
                         seed: int = 0, n_jobs: int = 1) -> float:
    """:func:`~vistsne.embed.metrics.knn_accuracy` of ``X`` estimated on the query ``rows`` only.

    Each query row is classified, as in the full cross-validation (same folds, same votes), by its
    ``k`` nearest rows outside its fold among ALL rows (an exact search of the queries against
    every row, float32 as stored): an unbiased estimate of the full accuracy at ``len(rows) / N``
    of its cost. A query whose ``3k`` nearest hold fewer than ``k`` rows outside its fold is
    classified by a direct search.
    """
    from sklearn.neighbors import NearestNeighbors

    X = _float_rows(X)
    labels = np.asarray(labels).reshape(-1)
    rows = np.asarray(rows, dtype=np.int64)
    n = len(labels)
    _, codes = np.unique(labels, return_inverse=True)
    fold = _fold_ids(codes, folds, seed)
    n_classes = int(codes.max()) + 1
    width = min(n - 1, 3 * int(k))
    with _thread_limit(n_jobs):
        idx = NearestNeighbors(n_neighbors=width + 1, algorithm="brute").fit(X).kneighbors(
            X[rows], return_distance=False)
    own = idx == rows[:, None]
    own[~own.any(axis=1), -1] = True
    idx = idx[~own].reshape(len(rows), width)
    correct = 0
    for j, i in enumerate(rows.tolist()):
        kk = max(1, min(int(k), int(np.sum(fold != fold[i]))))
        near = idx[j][fold[idx[j]] != fold[i]][:kk]
        if len(near) < kk:
            train = np.flatnonzero(fold != fold[i])
            d = np.einsum("ij,ij->i", X[train] - X[i], X[train] - X[i], dtype=np.float64)
            near = train[np.lexsort((train, d))[:kk]]
        correct += int(np.bincount(codes[near], minlength=n_classes).argmax() == codes[i])
    return correct / len(rows)
