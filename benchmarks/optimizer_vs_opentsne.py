"""vistsne's optimisation against openTSNE's own, on one affinity matrix (prints one JSON document).

    python benchmarks/optimizer_vs_opentsne.py FEATURES.npz [--its 250] [--n-jobs 2]

``FEATURES.npz`` holds ``X`` (N x D features; e.g. a class-balanced sample of the scale bench
store). The rows go through vistsne's pipeline (PCA to 50 dims, the exact kNN graph, perplexity-30
affinities, the PCA initialisation) once; then the same P is optimised ``--its`` iterations with
early exaggeration and ``--its`` without, three ways, timed in this one process:

* ``vistsne``: :func:`vistsne.embed.tsne._optimize` with the resolved defaults (learning rate
  max(200, N/12) in both phases, the FFT grid cap, the KL checks);
* ``opentsne_defaults``: ``TSNEEmbedding.optimize`` with openTSNE's own learning rate (N/12, then
  N), one call per phase;
* ``opentsne_same_lr``: the same, with vistsne's learning rate.

Each with its seconds, its final KL divergence and the map's span.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features")
    ap.add_argument("--its", type=int, default=250, help="iterations of each phase")
    ap.add_argument("--n-jobs", type=int, default=2)
    a = ap.parse_args(argv)
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PrecomputedAffinities
    from threadpoolctl import threadpool_limits

    from vistsne.embed.params import EmbedParams, resolve
    from vistsne.embed.tsne import _affinities, _initial_positions, _optimize, knn_graph, preprocess

    X = np.load(a.features)["X"].astype(np.float32, copy=False)
    out: dict = {"rows": len(X), "dims": X.shape[1], "its_per_phase": a.its, "n_jobs": a.n_jobs}

    class _NoBar:
        def update(self, n=1):
            pass

    def record(name, t0, coords, kl):
        out[name] = {"seconds": round(time.perf_counter() - t0, 2), "kl": round(float(kl), 4),
                     "span": round(float(np.ptp(np.asarray(coords), axis=0).max()), 1)}

    with threadpool_limits(a.n_jobs):
        Xp = preprocess(X, 50, 0)
        neighbors, distances = knn_graph(Xp, 90, "exact", a.n_jobs)[:2]
        P = _affinities(neighbors, distances, 30.0, 90, a.n_jobs)
        init = _initial_positions("pca", Xp, None, 2, 0)
        p = EmbedParams(n_iter=2 * a.its, early_exaggeration_iter=a.its)
        res = resolve(p, len(X), X.shape[1])
        out["vistsne_learning_rate"] = res["learning_rate"]
        t0 = time.perf_counter()
        coords, kl, _ = _optimize(init, P, p, res, a.n_jobs, _NoBar(), False)
        record("vistsne", t0, coords, kl)
        for name, lr in (("opentsne_defaults", {}), ("opentsne_same_lr", {"learning_rate": res["learning_rate"]})):
            E = TSNEEmbedding(np.array(init, dtype=np.float64), PrecomputedAffinities(P.copy(), normalize=False),
                              negative_gradient_method="fft", n_jobs=a.n_jobs, random_state=0)
            t0 = time.perf_counter()
            E = E.optimize(a.its, exaggeration=p.early_exaggeration, momentum=p.initial_momentum, inplace=True, **lr)
            E = E.optimize(a.its, momentum=p.final_momentum, inplace=True, **lr)
            record(name, t0, E, E.kl_divergence)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
