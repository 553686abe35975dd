"""``vistsne run``: a drop-in for MMPretrain's ``tools/visualization/vis_tsne.py``.

It takes the reference tool's arguments (same names, meanings and defaults)
plus ``--store``, ``--images``, ``--seed`` and ``--format``, and runs
extract -> embed -> render through the store, so a second run that changes
only t-SNE flags runs no inference. The output folder is laid out like the
reference's: ``WORK_DIR/tsne_<YYYYmmdd_HHMMSS>/`` with ``tsne.log``, one
``feat_<name>.npy`` and one ``feat_<name>.png`` per embedded stage array.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParamError, RenderError, VistsneError
from .selection import parse_limit
from .stages import arrays_for as stage_arrays

log = logging.getLogger("vistsne")

#: scikit-learn's learning rate is 4x openTSNE's for the same step size.
SKLEARN_LR_FACTOR = 4.0


def _limit(text: str):
    """A value of --max-num-class or --max-num-samples as the reference parses it (an int), or ``all``
    (None); anything else is kept as given, for :func:`~vistsne.selection.parse_limit` to refuse."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def build_parser() -> argparse.ArgumentParser:
    """The reference's parser, argument for argument, plus vistsne's own options."""
    p = argparse.ArgumentParser(
        prog="vistsne run",
        description="t-SNE visualization, as MMPretrain's vis_tsne.py, cached: extract, embed and "
                    "render through the vistsne store.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("config", help="tsne config file path")
    p.add_argument("--checkpoint", default=None, help="checkpoint file or URL (default: random init)")
    p.add_argument("--work-dir", help="the folder that gets tsne_<time>/ with the log, features and figures "
                   "(default: the config's work_dir, else work_dirs/<config folder>/<config name>)")
    p.add_argument("--test-cfg", help="tsne config file path to load config of test dataloader.")
    p.add_argument("--vis-stage", choices=["backbone", "neck", "pre_logits"],
                   help="The visualization stage of the model (default: the model's own, neck for "
                        "ImageClassifier)")
    p.add_argument("--class-idx", nargs="+", type=int, help="The categories used to calculate t-SNE.")
    p.add_argument("--max-num-class", type=_limit, default=20,
                   help="The first N categories to apply t-SNE algorithms, or all. Defaults to 20.")
    p.add_argument("--max-num-samples", type=_limit, default=100,
                   help="The maximum number of samples per category, or all. Defaults to 100.")
    p.add_argument("--cfg-options", nargs="+", default=None,
                   help="override some settings in the used config, the key-value pair in xxx=yyy format")
    p.add_argument("--device", help="Device used for inference")
    p.add_argument("--legend", action="store_true", help="Show the legend of all categories.")
    p.add_argument("--show", action="store_true", help="Display the result in a graphical window.")
    p.add_argument("--n-components", type=int, default=2, help="the dimension of results")
    p.add_argument("--perplexity", type=float, default=30.0,
                   help="The perplexity is related to the number of nearest neighbors.")
    p.add_argument("--early-exaggeration", type=float, default=12.0,
                   help="Controls how tight natural clusters are in the embedded space.")
    p.add_argument("--learning-rate", type=float, default=200.0,
                   help="The learning rate for t-SNE, in scikit-learn's units as in the reference "
                        "(vistsne passes 4x this to openTSNE, the same step size).")
    p.add_argument("--n-iter", type=int, default=1000,
                   help="Maximum number of iterations for the optimization. Should be at least 250.")
    p.add_argument("--n-iter-without-progress", type=int, default=300,
                   help="Maximum number of iterations without progress before we abort the optimization.")
    p.add_argument("--init", type=str, default="random", help="The init method (random, pca or spectral)")
    g = p.add_argument_group("vistsne options")
    g.add_argument("--store", default=None, help="feature store (default: $VISTSNE_STORE or work_dirs/vistsne.zarr)")
    g.add_argument("--images", default=None, help="a class-per-folder image tree to use as the test data")
    g.add_argument("--seed", type=int, default=0, help="t-SNE seed (the reference had none)")
    g.add_argument("--format", default="png", help="comma list of png, svg, pdf, html")
    g.add_argument("--batch-size", type=int, default=None, help="inference batch size (default: the config's)")
    g.add_argument("--early-exaggeration-iter", type=int, default=250,
                   help="iterations of the early-exaggeration phase (part of --n-iter)")
    g.add_argument("--backbone-stages", default=None,
                   help="store these backbone stages (ViT: layers) in this pass: all, or indices such as 0,1,2,3")
    g.add_argument("--image-size", type=int, default=None,
                   help="resize every image to N x N first (a Resize in the test pipeline)")
    g.add_argument("--thumb-size", type=int, default=None,
                   help="thumbnail side stored per row, 8-256 px, 0 for none (default: by the rows selected, "
                        "48 up to 20,000, 32 up to 100,000, 16 beyond)")
    g.add_argument("--precision", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="how the model computes: autocast to bfloat16 (CPU, recent GPUs) or float16 (GPU)")
    g.add_argument("--allow-partial-checkpoint", action="store_true",
                   help="use a checkpoint that leaves some model weights unloaded (the entry records how many)")
    g.add_argument("--trust-checkpoint", action="store_true",
                   help="load checkpoints with arbitrary pickled objects (trusted sources only)")
    g.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                   help="how the ranks were started: pytorch (torchrun), slurm (srun), none (one process); "
                        "the ranks share the extraction, rank 0 embeds and renders")
    g.add_argument("--json", action="store_true", help="print one JSON document instead of the summary line")
    g.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def default_work_dir(config: str, cfg_work_dir: str | None) -> str:
    """The reference's priority (config's work_dir, else by config path), without its defect.

    Under a ``configs/`` folder (or ``mmpretrain::``) the folder is the one right
    below it, as in the reference: ``configs/resnet/x.py`` -> ``work_dirs/resnet/x``,
    ``configs/mae/benchmarks/y.py`` -> ``work_dirs/mae/y``. A config that is not
    under ``configs/<dir>/`` gets its own folder's name (``a/b/x.py`` ->
    ``work_dirs/b/x``) or none (``configs/x.py``, ``x.py`` -> ``work_dirs/x``).
    """
    if cfg_work_dir:
        return str(cfg_work_dir)
    text = str(config)
    if text.startswith("mmpretrain::"):
        parts, under_configs = list(Path(text[len("mmpretrain::"):]).parts), True
    else:
        parts = list(Path(text).parts)
        under_configs = "configs" in parts[:-1]
        if under_configs:  # keep what follows the last configs/ folder
            parts = parts[len(parts) - parts[::-1].index("configs"):]
    name = Path(parts[-1]).stem if parts else "config"
    if len(parts) < 2:
        folder = None
    elif under_configs:
        folder = parts[0]
    else:
        folder = parts[-2] if parts[-2] not in (".", "..") and parts[-2] != Path(text).anchor else None
    return os.path.join(".", "work_dirs", folder, name) if folder else os.path.join(".", "work_dirs", name)


def make_out_dir(work_dir: str) -> Path:
    """``WORK_DIR/tsne_<YYYYmmdd_HHMMSS>/``, new for each run.

    The reference reuses the folder of a run started in the same second, which
    mixes two runs' files and logs; here the later run gets ``..._1`` (``_2``, ...).
    """
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    base = Path(work_dir) / f"tsne_{stamp}"
    out_dir, n = base, 0
    while True:
        try:
            out_dir.mkdir(parents=True, exist_ok=False)
            return out_dir
        except FileExistsError:
            if not out_dir.is_dir():
                raise RenderError(f"cannot create the output folder {out_dir}: a file is in the way",
                                  "pass another --work-dir") from None
            n += 1
            out_dir = base.with_name(f"{base.name}_{n}")
        except OSError as e:
            raise RenderError(f"cannot create the output folder {out_dir}: {e.strerror or e}",
                              "pass a writable --work-dir") from e


@dataclass
class RunResult:
    out_dir: Path
    entry: str
    extract_cached: bool
    new_rows: int
    rows: int
    maps: list = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    rank: int = 0  # --launcher: the other ranks only extract, and print nothing

    def summary(self) -> str:
        ext = ("features from the store (cache hit, no inference)" if self.extract_cached
               else f"inference on {self.new_rows} new rows")
        new_maps = sum(not r.cached for r in self.maps)
        return (f"run: {self.rows} samples, {ext}; {_plural(len(self.maps), 't-SNE map')} ({new_maps} new); "
                f"{_plural(len(self.files), 'file')} in {self.seconds:.1f}s; output {self.out_dir}")

    def to_json(self) -> dict:
        return {"out_dir": str(self.out_dir), "entry": self.entry, "extract_cached": self.extract_cached,
                "rows": self.rows, "new_rows": self.new_rows, "maps": [r.to_json() for r in self.maps],
                "files": [str(f) for f in self.files], "seconds": round(self.seconds, 3)}


def asked_name(rec, requested) -> str:
    """The name a map was asked for: a stage stored once under several names (``neck`` = ``backbone.3``)
    is written under the name the reference's ``--vis-stage`` picked."""
    names = list((rec.attrs or {}).get("stage_names") or [rec.stage])
    return next((n for n in names if n in requested), rec.stage)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def run(argv: list[str], *, show_progress: bool = True) -> RunResult:
    """Parse ``argv`` like the reference and run extract -> embed -> render through the orchestrator."""
    import shutil

    from . import pipeline
    from .embed import EmbedParams
    from .extract.params import ExtractParams, parse_backbone_stages
    from .extract.config import load_config
    from .render import RenderParams

    t0 = time.perf_counter()
    args = build_parser().parse_args(argv)
    formats = RenderParams.parse_formats(args.format)
    rparams = RenderParams(formats=formats, legend=args.legend, show=args.show).validate()
    if args.init not in ("random", "pca", "spectral"):
        raise ParamError(f"unknown --init {args.init!r}", "choose random, pca or spectral")
    eparams = EmbedParams(perplexity=args.perplexity, n_iter=args.n_iter,
                          early_exaggeration=args.early_exaggeration,
                          learning_rate=args.learning_rate * SKLEARN_LR_FACTOR,
                          n_components=args.n_components, init=args.init,
                          n_iter_without_progress=args.n_iter_without_progress, seed=args.seed,
                          early_exaggeration_iter=args.early_exaggeration_iter).validate()
    xparams = ExtractParams(config=args.config, checkpoint=args.checkpoint, test_cfg=args.test_cfg,
                            cfg_options=tuple(args.cfg_options or ()), images=args.images, vis_stage="all",
                            class_idx=tuple(args.class_idx) if args.class_idx else None,
                            max_num_class=parse_limit(args.max_num_class, "--max-num-class"),
                            max_num_samples=parse_limit(args.max_num_samples, "--max-num-samples"),
                            device=args.device, batch_size=args.batch_size, image_size=args.image_size,
                            thumb_size=args.thumb_size, precision=args.precision,
                            backbone_stages=parse_backbone_stages(args.backbone_stages),
                            allow_partial_checkpoint=args.allow_partial_checkpoint,
                            trust_checkpoint=args.trust_checkpoint, launcher=args.launcher).validate()
    from .extract.distributed import check_environment, env_rank

    check_environment(xparams.launcher)
    if env_rank(xparams.launcher):  # ranks other than 0 share the extraction; rank 0 does the rest
        res = pipeline.extract(pipeline.open_store(args.store), xparams, progress=False)
        return RunResult(Path(), res.entry, res.cached, res.new_rows, res.rows, seconds=time.perf_counter() - t0,
                         rank=res.rank)

    # the work dir first (the reference logs there from the start)
    loaded = load_config(args.config, xparams.cfg_options, args.test_cfg, None)
    work_dir = args.work_dir or default_work_dir(args.config, loaded.cfg.get("work_dir"))
    store = pipeline.open_store(args.store)
    out_dir = make_out_dir(work_dir)
    handler = logging.FileHandler(out_dir / "tsne.log")
    handler.setFormatter(logging.Formatter("%(asctime)s - vistsne - %(levelname)s - %(message)s"))
    log.addHandler(handler)
    prev_level = log.level
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    ok = False
    try:
        log.info("vistsne run %s", " ".join(argv))
        if args.learning_rate:
            log.info("learning rate %g (scikit-learn units, as vis_tsne.py) = %g in openTSNE units",
                     args.learning_rate, args.learning_rate * SKLEARN_LR_FACTOR)
        requested: list[str] = []

        def pick(dims):
            requested[:] = stage_arrays(dims, args.vis_stage)
            return list(requested)

        request = pipeline.Request(
            extract=xparams, out_dir=out_dir, stages=pick, embed=[eparams], render=rparams,
            names=lambda rec: f"feat_{asked_name(rec, requested)}", html_name="tsne.html",
            sheets=False)
        out = pipeline.run(store, request, progress=show_progress)
        res = out.extracted
        log.info("features: entry %s, %d samples (%s)", res.entry[:12], res.rows,
                 "cache hit, no inference" if res.cached else f"{res.new_rows} computed")
        files: list[Path] = []
        for rec in out.records:
            npy = out_dir / f"feat_{asked_name(rec, requested)}.npy"
            np.save(npy, store.read_rows(res.entry, store.read_embedding(res.entry, rec.key)[1], rec.stage))
            files.append(npy)
            log.info("stage %s: t-SNE %s, 10-NN accuracy in the map %.3f", rec.stage,
                     "from the store" if rec.cached else f"in {rec.seconds:.1f}s",
                     rec.metrics.get("knn_acc_map", float("nan")))
        files += out.files
        log.info("Save features and results to %s", out_dir)
        files.append(out_dir / "tsne.log")
        ok = True
        return RunResult(out_dir, res.entry, res.cached, res.new_rows, res.rows, out.records, files,
                         time.perf_counter() - t0)
    except VistsneError as e:  # into tsne.log too; the CLI prints it once on stderr
        handler.stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} - vistsne - ERROR - {e.one_line()}\n")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(prev_level)
        if not ok:  # a failed run leaves no tsne_<time>/ folder behind (the error went to stderr)
            shutil.rmtree(out_dir, ignore_errors=True)
