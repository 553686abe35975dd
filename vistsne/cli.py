"""The ``vistsne`` command line: a thin click layer over the library.

Each command parses options, calls one library function, prints a one-line
summary (or JSON), and turns :class:`vistsne.errors.VistsneError` into one
clean line and a non-zero exit. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time

import click

from . import __version__
from .errors import VistsneError

log = logging.getLogger("vistsne")


# ----------------------------------------------------------------- plumbing
def _setup_logging(debug: bool, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    if not debug:
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("mmengine").setLevel(logging.ERROR)


def handle_errors(fn):
    """Map library errors to one line on stderr and exit code 2 (1 for others)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug") or kwargs.get("debug")
                     or "--debug" in (kwargs.get("args") or ()))
        if kwargs.get("debug"):  # the command's own --debug, after the group's logging set-up
            _setup_logging(True)
        try:
            return fn(*args, **kwargs)
        except VistsneError as e:
            if debug:
                raise
            click.echo(f"error: {e.one_line()}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: committed rows are kept; run the same command to resume", err=True)
            sys.exit(130)
        except BrokenPipeError:
            raise  # a reader closed the pipe (`| head`): main() exits quietly
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - an internal error: one line unless --debug
            if debug:
                raise
            click.echo(f"error: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                       "(internal error; rerun with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else f"{n} {word}s"


def _emit(as_json: bool, payload, summary: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=None, default=str))
    else:
        click.echo(summary)


def store_option(fn):
    return click.option("--store", "store_path", default=None, metavar="PATH|URL",
                        help="Feature store (default: $VISTSNE_STORE or work_dirs/vistsne.zarr).")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(fn)


def debug_option(fn):
    return click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")(fn)


def model_options(fn=None, *, picks_only: bool = False):
    """The options that, with CONFIG, define a feature entry (shared by all stages).

    ``picks_only``: for embed and render, where they only say which stored
    entry is meant (nothing is built or run); the help says so.
    """
    if fn is None:
        return lambda f: model_options(f, picks_only=picks_only)
    tail = " Only picks the stored entry; nothing runs." if picks_only else ""
    opts = [
        click.option("--checkpoint", default=None, metavar="PATH|URL",
                     help="Checkpoint file or URL (default: random init)." + tail),
        click.option("--test-cfg", default=None, metavar="CFG", help="Config whose test_dataloader is used." + tail),
        click.option("--cfg-options", multiple=True, metavar="K=V",
                     help="Override config keys: --cfg-options a=1 b=2 (as vis_tsne.py) or repeat the flag." + tail),
        click.option("--images", default=None, type=click.Path(), metavar="DIR",
                     help="Use a class-per-folder image tree as the test data." + tail),
        click.option("--pool", type=click.Choice(["avg", "cls"]), default="avg", show_default=True,
                     help="Pooling of (N,L,C) token outputs: token mean or class token." + tail),
        click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
                     help="Stored feature precision." + tail),
        click.option("--precision", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32",
                     show_default=True,
                     help="How the model computes: autocast to bfloat16 (CPU with AMX/AVX512-BF16, recent GPUs) "
                          "or float16 (GPU) is several times faster; the features differ slightly, so it is "
                          "part of the entry." + tail),
        click.option("--image-size", type=int, default=None, metavar="N",
                     help="Resize every image to N x N first (a Resize in the test pipeline)." + tail),
        click.option("--backbone-stages", default=None, metavar="all|I,J,...",
                     help="Store these backbone stages (ViT: layers) in this pass instead of the config's "
                          "out_indices: all, or indices such as 0,1,2,3." + tail),
    ]
    if not picks_only:
        opts.append(click.option("--trust-checkpoint", is_flag=True,
                                 help="Load checkpoints with arbitrary pickled objects (only for sources you trust)."))
    for o in reversed(opts):
        fn = o(fn)
    return fn


def selection_options(fn):
    from .selection import DEFAULT_MAX_NUM_CLASS, DEFAULT_MAX_NUM_SAMPLES

    opts = [
        click.option("--class-idx", multiple=True, type=int, metavar="I",
                     help="Class indices: --class-idx 0 1 2 (as vis_tsne.py) or repeat the flag. "
                          "Default: the first --max-num-class classes."),
        click.option("--max-num-class", default=str(DEFAULT_MAX_NUM_CLASS), show_default=True, metavar="N|all",
                     help="The first N classes, or all."),
        click.option("--max-num-samples", default=str(DEFAULT_MAX_NUM_SAMPLES), show_default=True,
                     metavar="N|all", help="The most samples per class, or all."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _split_multi(values) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or ():
        out.extend(x for x in str(v).split() if x)
    return tuple(out)


def _class_idx(values) -> tuple[int, ...] | None:
    return tuple(int(v) for v in values) if values else None


def _selection(class_idx, max_num_class, max_num_samples):
    from .selection import RowSelection, parse_limit

    return RowSelection(_class_idx(class_idx), parse_limit(max_num_class, "--max-num-class"),
                        parse_limit(max_num_samples, "--max-num-samples")).validate()


def _open_store(path, mode="a"):
    from .pipeline import open_store

    return open_store(path, mode)


class _Group(click.Group):
    def list_commands(self, ctx):
        return ["demo", "extract", "embed", "render", "suspects", "compare", "run", "store"]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vistsne")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the summary.")
@click.pass_context
def cli(ctx, debug, quiet):
    """Cached t-SNE maps of MMPretrain model features, stage by stage.

    \b
    extract  run the model once; store every stage's features
    embed    openTSNE over cached features (sweeps, metrics, cached)
    render   figures and an interactive page from the store alone
    suspects the images most likely mislabelled, from the kNN graph
    compare  aligned maps of checkpoints or models over shared images
    run      drop-in for MMPretrain's vis_tsne.py (extract+embed+render)
    store    list, inspect, verify and clean the feature store
    demo     the built-in digits demo, end to end
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["quiet"] = quiet
    _setup_logging(debug, quiet)


def _progress_enabled() -> bool:
    return not click.get_current_context().find_root().params.get("quiet")


# ------------------------------------------------------------------ extract
@cli.command()
@click.argument("config")
@model_options
@click.option("--vis-stage", type=click.Choice(["backbone", "neck", "pre_logits", "all"]), default="all",
              show_default=True, help="Which stages to store; all stores every one in one forward pass.")
@selection_options
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available).")
@click.option("--batch-size", type=int, default=None, help="Default: the config's test batch size.")
@click.option("--num-workers", type=int, default=None,
              help="DataLoader workers. Default: the config's, at most cores - 1.")
@click.option("--allow-partial-checkpoint", is_flag=True,
              help="Use a checkpoint that leaves some model weights unloaded (the entry records how many).")
@click.option("--thumb-size", type=int, default=None, metavar="PX",
              help="Thumbnail side stored per row, 8-256 px, 0 for none. Default: by the rows selected "
                   "(48 up to 20,000, 32 up to 100,000, 16 beyond).")
@click.option("--flush-rows", type=int, default=1024, hidden=True, help="Rows per committed part.")
@click.option("--launcher", type=click.Choice(["none", "pytorch", "slurm"]), default="none", show_default=True,
              help="How the ranks were started: pytorch (torchrun), slurm (srun), none (one process).")
@store_option
@json_option
@debug_option
@handle_errors
def extract(config, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size, backbone_stages,
            trust_checkpoint,
            vis_stage, class_idx, max_num_class, max_num_samples, device, batch_size, num_workers,
            allow_partial_checkpoint, thumb_size, flush_rows, launcher, store_path, as_json, debug):
    """Run CONFIG's model over a class-balanced subset and store every stage.

    CONFIG is a path, mmpretrain::<dir>/<name>.py, or a seed-style
    configs/<dir>/<name>.py (taken from the installed mmpretrain if not on disk).
    The same inputs again are a cache hit that runs no inference.
    """
    from . import pipeline
    from .extract import ExtractParams

    sel = _selection(class_idx, max_num_class, max_num_samples)
    params = ExtractParams(config=config, checkpoint=checkpoint, test_cfg=test_cfg,
                           cfg_options=_split_multi(cfg_options), images=images, vis_stage=vis_stage,
                           class_idx=sel.class_idx, max_num_class=sel.max_num_class,
                           max_num_samples=sel.max_num_samples, device=device, batch_size=batch_size,
                           num_workers=num_workers, pool=pool, dtype=dtype, precision=precision,
                           image_size=image_size,
                           backbone_stages=_backbone_stages(backbone_stages),
                           trust_checkpoint=trust_checkpoint, allow_partial_checkpoint=allow_partial_checkpoint,
                           thumb_size=thumb_size, flush_rows=flush_rows, launcher=launcher).validate()
    from .extract.distributed import check_environment

    check_environment(launcher)  # outside its launcher: one line, before the store is opened
    store = _open_store(store_path)
    res = pipeline.extract(store, params, progress=_progress_enabled() and not as_json)
    if res.rank:  # rank 0 prints the one summary, of all ranks
        return
    from .stages import network_order

    stages = ", ".join(f"{k} ({res.stages[k]})" for k in network_order(res.stages))
    what = "cache hit, no inference" if res.cached else f"{res.new_rows} new rows computed"
    partial = f"; {res.partial_note()}" if res.partial_note() else ""
    payload = res.to_json()
    if launcher != "none":
        payload.update(ranks=res.ranks, images_per_s=res.images_per_s)
    _emit(as_json, payload,
          f"extract: entry {res.entry[:12]}: {res.rows} rows ({what}, {res.rows - res.new_rows} cached); "
          f"stages {stages}{partial}; {res.seconds:.1f}s"
          + (f"; {res.ranks} ranks, {res.images_per_s:.1f} img/s" if launcher != "none" and res.images_per_s
             else "") + f"; store {res.store}")


# -------------------------------------------------------------------- embed
def _csv(text, cast, flag):
    items = [t for t in str(text).replace(" ", ",").split(",") if t]
    if not items:
        raise click.BadParameter("give at least one value", param_hint=flag)
    out = []
    for t in items:
        try:
            out.append(cast(t))
        except ValueError:
            raise click.BadParameter(f"{t!r} is not a valid value", param_hint=flag) from None
    return out


def _lr(text):
    return "auto" if text.strip().lower() == "auto" else float(text)


def _entry_args(fn):
    opts = [
        click.argument("config", required=False),
        click.option("--entry", default=None, metavar="KEY", help="Entry key or unique prefix (default: the latest)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return model_options(fn, picks_only=True)


def _backbone_stages(text):
    from .extract.params import parse_backbone_stages

    return parse_backbone_stages(text)


def _entry_ref(entry, config, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size,
               backbone_stages=None):
    from .locate import EntryRef

    return EntryRef(entry=entry, config=config, checkpoint=checkpoint, test_cfg=test_cfg,
                    cfg_options=_split_multi(cfg_options), images=images, pool=pool, dtype=dtype,
                    precision=precision, image_size=image_size, backbone_stages=_backbone_stages(backbone_stages))


def tsne_options(fn):
    opts = [
        click.option("--perplexity", default="30", show_default=True, help="One value or a comma list (sweep)."),
        click.option("--n-iter", default="750", show_default=True,  # EmbedParams.n_iter
                     help="Total iterations, early exaggeration included; comma list sweeps."),
        click.option("--early-exaggeration", default="12", show_default=True, help="Comma list sweeps."),
        click.option("--early-exaggeration-iter", default=250, show_default=True, type=int,
                     help="Iterations of the early-exaggeration phase (part of --n-iter)."),
        click.option("--learning-rate", default="auto", show_default=True,
                     help="auto = max(200, N/early_exaggeration), openTSNE units; comma list sweeps."),
        click.option("--n-components", default=2, show_default=True, type=int, help="1, 2 or 3."),
        click.option("--init", "init", default="pca", show_default=True,
                     help="pca, spectral or random; comma list sweeps."),
        click.option("--n-iter-without-progress", default=300, show_default=True, type=int,
                     help="Stop a phase when KL has not improved for this many iterations (0: off)."),
        click.option("--pca-dims", default="auto", show_default=True,
                     help="auto (all dims while an exact kNN search fits, else 50 for features "
                          "wider than 100), 0 (off) or N."),
        click.option("--seed", default="0", show_default=True, help="Comma list sweeps."),
        click.option("--method", type=click.Choice(["auto", "fft", "bh"]), default="auto", show_default=True,
                     help="Negative gradient method; auto picks by N (recorded with the map)."),
        click.option("--n-jobs", default=None, type=int, help="Cores (default: all); a sweep runs maps side by side."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def build_embed_params(perplexity, n_iter, early_exaggeration, learning_rate, n_components, init,
                       n_iter_without_progress, pca_dims, seed, method, early_exaggeration_iter=250, subsample=0):
    from .embed import EmbedParams, sweep

    pca = pca_dims if str(pca_dims).lower() == "auto" else int(pca_dims)
    base = EmbedParams(n_components=n_components, n_iter_without_progress=n_iter_without_progress,
                       pca_dims=pca, method=method, early_exaggeration_iter=early_exaggeration_iter,
                       subsample=subsample or 0)
    return sweep(base, perplexity=_csv(perplexity, float, "--perplexity"),
                 n_iter=_csv(n_iter, int, "--n-iter"),
                 early_exaggeration=_csv(early_exaggeration, float, "--early-exaggeration"),
                 learning_rate=_csv(learning_rate, _lr, "--learning-rate"),
                 init=_csv(init, str, "--init"), seed=_csv(seed, int, "--seed"))


@cli.command()
@_entry_args
@click.option("--stage", "stages", multiple=True, metavar="NAME",
              help="Stored array(s) to embed, e.g. backbone.3, neck, pre_logits; or all (default).")
@selection_options
@tsne_options
@click.option("--subsample", default=0, type=int, metavar="N",
              help="Embed a class-balanced sample of N rows, then place every other row into that map "
                   "(openTSNE transform); 0: off.")
@store_option
@json_option
@debug_option
@handle_errors
def embed(config, entry, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size, backbone_stages,
          stages,
          class_idx, max_num_class, max_num_samples, perplexity, n_iter, early_exaggeration,
          early_exaggeration_iter, learning_rate, n_components, init, n_iter_without_progress, pca_dims, seed,
          method, n_jobs, subsample, store_path, as_json, debug):
    """openTSNE over cached features: no inference, cached maps, metrics.

    The entry is --entry KEY, or CONFIG [--checkpoint ...] (found by its stored
    provenance; nothing is built or run), or the most recent entry.
    Lists sweep: --perplexity 5,30,50.
    """
    from . import pipeline
    from .embed.entry import metrics_table, subsample_summary

    t0 = time.perf_counter()
    params = build_embed_params(perplexity, n_iter, early_exaggeration, learning_rate, n_components, init,
                                n_iter_without_progress, pca_dims, seed, method, early_exaggeration_iter,
                                subsample)
    sel = _selection(class_idx, max_num_class, max_num_samples)
    st = _open_store(store_path, "r+")
    ref = _entry_ref(entry, config, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size,
                     backbone_stages)
    done = pipeline.embed(st, ref, _split_multi(stages) or ("all",), params, sel, n_jobs=n_jobs,
                          progress=_progress_enabled() and not as_json)
    key, records = done.entry, done.records
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records]))
        return
    click.echo(metrics_table(records))
    new = sum(not r.cached for r in records)
    n_stages = len({r.stage for r in records})
    sub = subsample_summary(records)
    click.echo(f"embed: entry {key[:12]}: {_plural(len(records), 'map')} ({new} new, {len(records) - new} cached) "
               f"over {_plural(n_stages, 'stage')} in {time.perf_counter() - t0:.1f}s; "
               + (f"{sub}; " if sub else "") + f"store {st.path}")


# ------------------------------------------------------------------- render
@cli.command()
@_entry_args
@click.option("--stage", "stages", multiple=True, metavar="NAME", help="Only maps of these stages.")
@click.option("--embedding", "embeddings", multiple=True, metavar="KEY|all|latest", default=("all",),
              show_default=True, help="Embedding keys (prefixes), all, or latest (per stage).")
@click.option("--out", "out_dir", default=os.path.join("work_dirs", "figures"), show_default=True,
              type=click.Path(), help="Output folder.")
@click.option("--format", "formats", default="png", show_default=True, help="Comma list of png, svg, pdf, html.")
@click.option("--legend/--no-legend", default=False, show_default=True, help="A legend with the class names.")
@click.option("--show", is_flag=True, help="Open a window where a display exists.")
@click.option("--point-size", type=float, default=None, help="Marker area (default: from N).")
@click.option("--dpi", type=int, default=100, show_default=True)
@click.option("--mosaic", is_flag=True, help="Also draw the thumbnails at their map positions.")
@click.option("--color-by", default="label", show_default=True, metavar="FIELD",
              help="label, prediction, correct, confidence or suspect (the last four need predictions "
                   "or stored scores).")
@click.option("--class-idx", multiple=True, type=int, metavar="I",
              help="Only maps made over these classes (as embed's --class-idx).")
@click.option("--max-num-class", default=None, metavar="N|all",
              help="Only maps made over this selection (as embed's; the other of the two takes embed's default). "
                   "Default: every map.")
@click.option("--max-num-samples", default=None, metavar="N|all", help="As --max-num-class.")
@store_option
@json_option
@debug_option
@handle_errors
def render(config, entry, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size, backbone_stages,
           stages,
           embeddings, out_dir, formats, legend, show, point_size, dpi, mosaic, color_by, class_idx, max_num_class,
           max_num_samples, store_path, as_json, debug):
    """Figures from the store alone: one per map, sweep sheets, an HTML page."""
    from . import pipeline
    from .render import RenderParams

    t0 = time.perf_counter()
    params = RenderParams(formats=RenderParams.parse_formats(formats), legend=legend, point_size=point_size,
                          dpi=dpi, mosaic=mosaic, show=show, color_by=color_by).validate()
    from .render import check_out_dir

    check_out_dir(out_dir)
    st = _open_store(store_path, "r")
    ref = _entry_ref(entry, config, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size,
                     backbone_stages)
    from .selection import DEFAULT_MAX_NUM_CLASS, DEFAULT_MAX_NUM_SAMPLES

    selection = None
    if class_idx or max_num_class is not None or max_num_samples is not None:
        selection = _selection(class_idx, DEFAULT_MAX_NUM_CLASS if max_num_class is None else max_num_class,
                               DEFAULT_MAX_NUM_SAMPLES if max_num_samples is None else max_num_samples)
    res = pipeline.render(st, ref, out_dir, params, stages=_split_multi(stages),
                          embeddings=_split_multi(embeddings) or ("all",),
                          progress=_progress_enabled() and not as_json, selection=selection)
    _emit(as_json, res.to_json(),
          f"render: entry {res.entry[:12]}: {_plural(res.maps, 'map')}, {_plural(res.sheets, 'sweep sheet')}, "
          f"{_plural(len(res.files), 'file')} in {time.perf_counter() - t0:.1f}s; output {res.out_dir}")


# ----------------------------------------------------------------- suspects
@cli.command()
@_entry_args
@click.option("--stage", default=None, metavar="NAME", help="The stage whose neighbourhoods count "
              "(default: pre_logits, else the last stage).")
@selection_options
@click.option("--top", default=50, show_default=True, type=click.IntRange(1, None),
              help="How many rows to list and draw.")
@click.option("--out", "out_dir", default=os.path.join("work_dirs", "figures"), show_default=True,
              type=click.Path(), help="Where the contact sheet goes.")
@click.option("--no-sheet", is_flag=True, help="Only list them; draw no contact sheet.")
@click.option("--n-jobs", default=None, type=int, help="Cores for an embed that is not cached yet.")
@store_option
@json_option
@debug_option
@handle_errors
def suspects(config, entry, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size,
             backbone_stages, stage,
             class_idx, max_num_class, max_num_samples, top, out_dir, no_sheet, n_jobs, store_path, as_json, debug):
    """The rows most likely mislabelled or confused, most suspect first.

    Each row's score is read off the stage's feature-space kNN graph (the
    share of its 10 neighbours with another label) and, where the entry holds
    the model's predictions, the model's own score of the label. Prints path,
    label, neighbour majority, prediction and confidence, and draws a contact
    sheet of their thumbnails. Uses the stage's default map (embedding it
    first if it is not in the store).
    """
    from . import pipeline
    from .render import RenderParams

    t0 = time.perf_counter()
    sel = _selection(class_idx, max_num_class, max_num_samples)
    st = _open_store(store_path, "r+")
    ref = _entry_ref(entry, config, checkpoint, test_cfg, cfg_options, images, pool, dtype, precision, image_size,
                     backbone_stages)
    report, sheet = pipeline.suspects(st, ref, stage, sel, top=top, out_dir=None if no_sheet else out_dir,
                                      render_params=RenderParams().validate(), n_jobs=n_jobs,
                                      progress=_progress_enabled() and not as_json)
    if as_json:
        click.echo(json.dumps({**report.to_json(), "sheet": str(sheet) if sheet else None}))
        return
    head = f"{'#':>3}  {'suspect':>7}  {'label':16} {'neighbours':16} {'prediction':22}  path"
    click.echo(head)
    for i, it in enumerate(report.items, 1):
        pred = f"{it['prediction']} ({it['confidence']:.2f})" if it["prediction"] is not None else "-"
        click.echo(f"{i:>3}  {it['suspect']:7.3f}  {it['label'][:16]:16} {it['neighbour_majority'][:16]:16} "
                   f"{pred[:22]:22}  {it['path'] or '#' + str(it['dataset_index'])}")
    if not report.uses_predictions:
        has = any(it["prediction"] is not None for it in report.items)
        click.echo("(the model predicts other classes than this data's: scores use the neighbourhoods only)" if has
                   else "(no predictions in this entry: scores use the neighbourhoods only; re-extract to add them)")
    where = f"; sheet {sheet}" if sheet else ""
    click.echo(f"suspects: entry {report.entry[:12]} stage {report.stage}: {_plural(len(report.items), 'row')} of "
               f"{report.rows} listed in {time.perf_counter() - t0:.1f}s{where}")


# ------------------------------------------------------------------ compare
@cli.command()
@click.argument("configs", nargs=-1, metavar="[CONFIG]...")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="PATH|GLOB",
              help="A checkpoint of CONFIG; repeat it, or quote a glob ('work_dirs/run/epoch_*.pth', natural order).")
@click.option("--entry", "entries", multiple=True, metavar="KEY", help="A stored entry (key or prefix); repeat it.")
@click.option("--stage", "stages", multiple=True, metavar="NAME",
              help="Stage(s) to compare (default: pre_logits, else the last); all for every shared one.")
@click.option("--reference", default=-1, show_default=True, type=int,
              help="Position of the reference entry (its map is the frame); -1 is the last.")
@click.option("--align", type=click.Choice(["chain", "reference", "procrustes", "none"]), default=None,
              help="procrustes (default): independent maps, only rotated onto the reference; chain: start each "
                   "map from its neighbour's; reference: from the reference's; none.")
@click.option("--out", "out_dir", default=os.path.join("work_dirs", "figures"), show_default=True,
              type=click.Path(), help="Where the figures go.")
@click.option("--figures", default="sheet,curve,gif,html", show_default=True,
              help="Comma list of sheet, curve, gif, mp4, html, json; none for no figures.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, None),
              help="Rows listed as most changed per pair.")
@click.option("--test-cfg", default=None, metavar="CFG", help="Config whose test_dataloader is used.")
@click.option("--cfg-options", multiple=True, metavar="K=V", help="Override config keys (as extract).")
@click.option("--images", default=None, type=click.Path(), metavar="DIR", help="A class-per-folder image tree.")
@click.option("--pool", type=click.Choice(["avg", "cls"]), default="avg", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--precision", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32",
              show_default=True, help="How the model computes (as extract).")
@click.option("--image-size", type=int, default=None, metavar="N")
@click.option("--trust-checkpoint", is_flag=True, help="Load checkpoints with arbitrary pickled objects.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N for extraction.")
@selection_options
@click.option("--perplexity", default="30", show_default=True)
@click.option("--n-iter", default="750", show_default=True,  # EmbedParams.n_iter
              help="Total iterations, early exaggeration included.")
@click.option("--seed", default="0", show_default=True)
@click.option("--n-jobs", default=None, type=int, help="Cores (default: all).")
@store_option
@json_option
@debug_option
@handle_errors
def compare(configs, checkpoints, entries, stages, reference, align, out_dir, figures, top, test_cfg, cfg_options,
            images, pool, dtype, precision, image_size, trust_checkpoint, device, class_idx, max_num_class,
            max_num_samples,
            perplexity, n_iter, seed, n_jobs, store_path, as_json, debug):
    """Aligned maps of two or more entries over the images they share, and how their features differ.

    CONFIG --checkpoint a.pth --checkpoint b.pth (or a quoted glob), --entry K1 --entry K2,
    or two configs. Missing features are extracted first (through the cache).
    """
    from .compare import compare as run_compare
    from .embed.compare_entry import pairs_table

    t0 = time.perf_counter()
    params = build_embed_params(perplexity, n_iter, "12", "auto", 2, "pca", 300, "auto", seed, "auto")
    if len(params) != 1:
        raise click.BadParameter("compare takes one value each", param_hint="--perplexity/--n-iter/--seed")
    sel = _selection(class_idx, max_num_class, max_num_samples)
    figs = [f for f in str(figures).replace(" ", ",").split(",") if f and f != "none"]
    st = _open_store(store_path)
    opts = dict(test_cfg=test_cfg, cfg_options=_split_multi(cfg_options), images=images, pool=pool, dtype=dtype,
                precision=precision, image_size=image_size, trust_checkpoint=trust_checkpoint, device=device)
    res = run_compare(st, configs=configs, checkpoints=checkpoints, entries=entries,
                      stages=_split_multi(stages), params=params[0], selection=sel, align=align,
                      reference=reference, out_dir=out_dir if figs else None, figures=figs,
                      extract_options=opts, n_jobs=n_jobs, progress=_progress_enabled() and not as_json, top=top)
    if as_json:
        click.echo(json.dumps(res.to_json(), default=str))
        return
    click.echo(pairs_table(res.result))
    r = res.result
    rows = ", ".join(f"{s} {n}" for s, n in r.rows.items())
    files = f"; figures {', '.join(str(f) for f in res.files)}" if res.files else ""
    click.echo(f"compare: {len(r.entries)} entries ({r.align}, reference {r.labels_of[r.reference]}), "
               f"rows {rows}, in {time.perf_counter() - t0:.1f}s{files}")


# ---------------------------------------------------------------------- run
@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                               "help_option_names": []}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def run(args):
    """Drop-in for MMPretrain's vis_tsne.py: same arguments, cached (run --help for them)."""
    from .run import run as run_reference

    args = list(args)
    as_json = "--json" in args
    if "--debug" in args:
        _setup_logging(True)
    res = run_reference(args, show_progress=_progress_enabled() and not as_json)
    if res.rank:  # --launcher: rank 0 prints the one summary
        return
    _emit(as_json, res.to_json(), res.summary())


# --------------------------------------------------------------------- demo
@cli.command()
@click.option("--out", "out_dir", default=os.path.join("work_dirs", "demo", "figures"), show_default=True,
              type=click.Path(), help="Where the figures go.")
@click.option("--train-only", is_flag=True, help="Only make the demo checkpoint (if missing).")
@click.option("--retrain", is_flag=True, help="Train the demo checkpoint again.")
@store_option
@json_option
@debug_option
@handle_errors
def demo(out_dir, train_only, retrain, store_path, as_json, debug):
    """The built-in default, end to end: ResNet-18 on scikit-learn's digits.

    Trains the demo checkpoint once (CPU, a few minutes), then extracts the
    test split with it and with random init, embeds every stage, and renders
    the maps side by side. A second run is all cache hits.
    """
    from . import demo as demo_mod

    t0 = time.perf_counter()
    ckpt = demo_mod.train_checkpoint(force=retrain)
    if train_only:
        click.echo(f"demo: checkpoint {ckpt} ready in {time.perf_counter() - t0:.1f}s")
        return
    res = demo_mod.run_demo(_open_store(store_path), out_dir, checkpoint=str(ckpt),
                            progress=_progress_enabled() and not as_json)
    _emit(as_json, res.to_json(), res.summary(time.perf_counter() - t0))


# -------------------------------------------------------------------- store
@cli.group()
def store():
    """List, inspect, verify and clean the feature store."""


def _entry_rows(st, key) -> int:
    return len(st.present(key, []))


def _per_class(pc) -> str:
    if not pc:
        return "-"
    return f"{pc['min']}/class" if pc["min"] == pc["max"] else f"{pc['min']}-{pc['max']}/class"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


@store.command("ls")
@store_option
@json_option
@handle_errors
def store_ls(store_path, as_json):
    """A table of the store's entries: config, checkpoint, data source, rows per class, maps."""
    from .store.summary import entry_summaries

    st = _open_store(store_path, "r")
    rows = entry_summaries(st)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"store {st.path}: no entries")
        return
    table = [["key", "config", "checkpoint", "data", "rows", "per class", "maps", "size", "stages"]]
    for r in rows:
        flags = ("" if r["complete"] else " (incomplete)") + (" (partial checkpoint)" if r.get("partial_checkpoint")
                                                              else "")
        table.append([r["key"][:12], str(r["config_name"]), str(r["checkpoint_name"]), r["data"], str(r["rows"]),
                      _per_class(r.get("per_class")), str(r["embeddings"]), _mb(r["size_bytes"]),
                      ", ".join(r["stages"]) + flags])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        click.echo("  ".join(c.ljust(w) if i not in (4, 6, 7) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))) + "  " + row[-1])
    click.echo(f"store ls: {len(rows)} {'entry' if len(rows) == 1 else 'entries'} in {st.path}")


def _short_metric(v):
    return round(v, 3) if isinstance(v, float) else v


@store.command("info")
@click.argument("key")
@store_option
@json_option
@handle_errors
def store_info(key, store_path, as_json):
    """The full provenance of one entry (KEY or a unique prefix) and its maps."""
    from .store.summary import entry_summary

    st = _open_store(store_path, "r")
    key = st.resolve_entry(key)
    meta = st.entry_meta(key)
    summary = entry_summary(st, key)
    meta["rows"] = summary["rows"]
    meta["per_class"] = summary["per_class"]
    meta["embeddings"] = [{"key": e.key, "stage": e.stage, "rows": e.attrs.get("rows"),
                           "params": e.attrs.get("params"), "metrics": e.attrs.get("metrics")}
                          for e in st.embeddings(key)]
    if as_json:
        click.echo(json.dumps(meta, default=str, ensure_ascii=False))
        return
    text = meta.pop("config_text", "")
    for k, v in meta.items():
        if k == "embeddings":
            continue
        shown = json.dumps(v, default=str, ensure_ascii=False) if isinstance(v, (dict, list)) else v
        click.echo(f"{k}: {shown}")
    click.echo(f"embeddings: {len(meta['embeddings'])}")
    for e in meta["embeddings"]:
        p = e["params"] or {}
        m = {k: _short_metric(v) for k, v in (e["metrics"] or {}).items()}
        click.echo(f"  {e['key'][:12]} {e['stage']} rows={e['rows']} perplexity={p.get('perplexity'):g} "
                   f"seed={p.get('seed')} knn_acc_map={m.get('knn_acc_map')} knn_acc_features="
                   f"{m.get('knn_acc_features')} trustworthiness={m.get('trustworthiness')}")
    click.echo("config_text:\n" + text)


@store.command("rm")
@click.argument("key")
@click.option("--yes", "-y", is_flag=True, help="Remove without asking (asked only on a terminal).")
@store_option
@json_option
@handle_errors
def store_rm(key, yes, store_path, as_json):
    """Remove one entry (KEY or a unique prefix) and its maps; says what goes first."""
    from .store.summary import entry_summary

    st = _open_store(store_path)
    key = st.resolve_entry(key)
    st.check_writable()
    s = entry_summary(st, key)
    what = (f"entry {key[:12]} ({s['config_name']}, {s['checkpoint_name']}, {s['data']}): {s['rows']} rows, "
            f"{_plural(s['embeddings'], 'map')}, {_mb(s['size_bytes'])}")
    if not yes and sys.stdin.isatty() and not as_json:
        click.confirm(f"remove {what}?", abort=True)
    st.remove_entry(key)
    _emit(as_json, {"removed": key, "rows": s["rows"], "maps": s["embeddings"], "size_bytes": s["size_bytes"],
                    "store": st.path}, f"store rm: removed {what} from {st.path}")


@store.command("gc")
@click.option("--older-than", default=3600.0, show_default=True, type=float,
              help="Seconds after which an uncommitted part of a writer on another host counts as dead.")
@click.option("--grace", default=60.0, show_default=True, type=float,
              help="Seconds an entry without committed rows is kept after its last change (a run may be starting).")
@store_option
@json_option
@handle_errors
def store_gc(older_than, grace, store_path, as_json):
    """Remove leftovers of dead writers (never a live writer's) and orphaned embeddings."""
    from .store.gc import collect_garbage

    st = _open_store(store_path)
    st.check_writable()
    removed = collect_garbage(st, older_than, grace)
    _emit(as_json, removed, f"store gc: removed {len(removed['parts'])} incomplete parts, "
          f"{len(removed['entries'])} incomplete entries, {len(removed['embeddings'])} incomplete or "
          f"orphaned embeddings from {st.path}")


@store.command("verify")
@click.option("--deep", is_flag=True, help="Also read every byte: check each chunk's checksum (reports MB/s).")
@store_option
@json_option
@handle_errors
def store_verify(deep, store_path, as_json):
    """Check metadata, shapes and that every chunk exists (--deep: every byte); exit 1 on damage."""
    from .store.verify import verify_store

    st = _open_store(store_path, "r")
    report = verify_store(st, deep=deep)
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        for p in report.problems:
            click.echo(str(p))
        click.echo(report.summary(st.path))
    if report.problems:
        sys.exit(1)


@store.command("compact")
@click.option("--entry", default=None, metavar="KEY", help="Entry key or unique prefix (default: every entry).")
@click.option("--rows-per-part", default=131_072, show_default=True, type=click.IntRange(1024, None),
              help="The most rows a merged part holds.")
@store_option
@json_option
@handle_errors
def store_compact(entry, rows_per_part, store_path, as_json):
    """Merge each entry's small parts into few (atomically: a killed compact leaves every row readable once)."""
    from .store.compact import compact_entry

    st = _open_store(store_path)
    st.check_writable()
    keys = [st.resolve_entry(entry)] if entry else [k for k in st.entry_keys() if st.has_entry(k)]
    done = []
    for k in keys:
        done.append(compact_entry(st, k, rows_per_part,
                                  progress=None if as_json or not _progress_enabled() else
                                  (lambda i, n, k=k: click.echo(f"compact: entry {k[:12]}: {i}/{n} merged parts",
                                                                err=True))))
    before, after = sum(d["parts_before"] for d in done), sum(d["parts_after"] for d in done)
    _emit(as_json, done, f"store compact: {_plural(len(done), 'entry')}, {_plural(before, 'part')} -> {after}, "
          f"{sum(d['rows'] for d in done)} rows in {st.path}")


@store.command("repair")
@click.option("--yes", "-y", is_flag=True, help="Drop the damaged parts and maps without asking.")
@store_option
@json_option
@handle_errors
def store_repair(yes, store_path, as_json):
    """Drop damaged parts and maps (found by a deep verify), so that extract and embed recompute them."""
    from .errors import StoreError
    from .store.repair import apply_repair, plan_repair

    st = _open_store(store_path)
    st.check_writable()
    report, plan = plan_repair(st)
    if not plan:
        left = len(report.problems)
        _emit(as_json, {"parts": [], "embeddings": [], "dataset_labels": [], "entries": [],
                        "left": [str(p) for p in report.problems]},
              f"store repair: nothing damaged in {st.path}"
              + (f" ({left} leftovers of interrupted runs: `vistsne store gc` removes them)" if left else ""))
        return
    if not as_json:
        for p in plan:
            click.echo(str(p))
    if not yes:
        if as_json or not sys.stdin.isatty():
            raise StoreError(f"store repair would drop {len(plan)} damaged parts or maps in {st.path}",
                             "rerun with --yes to drop them")
        click.confirm(f"drop these {len(plan)} damaged parts or maps?", abort=True)
    done = apply_repair(st, plan)
    done["left"] = [str(p) for p in report.problems if p.action != "repair"]
    _emit(as_json, done, f"store repair: dropped {len(done['parts'])} parts, {len(done['embeddings'])} maps, "
          f"{len(done['dataset_labels'])} label arrays and {len(done['entries'])} entries from {st.path}; "
          "`vistsne extract` recomputes the dropped rows, `vistsne embed` the maps")


GREEDY = {"--class-idx": lambda t: t.lstrip("-").isdigit() and not t.startswith("-"),
          "--cfg-options": lambda t: "=" in t and not t.startswith("-")}


def expand_greedy(argv: list[str]) -> list[str]:
    """Accept the reference's ``--class-idx 0 1 2`` and ``--cfg-options a=1 b=2`` everywhere.

    click takes one value per flag, so each further value gets its own flag.
    ``vistsne run`` parses the reference's way itself and is left alone.
    """
    if "run" in argv[:3]:
        return argv
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        j = i + 1
        if tok in GREEDY:
            while j < len(argv) and GREEDY[tok](argv[j]):
                out += [tok, argv[j]]
                j += 1
            if j > i + 1:
                i = j
                continue
        out.append(tok)
        i += 1
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=expand_greedy(argv), prog_name="vistsne")
    except BrokenPipeError:
        # the reader of our output went away (`vistsne store info KEY | head -1`): stop quietly,
        # and keep Python from complaining again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
