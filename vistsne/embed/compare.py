"""Numbers that compare two feature spaces (and their maps) over the same rows.

Arrays in, numbers out. Row ``i`` of one array is the same sample as row ``i``
of the other. Neighbour sets come from :func:`vistsne.embed.neighbors.exact_knn`.

- :func:`neighbour_overlap`: mean Jaccard of each row's ``k`` nearest
  neighbours in the two spaces (1 = the same neighbourhoods), and
  :func:`permuted_overlap`, the same number for a row-permuted pairing: what
  "no relation" scores (about k / N).
- :func:`linear_cka`: linear centred kernel alignment (1 = the same up to an
  orthogonal map and a uniform scale, 0 = unrelated).
- :func:`class_changes`: per-class leave-one-out 10-NN accuracy and its change.
- :func:`most_changed`: the rows whose neighbourhoods changed most.
- :func:`displacement`: mean distance between two aligned maps' points, over
  the reference map's spread.
"""

from __future__ import annotations

import numpy as np

from .neighbors import exact_knn

K = 10


def knn_sets(X: np.ndarray, k: int = K, n_jobs: int = 1) -> np.ndarray:
    """Each row's ``k`` nearest other rows (N x k, int64)."""
    n = np.asarray(X).shape[0]
    return exact_knn(np.asarray(X), min(int(k), n - 1), n_jobs=n_jobs)[0]


def row_jaccard(na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Jaccard index of row ``i``'s neighbour sets ``na[i]`` and ``nb[i]`` (N floats)."""
    n = len(na)
    eq = (na[:, :, None] == nb[:, None, :]).any(axis=2).sum(axis=1)
    return eq / (na.shape[1] + nb.shape[1] - eq) if n else np.zeros(0)


def neighbour_overlap(na: np.ndarray, nb: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean Jaccard, per-row Jaccard) of two kNN graphs over the same rows."""
    per_row = row_jaccard(np.asarray(na), np.asarray(nb))
    return float(per_row.mean()), per_row


def permuted_overlap(na: np.ndarray, nb: np.ndarray, seed: int = 0) -> float:
    """The mean Jaccard when row ``i`` of A is paired with a random other row of B: the null.

    With B's rows permuted by ``perm``, row ``i`` of the permuted B is B's row
    ``perm[i]``, whose neighbours (in permuted numbering) are ``inv[nb[perm[i]]]``.
    """
    rng = np.random.default_rng(seed)
    n = len(na)
    perm = rng.permutation(n)
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    return float(row_jaccard(np.asarray(na), inv[np.asarray(nb)[perm]]).mean())


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of two feature matrices over the same rows (Kornblith et al. 2019), in [0, 1]."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    cross = np.linalg.norm(Y.T @ X, "fro") ** 2
    den = np.linalg.norm(X.T @ X, "fro") * np.linalg.norm(Y.T @ Y, "fro")
    return float(cross / den) if den > 0 else float("nan")


def loo_correct(labels: np.ndarray, knn: np.ndarray) -> np.ndarray:
    """Whether each row's label wins the vote of its neighbours (ties: smallest label)."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    n_classes = int(labels.max()) + 1
    votes = np.zeros((len(labels), n_classes), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(labels)), knn.shape[1]), labels[knn].reshape(-1)), 1)
    return votes.argmax(axis=1) == labels


def class_changes(labels: np.ndarray, knn_a: np.ndarray, knn_b: np.ndarray,
                  class_names: list[str], top: int = 3) -> dict:
    """Per-class 10-NN (leave-one-out) accuracy in A and B; the classes that gained and lost most."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    ca, cb = loo_correct(labels, knn_a), loo_correct(labels, knn_b)
    rows = []
    for c in np.unique(labels).tolist():
        m = labels == c
        rows.append({"class": class_names[c] if c < len(class_names) else str(c), "rows": int(m.sum()),
                     "acc_a": round(float(ca[m].mean()), 4), "acc_b": round(float(cb[m].mean()), 4),
                     "change": round(float(cb[m].mean() - ca[m].mean()), 4)})
    by = sorted(rows, key=lambda r: r["change"])
    return {"per_class": rows, "gained": [r for r in reversed(by) if r["change"] > 0][:top],
            "lost": [r for r in by if r["change"] < 0][:top]}


def most_changed(per_row_jaccard: np.ndarray, top: int = 10) -> np.ndarray:
    """Positions of the ``top`` rows whose neighbourhoods changed most (lowest Jaccard; ties by position)."""
    j = np.asarray(per_row_jaccard)
    return np.lexsort((np.arange(len(j)), j))[:max(0, int(top))]


def displacement(Ya: np.ndarray, Yb: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Mean distance between the points of two aligned maps, over the spread of ``reference`` (default ``Yb``)."""
    from .align import spread

    Ya, Yb = np.asarray(Ya, dtype=np.float64), np.asarray(Yb, dtype=np.float64)
    ref = Yb if reference is None else reference
    return float(np.mean(np.linalg.norm(Ya - Yb, axis=1)) / spread(ref))


def pair_numbers(Xa: np.ndarray, Xb: np.ndarray, labels: np.ndarray, class_names: list[str], *,
                 Ya: np.ndarray | None = None, Yb: np.ndarray | None = None, k: int = K, top: int = 10,
                 n_jobs: int = 1, seed: int = 0) -> dict:
    """Every number of one pair (A then B) over the same rows; positions index the rows."""
    from .metrics import graph_knn_accuracy

    na, nb = knn_sets(Xa, k, n_jobs), knn_sets(Xb, k, n_jobs)
    overlap, per_row = neighbour_overlap(na, nb)
    out = {
        "overlap": round(overlap, 4),
        "overlap_null": round(permuted_overlap(na, nb, seed), 4),
        "cka": round(linear_cka(Xa, Xb), 4),
        "knn_acc_features_a": round(graph_knn_accuracy(Xa, labels), 4),
        "knn_acc_features_b": round(graph_knn_accuracy(Xb, labels), 4),
        "classes": class_changes(labels, na, nb, class_names),
        "changed_positions": most_changed(per_row, top).tolist(),
        "changed_jaccard": [round(float(per_row[i]), 4) for i in most_changed(per_row, top)],
    }
    if Ya is not None and Yb is not None:
        out["knn_acc_map_a"] = round(graph_knn_accuracy(Ya, labels), 4)
        out["knn_acc_map_b"] = round(graph_knn_accuracy(Yb, labels), 4)
        out["displacement"] = round(displacement(Ya, Yb), 4)
    return out
