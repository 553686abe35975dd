"""Which entry a command means: resolved once, here, from the store alone.

An :class:`EntryRef` is what a user typed: ``--entry KEY`` (a key or a unique
prefix), or CONFIG with the options that define an entry (``--checkpoint``,
``--test-cfg``, ``--cfg-options``, ``--images``, ``--pool``, ``--dtype``, ``--precision``), or
nothing (the most recent entry that holds rows). Nothing here parses a
config, builds a model or a dataset, or downloads anything: an entry is found
by its stored provenance. Where the inputs can be checked for free (a local
checkpoint file's cached hash, an ``--images`` folder's file stamps), an entry
made from an older version of them is not taken for the current one, and the
message says what changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import NotFoundError
from .hints import extract_command
from .store import Store


@dataclass(frozen=True)
class EntryRef:
    entry: str | None = None
    config: str | None = None
    checkpoint: str | None = None
    test_cfg: str | None = None
    cfg_options: tuple[str, ...] = field(default_factory=tuple)
    images: str | None = None
    pool: str = "avg"
    dtype: str = "float32"
    precision: str = "float32"
    image_size: int | None = None
    backbone_stages: str | tuple[int, ...] | None = None

    def extract_flags(self) -> list[str]:
        out: list[str] = []
        if self.test_cfg:
            out += ["--test-cfg", self.test_cfg]
        for opt in self.cfg_options:
            out += ["--cfg-options", opt]
        if self.images:
            out += ["--images", self.images]
        if self.pool != "avg":
            out += ["--pool", self.pool]
        if self.dtype != "float32":
            out += ["--dtype", self.dtype]
        if self.precision != "float32":
            out += ["--precision", self.precision]
        if self.image_size is not None:
            out += ["--image-size", str(self.image_size)]
        if self.backbone_stages is not None:
            out += ["--backbone-stages", self.backbone_stages if self.backbone_stages == "all"
                    else ",".join(str(i) for i in self.backbone_stages)]
        return out


def _same_path(a: str | None, b: str | None) -> bool:
    """Two path arguments name the same thing (URLs and ``mmpretrain::`` names compare as text)."""
    if not a or not b:
        return not a and not b
    if a == b:
        return True
    if "://" in a or "://" in b or "::" in a or "::" in b:
        return False
    return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))


def _matches(meta: dict, ref: EntryRef) -> bool:
    extract = meta.get("extract") or {}
    return (
        (_same_path(meta.get("config"), ref.config) or _same_path(meta.get("config_path"), ref.config))
        and _same_path(meta.get("checkpoint"), ref.checkpoint)
        and _same_path(meta.get("test_cfg"), ref.test_cfg)
        and list(meta.get("cfg_options") or []) == list(ref.cfg_options)
        and _same_path(meta.get("images"), ref.images)
        and extract.get("pool", "avg") == ref.pool
        and extract.get("dtype", "float32") == ref.dtype
        and extract.get("precision", "float32") == ref.precision
        and meta.get("image_size") == ref.image_size
        and extract.get("backbone_stages") == (sorted(ref.backbone_stages) if isinstance(ref.backbone_stages, tuple)
                                               else ref.backbone_stages)
    )


#: the image files mmpretrain's CustomDataset lists
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".webp")


def _image_files(root: str) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if f.lower().endswith(IMAGE_EXTENSIONS) and rel != ".":
                out.add(f"{rel}/{f}".replace(os.sep, "/"))
    return out


def images_diff(store: Store, key: str, images: str) -> str:
    """``3 files added (e.g. cat/new.png), 1 removed (e.g. dog/7.png)``, or "" when that cannot be told."""
    ids = store.dataset_ids(key)
    if ids is None:
        return ""
    old, new = set(ids.tolist()), _image_files(images)
    added, removed = sorted(new - old), sorted(old - new)
    parts = []
    if added:
        parts.append(f"{len(added)} file{'s' if len(added) != 1 else ''} added (e.g. {added[0]})")
    if removed:
        parts.append(f"{len(removed)} removed (e.g. {removed[0]})")
    if not parts:
        parts.append("the same files, changed in place")
    return ", ".join(parts)


def stale_inputs(meta: dict, store: Store | None = None, key: str | None = None) -> list[str]:
    """What changed since the entry was extracted, as far as can be told without work ([] = unchanged)."""
    from .hashing import file_sha256, tree_fingerprint

    changed = []
    ckpt = meta.get("checkpoint")
    if ckpt and "://" not in str(ckpt) and os.path.isfile(ckpt) and meta.get("checkpoint_sha256"):
        if file_sha256(ckpt) != meta["checkpoint_sha256"]:
            changed.append(f"the checkpoint file {ckpt} changed")
    images = meta.get("images")
    if images and os.path.isdir(images) and meta.get("data_fingerprint"):
        if tree_fingerprint([os.path.realpath(images)]) != meta["data_fingerprint"]:
            diff = images_diff(store, key, images) if store is not None and key else ""
            changed.append(f"the files under {images} changed" + (f": {diff}" if diff else ""))
    return changed


def _has_rows(store: Store, key: str) -> bool:
    return store.has_entry(key) and any(p.committed for p in store.parts(key))


def _newest(store: Store, keys: list[str]) -> str:
    return max((store.entry_meta(k).get("updated", ""), k) for k in keys)[1]


def latest_entry(store: Store) -> str:
    """The most recently updated entry that holds committed rows (never an empty or failed one)."""
    keys = [k for k in store.entry_keys() if _has_rows(store, k)]
    if not keys:
        raise NotFoundError(f"store {store.path} holds no entries", "run `vistsne extract CONFIG` first")
    return _newest(store, keys)


def find_entry(store: Store, ref: EntryRef) -> str:
    """The full key of the entry ``ref`` names (see the module docs)."""
    if ref.entry:
        return store.resolve_entry(ref.entry)
    if not ref.config:
        return latest_entry(store)
    candidates = [k for k in store.entry_keys() if _has_rows(store, k) and _matches(store.entry_meta(k), ref)]
    fresh = [k for k in candidates if not stale_inputs(store.entry_meta(k))]
    hint = f"run `{extract_command(ref.config, ref.checkpoint, ref.extract_flags())}` first"
    if fresh:
        return _newest(store, fresh)
    what = f"no entry for {ref.config} with checkpoint {ref.checkpoint or 'none (random init)'}"
    if candidates:
        old = _newest(store, candidates)
        changes = "; ".join(stale_inputs(store.entry_meta(old), store, old))
        raise NotFoundError(f"{what} and the current inputs in store {store.path}: entry {old[:12]} was "
                            f"extracted before {changes}", hint.replace(" first", " to extract the current ones"))
    raise NotFoundError(f"{what} in store {store.path}", hint)
