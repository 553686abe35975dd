"""Aligned maps: a t-SNE map started from given coordinates, and a Procrustes fit onto another map.

Both take arrays and return arrays. :func:`embed_from` runs the same
preprocessing, kNN graph, affinities and two optimisation phases as
:func:`vistsne.embed.tsne.embed_many`, only from ``init`` (rescaled as
openTSNE rescales its own initialisations, so the exaggeration phase behaves
as usual) instead of PCA. :func:`procrustes` fits rotation, reflection and one
uniform scale (and a shift) that carry one map onto another over the same rows.
"""

from __future__ import annotations

import time

import numpy as np

from .params import EmbedParams, resolve

#: openTSNE's scale of an initial layout (std of the first axis).
INIT_STD = 1e-4


def rescale(init: np.ndarray) -> np.ndarray:
    """``init`` centred, with the first axis' std :data:`INIT_STD` (openTSNE's ``initialization.rescale``)."""
    Y = np.array(init, dtype=np.float64, copy=True)
    Y -= Y.mean(axis=0)
    std = float(np.std(Y[:, 0])) or 1.0
    return Y / std * INIT_STD


def procrustes(Y: np.ndarray, target: np.ndarray, *, scale: bool = True) -> tuple[np.ndarray, dict]:
    """``Y`` rotated (or reflected), uniformly scaled and shifted onto ``target`` (same rows, same order).

    The rotation minimises the squared distance between the rows of the two;
    the scale gives ``Y`` the spread of ``target``. Returns the
    moved coordinates (float32) and ``{"rotation", "scale", "reflection"}``.
    """
    from scipy.linalg import orthogonal_procrustes

    Y = np.asarray(Y, dtype=np.float64)
    T = np.asarray(target, dtype=np.float64)
    if Y.shape != T.shape:
        raise ValueError(f"the maps have shapes {Y.shape} and {T.shape}")
    mu_y, mu_t = Y.mean(axis=0), T.mean(axis=0)
    A, B = Y - mu_y, T - mu_t
    R, _ = orthogonal_procrustes(A, B)
    # The scale that gives Y the target's spread (not the least-squares one, which shrinks an
    # unrelated map towards its centre): maps of a sequence stay the same size.
    norm = float(np.sqrt(np.sum(A * A)))
    factor = float(np.sqrt(np.sum(B * B)) / norm) if scale and norm > 0 else 1.0
    out = A @ R * factor + mu_t
    return out.astype(np.float32), {"rotation": R.tolist(), "scale": factor,
                                    "reflection": bool(np.linalg.det(R) < 0)}


def spread(Y: np.ndarray) -> float:
    """The RMS distance of a map's points from their centre: the unit displacements are measured in."""
    Y = np.asarray(Y, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((Y - Y.mean(axis=0)) ** 2, axis=1)))) or 1.0


def embed_from(X: np.ndarray, labels: np.ndarray, params: EmbedParams, init: np.ndarray, *,
               n_jobs: int = 1, progress=False, stage: str = "features",
               feature_acc: float | None = None, rescale_init: bool = False):
    """One t-SNE map of ``X`` optimised from ``init`` (N x n_components): an :class:`EmbedResult`.

    ``init`` is used as it is (a converged layout keeps its scale, so the map
    continues from it); ``rescale_init`` shrinks it to openTSNE's initial
    scale first (measured: it moves the map much more, see `benchmarks/compare.py`).
    """
    from .metrics import map_metrics, trust_reference
    from .tsne import (KEEP_NEIGHBORS, PREPROCESS_SEED, EmbedResult, _affinities, _make_bar, _optimize,
                       check_features, knn_graph, preprocess)

    p = params.validate()
    X = np.asarray(X)
    check_features(X, stage)
    labels = np.asarray(labels).reshape(-1)
    init = np.asarray(init)
    if init.shape != (X.shape[0], p.n_components):
        raise ValueError(f"init has shape {init.shape}; the map needs {(X.shape[0], p.n_components)}")
    res = resolve(p, X.shape[0], X.shape[1])
    t0 = time.perf_counter()
    Xp = preprocess(X, res["pca_dims"], PREPROCESS_SEED)
    neighbors, distances = knn_graph(Xp, res["k_neighbors"], res["knn_method"], n_jobs)
    kept = np.ascontiguousarray(neighbors[:, :min(KEEP_NEIGHBORS, neighbors.shape[1])], dtype=np.int32)
    P = _affinities(neighbors, distances, p.perplexity, res["k_neighbors"], n_jobs)
    bar = _make_bar(progress, p.n_iter, f"t-SNE {stage} (aligned: {p.align})")
    try:
        start = rescale(init) if rescale_init else np.array(init, dtype=np.float64)
        coords, kl, n_run = _optimize(start, P, p, res, n_jobs, bar, bool(progress))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    metrics = map_metrics(X, coords, labels, kl, feature_acc=feature_acc, trust_ref=trust_reference(X))
    return EmbedResult(params=p, resolved={**res, "knn_graph_k": int(res["k_neighbors"])}, coords=coords,
                       kl_divergence=kl, n_iter_run=n_run, seconds=seconds, metrics=metrics, neighbors=kept)
