"""The t-SNE engine: many maps of one feature array, sharing what they can.

:func:`embed_many` runs a list of :class:`~vistsne.embed.params.EmbedParams`
on one array and yields an :class:`EmbedResult` for each map. Work that does
not depend on a swept parameter is done once per call:

* feature preprocessing (PCA, when resolved) once per distinct ``pca_dims``;
* one kNN graph per preprocessed array, wide enough for the largest
  perplexity; each perplexity takes the affinities of its own ``3 * perplexity``
  nearest neighbours from it (what openTSNE's ``set_perplexity`` does);
* PCA initialisation once per (preprocessed array, components, seed), spectral
  once per (affinities, components, seed);
* the feature-space k-NN accuracy once (read off the exact graph when the graph
  is exact and in feature space) and the feature-space half of the
  trustworthiness once.

With ``params.subsample`` (``--subsample N``) a group's map is made of a
class-balanced sample of N rows (:func:`balanced_subsample`; PCA fitted on it),
and every other row is placed into it by openTSNE's ``TSNEEmbedding.transform``
(openTSNE's recipe for large data), in chunks of :data:`PLACE_ROWS` rows.

Memory: no float64 copy of the N x D features is made anywhere (preprocessing,
PCA, the neighbour search and the metrics keep float32); :func:`check_memory`
compares an estimate of the peak with the memory available before any work.
Each phase that runs inside a library call (PCA, kNN graph, affinities) writes
a start line with an estimate from N and an end line with its time; the
optimisation and the placement have bars with an ETA.

The maps themselves run side by side: with ``n_jobs`` cores and several maps,
``min(maps, n_jobs)`` optimisations run at once in threads (openTSNE's
gradients release the GIL), each with ``n_jobs // that`` threads of its own.
One map uses all ``n_jobs`` threads.

``params.seed`` drives the initialisation and the optimisation. Preprocessing
PCA and the approximate kNN index use the fixed seeds :data:`PREPROCESS_SEED`
and :data:`KNN_SEED`, so a seed sweep shares one graph and a map depends on its
own params and the data only. FFT maps are the same for any thread count;
Barnes-Hut maps for the same thread count (openTSNE sums its forces in thread
order), so a map run alone and the same map run inside a sweep may differ in
the last digits.

openTSNE and scikit-learn are imported inside the functions so that importing
this module stays cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vistsne.embed.neighbors import KnnIndex, knn_accuracy_from_graph
from vistsne.embed.metrics import graph_knn_accuracy, map_metrics, placed_knn_accuracy, trust_reference
from vistsne.embed.params import SUBSAMPLE_SEED, EmbedParams, check_data, memory_estimate, resolve
from vistsne.errors import FeatureError, ParamError, ResourceError

#: Seed of the preprocessing PCA inside :func:`embed_many`.
PREPROCESS_SEED = 0
#: Seed of the (approximate) kNN index inside :func:`embed_many`.
KNN_SEED = 0
#: The exact kNN graph is at least this wide, so that the 10-NN feature
#: accuracy can be read off it even for small perplexities.
MIN_GRAPH_K = 30
#: The KL divergence is checked for progress every this many iterations.
CHECK_EVERY = 50
#: With a progress bar, the bar moves every this many iterations.
PROGRESS_EVERY = 10
#: The FFT gradient's boxes are sized again from the map's span every this many iterations
#: (a multiple of :data:`CHECK_EVERY` and :data:`PROGRESS_EVERY`; see ``FFT_MAX_BOXES``).
GRID_EVERY = 50
#: Neighbours per row kept from the kNN graph for later use (suspects, the page's pinned neighbours).
KEEP_NEIGHBORS = 10

#: Rows checked for NaN/inf at a time (keeps the mask small on big arrays).
_CHECK_ROWS = 8192
#: Rows projected by the preprocessing PCA at a time (bounds its centred temporary).
PCA_ROWS = 65536
#: Past this many rows the feature-space 10-NN accuracy (when not read off an exact graph of
#: the features) is estimated on a fixed random sample of query rows, each searched against every
#: row: an exact search of all rows in full dimension would cost N^2 D (minutes at 70,000 rows of
#: 512 dims). The queries: this many at most, fewer as N x D grows (FEATURE_ACC_BUDGET multiply-adds),
#: FEATURE_ACC_MIN_ROWS at least.
FEATURE_ACC_MAX_ROWS = 10000
FEATURE_ACC_MIN_ROWS = 2000
FEATURE_ACC_BUDGET = 2.5e11
#: Rows placed by one ``transform`` call of a ``--subsample`` map (the bar moves per chunk).
PLACE_ROWS = 50000
#: openTSNE ``transform`` settings of the placement (its defaults: perplexity 5, 250 iterations).
PLACE_PERPLEXITY = 5.0
PLACE_N_ITER = 250

#: Rough costs on one core here, for the phase lines' estimates (`benchmarks/scale_embed.py`):
#: exact search multiply-adds a second, HNSW and Annoy seconds per row and neighbour (50 dims; at
#: 50,000 rows, k 90, 2 threads: 12.2 s and 26.2 s), affinities seconds per row and neighbour,
#: PCA multiply-adds a second.
EST_EXACT_MADDS_PER_S = 5e9
EST_HNSW_S_PER_ROW_K = 5.4e-6
EST_ANNOY_S_PER_ROW_K = 1.16e-5
EST_AFFINITY_S_PER_ROW_K = 6e-7
EST_PCA_MADDS_PER_S = 3e9

ProgressFactory = Callable[[int, str], Any]


def check_features(X: np.ndarray, stage: str) -> None:
    """Raise :class:`FeatureError` unless ``X`` is a 2-D array of finite numbers."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise FeatureError(f"the features of stage {stage!r} have shape {X.shape}, "
                           "not (rows, dims)", f"re-extract stage {stage!r}")
    if not np.issubdtype(X.dtype, np.number):
        raise FeatureError(f"the features of stage {stage!r} have dtype {X.dtype}, "
                           "not numbers", f"re-extract stage {stage!r}")
    if np.issubdtype(X.dtype, np.integer):
        return
    bad_rows = sum(int(np.count_nonzero(~np.isfinite(X[i:i + _CHECK_ROWS]).all(axis=1)))
                   for i in range(0, X.shape[0], _CHECK_ROWS))
    if bad_rows:
        raise FeatureError(
            f"{bad_rows} of {X.shape[0]} rows of the features of stage {stage!r} "
            "hold NaN or inf",
            f"re-extract stage {stage!r} (check the model, checkpoint and images)")


def preprocess(X: np.ndarray, pca_dims_resolved: int, seed: int = 0,
               fit_rows: np.ndarray | None = None) -> np.ndarray:
    """Features ready for the kNN search, in their own precision: float32 (float16 and
    integers become float32; float64 stays float64), reduced by PCA when dims > 0.

    No float64 copy is made: PCA runs in the input's dtype, fitted on ``fit_rows``
    (default: every row) and projecting :data:`PCA_ROWS` rows at a time. Without
    PCA a contiguous float32 input is returned as it is. Deterministic for a given ``seed``.
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    dims = int(pca_dims_resolved)
    if dims <= 0:
        return np.ascontiguousarray(X)
    from sklearn.decomposition import PCA

    fit = X if fit_rows is None else X[np.asarray(fit_rows)]
    dims = min(dims, fit.shape[0], fit.shape[1])
    pca = PCA(n_components=dims, random_state=int(seed)).fit(fit)
    del fit
    out = np.empty((X.shape[0], dims), dtype=X.dtype)
    for start in range(0, X.shape[0], PCA_ROWS):
        out[start:start + PCA_ROWS] = pca.transform(X[start:start + PCA_ROWS])
    return out


def balanced_subsample(labels: np.ndarray, n: int, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """``n`` row positions, sorted, as evenly spread over the classes as they allow, drawn with ``seed``.

    Each class gets ``n // classes`` rows (one more for the first ``n % classes`` classes in
    label order); a class with fewer rows gives all of them and the rest go to the others.
    """
    labels = np.asarray(labels).reshape(-1)
    n = int(n)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(int(seed))
    classes, codes = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(codes == c)) for c in range(len(classes))]
    counts = np.array([len(m) for m in members])
    # the largest per-class quota t with sum(min(count, t)) <= n; the rest, one each, to the
    # classes that have more, in label order
    lo, hi = 0, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.minimum(counts, mid).sum()) <= n:
            lo = mid
        else:
            hi = mid - 1
    take = np.minimum(counts, lo)
    extra = n - int(take.sum())
    for c in np.flatnonzero(counts > lo)[:extra]:
        take[c] += 1
    return np.sort(np.concatenate([m[:t] for m, t in zip(members, take)]))


def check_memory(params_list: list[EmbedParams], n: int, d: int, itemsize: int, n_jobs: int) -> None:
    """Raise :class:`ResourceError` when the estimated peak of these maps exceeds the memory available.

    The estimate (:func:`~vistsne.embed.params.memory_estimate`) counts the features,
    their PCA, the kNN graph, the affinities and the optimisation at this N and
    width; the line names it, what is available, and the fixes.
    """
    from vistsne.resources import available_memory

    have = available_memory()
    if have is None:
        return
    at_once = schedule(len(params_list), n_jobs)[0]
    worst = max(params_list, key=lambda p: memory_estimate(p, n, d, itemsize, at_once)["total"])
    need = memory_estimate(worst, n, d, itemsize, at_once)
    if need["total"] <= have:
        return
    # the largest class-balanced subsample whose map (and the placement of the rest) fits
    fit = 0
    lo, hi = 4, n
    while lo <= hi:
        mid = (lo + hi) // 2
        if memory_estimate(_with_subsample(worst, mid, n), n, d, itemsize, at_once)["total"] <= have:
            fit, lo = mid, mid + 1
        else:
            hi = mid - 1
    gb = 1e9
    parts = ", ".join(f"{k} {v / gb:.1f}" for k, v in need.items() if k != "total" and v >= 0.05 * gb)
    fixes = []
    if fit >= 4:
        fixes.append(f"--subsample {_round_down(fit)} (embed a class-balanced sample, place the rest)")
    if d > 50 and worst.pca_dims == 0 or (worst.pca_dims not in ("auto", 0) and int(worst.pca_dims) > 50):
        fixes.append("--pca-dims 50")
    fixes.append("fewer rows (--max-num-samples)")
    raise ResourceError(f"embedding {n} rows x {d} dims needs about {need['total'] / gb:.1f} GB of memory "
                        f"({parts} GB), but {have / gb:.1f} GB is available",
                        "use " + " or ".join(fixes))


def _with_subsample(p: EmbedParams, m: int, n: int) -> EmbedParams:
    from dataclasses import replace

    return replace(p, subsample=min(int(m), int(n)))


def _round_down(m: int) -> int:
    """``m`` rounded down to two significant digits (a number to type)."""
    if m < 100:
        return int(m)
    scale = 10 ** (len(str(int(m))) - 2)
    return int(m) // scale * scale


@dataclass
class EmbedResult:
    """One finished map and what it took."""

    params: EmbedParams
    #: :func:`~vistsne.embed.params.resolve` output plus ``knn_graph_k``
    #: (the size of the shared kNN graph the affinities were taken from).
    resolved: dict
    #: float32, N x n_components.
    coords: np.ndarray
    kl_divergence: float
    #: Iterations run over both phases (fewer than ``n_iter`` when stopped early).
    n_iter_run: int
    #: Wall time of this map's own work (initialisation and optimisation).
    seconds: float
    #: :func:`~vistsne.embed.metrics.map_metrics` output.
    metrics: dict = field(default_factory=dict)
    #: int32 N x k (k <= :data:`KEEP_NEIGHBORS`): each row's nearest rows in the kNN graph the
    #: affinities came from (feature space, or its PCA), nearest first; shared by the maps of a call.
    neighbors: np.ndarray | None = field(default=None, repr=False)


@dataclass
class SweepStats:
    """Counts of the shared work done by :func:`embed_many` (for tests and logs)."""

    knn_builds: int = 0
    affinity_builds: int = 0
    pca_inits: int = 0
    preprocess_runs: int = 0
    #: Feature-space k-NN accuracies computed (0 when passed in).
    feature_acc_runs: int = 0
    #: The most maps that ran at once, and the openTSNE threads each had.
    max_parallel: int = 0
    threads_per_map: int = 0


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _make_bar(progress: bool | ProgressFactory | None, total: int, desc: str, unit: str = "it") -> Any:
    """A progress bar for one map: ``progress`` is a flag or a ``(total, desc)`` factory."""
    if progress is None or progress is False:
        return _NullBar()
    if progress is True:
        from vistsne.progress import Progress

        return Progress(total, desc, unit=unit)
    if callable(progress):
        return progress(total, desc)
    raise TypeError(f"progress must be a bool or a (total, desc) factory, not {progress!r}")


class _PhaseMonitor:
    """openTSNE callback for one phase: moves the bar, stops when stuck.

    The phase stops when the KL divergence, checked every :data:`CHECK_EVERY`
    iterations, has not improved for ``patience`` iterations (0 = never).
    """

    def __init__(self, patience: int, n_iter: int, bar: Any, stop: threading.Event | None = None):
        self.stop = stop
        self.patience = int(patience)
        self.n_iter = int(n_iter)
        self.bar = bar
        self.best_error = np.inf
        self.best_iter = 0
        self.reported = 0
        self.stopped_at: int | None = None

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        self.bar.update(iteration - self.reported)
        self.reported = iteration
        if self.stop is not None and self.stop.is_set():  # the caller gave up on this map
            self.stopped_at = iteration
            return True
        # Never stop on the phase's last iteration: it ends there anyway, and
        # stopping would only skip its final update.
        if self.patience <= 0 or iteration % CHECK_EVERY or iteration >= self.n_iter:
            return False
        if error < self.best_error:
            self.best_error, self.best_iter = float(error), iteration
            return False
        if iteration - self.best_iter >= self.patience:
            self.stopped_at = iteration
            return True
        return False

    def offset(self, done: int):
        """This monitor as the callback of a call that starts ``done`` iterations into the phase."""
        return lambda iteration, error, embedding: self(done + iteration, error, embedding)

    def finish(self, n_iter: int) -> int:
        """Iterations this phase ran; moves the bar to the end of the phase."""
        ran = self.stopped_at if self.stopped_at is not None else n_iter
        self.bar.update(ran - self.reported)
        self.reported = ran
        return ran


def _initial_positions(kind: str, X: np.ndarray, P: Any, n_components: int,
                       seed: int) -> np.ndarray:
    """openTSNE's pca / spectral / random initialisation (std 1e-4)."""
    from openTSNE import initialization

    if kind == "pca":
        return initialization.pca(X, n_components=n_components, random_state=seed)
    if kind == "spectral":
        return initialization.spectral(P, n_components=n_components, random_state=seed)
    return initialization.random(X.shape[0], n_components=n_components, random_state=seed)


def _optimize(init: np.ndarray, P: Any, params: EmbedParams, resolved: dict, n_jobs: int,
              bar: Any, track: bool,
              stop: threading.Event | None = None, own: bool = False) -> tuple[np.ndarray, float, int]:
    """Run both phases; return (coords float32, final KL divergence, iterations run).

    Setting ``stop`` ends the optimisation at its next check (the result is
    then incomplete and must be dropped). ``own``: no other map uses ``P``.
    """
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PrecomputedAffinities

    # A map whose P other maps share gets its own copy: openTSNE scales P in
    # place for the exaggeration and back, which must not touch the shared matrix.
    affinities = PrecomputedAffinities(P if own else P.copy(), normalize=False)
    embedding = TSNEEmbedding(
        np.array(init, dtype=np.float64, copy=True), affinities,
        negative_gradient_method=resolved["method"], n_jobs=n_jobs,
        random_state=params.seed, theta=params.theta,
    )
    # maps resolved before ENGINE_VERSION 4 have one learning rate for both phases
    after = resolved.get("learning_rate_after", resolved["learning_rate"])
    phases = [
        (params.early_exaggeration_iter, params.early_exaggeration, params.initial_momentum,
         resolved["learning_rate"]),
        (params.n_iter - params.early_exaggeration_iter, 1.0, params.final_momentum, after),
    ]
    every = PROGRESS_EVERY if track else CHECK_EVERY
    max_boxes = resolved.get("fft_max_boxes")  # absent: BH, or a map resolved before the grid was capped
    n_run = 0
    for n_iter, exaggeration, momentum, learning_rate in phases:
        if n_iter <= 0:
            continue
        monitor = _PhaseMonitor(params.n_iter_without_progress, n_iter, bar, stop)
        use_callback = track or params.n_iter_without_progress > 0 or stop is not None
        done = 0
        while done < n_iter and monitor.stopped_at is None:
            # one call per GRID_EVERY iterations when the grid is capped: openTSNE keeps its gains and
            # momentum between calls, so only the box width changes from one call to the next
            chunk = n_iter - done if not max_boxes else min(GRID_EVERY, n_iter - done)
            extra = {"ints_in_interval": fft_interval(embedding, max_boxes)} if max_boxes else {}
            embedding = embedding.optimize(
                n_iter=chunk, exaggeration=exaggeration, momentum=momentum,
                learning_rate=learning_rate, inplace=True,
                callbacks=[monitor.offset(done)] if use_callback else None, callbacks_every_iters=every,
                **extra,
            )
            done += chunk
        n_run += monitor.finish(n_iter)
    # openTSNE evaluates the KL exactly at the end of a phase, and at a stop
    # the embedding is the one the KL was evaluated on, so this is exact.
    kl = float(embedding.kl_divergence)
    return np.array(embedding.view(np.ndarray), dtype=np.float32), kl, n_run


def fft_interval(embedding: np.ndarray, max_boxes: int) -> float:
    """openTSNE's ``ints_in_interval`` for ``embedding``: 1 (its default, a box per unit of span)
    while the span needs at most ``max_boxes`` boxes a side, else the width that gives ``max_boxes``."""
    Y = np.asarray(embedding)
    span = float(np.max(Y.max(axis=0) - Y.min(axis=0))) if len(Y) else 0.0
    return max(1.0, span / float(max_boxes))


def _validate_all(X: np.ndarray, labels: np.ndarray, params_list: Iterable[EmbedParams],
                  stage: str) -> tuple[list[EmbedParams], list[dict]]:
    """Check data and every params before any heavy work; return params and resolved."""
    check_features(X, stage)
    if labels.shape[0] != X.shape[0]:
        raise FeatureError(f"the features of stage {stage!r} have {X.shape[0]} rows but there "
                           f"are {labels.shape[0]} labels", f"re-extract stage {stage!r}")
    params_list = [p.validate() for p in params_list]
    if not params_list:
        raise ParamError("no t-SNE parameters to run", "give at least one set of parameters")
    n, d = X.shape
    n_classes = len(np.unique(labels))
    resolved = []
    for p in params_list:
        check_data(p, n, n_classes)
        r = resolve(p, n, d)
        dims = r["pca_dims"] or d
        if p.init == "pca" and p.n_components > min(dims, n):
            raise ParamError(f"init pca needs at least {p.n_components} feature dimensions, "
                             f"the features have {dims}", "use --init spectral or --init random")
        resolved.append(r)
    return params_list, resolved


def _check_memory_for(X: np.ndarray, params_list: list[EmbedParams], n_jobs: int) -> None:
    n, d = X.shape
    check_memory(params_list, n, d, X.dtype.itemsize, n_jobs)


def embed_many(X: np.ndarray, labels: np.ndarray, params_list: Iterable[EmbedParams], *,
               n_jobs: int = 1, progress: bool | ProgressFactory | None = True,
               stats: SweepStats | None = None, stage: str = "features",
               feature_acc: float | None = None) -> Iterator[EmbedResult]:
    """Run every params on ``X`` and yield each :class:`EmbedResult` when it is done.

    The data and all params are checked when this is called, before any work
    and before the first result is asked for (errors raise here, not on the
    first ``next``). Maps are run grouped by shared work (preprocessing, then
    perplexity from the largest down, then input order), so results may come in
    a different order than ``params_list``; each carries its own params.

    ``n_jobs``: cores to use; several maps run side by side (see the module
    docs). ``progress``: True shows a bar on stderr (one per map, or one for
    maps that run side by side), False none, or pass a ``(total, desc)``
    factory returning an object with ``update(n)`` and ``close()`` (e.g.
    ``functools.partial(vistsne.progress.progress, enabled=...)``). ``stats``
    (optional) counts the shared work done. ``stage`` names the features in
    error messages. ``feature_acc``: the feature-space 10-NN accuracy of these
    rows when already known (it does not depend on t-SNE parameters). The same
    inputs, seed and ``n_jobs`` give the same coordinates while the kNN graph is
    exact; hnswlib's graph is reproducible with ``n_jobs=1`` only (its index
    built on several threads varies from run to run).
    """
    X = np.asarray(X)
    labels = np.asarray(labels).reshape(-1)
    params_list, resolved = _validate_all(X, labels, params_list, stage)
    stats = stats if stats is not None else SweepStats()
    n_jobs = max(1, int(n_jobs))
    _check_memory_for(X, params_list, n_jobs)
    return _run_all(X, labels, params_list, resolved, n_jobs, progress, stats, feature_acc, stage)


def describe(p: EmbedParams, params_list: list[EmbedParams]) -> str:
    """``p``'s values of the parameters that differ across ``params_list`` (perplexity when none do)."""
    fields = [f for f in ("perplexity", "seed", "n_iter", "early_exaggeration", "learning_rate", "init",
                          "n_components", "pca_dims", "method")
              if len({getattr(q, f) for q in params_list}) > 1] or ["perplexity"]
    return ", ".join(f"{f.replace('_', ' ')} {getattr(p, f):g}" if isinstance(getattr(p, f), (int, float))
                     and not isinstance(getattr(p, f), bool) else f"{f.replace('_', ' ')} {getattr(p, f)}"
                     for f in fields)


def knn_graph(Xp: np.ndarray, k: int, method: str, n_jobs: int, with_index: bool = False,
              compact: bool = False) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, KnnIndex]:
    """The ``k`` nearest neighbours of every row: exact (brute force), hnswlib's HNSW or Annoy.

    ``with_index``: also return the :class:`~vistsne.embed.neighbors.KnnIndex`, to query new rows.
    ``compact``: see :meth:`~vistsne.embed.neighbors.KnnIndex.graph`.
    """
    index = KnnIndex(Xp, method, n_jobs=n_jobs, seed=KNN_SEED)
    neighbors, distances = index.graph(k, compact=compact)
    return (neighbors, distances, index) if with_index else (neighbors, distances)


def _phase(progress: Any, desc: str, estimate_s: float | None):
    from vistsne.progress import Phase

    return Phase(desc, estimate_s, enabled=progress is True)


def _knn_estimate(n: int, dims: int, k: int, method: str, n_jobs: int) -> float:
    if method == "exact":
        return n * n * dims / EST_EXACT_MADDS_PER_S / n_jobs
    per = EST_HNSW_S_PER_ROW_K if method == "hnsw" else EST_ANNOY_S_PER_ROW_K
    return n * k * per * max(1.0, dims / 50) / n_jobs


def _affinities(neighbors: np.ndarray, distances: np.ndarray, perplexity: float, k: int,
                n_jobs: int):
    """openTSNE's symmetric perplexity-based P from the first ``k`` neighbours of the graph.

    The same matrix, bit for bit, as ``openTSNE.affinity.joint_probabilities_nn(...,
    symmetrize=True)``: each row's conditional probabilities by openTSNE's own perplexity search,
    then ``(P + P.T) / 2`` normalised to sum 1. Built with less memory: the conditional matrix is
    dropped before the halving, which runs in place (openTSNE's ``(P + P.T) / 2`` holds the
    conditional P, the sum and the halved copy at once; with the compact graph this brought an
    embed of 1,000,000 rows from 8,520 to 6,519 MB at its peak, ``benchmarks/peak_memory.py``).
    """
    import scipy.sparse as sp
    from openTSNE import _tsne

    n, k = neighbors.shape[0], int(k)
    conditional = np.asarray(_tsne.compute_gaussian_perplexity(
        np.array(distances[:, :k], dtype=float), np.array([float(perplexity)], dtype=float),
        num_threads=max(1, int(n_jobs))))
    P = sp.csr_matrix((conditional.ravel(), neighbors[:, :k].ravel(),
                       range(0, n * k + 1, k)), shape=(n, n))
    del conditional
    P = P + P.T
    P.data *= 0.5  # exact, as openTSNE's / 2
    P /= np.sum(P)
    return P


def _reference_affinities(neighbors: np.ndarray, distances: np.ndarray, index: KnnIndex, perplexity: float,
                          k: int, n_jobs: int):
    """openTSNE's ``PerplexityBasedNN`` over the graph already built (its P is :func:`_affinities`'),
    whose ``to_new`` queries ``index``: what ``TSNEEmbedding.transform`` needs to place new rows."""
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import KNNIndex

    class _BuiltGraph(KNNIndex):
        VALID_METRICS = ["euclidean"]

        def build(self):
            return neighbors[:, :k], distances[:, :k]

        def query(self, query, k_query):
            return index.query(query, k_query)

    graph = _BuiltGraph(index.X, k, metric="euclidean", n_jobs=n_jobs)
    return PerplexityBasedNN(knn_index=graph, perplexity=float(perplexity), symmetrize=True, n_jobs=n_jobs)


def _place(coords_fit: np.ndarray, reference: Any, Xp_all: np.ndarray, fit_rows: np.ndarray, rest: np.ndarray,
           params: EmbedParams, resolved: dict, n_jobs: int, progress: Any, stage: str) -> np.ndarray:
    """Every row's coordinates: the subsample's map, and the other rows placed into it by openTSNE's
    ``TSNEEmbedding.transform`` (:data:`PLACE_ROWS` at a time; the map is centred as transform does)."""
    from openTSNE import TSNEEmbedding

    embedding = TSNEEmbedding(np.array(coords_fit, dtype=np.float64), reference,
                              negative_gradient_method=resolved["method"], n_jobs=n_jobs,
                              random_state=params.seed, theta=params.theta)
    out = np.empty((Xp_all.shape[0], coords_fit.shape[1]), dtype=np.float32)
    bar = _make_bar(progress, len(rest), f"placing {stage} into the map of {len(fit_rows)} rows "
                                         f"(openTSNE transform)", unit="rows")
    try:
        for start in range(0, len(rest), PLACE_ROWS):
            chunk = rest[start:start + PLACE_ROWS]
            placed = embedding.transform(Xp_all[chunk], perplexity=PLACE_PERPLEXITY, n_iter=PLACE_N_ITER)
            out[chunk] = np.asarray(placed)
            bar.update(len(chunk))
    finally:
        bar.close()
    out[fit_rows] = np.asarray(embedding)  # centred by the first transform, as the placed rows are
    return out


def schedule(n_maps: int, n_jobs: int) -> tuple[int, int]:
    """(maps run at once, openTSNE threads per map) for ``n_maps`` maps on ``n_jobs`` cores."""
    at_once = max(1, min(int(n_maps), int(n_jobs)))
    return at_once, max(1, int(n_jobs) // at_once)


class _SharedBar:
    """One bar moved by several maps' threads."""

    def __init__(self, bar: Any):
        self.bar = bar
        self.lock = threading.Lock()

    def update(self, n: int = 1) -> None:
        with self.lock:
            self.bar.update(n)

    def close(self) -> None:
        pass


def _run_all(X: np.ndarray, labels: np.ndarray, params_list: list[EmbedParams],
             resolved: list[dict], n_jobs: int, progress: Any, stats: SweepStats,
             feature_acc: float | None, stage: str = "features") -> Iterator[EmbedResult]:
    """The generator behind :func:`embed_many`, on checked inputs."""
    shared = {"feature_acc": feature_acc, "trust_ref": trust_reference(X)}
    groups: dict[tuple[int, str, int], list[int]] = {}
    for i, r in enumerate(resolved):
        groups.setdefault((r["pca_dims"], r["knn_method"], r.get("subsample", 0)), []).append(i)
    done = 0
    for (pca_dims, knn_method, subsample), members in groups.items():
        yield from _embed_group(X, labels, pca_dims, knn_method, members, params_list, resolved,
                                n_jobs, stats, shared, progress, start=done,
                                total=len(params_list), stage=stage, subsample=subsample)
        done += len(members)


def _feature_accuracy(X: np.ndarray, labels: np.ndarray, graph: np.ndarray | None,
                      stats: SweepStats, n_jobs: int = 1) -> tuple[float, int]:
    """10-NN accuracy in feature space and the rows it was estimated on: off ``graph`` (exact, on X
    itself), or by its own exact search; past :data:`FEATURE_ACC_MAX_ROWS` rows estimated on a fixed
    sample of query rows, each against every row (the same number in expectation)."""
    stats.feature_acc_runs += 1
    if graph is not None:
        return knn_accuracy_from_graph(X, labels, graph), len(X)
    if len(X) > FEATURE_ACC_MAX_ROWS:
        from vistsne.embed.neighbors import sampled_knn_accuracy

        m = int(max(FEATURE_ACC_MIN_ROWS, min(FEATURE_ACC_MAX_ROWS, FEATURE_ACC_BUDGET / (len(X) * X.shape[1]))))
        rows = np.sort(np.random.default_rng(0).choice(len(X), m, replace=False))
        return sampled_knn_accuracy(X, labels, rows, n_jobs=n_jobs), len(rows)
    return graph_knn_accuracy(X, labels), len(X)


def _embed_group(X: np.ndarray, labels: np.ndarray, pca_dims: int, knn_method: str,
                 members: list[int], params_list: list[EmbedParams], resolved: list[dict],
                 n_jobs: int, stats: SweepStats, shared: dict, progress: Any, *, start: int,
                 total: int, stage: str = "features", subsample: int = 0) -> Iterator[EmbedResult]:
    """All maps that share one preprocessed array (and so one kNN graph).

    With ``subsample`` (< N) the maps are made of :func:`balanced_subsample` rows and every
    other row is placed into each map (:func:`_place`).
    """
    n_all, d = X.shape
    fit_rows = balanced_subsample(labels, subsample) if 0 < subsample < n_all else None
    n = n_all if fit_rows is None else len(fit_rows)
    if pca_dims:
        with _phase(progress, f"PCA {stage} ({n_all} rows, {d} -> {pca_dims} dims)",
                    n * d * d / EST_PCA_MADDS_PER_S + n_all * d * pca_dims / EST_PCA_MADDS_PER_S):
            Xp_all = preprocess(X, pca_dims, PREPROCESS_SEED, fit_rows)
    else:
        Xp_all = preprocess(X, pca_dims, PREPROCESS_SEED)
    stats.preprocess_runs += 1
    Xp = Xp_all if fit_rows is None else Xp_all[fit_rows]
    labels_fit = labels if fit_rows is None else labels[fit_rows]
    k_max = max(resolved[i]["k_neighbors"] for i in members)
    # An exact graph of X itself also gives the feature accuracy: make it wide enough.
    graph_is_x = knn_method == "exact" and pca_dims == 0 and fit_rows is None
    want_acc = shared["feature_acc"] is None
    width = min(n - 1, max(k_max, MIN_GRAPH_K)) if (graph_is_x and want_acc) else k_max
    dims = Xp.shape[1]
    with _phase(progress, f"kNN graph {stage} ({knn_method}, {n} rows x {dims} dims, k={width})",
                _knn_estimate(n, dims, width, knn_method, n_jobs)):
        neighbors, distances, index = knn_graph(Xp, width, knn_method, n_jobs, with_index=True, compact=True)
    stats.knn_builds += 1
    if fit_rows is None:
        del index  # only the placement of a subsample's other rows queries it (hnswlib's: 0.4 GB a million rows)
    kept = np.ascontiguousarray(neighbors[:, :min(KEEP_NEIGHBORS, width)], dtype=np.int32)
    if want_acc:
        with _phase(progress, f"feature-space 10-NN accuracy {stage} ({n_all} rows x {d} dims)",
                    None if graph_is_x else min(FEATURE_ACC_BUDGET, n_all * n_all * d) / EST_EXACT_MADDS_PER_S
                    / n_jobs):
            shared["feature_acc"], shared["feature_acc_rows"] = _feature_accuracy(
                X, labels, neighbors if graph_is_x else None, stats, n_jobs)
    feature_acc = shared["feature_acc"]

    # Everything a map needs before it runs: its affinities and initial positions.
    jobs = []
    references: dict[float, Any] = {}
    pca_inits: dict[tuple[int, int], np.ndarray] = {}
    for perplexity in sorted({params_list[i].perplexity for i in members}, reverse=True):
        ours = [i for i in members if params_list[i].perplexity == perplexity]
        k_p = resolved[ours[0]]["k_neighbors"]
        with _phase(progress, f"affinities {stage} (perplexity {perplexity:g}, {n} rows, k={k_p})",
                    n * k_p * EST_AFFINITY_S_PER_ROW_K / max(1, n_jobs)):
            if fit_rows is None:
                P = _affinities(neighbors, distances, perplexity, k_p, n_jobs)
            else:  # openTSNE's own affinity object: its ``to_new`` places the other rows
                references[perplexity] = _reference_affinities(neighbors, distances, index, perplexity, k_p,
                                                               n_jobs)
                P = references[perplexity].P
        stats.affinity_builds += 1
        spectral_inits: dict[tuple[int, int], np.ndarray] = {}
        for i in ours:
            p = params_list[i]
            key = (p.n_components, p.seed)
            if p.init == "pca":
                if key not in pca_inits:
                    pca_inits[key] = _initial_positions("pca", Xp, None, *key)
                    stats.pca_inits += 1
                init = pca_inits[key]
            elif p.init == "spectral":
                if key not in spectral_inits:
                    spectral_inits[key] = _initial_positions("spectral", Xp, P, *key)
                init = spectral_inits[key]
            else:
                init = _initial_positions("random", Xp, None, *key)
            jobs.append((i, P, init))
    del neighbors, distances
    # a P that only one map uses is handed to it as it is (openTSNE scales P in place and back)
    users: dict[int, int] = {}
    for _, P, _ in jobs:
        users[id(P)] = users.get(id(P), 0) + 1
    jobs = [(i, P, init, users[id(P)] == 1) for i, P, init in jobs]

    at_once, threads = schedule(len(jobs), n_jobs)
    stats.max_parallel = max(stats.max_parallel, at_once)
    stats.threads_per_map = threads
    track = progress is not None and progress is not False
    graph_info = {"knn_graph_k": int(width), "knn_acc_features_rows": int(shared.get("feature_acc_rows", n_all))}
    rest = None
    if fit_rows is not None:
        rest = np.setdiff1d(np.arange(n_all), fit_rows)
        # every row's nearest rows of the subsample (global positions): its own graph, the others' query
        knn_all = np.empty((n_all, kept.shape[1]), dtype=np.int32)
        knn_all[fit_rows] = fit_rows[kept]
        with _phase(progress, f"neighbours of the placed rows {stage} ({len(rest)} rows)",
                    (len(rest) * n * dims / EST_EXACT_MADDS_PER_S / n_jobs if knn_method == "exact"
                     else _knn_estimate(len(rest), dims, kept.shape[1], knn_method, n_jobs) / 2)):
            for s0 in range(0, len(rest), PLACE_ROWS):
                chunk = rest[s0:s0 + PLACE_ROWS]
                knn_all[chunk] = fit_rows[index.query(Xp_all[chunk], kept.shape[1])[0]]
        kept = knn_all

    stop = threading.Event()

    def run(job, bar) -> EmbedResult:
        i, P, init, own = job
        p = params_list[i]
        t0 = time.perf_counter()
        coords, kl, n_run = _optimize(init, P, p, resolved[i], threads, bar, track,
                                      stop if at_once > 1 else None, own=own)
        extra = {}
        if fit_rows is not None:
            coords_fit = coords
            coords = _place(coords_fit, references[p.perplexity], Xp_all, fit_rows, rest, p, resolved[i],
                            threads, progress, stage)
            extra = {"knn_acc_subsample": float(graph_knn_accuracy(coords[fit_rows], labels_fit)),
                     "knn_acc_placed": float(placed_knn_accuracy(coords[fit_rows], labels_fit, coords[rest],
                                                                 labels[rest]))}
        seconds = time.perf_counter() - t0
        metrics = map_metrics(X, coords, labels, kl, feature_acc=feature_acc,
                              trust_ref=shared["trust_ref"])
        metrics.update(extra)
        return EmbedResult(params=p, resolved={**resolved[i], **graph_info}, coords=coords,
                           kl_divergence=kl, n_iter_run=n_run, seconds=seconds, metrics=metrics,
                           neighbors=kept)

    if at_once == 1:
        for number, job in enumerate(jobs, start + 1):
            p = params_list[job[0]]
            desc = f"t-SNE {stage} {number}/{total} ({describe(p, params_list)})"
            bar = _make_bar(progress, p.n_iter, desc)
            try:
                result = run(job, bar)
            finally:
                bar.close()
            yield result
        return

    from concurrent.futures import ThreadPoolExecutor

    what = " | ".join(describe(params_list[job[0]], params_list) for job in jobs)
    desc = (f"t-SNE {stage} {start + 1}-{start + len(jobs)}/{total} ({what}; "
            f"{at_once} at a time, {threads} thread{'s' if threads > 1 else ''} each)")
    outer = _make_bar(progress, sum(params_list[j[0]].n_iter for j in jobs), desc)
    bar = _SharedBar(outer)
    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="vistsne-tsne")
    try:
        futures = [pool.submit(run, job, bar) for job in jobs]
        for future in futures:
            yield future.result()
    finally:
        stop.set()  # a no-op when every map is done; else the running ones end at their next check
        pool.shutdown(wait=True, cancel_futures=True)
        outer.close()
