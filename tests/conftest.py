"""Shared fixtures: real stores in temporary folders, real images, real configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / "configs" / "digits_resnet18.py")
#: the demo model with three stages that differ (the demo's own three are identical: stored once)
STAGES_CONFIG = str(ROOT / "tests" / "configs" / "digits_three_stages.py")


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Keep file-hash and download caches out of the user's home."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("VISTSNE_CACHE_DIR", str(cache / "vistsne"))
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    monkeypatch.delenv("VISTSNE_STORE", raising=False)


@pytest.fixture
def store_path(tmp_path) -> str:
    return str(tmp_path / "store.zarr")


def write_image_tree(root: Path, classes=("cat", "dog", "owl"), per_class=4, size=32, seed=0) -> Path:
    """A class-per-folder tree of small distinct PNG images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((size, size, 3), np.uint8)
            base[..., ci % 3] = (60 + 60 * ci) % 200
            noise = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(base + noise).save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def image_tree(tmp_path) -> Path:
    return write_image_tree(tmp_path / "images")


def run_cli(*args, env=None, check=True, timeout=600):
    """Run ``python -m vistsne ARGS`` in a fresh process (for import and exit-code checks)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "vistsne", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=str(ROOT), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"vistsne {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> str:
    """A plain checkpoint of the demo model with random weights (seed 1)."""
    import torch

    from vistsne.extract.config import load_config
    from vistsne.extract.model import build_model

    cfg = load_config(DEMO_CONFIG).cfg
    model = build_model(cfg, "cpu", seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "r18_seed1.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"note": "test"}}, path)
    return str(path)


@pytest.fixture(scope="session")
def _extracted_store(tmp_path_factory) -> tuple[str, str]:
    """A store with one digits entry: random init, 3 classes x 20 rows, three stages that differ."""
    from vistsne.extract import ExtractParams, extract_entry
    from vistsne.store import Store

    path = str(tmp_path_factory.mktemp("extracted") / "store.zarr")
    res = extract_entry(Store(path), ExtractParams(config=STAGES_CONFIG, max_num_class=3, max_num_samples=20,
                                                   device="cpu"), progress=False)
    return path, res.entry


@pytest.fixture
def extracted(tmp_path, _extracted_store) -> tuple[str, str]:
    """A private copy of the extracted store: (store path, entry key)."""
    import shutil

    src, key = _extracted_store
    dst = str(tmp_path / "store.zarr")
    shutil.copytree(src, dst)
    return dst, key
