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
        debug = bool(ctx.find_root().params.get("debug") or kwargs.get("debug"))
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


def model_options(fn):
    """The options that, with CONFIG, define a feature entry (shared by all stages)."""
    opts = [
        click.option("--checkpoint", default=None, metavar="PATH|URL", help="Checkpoint file or URL (default: random init)."),
        click.option("--test-cfg", default=None, metavar="CFG", help="Config whose test_dataloader is used."),
        click.option("--cfg-options", multiple=True, metavar="K=V",
                     help="Override config keys (repeat, or give several after one flag)."),
        click.option("--images", default=None, type=click.Path(), metavar="DIR",
                     help="Use a class-per-folder image tree as the test data."),
        click.option("--pool", type=click.Choice(["avg", "cls"]), default="avg", show_default=True,
                     help="Pooling of (N,L,C) token outputs: token mean or class token."),
        click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
                     help="Stored feature precision."),
        click.option("--trust-checkpoint", is_flag=True,
                     help="Load checkpoints with arbitrary pickled objects (only for sources you trust)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def selection_options(fn):
    opts = [
        click.option("--class-idx", multiple=True, type=int, metavar="I",
                     help="Class indices to use (repeat). Default: the first --max-num-class classes."),
        click.option("--max-num-class", default=20, show_default=True, type=int, help="The first N classes."),
        click.option("--max-num-samples", default=100, show_default=True, type=int,
                     help="The most samples per class."),
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


def _open_store(path, mode="a"):
    from .store import Store

    return Store(path, mode=mode)


class _Group(click.Group):
    def list_commands(self, ctx):
        return ["demo", "extract", "embed", "render", "run", "store"]


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
@click.option("--num-workers", type=int, default=None, help="Default: the config's.")
@click.option("--flush-rows", type=int, default=1024, hidden=True, help="Rows per committed part.")
@store_option
@json_option
@debug_option
@handle_errors
def extract(config, checkpoint, test_cfg, cfg_options, images, pool, dtype, trust_checkpoint, vis_stage,
            class_idx, max_num_class, max_num_samples, device, batch_size, num_workers, flush_rows, store_path,
            as_json, debug):
    """Run CONFIG's model over a class-balanced subset and store every stage.

    CONFIG is a path, mmpretrain::<dir>/<name>.py, or a seed-style
    configs/<dir>/<name>.py (taken from the installed mmpretrain if not on disk).
    The same inputs again are a cache hit that runs no inference.
    """
    if debug:
        _setup_logging(True)
    from .extract import ExtractParams
    from .extract import extract as run_extract

    params = ExtractParams(config=config, checkpoint=checkpoint, test_cfg=test_cfg,
                           cfg_options=_split_multi(cfg_options), images=images, vis_stage=vis_stage,
                           class_idx=_class_idx(class_idx), max_num_class=max_num_class,
                           max_num_samples=max_num_samples, device=device, batch_size=batch_size,
                           num_workers=num_workers, pool=pool, dtype=dtype,
                           trust_checkpoint=trust_checkpoint, flush_rows=flush_rows).validate()
    store = _open_store(store_path)
    res = run_extract(params, store, show_progress=_progress_enabled() and not as_json)
    stages = ", ".join(f"{k} ({v})" for k, v in res.stages.items())
    what = "cache hit, no inference" if res.cached else f"{res.new_rows} new rows computed"
    _emit(as_json, res.to_json(),
          f"extract: entry {res.entry[:12]}: {res.rows} rows ({what}, {res.rows - res.new_rows} cached); "
          f"stages {stages}; {res.seconds:.1f}s; store {res.store}")


# -------------------------------------------------------------------- store
@cli.group()
def store():
    """List, inspect, verify and clean the feature store."""


def _entry_rows(st, key) -> int:
    return len(st.present(key, []))


@store.command("ls")
@store_option
@json_option
@handle_errors
def store_ls(store_path, as_json):
    """A table of the store's entries."""
    from .entries import entry_summaries

    st = _open_store(store_path, "r")
    rows = entry_summaries(st)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo(f"store {st.path}: no entries")
        return
    header = f"{'key':12}  {'config':28} {'checkpoint':28} {'rows':>6} {'maps':>4} {'size':>9}  stages"
    click.echo(header)
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.1f}MB"
        flag = "" if r["complete"] else " (incomplete)"
        click.echo(f"{r['key'][:12]:12}  {str(r['config'])[-28:]:28} {str(r['checkpoint'] or 'random init')[-28:]:28} "
                   f"{r['rows']:>6} {r['embeddings']:>4} {size:>9}  "
                   f"{', '.join(r['stages'])}{flag}")
    click.echo(f"store ls: {len(rows)} entries in {st.path}")


@store.command("info")
@click.argument("key")
@store_option
@json_option
@handle_errors
def store_info(key, store_path, as_json):
    """The full provenance of one entry (KEY or a unique prefix)."""
    st = _open_store(store_path, "r")
    key = st.resolve_entry(key)
    meta = st.entry_meta(key)
    meta["rows"] = _entry_rows(st, key)
    meta["embeddings"] = [{"key": e.key, "stage": e.stage, "params": e.attrs.get("params"),
                           "metrics": e.attrs.get("metrics")} for e in st.embeddings(key)]
    if as_json:
        click.echo(json.dumps(meta, default=str))
        return
    text = meta.pop("config_text", "")
    for k, v in meta.items():
        if k == "embeddings":
            continue
        click.echo(f"{k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")
    click.echo(f"embeddings: {len(meta['embeddings'])}")
    for e in meta["embeddings"]:
        p = e["params"] or {}
        m = e["metrics"] or {}
        click.echo(f"  {e['key'][:12]} {e['stage']} perplexity={p.get('perplexity')} seed={p.get('seed')} "
                   f"knn_acc_map={m.get('knn_acc_map')}")
    click.echo("config_text:\n" + text)


@store.command("rm")
@click.argument("key")
@store_option
@handle_errors
def store_rm(key, store_path):
    """Remove one entry and its embeddings."""
    st = _open_store(store_path)
    key = st.resolve_entry(key)
    st.remove_entry(key)
    click.echo(f"store rm: removed entry {key[:12]} from {st.path}")


@store.command("gc")
@click.option("--older-than", default=3600.0, show_default=True, type=float,
              help="Seconds after which an uncommitted part of a writer on another host counts as dead.")
@store_option
@json_option
@handle_errors
def store_gc(older_than, store_path, as_json):
    """Remove incomplete leftovers and orphaned embeddings."""
    from .entries import collect_garbage

    st = _open_store(store_path)
    removed = collect_garbage(st, older_than)
    _emit(as_json, removed, f"store gc: removed {len(removed['parts'])} incomplete parts, "
          f"{len(removed['entries'])} incomplete entries, {len(removed['embeddings'])} incomplete or "
          f"orphaned embeddings from {st.path}")


@store.command("verify")
@store_option
@json_option
@handle_errors
def store_verify(store_path, as_json):
    """Check every entry's shapes and completeness; exit 1 on damage."""
    st = _open_store(store_path, "r")
    problems = []
    keys = st.entry_keys()
    for k in keys:
        problems += st.verify_entry(k)
    if as_json:
        click.echo(json.dumps({"entries": len(keys), "problems": problems}))
    else:
        for p in problems:
            click.echo(p)
        click.echo(f"store verify: {len(keys)} entries, {len(problems)} problems in {st.path}")
    if problems:
        sys.exit(1)


def main(argv=None):
    cli.main(args=argv, prog_name="vistsne")


if __name__ == "__main__":  # pragma: no cover
    main()
