"""The extract stage over an entry of the store: run the model once over the missing rows.

``entry_key`` computes an entry's content key without torch; ``extract_entry``
(this package's store-level entry point) is a
cache hit (no torch, no mmpretrain) when the store already holds every
selected row for every requested stage, and otherwise runs inference over the
missing rows only, committing parts as it goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import DatasetError, FeatureError, StageError
from ..hashing import SCHEMA_VERSION, canonical_json, file_sha256, sha256_json
from ..resources import available_cores
from . import distributed
from .checkpoint import resolve_checkpoint
from .config import IMAGE_SUFFIXES, LoadedConfig, check_data_paths, dataset_paths, feature_spec, load_config
from .params import ExtractParams

log = logging.getLogger("vistsne")


@dataclass
class KeyInfo:
    key: str
    #: the resolved config; None after a key found in the key memo, until :meth:`config` loads it
    _loaded: LoadedConfig | None
    checkpoint_path: Path | None
    checkpoint_sha256: str
    fingerprint: str | None
    #: the parameters as the key holds them (``thumb_size`` resolved)
    params: ExtractParams | None = None

    @property
    def loaded(self) -> LoadedConfig:
        """The resolved config (parsed now when the key came from the memo: only a miss needs it)."""
        if self._loaded is None:
            p = self.params
            self._loaded = load_config(p.config, p.cfg_options, p.test_cfg, p.images, image_size=p.image_size)
        return self._loaded


@dataclass
class ExtractResult:
    entry: str
    cached: bool
    rows: int
    new_rows: int
    stages: dict[str, int]
    seconds: float
    store: str
    indices: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    notes: list[str] = field(default_factory=list)
    #: the counts of a checkpoint that left model weights unloaded (``--allow-partial-checkpoint``)
    partial_checkpoint: dict | None = None
    #: this process's rank and the number of ranks (``--launcher``); rank 0 prints the summary
    rank: int = 0
    ranks: int = 1
    #: new rows per second of the inference loop over all ranks (None on a cache hit)
    images_per_s: float | None = None

    def to_json(self) -> dict:
        return {"entry": self.entry, "cached": self.cached, "rows": self.rows, "new_rows": self.new_rows,
                "stages": self.stages, "seconds": round(self.seconds, 3), "store": self.store,
                "partial_checkpoint": self.partial_checkpoint}

    def partial_note(self) -> str:
        """``partial checkpoint: 1 of 62 weights unloaded, 1 of another shape`` (empty when whole)."""
        p = self.partial_checkpoint
        if not p:
            return ""
        return (f"partial checkpoint: {p.get('missing', 0)} of {p.get('weights', '?')} weights unloaded, "
                f"{p.get('shape_mismatch', 0)} of another shape")


#: Recorded by :func:`_recording_opens` while a config is parsed: the files mmengine opened.
_opened: list[str] | None = None
_hook_added = False


def _audit(event: str, args) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


class _recording_opens:
    """``with _recording_opens() as files:`` -- every file opened inside (an audit hook, added once)."""

    def __enter__(self) -> list[str]:
        global _opened, _hook_added
        if not _hook_added:
            sys.addaudithook(_audit)
            _hook_added = True
        _opened = []
        return _opened

    def __exit__(self, *exc) -> None:
        global _opened
        _opened = None


MEMO_FILE = "extract-keys.json"
MEMO_ENTRIES = 64  # the most recent inputs kept


def _stamp(path: str) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_size, st.st_mtime_ns]


def _memo_key(params: ExtractParams) -> str:
    """What the config's parse depends on, besides the files it reads (stamped apart)."""
    def where(p):
        return p if p is None or "::" in p or "://" in p else os.path.realpath(os.path.expanduser(p))

    return sha256_json({"memo": 1, "schema": SCHEMA_VERSION, "vistsne": __version__, "config": where(params.config),
                        "cfg_options": list(params.cfg_options), "test_cfg": where(params.test_cfg),
                        "images": where(params.images), "image_size": params.image_size})


def _memo_load(params: ExtractParams) -> dict | None:
    """The parse of these config inputs recorded by an earlier run, if none of the files it read changed."""
    from ..hashing import cache_dir

    try:
        memo = json.loads((cache_dir() / MEMO_FILE).read_text()).get(_memo_key(params))
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(memo, dict) or not memo.get("files"):
        return None
    for rec in memo["files"]:
        if _stamp(rec[0]) != rec:
            return None  # a config file (or one it includes) changed, or is gone: parse again
    return memo


def _memo_save(params: ExtractParams, memo: dict) -> None:
    from ..atomic import atomic_write_text
    from ..hashing import cache_dir

    path = cache_dir() / MEMO_FILE
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            doc = {}
    except (OSError, ValueError):
        doc = {}
    doc.pop(_memo_key(params), None)
    doc[_memo_key(params)] = memo
    doc = dict(list(doc.items())[-MEMO_ENTRIES:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc))
    except OSError:
        pass  # a read-only cache folder only costs speed


def _parse(params: ExtractParams) -> tuple[LoadedConfig | None, dict]:
    """The config's key-relevant parse: from the key memo when its files are unchanged, else parsed
    (and recorded). Returns (the loaded config or None, {spec, data_paths, data_type, name})."""
    memo = _memo_load(params)
    if memo is not None and (params.images is None or os.path.isdir(params.images)):
        return None, memo
    with _recording_opens() as opened:
        loaded = load_config(params.config, params.cfg_options, params.test_cfg, params.images,
                             image_size=params.image_size)
    spec = feature_spec(loaded)
    if params.images is not None:
        # an --images tree is identified by its files (the fingerprint), not by where it lies
        spec["dataset"]["data_root"] = "<--images>"
    root, paths = dataset_paths(loaded)
    try:
        plain = json.loads(canonical_json(spec))
    except TypeError as e:
        from ..errors import ConfigError

        raise ConfigError(f"config {params.config}: {e}", "use plain values (numbers, strings, lists, dicts) "
                          "in the model, pipeline and dataset sections") from e
    memo = {"spec": plain, "data_paths": [str(p) for p in paths],
            "data_root": None if root is None else str(root), "name": loaded.name,
            "data_type": str(loaded.cfg.test_dataloader.dataset.get("type"))}
    files = sorted({f for f in opened if not f.endswith(".pyc") and os.path.isfile(f)})
    memo["files"] = [st for st in map(_stamp, files) if st is not None]
    if memo["files"]:
        _memo_save(params, memo)
    return loaded, memo


def _selected_rows(params: ExtractParams, loaded: LoadedConfig | None, counts: dict | None) -> int:
    """How many rows the selection holds, for the default ``--thumb-size``: exact for an ``--images``
    tree (its image files per class folder), the selection's bound when that is at most the first
    threshold, else the dataset's own count (it is built; :func:`entry_key` remembers the count with
    the data's fingerprint, so that only the first run pays for it)."""
    from ..selection import chosen_classes, select_rows
    from .params import THUMB_DEFAULTS

    sel = params.selection
    if counts is not None:
        classes = sorted(c for c in counts if not c.startswith("."))  # as use_images lists them
        per = [counts[classes[i]] for i in chosen_classes(len(classes), sel.class_idx, sel.max_num_class)]
        return int(sum(n if sel.max_num_samples is None else min(n, int(sel.max_num_samples)) for n in per))
    n_classes = len(set(sel.class_idx)) if sel.class_idx else sel.max_num_class
    if n_classes is not None and sel.max_num_samples is not None \
            and int(n_classes) * int(sel.max_num_samples) <= THUMB_DEFAULTS[0][0]:
        return int(n_classes) * int(sel.max_num_samples)
    from .model import build_dataset, dataset_labels_and_classes

    if loaded is None:
        loaded = load_config(params.config, params.cfg_options, params.test_cfg, params.images,
                             image_size=params.image_size)
    labels, class_names = dataset_labels_and_classes(build_dataset(loaded.cfg))
    return len(select_rows(labels, len(class_names), sel.class_idx, sel.max_num_class, sel.max_num_samples)[0])


def entry_key(params: ExtractParams) -> KeyInfo:
    """The content key of an entry: config parts, data fingerprint, checkpoint bytes, the key fields
    (``thumb_size`` resolved for the selection, :func:`~vistsne.extract.params.thumb_default`).

    The config's parse is remembered (``extract-keys.json`` in the cache folder) with the size and
    modification time of every file mmengine read for it, and reused while none of them changed;
    the data fingerprint and the checkpoint's hash are computed (from their caches) every time.
    """
    loaded, memo = _parse(params)
    roots = [Path(p) for p in memo["data_paths"]]
    counts = {} if params.images is not None and params.thumb_size is None else None
    fingerprint = check_data_paths(memo["data_type"], Path(memo["data_root"]) if memo["data_root"] else None,
                                   roots, params.config, counts=counts, suffixes=IMAGE_SUFFIXES)
    if params.thumb_size is None:
        # a selection counted on the dataset itself is remembered with the data's fingerprint
        rows_key = sha256_json([fingerprint, params.selection.to_dict()])
        rows = (memo.get("rows") or {}).get(rows_key) if counts is None else None
        if rows is None:
            rows = _selected_rows(params, loaded, counts)
            if counts is None and memo.get("files"):
                memo.setdefault("rows", {})[rows_key] = rows
                _memo_save(params, memo)
        params = params.with_thumb_size(int(rows))
    ckpt = resolve_checkpoint(params.checkpoint)
    sha = file_sha256(ckpt) if ckpt is not None else "none"
    key = sha256_json({
        "schema": SCHEMA_VERSION,
        "spec": memo["spec"],
        "data_files": fingerprint,
        "checkpoint_sha256": sha,
        "extract": params.key_fields(),
    })
    info = KeyInfo(key=key, _loaded=loaded, checkpoint_path=ckpt, checkpoint_sha256=sha, fingerprint=fingerprint,
                   params=params)
    return info


def _requested_stages(meta: dict, vis_stage: str) -> list[str] | None:
    """Stage names a ``vis_stage`` stands for, when an earlier run recorded them."""
    sets = meta.get("stage_sets") or {}
    if vis_stage in sets:
        return sets[vis_stage]
    if "all" in sets:  # every stage of the model is known: pick this one's
        names = [s for s in sets["all"] if s.split(".")[0] == vis_stage]
        return names or None
    return None


def loader_workers(requested: int | None, loader_cfg) -> int:
    """DataLoader worker processes: ``--num-workers`` if given, else the config's, capped at cores - 1.

    The cap keeps loading from taking the cores the forward pass runs on: on
    a 2-core machine an ImageNet config's 5 workers preempted torch's threads
    (ResNet-50 at 224 px, the pairs of `make bench` run by hand: 0.80-0.98 of
    the bare forward loop with 5 workers, 0.93 with 1). It never raises a
    config's count, and an explicit ``--num-workers`` is taken as it is.
    """
    if requested is not None:
        return int(requested)
    configured = int(loader_cfg.get("num_workers", 0) or 0)
    return min(configured, max(1, available_cores() - 1))


def extract_entry(store, params: ExtractParams, *, progress: bool = True) -> ExtractResult:
    """Extract the selected rows into ``store`` (a :class:`vistsne.store.Store`)."""
    t0 = time.perf_counter()
    params = params.validate()
    info = entry_key(params)
    params = info.params  # thumb_size resolved
    key = info.key
    ranks = distributed.setup(params.launcher, params.device)  # Ranks() for --launcher none
    hit = None
    if store.has_entry(key):
        meta = store.entry_meta(key)
        labels = store.dataset_labels(key)
        indices, _ = params.selection.rows(labels, len(meta["class_names"]))
        stages = _requested_stages(meta, params.vis_stage)
        if stages is not None:
            missing = np.setdiff1d(indices, np.fromiter(store.present(key, stages), np.int64))
            if len(missing) == 0:
                dims = {s: meta["stages"][s] for s in stages}
                hit = ExtractResult(key, True, len(indices), 0, dims, time.perf_counter() - t0,
                                     store.path, indices, list(meta.get("notes", [])),
                                     meta.get("partial_checkpoint"))
    if ranks.all_agree(hit is not None, "checking the cache"):  # every rank or none runs the model
        hit.rank, hit.ranks = ranks.rank, ranks.world
        ranks.close()
        return hit
    res = _run_inference(params, info, store, progress, t0, ranks)
    ranks.close()
    return res


def _provenance(params: ExtractParams, info: KeyInfo, device: str, class_names: list[str]) -> dict:
    import mmengine
    import torch

    import mmpretrain

    return {
        "key": info.key,
        "schema": SCHEMA_VERSION,
        "config": params.config,
        "config_name": info.loaded.name,
        "config_path": str(info.loaded.path),
        "config_text": info.loaded.cfg.pretty_text,
        "checkpoint": params.checkpoint,
        "checkpoint_sha256": info.checkpoint_sha256,
        "images": params.images,
        "image_size": params.image_size,
        "dataset": {k: str(v) for k, v in info.loaded.cfg.test_dataloader.dataset.items()
                    if k in ("type", "data_root", "split", "ann_file") and v},
        "test_cfg": params.test_cfg,
        "cfg_options": list(params.cfg_options),
        "class_names": class_names,
        "data_fingerprint": info.fingerprint,
        "extract": params.key_fields(),
        "thumb_size": params.thumb_size,
        "versions": {"torch": torch.__version__, "mmengine": mmengine.__version__,
                     "mmpretrain": mmpretrain.__version__, "vistsne": __version__,
                     "python": platform.python_version()},
        "device": device,
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class _Rows:
    """The rows still to compute, as a map-style dataset of ``(dataset index, sample)``.

    A module-level class (and :func:`_collate` a module-level function), so
    that DataLoader workers started with ``spawn`` (macOS, Windows, Python
    3.14's default on Linux) can pickle them.
    """

    def __init__(self, dataset, todo: np.ndarray):
        self.dataset = dataset
        self.todo = np.asarray(todo, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int):
        di = int(self.todo[i])
        try:
            return di, self.dataset[di]
        except Exception as e:  # noqa: BLE001 - an unreadable image: name the file, in one line
            raise DatasetError(f"image {_sample_name(self.dataset, di)} cannot be read ({e.__class__.__name__}: "
                               f"{(str(e).strip().splitlines() or [''])[0][:160]})",
                               "remove or replace it, then run the same command") from e


def _sample_name(dataset, di: int) -> str:
    try:
        info = dataset.get_data_info(di)
    except Exception:  # noqa: BLE001
        return f"#{di}"
    return str(info.get("img_path") or info.get("sample_id") or f"#{di}")


def _one_line(e: DatasetError) -> DatasetError:
    """A DatasetError raised in a DataLoader worker comes back wrapped in its traceback: keep our line."""
    text = str(e)
    if "Original Traceback" not in text:
        return e
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    return DatasetError(last.split("DatasetError: ", 1)[-1])


SIZE_HINT = ("pass --image-size N to resize every image to N x N (the size the config's model expects), "
             "or add a Resize to the config's test pipeline")


def _collate(batch):
    from mmengine.dataset import default_collate

    try:
        return [b[0] for b in batch], default_collate([b[1] for b in batch])
    except RuntimeError as e:
        shapes = sorted({tuple(getattr(b[1].get("inputs"), "shape", ())) for b in batch})
        shown = " and ".join("x".join(map(str, sh[-2:])) for sh in shapes[:2])
        raise DatasetError(f"images of one batch differ in size ({shown})", SIZE_HINT) from e


class _Interrupted(BaseException):
    """SIGTERM, raised in the main thread so that the rows already computed are committed first."""


class _SignalGate:
    """SIGTERM and SIGINT for the extraction loop: raised at once, except while a part is being
    written, when they wait for the write to end (a part written twice, or half-written and then
    written again by the interrupt's own flush, would store its rows twice).

    ``install()`` only takes effect in the main thread (signals are delivered there), and leaves a
    signal the caller ignores (``nohup``, a background job of a script) ignored.
    """

    def __init__(self):
        self.writing = False
        self.pending: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.writing:
            self.pending = signum
            return
        self._raise(signum)

    @staticmethod
    def _raise(signum):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Interrupted()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # a signal ignored by the caller stays ignored
                self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    @contextlib.contextmanager
    def writing_part(self):
        """Hold SIGTERM/SIGINT for the duration of one part's write; raise a held one after."""
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self._raise(signum)


def _float16_check(feats: dict) -> None:
    for s, a in feats.items():
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        if not np.isfinite(peak) or peak > 65504.0:
            raise FeatureError(f"stage {s} holds values up to {peak:.3g}, beyond float16's largest (65504); "
                               "stored as float16 they would become inf",
                               "extract with --dtype float32 (the default)")


def _run_inference(params: ExtractParams, info: KeyInfo, store, show_progress: bool, t0: float,
                   ranks: distributed.Ranks | None = None) -> ExtractResult:

    import torch

    from ..errors import ConfigError
    from .checkpoint import apply_checkpoint
    from ..stages import network_order
    from .model import (Precision, StageReader, build_dataset, build_model, dataset_labels_and_classes,
                        identical_stages, pick_device, sample_ids, thumbnails)

    key = info.key
    cfg = info.loaded.cfg
    ranks = ranks or distributed.Ranks()
    device = ranks.place(pick_device(params.device))
    precision = Precision(params.precision, device)  # a device that cannot: one line before any work
    dataset = build_dataset(cfg)
    labels, class_names = dataset_labels_and_classes(dataset)
    indices, _ = params.selection.rows(labels, len(class_names))
    if len(indices) == 0:
        raise DatasetError("no samples of the chosen classes in the test dataset",
                           "check --class-idx / --max-num-class")
    try:
        model = build_model(cfg, device, params.init_seed, params.backbone_stages)
    except (TypeError, KeyError, ValueError, AssertionError, AttributeError) as e:
        text = " ".join(str(e).split()) or e.__class__.__name__
        opts = " ".join(params.cfg_options)
        raise ConfigError(f"the model of {params.config} cannot be built: {e.__class__.__name__}: {text[-300:]}",
                          f"check --cfg-options {opts}" if opts else "check the config's model section") from e
    partial = None
    ckpt_classes = None
    if info.checkpoint_path is not None:
        loaded = apply_checkpoint(model, info.checkpoint_path, params.trust_checkpoint,
                                  allow_partial=params.allow_partial_checkpoint,
                                  expected_sha256=info.checkpoint_sha256,
                                  expected_missing=getattr(model, "vistsne_added_keys", ()))
        ckpt_classes = ((loaded.get("meta") or {}).get("dataset_meta") or {}).get("classes")
        if loaded["missing"] or loaded["shape_mismatch"]:
            partial = {k: loaded[k] for k in ("weights", "matched", "missing", "shape_mismatch", "unexpected")}
    model = precision.model(model)
    reader = StageReader(model, params.vis_stage, params.pool)
    dp = model.data_preprocessor
    bgr = bool(getattr(dp, "to_rgb", False) or getattr(dp, "_channel_conversion", False))

    meta = store.entry_meta(key) if store.has_entry(key) else {}
    stages = _requested_stages(meta, params.vis_stage)
    todo = indices if stages is None else np.setdiff1d(
        indices, np.fromiter(store.present(key, stages), np.int64))
    todo = ranks.broadcast(todo, "sharing the rows to compute")  # rank 0's view, so the shares are disjoint
    mine = ranks.share(todo)
    loader_cfg = cfg.test_dataloader
    batch_size = params.batch_size or int(loader_cfg.get("batch_size", 32))
    num_workers = loader_workers(params.num_workers, loader_cfg)
    loader = torch.utils.data.DataLoader(_Rows(dataset, mine), batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, collate_fn=_collate,
                                         persistent_workers=False)
    dtype = np.float16 if params.dtype == "float16" else np.float32
    buf: dict[str, list] = {"index": [], "thumb": []}
    feats_buf: dict[str, list] = {}
    extras_buf: dict[str, list] = {}
    dims: dict[str, int] = {}
    last_flush = time.perf_counter()
    new_rows = 0
    gate = _SignalGate()

    def flush():
        nonlocal last_flush, new_rows
        if not buf["index"]:
            return
        # the rows leave the buffer before they are written: whatever stops this write, no later
        # flush writes them again (a held signal is raised once the part is committed)
        idx = np.concatenate(buf["index"])
        thumbs = np.concatenate(buf["thumb"]) if buf["thumb"] else None
        feats = {s: np.concatenate(v).astype(dtype, copy=False) for s, v in feats_buf.items()}
        extras = {s: np.concatenate(v) for s, v in extras_buf.items()}
        buf["index"].clear()
        buf["thumb"].clear()
        feats_buf.clear()
        extras_buf.clear()
        with gate.writing_part():
            store.write_part(key, idx, labels[idx], thumbs, feats, extras)
            new_rows += len(idx)
            last_flush = time.perf_counter()

    aliases: dict[str, str] = {}

    def first_batch(out) -> None:
        """The model ran once: now (and not before) the entry is created, with its stages
        (identical ones recorded as aliases of the first, and stored once)."""
        nonlocal dims, meta, aliases
        if not ranks.main:  # rank 0 creates the entry and writes its metadata before the others write
            ranks.barrier("waiting for rank 0 to create the entry")
            meta = store.entry_meta(key)
        dims = {s: int(t.shape[1]) for s, t in out.items()}
        if meta.get("stages"):  # an earlier run stored these stages: keep its choice, checking it still holds
            known = {a: c for a, c in (meta.get("aliases") or {}).items() if c}
            aliases = identical_stages(out, network_order(out), known)
            new = [s for s in out if s not in meta["stages"]]  # stages this run adds (another --vis-stage)
            aliases.update({a: c for a, c in identical_stages({s: out[s] for s in out}, network_order(out)).items()
                            if a in new and c not in aliases})
        else:
            aliases = identical_stages(out, network_order(out))
        for a, c in aliases.items():
            log.info("stage %s holds the same features as %s: stored once, shown under both names", a, c)
        if not dims:
            raise StageError(f"no stage {params.vis_stage} in this model",
                             "use --vis-stage all to store what it has")
        for note in reader.notes:
            log.info(note)
        if ranks.main and not store.has_entry(key):
            prov = _provenance(params, info, device, class_names)
            if partial:
                prov["partial_checkpoint"] = partial
            try:
                ids = sample_ids(dataset)
            except Exception as e:  # noqa: BLE001 - a dataset without per-sample infos: rows keep their index
                log.info("the dataset gives no sample paths (%s); rows are known by their index", e)
                ids = None
            store.create_entry(key, prov, labels, ids)
        if not writer:
            writer.append(store.register_writer(key))  # gc leaves the entry alone while this process runs
        meta = store.entry_meta(key)
        sets = dict(meta.get("stage_sets") or {})
        sets[params.vis_stage] = sorted(dims)
        extra = {}
        if reader.scores is not None:  # the classes the head predicts: the checkpoint's, else the data's
            width = int(reader.scores.shape[1])
            if ckpt_classes is not None and len(ckpt_classes) == width:
                extra["prediction_classes"] = [str(c) for c in ckpt_classes]
            elif len(class_names) == width:
                extra["prediction_classes"] = list(class_names)
            else:
                extra["prediction_classes"] = [str(i) for i in range(width)]
        if ranks.main:
            store.update_entry_meta(key, stages=dims, stage_sets=sets, aliases=dict(aliases), **extra)
            ranks.barrier("letting the other ranks write")

    writer: list[str] = []
    if store.has_entry(key):
        writer.append(store.register_writer(key))
    gate.install()
    first = True
    t_loop = time.perf_counter()
    try:
        with distributed.RankProgress(len(todo), f"extracting {info.loaded.name}", "img", ranks=ranks,
                                      enabled=show_progress) as bar:
            with torch.inference_mode():
                for idx, data in loader:
                    raw = data["inputs"]
                    if isinstance(raw, (list, tuple)):
                        shapes = sorted({tuple(r.shape[-2:]) for r in raw})
                        raise DatasetError("images of one batch differ in size ("
                                           + " and ".join("x".join(map(str, sh)) for sh in shapes[:2]) + ")",
                                           SIZE_HINT)
                    data = dp(data, False)
                    with precision.autocast():
                        out = reader(precision.inputs(data["inputs"]))
                    batch = {s: t.float().cpu().numpy() for s, t in out.items()}
                    if dtype == np.float16:
                        _float16_check(batch)
                    if first:
                        first_batch(out)
                        first = False
                    elif aliases:
                        held = identical_stages(out, [], aliases)
                        broken = [a for a in aliases if a not in held]
                        if broken:  # never merge stages that differ: store them apart from here on
                            flush()
                            for a in broken:
                                log.warning("stage %s differs from %s on some images: stored apart from now on; "
                                            "the same command computes it for the earlier rows", a, aliases[a])
                            aliases = held
                            store.update_entry_meta(key, aliases={a: None for a in broken})
                    batch = {s: a for s, a in batch.items() if s not in aliases}
                    buf["index"].append(np.asarray(idx, dtype=np.int64))
                    if params.thumb_size:  # --thumb-size 0: the parts store no thumbnails
                        buf["thumb"].append(thumbnails(raw, params.thumb_size, bgr))
                    for s, a in batch.items():
                        feats_buf.setdefault(s, []).append(a)
                    top = reader.top_k()
                    if top is None:
                        extras_buf.clear()  # a head whose predict failed: no predictions in this part
                    else:
                        extras_buf.setdefault("pred_top5", []).append(top[0])
                        extras_buf.setdefault("score_top5", []).append(top[1])
                    bar.update(len(idx))
                    n_buf = sum(len(a) for a in buf["index"])
                    if n_buf >= params.flush_rows or time.perf_counter() - last_flush > params.flush_seconds:
                        flush()
            flush()
            bar.wait_all()  # rank 0's bar follows the other ranks to the end
    except DatasetError as e:
        flush()  # the rows before the bad image are kept
        raise _one_line(e) from None
    except (KeyboardInterrupt, _Interrupted):
        flush()  # commit what was computed, so that "committed rows are kept" is true
        log.warning("interrupted after %d new rows; they are committed, and the same command resumes", new_rows)
        raise KeyboardInterrupt from None
    finally:
        gate.restore()
        for wid in writer:
            store.unregister_writer(key, wid)
    loop_s = time.perf_counter() - t_loop
    if ranks.active:
        if first:  # this rank had no rows: the barrier the others passed at their first batch
            ranks.barrier("waiting for rank 0 to create the entry")
        new_rows = ranks.total(new_rows)
        loop_s = ranks.slowest(loop_s)
    if first:  # nothing to run: every row was there, but this vis_stage was never recorded
        meta = store.entry_meta(key)
        dims = {s: meta["stages"][s] for s in (_requested_stages(meta, params.vis_stage) or meta["stages"])}
    else:
        notes = list(dict.fromkeys(list(meta.get("notes", [])) + reader.notes))
        if ranks.main:
            store.update_entry_meta(key, notes=notes)
    return ExtractResult(key, new_rows == 0, len(indices), new_rows, dims,
                         time.perf_counter() - t0, store.path, indices, reader.notes,
                         partial or store.entry_meta(key).get("partial_checkpoint"),
                         rank=ranks.rank, ranks=ranks.world,
                         images_per_s=new_rows / loop_s if loop_s > 0 and new_rows else None)
