"""Config resolution, the feature-relevant spec, and dataset checks: no torch.

Everything here runs before any model is built, so that a cache hit costs a
config parse and a few stats, and so that missing pieces fail fast.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, DatasetError
from ..hashing import tree_fingerprint

log = logging.getLogger("vistsne")

PACKAGE_PREFIX = "mmpretrain::"
LOADERS = ("LoadImageFromFile", "LoadImageFromNDArray", "mmcv.LoadImageFromFile")


def quiet_mmengine() -> None:
    """Silence the deprecation noise of the stack (pkg_resources, mmcv-lite)."""
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("mmengine").setLevel(logging.WARNING)


def packaged_configs_dir() -> Path | None:
    """``mmpretrain/.mim/configs`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("mmpretrain")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / ".mim" / "configs"
        if cand.is_dir():
            return cand
    return None


def resolve_config_path(config: str) -> Path:
    """A config path from a path, ``mmpretrain::x.py``, or a seed-style ``configs/x.py``."""
    text = str(config)
    if text.startswith(PACKAGE_PREFIX):
        rel = text[len(PACKAGE_PREFIX):]
        base = packaged_configs_dir()
        if base is not None and (base / rel).is_file():
            return base / rel
        raise ConfigError(f"config {text} is not among mmpretrain's packaged configs",
                          "check the name under mmpretrain/.mim/configs/, or pass a path")
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"config {text} is a folder, not a config file",
                          f"pass one of the .py files in it, e.g. {next(iter(sorted(path.glob('*.py'))), 'x.py')}")
    if not path.is_absolute():
        parts = path.parts
        rel = Path(*parts[1:]) if parts and parts[0] == "configs" else path
        base = packaged_configs_dir()
        if base is not None and (base / rel).is_file():
            log.info("config %s is not on disk; using mmpretrain's packaged configs/%s", text, rel.as_posix())
            return base / rel
    raise ConfigError(f"config {text} not found",
                      "pass a path, mmpretrain::<dir>/<name>.py, or configs/<dir>/<name>.py "
                      "as in MMPretrain's repository")


def _parse_cfg_options(options: Sequence[str] | dict | None) -> dict:
    if not options:
        return {}
    if isinstance(options, dict):
        return dict(options)
    from mmengine.config import DictAction

    out: dict[str, Any] = {}
    for item in options:
        if "=" not in item:
            raise ConfigError(f"--cfg-options item {item!r} is not key=value",
                              "write it as key=value, e.g. model.backbone.depth=50")
        key, val = item.split("=", 1)
        out[key] = DictAction._parse_iterable(val)
    return out


@dataclass
class LoadedConfig:
    cfg: Any  # mmengine.config.Config
    path: Path
    name: str

    @property
    def text(self) -> str:
        """The resolved config as text (yapf-formatted; costs ~0.3 s, so only on demand)."""
        return self.cfg.pretty_text


def _fromfile(path: Path, import_custom_modules: bool):
    from mmengine.config import Config

    quiet_mmengine()
    try:
        return Config.fromfile(str(path), import_custom_modules=import_custom_modules)
    except FileNotFoundError as e:
        raise ConfigError(f"config {path} (or one of its _base_ files) not found: {e}",
                          "check the path and its _base_ entries") from e
    except Exception as e:  # syntax errors and the like, from user files
        raise ConfigError(f"cannot read config {path}: {e.__class__.__name__}: {e}",
                          "fix the config file") from e


def load_config(config: str, cfg_options: Sequence[str] | dict | None = None,
                test_cfg: str | None = None, images: str | None = None,
                import_custom_modules: bool = False, image_size: int | None = None) -> LoadedConfig:
    """Load a config and apply ``--cfg-options``, ``--test-cfg``, ``--images`` and ``--image-size``."""
    path = resolve_config_path(config)
    cfg = _fromfile(path, import_custom_modules)
    opts = _parse_cfg_options(cfg_options)
    if opts:
        try:
            cfg.merge_from_dict(opts)
        except Exception as e:
            raise ConfigError(f"--cfg-options cannot be applied: {e}", "check the keys") from e
    if test_cfg is not None:
        tpath = resolve_config_path(test_cfg)
        tcfg = _fromfile(tpath, import_custom_modules)
        if "test_dataloader" not in tcfg or tcfg.get("test_dataloader") is None:
            raise ConfigError(f"--test-cfg {test_cfg} has no test_dataloader",
                              "pass a config that defines test_dataloader")
        cfg.test_dataloader = tcfg.test_dataloader
        if "custom_imports" in tcfg and "custom_imports" not in cfg:
            cfg.custom_imports = tcfg.custom_imports
    if cfg.get("test_dataloader") is None:
        raise ConfigError(f"config {config} has no test_dataloader",
                          "pass --test-cfg with a config that has one, e.g. "
                          "--test-cfg configs/_base_/datasets/imagenet_bs32.py")
    if cfg.test_dataloader.get("dataset") is None:
        raise ConfigError(f"the test_dataloader of {config} has no dataset", "add one, or use --test-cfg")
    if images is not None:
        use_images(cfg, images)
    if image_size is not None:
        use_image_size(cfg, int(image_size))
    cfg.model.setdefault("data_preprocessor", cfg.get("data_preprocessor", None))
    name = path.stem
    return LoadedConfig(cfg=cfg, path=path, name=name)


def use_images(cfg, images: str) -> None:
    """Point the test dataloader at a class-per-folder image tree (``--images DIR``)."""
    root = Path(images).expanduser()
    if not root.is_dir():
        raise DatasetError(f"--images folder {images} does not exist",
                           "pass a folder with one sub-folder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes or not any(any(f.is_file() for f in (root / c).rglob("*")) for c in classes):
        raise DatasetError(f"--images folder {images} holds no class folders with images",
                           "put images in one sub-folder per class, e.g. DIR/cat/1.jpg")
    old = cfg.test_dataloader.dataset
    pipeline = copy.deepcopy(list(old.get("pipeline", [])))
    first = pipeline[0].get("type") if pipeline else None
    if first not in LOADERS:
        # datasets such as CIFAR hand over arrays; files need a loader first.
        # It decodes BGR, so the preprocessor must turn it into the RGB the
        # model was trained on.
        pipeline.insert(0, dict(type="LoadImageFromFile"))
        dp = cfg.model.get("data_preprocessor") or cfg.get("data_preprocessor")
        if dp is not None and not dp.get("to_rgb", False):
            dp["to_rgb"] = True
            cfg.model["data_preprocessor"] = dp
    cfg.test_dataloader.dataset = dict(type="CustomDataset", data_root=str(root.resolve()),
                                       with_label=True, pipeline=pipeline)


def use_image_size(cfg, size: int) -> None:
    """Resize every test image to ``size`` x ``size`` (``--image-size``): a Resize right after loading."""
    pipeline = list(cfg.test_dataloader.dataset.get("pipeline", []))
    at = next((i + 1 for i, t in enumerate(pipeline) if t.get("type") in LOADERS), 0)
    pipeline.insert(at, dict(type="Resize", scale=(int(size), int(size))))
    cfg.test_dataloader.dataset.pipeline = pipeline


def _to_plain(obj):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return copy.deepcopy(obj)


def feature_spec(loaded: LoadedConfig) -> dict:
    """The parts of the resolved config that change features (for the key)."""
    cfg = loaded.cfg
    ds = _to_plain(cfg.test_dataloader.dataset)
    pipeline = ds.pop("pipeline", [])
    return {
        "model": _to_plain(cfg.model),
        "data_preprocessor": _to_plain(cfg.model.get("data_preprocessor")),
        "test_pipeline": pipeline,
        "dataset": ds,
    }


def _dataset_paths(ds: dict) -> tuple[Path | None, list[Path]]:
    """The dataset's root and the local paths worth fingerprinting."""
    root = ds.get("data_root") or ""
    prefix = ds.get("data_prefix") or ""
    if isinstance(prefix, dict):
        prefix = prefix.get("img_path") or prefix.get("root") or ""
    ann = ds.get("ann_file") or ""
    if not root and not prefix and not ann:
        return None, []
    root_p = Path(root).expanduser() if root else None
    paths: list[Path] = []
    split = ds.get("split")
    if prefix:
        p = Path(prefix).expanduser()
        paths.append(p if p.is_absolute() or root_p is None else root_p / p)
    elif root_p is not None and split and (root_p / str(split)).is_dir():
        paths.append(root_p / str(split))
        if (root_p / "meta").is_dir():
            paths.append(root_p / "meta")
    elif root_p is not None:
        paths.append(root_p)
    if ann:
        a = Path(ann).expanduser()
        paths.append(a if a.is_absolute() or root_p is None else root_p / a)
    return root_p, paths


#: the image files mmpretrain's CustomDataset lists (as ``vistsne.locate.IMAGE_EXTENSIONS``)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".webp")


def dataset_paths(loaded: LoadedConfig) -> tuple[Path | None, list[Path]]:
    """The test dataset's root and the local paths its fingerprint covers."""
    return _dataset_paths(_to_plain(loaded.cfg.test_dataloader.dataset))


def check_dataset(loaded: LoadedConfig, config_arg: str) -> str | None:
    """Fail fast when a local dataset is missing; return its file fingerprint."""
    root, paths = dataset_paths(loaded)
    return check_data_paths(str(loaded.cfg.test_dataloader.dataset.get("type")), root, paths, config_arg)


def check_data_paths(ds_type: str, root: Path | None, paths: list[Path], config_arg: str,
                     counts: dict | None = None, suffixes: tuple[str, ...] = ()) -> str | None:
    """:func:`check_dataset` on the paths it found (``counts``: see ``hashing.tree_fingerprint``)."""
    if root is None and not paths:
        return None  # in-memory datasets such as Digits
    where = root if root is not None else paths[0]
    missing = not where.exists() or (where.is_dir() and not any(where.iterdir()))
    if missing:
        raise DatasetError(
            f"dataset {ds_type} not found: {where} is missing or empty",
            f"put the data there as the config {config_arg} expects, or point at your own "
            "class-per-folder images with --images DIR")
    for p in paths:
        if not p.exists():
            raise DatasetError(f"dataset {ds_type}: {p} is missing",
                               f"provide it, or use --images DIR")
    return tree_fingerprint(paths, counts, suffixes)
