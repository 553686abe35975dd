"""Likely label errors and confusions, read off the feature-space kNN graph.

Arrays in, arrays out. For every row:

* ``disagree``: the share of its k feature-space neighbours whose label
  differs from its own (0: its neighbourhood agrees; 1: none of it does);
* ``majority``: the most common label among those neighbours (ties: the
  smallest label, as scikit-learn's k-NN vote);
* ``suspect``: the combined score. With the model's predictions it is the
  mean of ``disagree`` and ``1 - p(label)``, where ``p(label)`` is the
  model's softmax score of the row's own label (0 when the label is not among
  its top-5), so that a confident prediction of another class counts as much
  as a neighbourhood of another class. Without predictions it is ``disagree``.

A row that a neighbourhood of another class surrounds, and that the model
confidently calls another class, is the classic mislabelled image (cleanlab's
self-confidence and FiftyOne's mistakenness follow the same two signals).
"""

from __future__ import annotations

import numpy as np


def neighbour_votes(labels: np.ndarray, knn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(disagree float32 (N,), majority int64 (N,))`` from labels and an N x k neighbour index array."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    knn = np.asarray(knn, dtype=np.int64)
    if knn.ndim != 2 or knn.shape[0] != len(labels):
        raise ValueError(f"knn has shape {knn.shape}, expected ({len(labels)}, k)")
    if knn.shape[1] == 0:
        return np.zeros(len(labels), np.float32), labels.copy()
    nl = labels[knn]  # N x k neighbour labels
    disagree = (nl != labels[:, None]).mean(axis=1).astype(np.float32)
    n_classes = int(labels.max()) + 1 if len(labels) else 1
    votes = np.zeros((len(labels), n_classes), dtype=np.int32)
    np.add.at(votes, (np.repeat(np.arange(len(labels)), knn.shape[1]), nl.reshape(-1)), 1)
    return disagree, votes.argmax(axis=1).astype(np.int64)


def label_scores(labels: np.ndarray, pred_top: np.ndarray, score_top: np.ndarray) -> np.ndarray:
    """The model's softmax score of each row's own label (0 when it is not among the stored top-k)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1, 1)
    hit = np.asarray(pred_top) == labels
    return np.where(hit, np.asarray(score_top, dtype=np.float32), 0.0).sum(axis=1).astype(np.float32)


def suspect_scores(disagree: np.ndarray, labels: np.ndarray, pred_top: np.ndarray | None = None,
                   score_top: np.ndarray | None = None) -> np.ndarray:
    """The combined score in [0, 1] (see the module docs)."""
    disagree = np.asarray(disagree, dtype=np.float32)
    if pred_top is None or score_top is None:
        return disagree.copy()
    return (0.5 * disagree + 0.5 * (1.0 - label_scores(labels, pred_top, score_top))).astype(np.float32)


def confusion(labels: np.ndarray, majority: np.ndarray, n_classes: int) -> np.ndarray:
    """``table[label, neighbour majority]``: how many rows of each class their neighbourhoods call each class.

    It sums to the number of rows; its diagonal holds the rows whose
    neighbourhood agrees with their label.
    """
    table = np.zeros((int(n_classes), int(n_classes)), dtype=np.int64)
    np.add.at(table, (np.asarray(labels, dtype=np.int64), np.asarray(majority, dtype=np.int64)), 1)
    return table


def ranking(suspect: np.ndarray, disagree: np.ndarray) -> np.ndarray:
    """Row positions, most suspect first (ties: higher neighbour disagreement, then position)."""
    suspect = np.asarray(suspect)
    return np.lexsort((np.arange(len(suspect)), -np.asarray(disagree), -suspect))


def precision_at_k(order: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Share of the first ``k`` rows of ``order`` that ``truth`` marks (k: the number marked)."""
    truth = np.asarray(truth, dtype=bool)
    k = int(truth.sum()) if k is None else int(k)
    if k <= 0:
        return float("nan")
    return float(truth[np.asarray(order)[:k]].mean())
