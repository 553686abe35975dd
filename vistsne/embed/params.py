"""t-SNE parameters: one frozen dataclass, validated in one place.

:class:`EmbedParams` holds what the user asks for. :func:`resolve` derives the
values that depend on the data (learning rate, gradient method, PCA dims, kNN
size) without changing the inputs, so both can be recorded next to a map.
:func:`check_data` holds the checks that need the data's shape.

Only the standard library and :mod:`vistsne.errors` are imported here, so
importing this module stays cheap.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from vistsne.errors import FeatureError, ParamError

#: Below this many rows (1-2 components) Barnes-Hut is used, FFT from here on.
#: Measured by `make bench` (section 8) on real 512-d ResNet features, one thread:
#: FFT/BH time 1.28-1.30 at N=5,000, 1.13-1.14 at 7,000, 0.81-0.87 at 10,000 in two
#: runs; they cross between 8,000 and 8,300.
#: With two threads (a quiet 2-core machine) Barnes-Hut gains 1.8x and FFT nothing,
#: so FFT/BH is 2.14 at 5,000, 1.41 at 10,000 and still 1.21 at 15,000: there the
#: crossing is above 15,000. One constant cannot fit both; this is the one-thread
#: crossing (the setting every bench figure uses). 3 components always use Barnes-Hut.
METHOD_SWITCH_N = 8000

#: With ``pca_dims="auto"``, features wider than this ...
PCA_AUTO_MIN_FEATURES = 100
#: ... are reduced to this many dimensions, unless an exact kNN search over
#: all of them fits :data:`EXACT_KNN_BUDGET`.
PCA_AUTO_DIMS = 50

#: The kNN graph is exact while N * N * dims (the multiply-adds of a
#: brute-force search) stays within this budget, and approximate
#: (:data:`APPROX_KNN`) beyond; ``pca_dims="auto"`` keeps every feature dimension while that search
#: fits it. 2.5e11 is N=20,000 rows of 512 dims or 10,000 of 2,048: about 10 s
#: on one core here. Why: on 512-d ResNet features the maps of an exact graph
#: over all dims have the 10-NN accuracy of scikit-learn's exact t-SNE (`make
#: bench`, N = 2,000-20,000: within 0.002), while PCA to 50 dims costs up to
#: 0.004 there, and on harder features (a less trained checkpoint, N = 2,000)
#: PCA to 50 dims and Annoy each cost about 0.005.
EXACT_KNN_BUDGET = 2.5e11

#: Below this many rows the kNN graph is exact whatever the budget says.
EXACT_KNN_MAX_N = 1000

#: The approximate kNN search past the budget: hnswlib's HNSW graph. Chosen by
#: `python benchmarks/scale_embed.py` on real 512-d features (PCA to 50 dims, 50,000 rows,
#: 2 threads): 12.2 s against Annoy's 26.2 s and faiss's 14.0 s, recall@90 against the exact
#: graph 1.000 (Annoy 0.997), map 10-NN accuracy within 0.001 of the exact graph's on a
#: 20,000-row sample (README, "The kNN backend").
APPROX_KNN = "hnsw"
#: The kNN searches :func:`resolve` may name (``annoy`` only when asked for, by the benchmarks).
KNN_METHODS = ("exact", "hnsw", "annoy")

#: ``--subsample``: the rows of the map's class-balanced sample are drawn with this seed
#: (fixed, so that a seed sweep shares one sample), the rest placed by openTSNE's ``transform``.
SUBSAMPLE_SEED = 0
#: How the rows outside the subsample are placed (recorded in the resolved values).
PLACEMENT = "opentsne-transform"

#: Goes into every embedding key; bumped whenever the engine computes a map
#: differently for the same parameters (2: exact kNN graphs from scikit-learn,
#: affinities from the shared graph; 3: hnswlib instead of Annoy past the exact budget, float32
#: features, PCA and exact search instead of float64; 4: the "auto" learning rate is N after the
#: exaggeration, not N/12 in both phases), so that no stale map is served.
ENGINE_VERSION = 4

#: The FFT gradient's grid: openTSNE lays one interpolation box per unit of the map's span (at least
#: 50 a side), so the grid, and the FFTs over it, grow with the square of the span, and a map's span
#: grows with its rows: past a few tens of thousands of rows the FFTs cost more than everything
#: else. vistsne widens the boxes (openTSNE's ``ints_in_interval``) so that there are at most this
#: many a side, set again every :data:`~vistsne.embed.tsne.GRID_EVERY` iterations from the span;
#: maps that stay narrower are computed exactly as openTSNE does. Chosen by measurement (README,
#: "Scale as measured"). It enters the resolved values, so the key, of every FFT map.
FFT_MAX_BOXES = 250

INITS = ("pca", "spectral", "random")
#: How a map of a compared entry was aligned ("": an ordinary, independent map).
#: chain / reference: optimised from the coordinates of the map ``align_from``,
#: then fitted onto the reference; procrustes: an independent map, only fitted.
ALIGNS = ("", "chain", "reference", "procrustes")
#: Fields left out of :meth:`EmbedParams.to_dict` while they hold their default,
#: so that every existing embedding key stays what it was.
OPTIONAL_FIELDS = {"align": "", "align_from": "", "subsample": 0}
METHODS = ("auto", "fft", "bh")

_MAX_SEED = 2**32 - 1


def _flag(name: str) -> str:
    """The command-line spelling of a field name: ``n_iter`` -> ``--n-iter``."""
    return "--" + name.replace("_", "-")


def _label(name: str) -> str:
    return name.replace("_", "-")


def _fmt(value: Any) -> str:
    """A number as a user would type it: 30.0 -> ``30``, 0.5 -> ``0.5``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """Coerce ``value`` to an int in [minimum, maximum] or raise ParamError."""
    if isinstance(value, bool):
        raise ParamError(f"{_label(name)} must be a whole number, not {value!r}",
                         f"use {_flag(name)} N")
    try:
        if isinstance(value, str):
            value = value.strip()
        as_float = float(value)
        if not as_float.is_integer():
            raise ValueError
        number = int(as_float)
    except (TypeError, ValueError, OverflowError):
        raise ParamError(f"{_label(name)} must be a whole number, not {value!r}",
                         f"use {_flag(name)} N") from None
    if number < minimum or (maximum is not None and number > maximum):
        allowed = f"{minimum}..{maximum}" if maximum is not None else f"{minimum} or more"
        raise ParamError(f"{_label(name)} {number} is out of range",
                         f"use {_flag(name)} {allowed}")
    return number


def _as_float(name: str, value: Any, *, positive: bool = False, minimum: float | None = None,
              below: float | None = None) -> float:
    """Coerce ``value`` to a finite float within the given bounds or raise ParamError."""
    if isinstance(value, bool):
        raise ParamError(f"{_label(name)} must be a number, not {value!r}",
                         f"use {_flag(name)} X")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ParamError(f"{_label(name)} must be a number, not {value!r}",
                         f"use {_flag(name)} X") from None
    if not math.isfinite(number):
        raise ParamError(f"{_label(name)} must be finite, not {value!r}",
                         f"use {_flag(name)} X")
    if positive and number <= 0:
        raise ParamError(f"{_label(name)} {_fmt(number)} must be positive",
                         f"use {_flag(name)} X with X > 0")
    if minimum is not None and number < minimum:
        raise ParamError(f"{_label(name)} {_fmt(number)} is below {_fmt(minimum)}",
                         f"use {_flag(name)} {_fmt(minimum)} or more")
    if below is not None and number >= below:
        raise ParamError(f"{_label(name)} {_fmt(number)} must be below {_fmt(below)}",
                         f"use {_flag(name)} X with X < {_fmt(below)}")
    return number


def _as_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in choices:
        raise ParamError(f"unknown {_label(name)} {value!r}",
                         f"use {_flag(name)} {' | '.join(choices)}")
    return text


@dataclass(frozen=True)
class EmbedParams:
    """Everything that defines one t-SNE map of one feature array.

    Call :meth:`validate` to get a checked, normalised copy (numbers coerced to
    their types, choices lower-cased); construction itself never raises.
    """

    perplexity: float = 30.0
    #: TOTAL iterations, the early-exaggeration phase included (as scikit-learn). 750 as openTSNE
    #: (250 + 500): with the learning rate N after the exaggeration, 500 iterations there reach the
    #: 10-NN accuracy of 750 at N/12 (README, "Scale as measured"). ``vistsne run`` keeps the
    #: reference's 1000. The CLI's ``--n-iter`` default is the same number.
    n_iter: int = 750
    early_exaggeration: float = 12.0
    #: ``"auto"`` or a positive float, in openTSNE's convention
    #: (scikit-learn's numbers are 4x ours).
    learning_rate: float | str = "auto"
    n_components: int = 2
    init: str = "pca"
    #: Stop a phase when the KL divergence has not improved for this many
    #: iterations (checked every 50 iterations); 0 turns the check off.
    n_iter_without_progress: int = 300
    #: ``"auto"`` | 0 (off) | N
    pca_dims: int | str = "auto"
    seed: int = 0
    early_exaggeration_iter: int = 250
    initial_momentum: float = 0.5
    final_momentum: float = 0.8
    #: Barnes-Hut accuracy/speed trade-off.
    theta: float = 0.5
    #: Negative-gradient method: ``"auto"`` | ``"fft"`` | ``"bh"``.
    method: str = "auto"
    #: Alignment of a compared map (:data:`ALIGNS`); "" for an ordinary map.
    align: str = ""
    #: The embedding key of the map this one started from (or was fitted onto).
    align_from: str = ""
    #: 0: every row is optimised; N: a class-balanced sample of N rows is, and every
    #: other row is placed into that map by openTSNE's ``transform``.
    subsample: int = 0

    def validate(self) -> "EmbedParams":
        """Check every field; return a normalised copy or raise :class:`ParamError`."""
        values = dict(
            perplexity=_as_float("perplexity", self.perplexity, minimum=1.0),
            n_iter=_as_int("n_iter", self.n_iter, 1),
            early_exaggeration=_as_float("early_exaggeration", self.early_exaggeration,
                                         positive=True),
            learning_rate=_learning_rate(self.learning_rate),
            n_components=_as_int("n_components", self.n_components, 1, 3),
            init=_as_choice("init", self.init, INITS),
            n_iter_without_progress=_as_int("n_iter_without_progress",
                                            self.n_iter_without_progress, 0),
            pca_dims=_pca_dims(self.pca_dims),
            seed=_as_int("seed", self.seed, 0, _MAX_SEED),
            early_exaggeration_iter=_as_int("early_exaggeration_iter",
                                            self.early_exaggeration_iter, 0),
            initial_momentum=_as_float("initial_momentum", self.initial_momentum,
                                       minimum=0.0, below=1.0),
            final_momentum=_as_float("final_momentum", self.final_momentum,
                                     minimum=0.0, below=1.0),
            theta=_as_float("theta", self.theta, minimum=0.0),
            method=_as_choice("method", self.method, METHODS),
            align=_align(self.align),
            align_from=str(self.align_from or "").strip(),
            subsample=_subsample(self.subsample),
        )
        if values["align_from"] and not values["align"]:
            raise ParamError("align-from needs an alignment method", "use --align chain, reference or procrustes")
        if values["n_iter"] < values["early_exaggeration_iter"]:
            ee = values["early_exaggeration_iter"]
            raise ParamError(
                f"n-iter {values['n_iter']} is smaller than the early-exaggeration phase "
                f"({ee} iterations)",
                f"use --n-iter {ee} or more (or a smaller --early-exaggeration-iter)")
        if values["n_components"] == 3 and values["method"] == "fft":
            raise ParamError("method fft supports 1 or 2 components, not 3",
                             "use --method bh or --method auto for 3-D maps")
        return replace(self, **values)

    def to_dict(self) -> dict:
        """The fields as a plain, JSON-able dict (the alignment fields only when set)."""
        d = asdict(self)
        for name, default in OPTIONAL_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EmbedParams":
        """Build validated params from :meth:`to_dict` output; missing keys take defaults."""
        if not isinstance(d, dict):
            raise ParamError(f"t-SNE parameters must be a mapping, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ParamError(f"unknown t-SNE parameter(s) {', '.join(unknown)}",
                             f"use only {', '.join(sorted(known))}")
        return cls(**d).validate()


def _learning_rate(value: Any) -> float | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _as_float("learning_rate", value, positive=True)
    except ParamError:
        raise ParamError(f"learning-rate must be 'auto' or a positive number, not {value!r}",
                         "use --learning-rate auto or e.g. --learning-rate 200") from None


def _align(value: Any) -> str:
    text = str(value or "").strip().lower()
    if text == "none":
        text = ""
    if text not in ALIGNS:
        raise ParamError(f"unknown align {value!r}", "use --align chain | reference | procrustes | none")
    return text


def _subsample(value: Any) -> int:
    if value in (None, "", "off", "none"):
        return 0
    number = _as_int("subsample", value, 0)
    if 0 < number < 4:
        raise ParamError(f"subsample {number} is too small for a map", "use --subsample 4 or more, or leave it off")
    return number


def _pca_dims(value: Any) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _as_int("pca_dims", value, 0)
    except ParamError:
        raise ParamError(f"pca-dims must be 'auto', 0 (off) or a positive whole number, "
                         f"not {value!r}", "use --pca-dims auto, 0 or e.g. 50") from None


def sweep(base: EmbedParams, **lists: Any) -> list[EmbedParams]:
    """The cartesian product of value lists for any fields, each validated.

    ``sweep(base, perplexity=[5, 30, 50], seed=[0, 1])`` gives six params. The
    order is stable and independent of the keyword order: fields vary in their
    declaration order, the first varying slowest. A scalar counts as a one-item
    list; repeated values (after normalisation) are kept once.
    """
    known = [f.name for f in fields(EmbedParams)]
    unknown = sorted(set(lists) - set(known))
    if unknown:
        raise ParamError(f"cannot sweep unknown parameter(s) {', '.join(unknown)}",
                         f"use one of {', '.join(known)}")
    names = [name for name in known if name in lists]
    value_lists = []
    for name in names:
        values = lists[name]
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise ParamError(f"the sweep over {_label(name)} has no values",
                             f"give at least one value to {_flag(name)}")
        value_lists.append(values)
    result: list[EmbedParams] = []
    seen: set[EmbedParams] = set()
    for combo in itertools.product(*value_lists):
        params = replace(base, **dict(zip(names, combo))).validate()
        if params not in seen:
            seen.add(params)
            result.append(params)
    return result


def resolve(params: EmbedParams, n_samples: int, n_features: int) -> dict:
    """The data-dependent values used for ``params`` on an ``n_samples x n_features`` array.

    Returns a JSON-able dict with ``learning_rate`` and ``learning_rate_after`` (floats: the
    early-exaggeration phase's and the phase after it; ``"auto"``: max(200, N / exaggeration) in
    each, openTSNE's rule, so N/12 and then N), ``method``
    (``"fft"``/``"bh"``), ``pca_dims`` (int, 0 = off), ``pca_dims_clamped``
    (whether a requested N was cut to the data), ``k_neighbors`` (neighbours the
    affinities use) and ``knn_method`` (``"exact"`` or :data:`APPROX_KNN`). With
    ``params.subsample`` below ``n_samples`` these describe the map of the
    subsample, and ``subsample``, ``placed`` and ``placement`` say how many rows
    were optimised and how the others were placed. ``params`` is not changed.

    Raises :class:`ParamError` when ``params.subsample`` is larger than ``n_samples``.
    """
    p = params.validate()
    n_total, n_features = int(n_samples), int(n_features)
    if p.subsample > n_total:
        raise ParamError(f"subsample {p.subsample} is larger than the {n_total} rows selected",
                         f"use --subsample {n_total} or less, or leave --subsample off")
    n_samples = p.subsample or n_total

    if p.learning_rate == "auto":  # openTSNE's "auto": N over each phase's exaggeration
        learning_rate = max(200.0, n_samples / p.early_exaggeration)
        learning_rate_after = max(200.0, float(n_samples))
    else:
        learning_rate = learning_rate_after = float(p.learning_rate)

    if p.method != "auto":
        method = p.method
    elif p.n_components == 3:
        method = "bh"  # openTSNE's FFT gradient is 1-D/2-D only
    else:
        method = "fft" if n_samples >= METHOD_SWITCH_N else "bh"

    if p.pca_dims == "auto":
        full_fits = n_samples * n_samples * n_features <= EXACT_KNN_BUDGET
        wanted = 0 if n_features <= PCA_AUTO_MIN_FEATURES or full_fits else PCA_AUTO_DIMS
    else:
        wanted = int(p.pca_dims)
    pca_dims = min(wanted, n_features, n_samples) if wanted > 0 else 0
    clamped = p.pca_dims != "auto" and pca_dims != wanted
    dims = pca_dims or n_features
    exact = n_samples < EXACT_KNN_MAX_N or n_samples * n_samples * dims <= EXACT_KNN_BUDGET

    return {
        "learning_rate": float(learning_rate),
        "learning_rate_after": float(learning_rate_after),
        "method": method,
        "pca_dims": int(pca_dims),
        "pca_dims_clamped": bool(clamped),
        "k_neighbors": int(max(1, min(n_samples - 1, int(3 * p.perplexity)))),
        "knn_method": "exact" if exact else APPROX_KNN,
        **({"fft_max_boxes": FFT_MAX_BOXES} if method == "fft" else {}),
        **({"subsample": n_samples, "placed": n_total - n_samples, "placement": PLACEMENT}
           if p.subsample else {}),
    }


#: What the memory estimate counts beyond the arrays: the interpreter with numpy,
#: scikit-learn and openTSNE loaded, and their work buffers. The estimate is conservative:
#: 0.98 GB against a measured peak of 0.60 GB at 50,000 rows of 512 dims
#: (`python benchmarks/scale_embed.py`).
BASE_BYTES = 450e6
#: Bytes per affinity of the symmetric P (2 N k entries at most; CSR value and column: 12)
#: times the copies that exist at once while it is symmetrised: the conditional P and its
#: transpose (half as many entries each) and the sum's buffer (sized for both).
AFFINITY_BYTES = 12 * 2
#: The same for a ``--subsample`` map, whose P openTSNE's ``PerplexityBasedNN`` builds (its
#: transform needs that object), with one copy more: its ``(P + P.T) / 2`` keeps P, the sum
#: and the halved copy at once.
AFFINITY_BYTES_OPENTSNE = 12 * 3
#: Bytes per optimised row: coordinates, gradients, gains and update (float64, 2 each)
#: and the FFT gradient's per-point interpolation buffers.
OPTIMISE_ROW_BYTES = 400


def memory_estimate(params: EmbedParams, n_samples: int, n_features: int, itemsize: int = 4,
                    maps_at_once: int = 1) -> dict:
    """Bytes one embed of ``n_samples x n_features`` features needs at its peak, by part.

    ``features``: the array as read (``itemsize`` bytes a value, float16 read as float32
    for PCA); ``preprocessed``: its PCA; ``graph``: the kNN graph (int64 indices and float64
    distances; hnswlib's int32 and float32, and its index, which is freed before the affinities
    unless a subsample's other rows will query it); ``affinities``: P while it is symmetrised, plus each
    further map's own copy; ``optimisation``: the optimised rows; ``base``: the interpreter
    and libraries. ``total`` sums them. A formula, calibrated against measured peaks.
    """
    r = resolve(params, n_samples, n_features)
    n = int(n_samples)
    n_fit = int(r.get("subsample", n))
    k = r["k_neighbors"]
    dims = r["pca_dims"] or n_features
    features = n * n_features * max(4, int(itemsize))
    preprocessed = n * r["pca_dims"] * 4
    approx = r["knn_method"] != "exact"
    graph = n_fit * k * (8 if approx else 16)
    index = n_fit * (dims * 4 + 16 * 2 * 4 + 64) if approx else 0
    nnz = 2 * n_fit * k
    placing = n_fit < n  # a subsample: openTSNE's affinities, and its index queried after them
    affinities = (nnz * (AFFINITY_BYTES_OPENTSNE if placing else AFFINITY_BYTES)
                  + max(0, int(maps_at_once) - 1) * nnz * 12)
    graph += index if placing else max(0, index - affinities)
    optimisation = max(1, int(maps_at_once)) * n_fit * OPTIMISE_ROW_BYTES
    parts = {"features": features, "preprocessed": preprocessed, "graph": graph, "affinities": affinities,
             "optimisation": optimisation, "base": int(BASE_BYTES)}
    return {**{key: int(v) for key, v in parts.items()}, "total": int(sum(parts.values()))}


def largest_perplexity(n_samples: int) -> float:
    """The largest perplexity openTSNE accepts for ``n_samples`` rows (3*p <= N-1)."""
    return (int(n_samples) - 1) / 3.0


def check_data(params: EmbedParams, n_samples: int, n_classes: int) -> None:
    """Raise if ``params`` cannot run on data of this size.

    :class:`FeatureError` for fewer than 2 rows or 2 classes;
    :class:`ParamError` for a perplexity too large for the rows (openTSNE
    needs ``3 * perplexity <= n_samples - 1``).
    """
    n_samples, n_classes = int(n_samples), int(n_classes)
    if n_samples < 2:
        raise FeatureError(f"the features hold {n_samples} row(s); a t-SNE map needs at least 2",
                           "extract features for more images")
    if n_classes < 2:
        raise FeatureError(f"the labels hold {n_classes} class(es); the map metrics need at "
                           "least 2", "use a dataset (or --images folder) with 2 or more classes")
    perplexity = float(params.perplexity)
    limit = largest_perplexity(n_samples)
    if limit < 1:
        raise FeatureError(f"the features hold {n_samples} rows; a t-SNE map needs at least 4 "
                           "(perplexity 1 needs 3 neighbours per row)",
                           "extract features for more images")
    if 3 * perplexity > n_samples - 1:
        shown = str(int(limit))
        raise ParamError(
            f"perplexity {_fmt(perplexity)} is too large for {n_samples} rows; "
            f"the largest that works is {shown}",
            f"use --perplexity {shown} or less")
