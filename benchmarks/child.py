"""One benchmark job in a fresh process: ``python benchmarks/child.py JOB.json``.

``JOB.json`` holds ``{"job": name, "args": {...}, "out": path}``; the job's
result (a JSON-able dict) is written to ``out``. Each job imports what it needs
*before* its clock starts, so interpreter start and imports never count; where
peak memory is reported it is this process's own (``VmHWM``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # never let a bench module shadow a library module
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if os.environ.get("VISTSNE_BENCH_TREE"):
    # a snapshot of the working tree's vistsne/ (benchmarks.common.after_version): its package, ROOT's benchmarks
    sys.path.insert(0, os.environ["VISTSNE_BENCH_TREE"])

warnings.filterwarnings("ignore")

from benchmarks.profstats import profile_summary  # noqa: E402  (after the sys.path fix above)


def maxrss_mb() -> float:
    """This child's own peak RSS (``VmHWM``; see :func:`benchmarks.common.peak_rss_mb`)."""
    from benchmarks.common import peak_rss_mb

    return peak_rss_mb()


def rss_mb() -> float:
    from benchmarks.common import status_mb

    rss = status_mb("VmRSS")
    return float("nan") if rss is None else rss


def _load_xy(args):
    import numpy as np

    X = np.load(args["X"])
    y = np.load(args["labels"])
    return X, y


def _preimport_tsne():
    """Import what the t-SNE engines import lazily, so that no clock counts imports."""
    import openTSNE  # noqa: F401
    import openTSNE.affinity  # noqa: F401
    import openTSNE.initialization  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import sklearn.manifold  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.neighbors  # noqa: F401


def _quiet():
    import logging

    logging.getLogger("vistsne").setLevel(logging.WARNING)
    logging.getLogger("mmengine").setLevel(logging.ERROR)
    logging.getLogger("openTSNE").setLevel(logging.ERROR)


# ------------------------------------------------------------ setup jobs
def job_checkpoint_series(args):
    """A demo checkpoint trained with ``snapshots`` checkpoints along its schedule (made once, reused)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from vistsne.demo.train import snapshot_paths, train_checkpoint

    path = Path(args["path"])
    if not (path.exists() and len(snapshot_paths(path)) == int(args["snapshots"])):
        train_checkpoint(out=str(path), snapshots=int(args["snapshots"]), max_iters=args.get("max_iters"),
                         show_progress=False, force=True)
    return {"paths": [str(p) for p in snapshot_paths(path)] + [str(path)]}


def job_checkpoint(args):
    """The demo checkpoint (made once, reused), or a random-init one for tiny runs."""
    if args.get("random"):
        import torch

        from vistsne.extract.config import load_config
        from vistsne.extract.model import build_model

        path = Path(args["path"])
        if not path.exists():
            model = build_model(load_config(args["config"]).cfg, "cpu", seed=1)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state_dict": model.state_dict(), "meta": {"note": "vistsne bench, random init"}}, path)
        return {"path": str(path), "kind": "random init (tiny mode)"}
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from vistsne.demo import train_checkpoint

    t0 = time.perf_counter()
    existed = Path(args["path"]).exists()
    path = train_checkpoint(out=args["path"], show_progress=False)
    meta = {}
    try:
        import torch

        meta = torch.load(path, map_location="cpu", weights_only=True).get("meta", {}).get("vistsne", {})
    except Exception:  # noqa: BLE001 - only informative
        pass
    return {"path": str(path), "kind": "demo checkpoint" + (" (reused)" if existed else " (trained now)"),
            "seconds": time.perf_counter() - t0, "meta": meta}


def job_extract_entry(args):
    """Extract (or grow) the bench entry with the library, as ``vistsne extract`` does."""
    from vistsne.extract import ExtractParams, extract_entry
    from vistsne.store import Store

    params = ExtractParams(**args["params"])
    res = extract_entry(Store(args["store"]), params, progress=True)
    return {**res.to_json(), "maxrss_mb": maxrss_mb()}


def job_features(args):
    """The bench entry's rows at each N (class-balanced, N/10 per class) saved as .npy."""
    import numpy as np

    from vistsne.embed.entry import select_cached_rows
    from vistsne.selection import RowSelection
    from vistsne.store import Store

    st = Store(args["store"], mode="r")
    out = {}
    for n in args["sizes"]:
        idx = select_cached_rows(st, args["entry"], args["stage"], RowSelection(None, 10, n // 10))
        X = st.read_rows(args["entry"], idx, args["stage"])
        y = st.read_rows(args["entry"], idx, what="label")
        xp = Path(args["dir"]) / f"X_{n}.npy"
        yp = Path(args["dir"]) / f"y_{n}.npy"
        np.save(xp, X.astype(np.float32, copy=False))
        np.save(yp, y)
        out[str(n)] = {"X": str(xp), "labels": str(yp), "rows": int(len(idx)), "dim": int(X.shape[1]),
                       "classes": int(len(np.unique(y)))}
    return out


def job_small_store(args):
    """A store holding the bench entry's rows of one N and one stage only (same key, same rows)."""
    import numpy as np

    from vistsne.embed.entry import select_cached_rows
    from vistsne.selection import RowSelection
    from vistsne.store import Store

    src = Store(args["store"], mode="r")
    entry, stage, n = args["entry"], args["stage"], int(args["n"])
    idx = select_cached_rows(src, entry, stage, RowSelection(None, 10, n // 10))
    meta = src.entry_meta(entry)
    feats = src.read_rows(entry, idx, stage)  # the stored array, if the stage is another's alias
    dst = Store(args["dest"])
    # this stage alone, under its own name (no aliases: the source may store it once under another name)
    dst.create_entry(entry, {**meta, "stages": {stage: int(feats.shape[1])}, "stage_sets": {"all": [stage]},
                             "aliases": {}}, src.dataset_labels(entry))
    dst.write_part(entry, idx, src.read_rows(entry, idx, what="label"), src.read_rows(entry, idx, what="thumb"),
                   {stage: feats})
    return {"rows": int(len(idx)), "entry": entry, "stage": stage}


def job_write_pngs(args):
    """A class-per-folder tree of N distinct digit PNGs (32 px, augmented originals)."""
    from PIL import Image

    from vistsne.extract.digits import augment, digits_split, to_rgb

    root = Path(args["dir"])
    tmp = root.with_name(root.name + ".partial")
    images8, labels = digits_split("test")
    images, labels = augment(to_rgb(images8, 32), labels, int(args["n"]), seed=1)
    images, labels = images[:args["n"]], labels[:args["n"]]
    for i, (im, lab) in enumerate(zip(images, labels)):
        d = tmp / str(int(lab))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i:05d}.png")
    tmp.rename(root)
    return {"dir": str(root), "images": int(len(images))}


# ------------------------------------------------------------ t-SNE jobs
def _metric_timer():
    """Wrap the metric functions embed_many calls, to time them inside the call."""
    import vistsne.embed.tsne as T

    spent = {"s": 0.0}

    def wrap(fn):
        def inner(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["s"] += time.perf_counter() - t
        return inner

    T._feature_accuracy = wrap(T._feature_accuracy)
    T.trust_reference = wrap(T.trust_reference)
    T.map_metrics = wrap(T.map_metrics)
    return spent


def job_tsne(args):
    """One t-SNE map by one engine; seconds around the fit only, then its 10-NN accuracy."""
    import numpy as np

    from vistsne.embed import knn_accuracy

    X, y = _load_xy(args)
    engine = args["engine"]
    p = args["params"]
    _quiet()
    _preimport_tsne()
    extra = {}
    if engine == "sklearn":
        from sklearn.manifold import TSNE

        model = TSNE(**p)
        gc.collect()
        rss0 = rss_mb()
        t0 = time.perf_counter()
        Y = model.fit_transform(X)
        seconds = time.perf_counter() - t0
        extra = {"kl_divergence": float(model.kl_divergence_), "n_iter_run": int(model.n_iter_),
                 "learning_rate_used": float(model.learning_rate_)}
    elif engine == "vistsne":
        from vistsne.embed import EmbedParams, embed_many

        spent = _metric_timer()
        params = EmbedParams(**p).validate()
        gc.collect()
        rss0 = rss_mb()
        t0 = time.perf_counter()
        (res,) = list(embed_many(X, y, [params], n_jobs=args["n_jobs"], progress=False))
        seconds = time.perf_counter() - t0
        Y = res.coords
        extra = {"kl_divergence": float(res.kl_divergence), "n_iter_run": int(res.n_iter_run),
                 "resolved": res.resolved, "metrics_seconds": spent["s"], "map_seconds": res.seconds}
    else:
        raise ValueError(engine)
    peak = maxrss_mb()
    acc = knn_accuracy(Y, y)
    return {"seconds": seconds, "knn_acc": acc, "maxrss_mb": peak, "rss_before_mb": rss0,
            "rows": int(len(X)), **extra}


def job_method(args):
    """Barnes-Hut vs FFT gradients on one N: shared affinities and init, vistsne's optimiser."""
    import numpy as np

    from vistsne.embed import EmbedParams, knn_accuracy, resolve
    from vistsne.embed.tsne import KNN_SEED, PREPROCESS_SEED, _initial_positions, _NullBar, _optimize, preprocess
    from openTSNE.affinity import PerplexityBasedNN

    X, y = _load_xy(args)
    _quiet()
    _preimport_tsne()
    n_jobs = args["n_jobs"]
    params = EmbedParams(seed=0, n_iter=args["n_iter"]).validate()
    base = resolve(params, X.shape[0], X.shape[1])
    Xp = preprocess(X, base["pca_dims"], PREPROCESS_SEED)
    aff = PerplexityBasedNN(Xp, perplexity=params.perplexity, method=base["knn_method"], n_jobs=n_jobs,
                            random_state=KNN_SEED)
    init = _initial_positions("pca", Xp, None, params.n_components, params.seed)
    out = {m: {"seconds": [], "knn_acc": [], "kl": [], "n_iter_run": []} for m in ("bh", "fft")}
    for r in range(args["reps"]):
        order = ("bh", "fft") if r % 2 == 0 else ("fft", "bh")
        for m in order:
            resolved = {**base, "method": m}
            t0 = time.perf_counter()
            coords, kl, n_run = _optimize(init, aff.P, params, resolved, n_jobs, _NullBar(), False)
            out[m]["seconds"].append(time.perf_counter() - t0)
            out[m]["kl"].append(kl)
            out[m]["n_iter_run"].append(n_run)
            out[m]["knn_acc"].append(knn_accuracy(coords, y))
    return {"rows": int(len(X)), "learning_rate": base["learning_rate"], **out}


def job_sweep(args):
    """A perplexity sweep in one embed_many call against one call per perplexity."""
    from vistsne.embed import EmbedParams, SweepStats, embed_many, sweep

    X, y = _load_xy(args)
    _quiet()
    _preimport_tsne()
    n_jobs = args["n_jobs"]
    plist = sweep(EmbedParams(n_iter=args["n_iter"]), perplexity=list(args["perplexities"]))
    one, separate, accs_one, accs_sep = [], [], [], []
    st = SweepStats()
    for r in range(args["reps"]):
        def run_one():
            t0 = time.perf_counter()
            res = list(embed_many(X, y, plist, n_jobs=n_jobs, progress=False, stats=st))
            one.append(time.perf_counter() - t0)
            accs_one.append({str(x.params.perplexity): x.metrics["knn_acc_map"] for x in res})

        def run_sep():
            t0 = time.perf_counter()
            acc = {}
            for p in plist:
                (x,) = list(embed_many(X, y, [p], n_jobs=n_jobs, progress=False))
                acc[str(p.perplexity)] = x.metrics["knn_acc_map"]
            separate.append(time.perf_counter() - t0)
            accs_sep.append(acc)

        for fn in ((run_one, run_sep) if r % 2 == 0 else (run_sep, run_one)):
            fn()
    return {"rows": int(len(X)), "one_call": one, "separate": separate, "acc_one_call": accs_one,
            "acc_separate": accs_sep,
            "shared_work_per_sweep": {"knn_builds": st.knn_builds // args["reps"],
                                      "affinity_builds": st.affinity_builds // args["reps"],
                                      "preprocess_runs": st.preprocess_runs // args["reps"],
                                      "feature_acc_runs": st.feature_acc_runs // args["reps"],
                                      "maps_at_once": st.max_parallel,
                                      "threads_per_map": st.threads_per_map}}


def _direct_opentsne(X, p: dict, resolved: dict, n_jobs: int):
    """openTSNE's own step-by-step API with vistsne's resolved values, nothing else."""
    import numpy as np
    from openTSNE import TSNEEmbedding, initialization
    from openTSNE.affinity import PerplexityBasedNN
    from sklearn.decomposition import PCA

    Xp = X
    if resolved["pca_dims"]:
        Xp = PCA(n_components=resolved["pca_dims"], random_state=0).fit_transform(X)
    Xp = np.ascontiguousarray(Xp, dtype=np.float64)
    aff = PerplexityBasedNN(Xp, perplexity=p["perplexity"], method=resolved["knn_method"], n_jobs=n_jobs,
                            random_state=0)
    if p["init"] == "pca":
        init = initialization.pca(Xp, n_components=2, random_state=p["seed"])
    else:
        init = initialization.random(Xp.shape[0], n_components=2, random_state=p["seed"])
    emb = TSNEEmbedding(init, aff, negative_gradient_method=resolved["method"], n_jobs=n_jobs,
                        random_state=p["seed"], theta=0.5)
    emb = emb.optimize(n_iter=p["early_exaggeration_iter"], exaggeration=p["early_exaggeration"],
                       momentum=0.5, learning_rate=resolved["learning_rate"], inplace=True)
    emb = emb.optimize(n_iter=p["n_iter"] - p["early_exaggeration_iter"], exaggeration=1.0,
                       momentum=0.8, learning_rate=resolved["learning_rate"], inplace=True)
    return np.asarray(emb)


def job_overhead(args):
    """embed_many against a direct openTSNE run with the same resolved parameters."""
    from vistsne.embed import EmbedParams, embed_many, knn_accuracy, resolve

    X, y = _load_xy(args)
    _quiet()
    _preimport_tsne()
    n_jobs = args["n_jobs"]
    spent = _metric_timer()
    params = EmbedParams(seed=0, n_iter=args["n_iter"]).validate()
    resolved = resolve(params, X.shape[0], X.shape[1])
    p = params.to_dict()
    out = {"vistsne": [], "vistsne_metrics": [], "direct": [], "acc_vistsne": [], "acc_direct": [],
           "n_iter_run": []}
    for r in range(args["reps"]):
        def run_v():
            spent["s"] = 0.0
            t0 = time.perf_counter()
            (res,) = list(embed_many(X, y, [params], n_jobs=n_jobs, progress=False))
            out["vistsne"].append(time.perf_counter() - t0)
            out["vistsne_metrics"].append(spent["s"])
            out["acc_vistsne"].append(res.metrics["knn_acc_map"])
            out["n_iter_run"].append(res.n_iter_run)

        def run_d():
            t0 = time.perf_counter()
            Y = _direct_opentsne(X, p, resolved, n_jobs)
            out["direct"].append(time.perf_counter() - t0)
            out["acc_direct"].append(knn_accuracy(Y, y))

        for fn in ((run_v, run_d) if r % 2 == 0 else (run_d, run_v)):
            fn()
    return {"rows": int(len(X)), "resolved": resolved, **out}


# ------------------------------------------------------------ extraction
def _prebatched(cfg, images_n, batch_size):
    """The test set, through the pipeline and the preprocessor, as ready batches."""
    from mmengine.dataset import default_collate

    from vistsne.extract.model import build_dataset

    ds = build_dataset(cfg)
    idx = list(range(min(images_n, len(ds))))
    return ds, [default_collate([ds[i] for i in idx[s:s + batch_size]]) for s in range(0, len(idx), batch_size)]


def job_extract_pair(args):
    """vistsne's extract into a fresh store, then a bare extract_feat loop (the ceiling).

    Both run in this process, one after the other, on the same model weights
    and batch size; the bare loop gets pre-loaded, pre-processed batches and
    one untimed warm-up batch, so it is the steady-state forward pass.
    """
    import cProfile
    import pstats

    import torch

    import mmpretrain.datasets  # noqa: F401  (imports are not what is measured)
    import mmpretrain.models  # noqa: F401
    import sklearn.datasets  # noqa: F401  (the digits come from scikit-learn)
    import sklearn.model_selection  # noqa: F401
    import vistsne.extract.digits  # noqa: F401
    from vistsne.extract import ExtractParams, entry_key, extract_entry
    from vistsne.extract.checkpoint import apply_checkpoint
    from vistsne.extract.model import Precision, build_model
    from vistsne.store import Store

    _quiet()
    if args.get("write_pngs") and not Path(args["write_pngs"]["dir"]).exists():
        job_write_pngs(args["write_pngs"])
    params = ExtractParams(**args["params"]).validate()
    out = {"torch_threads": torch.get_num_threads()}
    # 1. vistsne, as `vistsne extract` runs it (library call, fresh store)
    prof = cProfile.Profile() if args.get("profile") else None
    gc.collect()
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    res = extract_entry(Store(args["store"]), params, progress=False)
    if prof:
        prof.disable()
    out["vistsne_seconds"] = time.perf_counter() - t0
    out["vistsne_maxrss_mb"] = maxrss_mb()
    out["rows"] = res.rows
    out["new_rows"] = res.new_rows
    if prof:
        out["profile"] = profile_summary(pstats.Stats(prof), args.get("profile_targets", {}))
    # 2. the bare loop: same model, pre-built batches
    info = entry_key(params)
    cfg = info.loaded.cfg
    model = build_model(cfg, "cpu", params.init_seed)
    if info.checkpoint_path is not None:
        apply_checkpoint(model, info.checkpoint_path, params.trust_checkpoint)
    precision = Precision(params.precision, "cpu")  # the ceiling computes as vistsne does
    model = precision.model(model)
    bs = params.batch_size or int(cfg.test_dataloader.get("batch_size", 32))
    t0 = time.perf_counter()
    _, raw = _prebatched(cfg, res.rows, bs)
    with torch.inference_mode():
        batches = [precision.inputs(model.data_preprocessor(b, False)["inputs"]) for b in raw]
    out["bare_prepare_seconds"] = time.perf_counter() - t0
    del raw
    with torch.inference_mode(), precision.autocast():
        t0 = time.perf_counter()
        model.extract_feat(batches[0])  # warm-up, not in bare_seconds
        out["bare_warmup_seconds"] = time.perf_counter() - t0
        out["bare_first_batch_rows"] = int(batches[0].shape[0])
        t0 = time.perf_counter()
        n = 0
        for b in batches:
            model.extract_feat(b)
            n += int(b.shape[0])
        out["bare_seconds"] = time.perf_counter() - t0
    out["bare_rows"] = n
    out["batch_size"] = bs
    from vistsne.extract.entry import loader_workers

    out["num_workers"] = loader_workers(params.num_workers, cfg.test_dataloader)
    return out


def job_profile_embed(args):
    """cProfile of one embed_many call (vistsne defaults): where its time goes."""
    import cProfile
    import pstats

    from vistsne.embed import EmbedParams, embed_many

    X, y = _load_xy(args)
    _quiet()
    _preimport_tsne()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    (res,) = list(embed_many(X, y, [EmbedParams(seed=0, n_iter=args["n_iter"])], n_jobs=args["n_jobs"],
                             progress=False))
    prof.disable()
    wall = time.perf_counter() - t0
    return {"wall_seconds": wall, "rows": int(len(X)), "method": res.resolved["method"],
            **profile_summary(pstats.Stats(prof), args["targets"])}


def job_import_check(args):
    """Run the CLI in this process, then report which heavy modules it imported."""
    from vistsne.cli import main

    t0 = time.perf_counter()
    code = 0
    try:
        main(args["argv"])
    except SystemExit as e:
        code = e.code or 0
    heavy = ["torch", "mmpretrain.models", "mmpretrain", "torchvision", "openTSNE", "sklearn", "matplotlib"]
    return {"seconds": time.perf_counter() - t0, "exit_code": code,
            "imported": {m: m in sys.modules for m in heavy}}


# ------------------------------------------- store seams and checks (9, 10)
def job_seams_store(args):
    """A store of one entry: the bench entry's selection of N rows, every stage under its own name, in
    1,024-row parts."""
    import numpy as np

    from vistsne.embed.entry import select_cached_rows
    from vistsne.selection import RowSelection
    from vistsne.store import Store

    src = Store(args["store"], mode="r")
    entry, n = args["entry"], int(args["n"])
    meta = src.entry_meta(entry)
    stages = list(meta["stages"])
    idx = select_cached_rows(src, entry, args["stage"], RowSelection(None, 10, n // 10))
    dst = Store(args["dest"])
    # every stage under its own name, no aliases: the layout both versions read (the working tree stores
    # identical stages once, as aliases, which 7fc1473 does not know)
    dst.create_entry(entry, {**meta, "aliases": {}}, src.dataset_labels(entry))
    per = int(args.get("part_rows", 1024))
    t0 = time.perf_counter()
    for lo in range(0, len(idx), per):
        sel = idx[lo:lo + per]
        dst.write_part(entry, sel, src.read_rows(entry, sel, what="label"), src.read_rows(entry, sel, what="thumb"),
                       {s: src.read_rows(entry, sel, s) for s in stages})
    parts = [p for p in dst.parts(entry) if p.committed]
    np.save(Path(args["dest"]).with_suffix(".rows.npy"), idx)
    return {"entry": entry, "rows": int(len(idx)), "parts": len(parts), "part_rows": per, "stages": meta["stages"],
            "bytes": dst.size_bytes(entry), "write_seconds": time.perf_counter() - t0,
            "rows_npy": str(Path(args["dest"]).with_suffix(".rows.npy"))}


def job_read_check(args):
    """10a: a stage read with and without the completeness check (``store_checks.read_check_cost``)."""
    from benchmarks.store_checks import read_check_cost

    return read_check_cost(rows=int(args["rows"]), dim=int(args.get("dim", 512)), parts=int(args["parts"]),
                           reps=int(args["reps"]))


def _plain_write(group, name, data, chunks, sizes):
    """``vistsne.store.arrays.write`` as the store wrote before the checks (7fc1473): zarr's default
    compressor (zstd, no crc32c), chunks equal to the fill value skipped, no size record."""
    import numpy as np

    arr = group.create_array(name, data=data, chunks=chunks)
    return {"shape": [int(s) for s in arr.shape], "chunks": int(np.prod(arr.cdata_shape, dtype=np.int64))}


def job_extract_checks(args):
    """10c: one real extraction into a fresh store, ``Store.write_part`` timed; ``checks`` false writes
    parts as before the checks (no crc32c, no every-chunk writes, no size records, no chunk checks)."""
    import numpy as np
    import torch  # noqa: F401  (imports are not what is measured)

    import mmpretrain.datasets  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import vistsne.extract.digits  # noqa: F401
    import vistsne.store.arrays as A
    import zarr
    from vistsne.extract import ExtractParams, extract_entry
    from vistsne.store import Store

    _quiet()
    if not args["checks"]:
        A.write = _plain_write
        Store.check_chunks = False
    spent = {"s": 0.0, "n": 0}
    orig = Store.write_part

    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return orig(self, *a, **k)
        finally:
            spent["s"] += time.perf_counter() - t
            spent["n"] += 1

    Store.write_part = timed
    params = ExtractParams(**args["params"]).validate()
    gc.collect()
    t0 = time.perf_counter()
    res = extract_entry(Store(args["store"]), params, progress=False)
    seconds = time.perf_counter() - t0
    # what the parts hold: the checksum codec or not
    st = Store(args["store"], mode="r")
    (part, *_) = [p for p in st.parts(res.entry) if p.committed]
    stage = next(iter(part.stages))
    arr = zarr.open_group(args["store"], mode="r")[f"entries/{res.entry}/parts/{part.name}/feat/{stage}"]
    return {"seconds": seconds, "write_part_seconds": spent["s"], "write_part_calls": spent["n"],
            "rows": res.rows, "new_rows": res.new_rows, "crc32c": A.has_checksums(arr),
            "chunk_rows": int(arr.chunks[0]), "rows_per_part": int(np.ceil(res.rows / max(1, spent["n"])))}


def job_write_part_cost(args):
    """10c: ``Store.write_part`` of one part's arrays (the seams store's first part) into fresh stores, with
    the checks (as the store writes now) and without them (``_plain_write``, as before), alternating."""
    import shutil
    import tempfile

    import numpy as np
    import zarr

    import vistsne.store.arrays as A
    from vistsne.store import Store

    src = Store(args["store"], mode="r")
    entry = args["entry"]
    part = [p for p in src.parts(entry) if p.committed][0]
    g = zarr.open_group(args["store"], mode="r")
    base = f"entries/{entry}/parts/{part.name}"
    index, label, thumb = (np.asarray(g[f"{base}/{a}"][:]) for a in ("index", "label", "thumb"))
    feats = {s: np.asarray(g[f"{base}/feat/{s}"][:]) for s in part.stages}
    meta = src.entry_meta(entry)
    labels = src.dataset_labels(entry)
    checked = A.write
    out = {"checks": [], "no_checks": []}
    reps = int(args["reps"])
    tmp_root = tempfile.mkdtemp(prefix="write-part-", dir=args.get("tmp"))
    try:
        for r in range(reps + 1):  # the first round warms up and is dropped
            for name in (("checks", "no_checks") if r % 2 == 0 else ("no_checks", "checks")):
                A.write = checked if name == "checks" else _plain_write
                st = Store(f"{tmp_root}/{name}-{r}.zarr")
                st.create_entry(entry, meta, labels)
                t0 = time.perf_counter()
                st.write_part(entry, index, label, thumb, feats)
                if r:
                    out[name].append(time.perf_counter() - t0)
                shutil.rmtree(f"{tmp_root}/{name}-{r}.zarr", ignore_errors=True)
    finally:
        A.write = checked
        shutil.rmtree(tmp_root, ignore_errors=True)
    return {"rows": int(len(index)), "stages": list(feats), **out}


def job_codec_cost(args):
    """10c: one part's arrays (the seams store's first part) written and read through zarr directly: with
    the crc32c codec and every chunk written (as the store writes now), without the codec, and without it
    with chunks equal to the fill value skipped (zarr's default, as the store wrote before)."""
    import shutil
    import tempfile

    import numpy as np
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    from vistsne.store import Store

    st = Store(args["store"], mode="r")
    entry = args["entry"]
    part = [p for p in st.parts(entry) if p.committed][0]
    g = zarr.open_group(args["store"], mode="r")
    base = f"entries/{entry}/parts/{part.name}"
    data = {a: np.asarray(g[f"{base}/{a}"][:]) for a in ["index", "label", "thumb", *(f"feat/{s}" for s in part.stages)]}
    n = len(data["index"])
    nbytes = sum(int(v.nbytes) for v in data.values())
    zstd = ZstdCodec(level=0, checksum=False)
    # name: (compressors, write every chunk); "plain_skip" is how the store wrote before the checks
    variants = {"crc32c": ((zstd, Crc32cCodec()), True), "plain": ((zstd,), True), "plain_skip": ((zstd,), False)}
    out = {k: {"write": [], "read": []} for k in variants}
    reps = int(args["reps"])
    names = list(variants)
    tmp_root = tempfile.mkdtemp(prefix="codec-", dir=args.get("tmp"))
    try:
        for r in range(reps + 1):  # the first round warms up and is dropped
            for name in names[r % len(names):] + names[:r % len(names)]:
                path = f"{tmp_root}/{name}-{r}.zarr"
                codecs, every_chunk = variants[name]
                t0 = time.perf_counter()
                grp = zarr.open_group(path, mode="w")
                for a, v in data.items():
                    rows = max(1, min(n, 1024 if a == "thumb" else 4096))
                    grp.create_array(a, data=v, chunks=(rows,) + v.shape[1:], compressors=codecs,
                                     config={"write_empty_chunks": every_chunk})
                tw = time.perf_counter() - t0
                t0 = time.perf_counter()
                rg = zarr.open_group(path, mode="r")
                for a, v in data.items():
                    got = np.asarray(rg[a][:])
                tr = time.perf_counter() - t0
                assert got.shape == v.shape
                if r:
                    out[name]["write"].append(tw)
                    out[name]["read"].append(tr)
                shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return {"rows": n, "arrays": list(data), "raw_bytes": nbytes, **out}


def job_verify_store(args):
    """10d: a store of ~size_mb MB of features for ``vistsne store verify --deep``."""
    from benchmarks.store_checks import make_verify_store

    return make_verify_store(args["path"], float(args["size_mb"]), dim=int(args.get("dim", 512)),
                             parts=int(args.get("parts", 20)))


JOBS = {name[4:]: fn for name, fn in globals().items() if name.startswith("job_")}


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = JOBS[spec["job"]](spec["args"])
    Path(spec["out"]).write_text(json.dumps(result, default=float))


if __name__ == "__main__":
    main(sys.argv[1])
