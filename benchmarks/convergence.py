"""How fast a map converges under two learning-rate schedules (prints one JSON document).

    python benchmarks/convergence.py FEATURES.npz [--ee 250] [--after 750] [--n-jobs 2]

``FEATURES.npz`` holds ``X`` (N x D features) and ``y`` (labels), e.g. a class-balanced sample of
the scale bench store (``benchmarks/scale_embed.py``'s ``features``). The rows go through
vistsne's pipeline once (PCA to 50 dims, the exact kNN graph, perplexity-30 affinities, the PCA
initialisation); then the same P is optimised ``--ee`` iterations with early exaggeration and
``--after`` without, in calls of 50 iterations with vistsne's FFT grid cap, under each schedule:

* ``n_over_12``: the learning rate max(200, N/12) in both phases (vistsne before ENGINE_VERSION 4);
* ``n_over_exaggeration``: max(200, N/exaggeration) in each phase, i.e. N/12 and then N
  (openTSNE's ``"auto"``).

Every 50 iterations after the exaggeration it records the KL divergence, the map's span and the
seconds so far (``--max-boxes``: under each of several grid caps); at the iterations in ``--acc-at`` the map's cross-validated 10-NN accuracy too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHEDULES = ("n_over_12", "n_over_exaggeration")
STEP = 50


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features")
    ap.add_argument("--ee", type=int, default=250, help="early-exaggeration iterations")
    ap.add_argument("--after", type=int, default=750, help="iterations after the exaggeration")
    ap.add_argument("--acc-at", default="250,350,500,750", help="iterations after the exaggeration")
    ap.add_argument("--schedules", default=",".join(SCHEDULES))
    ap.add_argument("--max-boxes", default="", help="FFT grid caps to try (comma list; default vistsne's)")
    ap.add_argument("--n-jobs", type=int, default=2)
    a = ap.parse_args(argv)
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PrecomputedAffinities
    from threadpoolctl import threadpool_limits

    from vistsne.embed.metrics import knn_accuracy
    from vistsne.embed.params import FFT_MAX_BOXES
    from vistsne.embed.tsne import _affinities, _initial_positions, fft_interval, knn_graph, preprocess

    d = np.load(a.features)
    X, y = d["X"].astype(np.float32, copy=False), d["y"]
    n = len(X)
    acc_at = {int(v) for v in a.acc_at.split(",") if v}
    out: dict = {"rows": n, "dims": X.shape[1], "ee": a.ee, "after": a.after, "n_jobs": a.n_jobs}
    with threadpool_limits(a.n_jobs):
        t0 = time.perf_counter()
        Xp = preprocess(X, 50, 0)
        neighbors, distances = knn_graph(Xp, 90, "exact", a.n_jobs)[:2]
        P = _affinities(neighbors, distances, 30.0, 90, a.n_jobs)
        init = _initial_positions("pca", Xp, None, 2, 0)
        out["prepare_s"] = round(time.perf_counter() - t0, 1)
        caps = [int(v) for v in a.max_boxes.split(",") if v] or [FFT_MAX_BOXES]
        for name, cap in ((s, c) for s in a.schedules.split(",") for c in caps):
            label = name if cap == FFT_MAX_BOXES and len(caps) == 1 else f"{name}_boxes{cap}"
            lrs = {"n_over_12": (n / 12, n / 12), "n_over_exaggeration": (n / 12, n)}[name]
            lrs = tuple(max(200.0, v) for v in lrs)
            E = TSNEEmbedding(np.array(init, dtype=np.float64), PrecomputedAffinities(P.copy(), normalize=False),
                              negative_gradient_method="fft", n_jobs=a.n_jobs, random_state=0)
            trace, t_opt = [], 0.0
            for phase, (its, exaggeration, momentum) in enumerate(((a.ee, 12.0, 0.5), (a.after, 1.0, 0.8))):
                done = 0
                while done < its:
                    chunk = min(STEP, its - done)
                    t1 = time.perf_counter()
                    E = E.optimize(chunk, exaggeration=exaggeration, momentum=momentum, learning_rate=lrs[phase],
                                   inplace=True, ints_in_interval=fft_interval(E, cap))
                    t_opt += time.perf_counter() - t1
                    done += chunk
                    if phase == 1:
                        row = {"after": done, "kl": round(float(E.kl_divergence), 4),
                               "span": round(float(np.ptp(np.asarray(E), axis=0).max()), 1),
                               "seconds": round(t_opt, 1)}
                        if done in acc_at:
                            row["acc10"] = round(knn_accuracy(np.asarray(E, dtype=np.float32), y), 4)
                        trace.append(row)
                        print(label, json.dumps(row), file=sys.stderr, flush=True)
            out[label] = {"learning_rates": lrs, "max_boxes": cap, "trace": trace}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
