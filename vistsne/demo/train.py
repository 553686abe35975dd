"""The demo's trainer: the digits checkpoint, trained once on the CPU.

``train_checkpoint`` trains the demo config's ResNet-18 on the digits train
split with mmengine's Runner on the CPU and writes a plain checkpoint
(``{'state_dict', 'meta'}``) that loads with ``torch.load(weights_only=True)``.
It is made once and reused.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger("vistsne")

DEMO_CONFIG = "configs/digits_resnet18.py"
DEMO_CHECKPOINT = os.path.join("work_dirs", "demo", "digits_resnet18.pth")
#: Checkpoints saved along the schedule (besides the final one), evenly spaced, for
#: `vistsne compare`: ``<name>_iter_<n>.pth`` beside the final checkpoint.
DEMO_SNAPSHOTS = 2


def snapshot_paths(out: str | os.PathLike = DEMO_CHECKPOINT) -> list[Path]:
    """The checkpoints saved along the schedule of ``out`` (in iteration order)."""
    import re

    out = Path(out)
    found = list(out.parent.glob(f"{out.stem}_iter_*.pth"))
    return sorted(found, key=lambda p: int(re.findall(r"_iter_(\d+)", p.name)[-1]))


def _set_total_steps(schedulers, total: int) -> None:
    """Give every iteration-based ``OneCycleLR`` of the config the real run length."""
    if schedulers is None:
        return
    items = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]
    for s in items:
        if isinstance(s, dict) and s.get("type") == "OneCycleLR":
            s["total_steps"] = int(total)
            s.pop("epochs", None)
            s.pop("steps_per_epoch", None)


def _iters_per_epoch(cfg) -> int:
    """Batches per epoch of the config's train dataloader (builds its dataset, not the loader)."""
    from mmengine.registry import DefaultScope

    import mmpretrain.datasets  # noqa: F401  (fills the registry)
    from mmpretrain.registry import DATASETS

    loader = cfg.train_dataloader
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        n = len(DATASETS.build(loader.dataset.copy()))
    batch = int(loader.batch_size)
    return max(1, n // batch if loader.get("drop_last", False) else -(-n // batch))


def _close_log_files(runner) -> None:
    """Close the Runner's log file in its (temporary) work folder before it is removed."""
    logger = getattr(runner, "logger", None)
    for h in list(getattr(logger, "handlers", [])):
        if isinstance(h, logging.FileHandler):
            h.close()
            logger.removeHandler(h)


def train_checkpoint(config: str = DEMO_CONFIG, out: str = DEMO_CHECKPOINT, *, epochs: int | None = None,
                     max_iters: int | None = None, seed: int = 0, threads: int | None = None,
                     force: bool = False, show_progress: bool = True,
                     cfg_options: dict | None = None, snapshots: int = DEMO_SNAPSHOTS) -> Path:
    """Train the demo checkpoint with mmengine's Runner (CPU) and save it to ``out``.

    ``epochs`` replaces the config's ``max_epochs``; ``max_iters`` caps the
    schedule (the tests use a few iterations); the learning-rate schedule is
    stretched to whatever length results. ``threads`` sets torch's CPU threads
    for the run (restored after; default torch's own). Training is plain float32
    with the config's own optimiser wrapper. ``cfg_options``: config
    overrides (``{'optim_wrapper.optimizer.lr': 0.1}``). ``snapshots``: that
    many checkpoints saved along the schedule too (:func:`snapshot_paths`), in the
    same format, with their iteration in ``meta['iter']``.

    The saved file holds only ``state_dict`` and ``meta`` (classes, config,
    schedule, seed, training seconds, the test accuracy), so loading it needs
    no allow-listed globals. It is written atomically; the Runner's work
    folder is a temporary folder that is always removed.
    """
    out_path = Path(out)
    if out_path.exists() and not force:
        log.info("demo checkpoint %s exists; reusing it", out_path)
        return out_path
    import torch
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from ..atomic import atomic_write
    from ..extract.config import load_config, quiet_mmengine
    from ..progress import Progress

    quiet_mmengine()
    cfg: Config = load_config(config, import_custom_modules=True).cfg
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    test_cfg = cfg.test_dataloader.copy() if cfg.get("test_dataloader") else None
    if "max_iters" in cfg.train_cfg and epochs is None:  # an iteration-based config
        total = int(cfg.train_cfg.max_iters)
    else:
        if epochs is not None:
            cfg.train_cfg = dict(by_epoch=True, max_epochs=int(epochs), val_interval=10**9)
        total = int(cfg.train_cfg.max_epochs) * _iters_per_epoch(cfg)
    if max_iters is not None and int(max_iters) < total:
        total = int(max_iters)
        cfg.train_cfg = dict(by_epoch=False, max_iters=total, val_interval=10**9)
    _set_total_steps(cfg.get("param_scheduler"), total)
    work = Path(tempfile.mkdtemp(prefix="vistsne-train-"))
    cfg.work_dir = str(work)
    cfg.experiment_name = f"vistsne-demo-{os.getpid()}-{time.time_ns()}"
    cfg.randomness = dict(seed=int(seed), deterministic=False)
    cfg.launcher = "none"
    cfg.default_hooks.checkpoint = None  # we save the plain checkpoint ourselves
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=10**9)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.visualizer = dict(type="UniversalVisualizer", vis_backends=[])
    cfg.log_level = "WARNING"

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    runner = None
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        runner = Runner.from_cfg(cfg)
        classes = [str(c) for c in (runner.train_dataloader.dataset.metainfo.get("classes") or range(10))]
        bar = Progress(total, "training demo checkpoint", "batch", enabled=show_progress)
        snap_at = sorted({max(1, round(total * (i + 1) / (snapshots + 1))) for i in range(max(0, snapshots))}
                         - {total})
        for old in snapshot_paths(out_path):
            old.unlink()

        def save(path: Path, model, n: int, **info) -> None:
            """A plain ``{'state_dict', 'meta'}`` checkpoint of ``model`` after ``n`` iterations, atomically."""
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            meta = {"dataset_meta": {"classes": classes}, "iter": int(n),
                    "vistsne": {"config": str(config), "iter": int(n), "iters": total, "seed": int(seed), **info}}
            atomic_write(path, lambda tmp: torch.save({"state_dict": state, "meta": meta}, tmp))

        class _Iterations(Hook):
            """Moves the bar and saves the snapshots."""

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                bar.update(1)
                if runner.iter + 1 in snap_at:
                    model = runner.model.module if hasattr(runner.model, "module") else runner.model
                    save(out_path.with_name(f"{out_path.stem}_iter_{runner.iter + 1}.pth"), model, runner.iter + 1)

        runner.register_hook(_Iterations(), priority="LOWEST")
        model = runner.train()
        bar.close()
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
        loss = runner.message_hub.get_scalar("train/loss").current() \
            if "train/loss" in runner.message_hub.log_scalars else None
        acc = classification_accuracy(model, test_cfg)
        save(out_path, model, total, batch_size=int(cfg.train_dataloader.batch_size),
             threads=torch.get_num_threads(), train_seconds=round(seconds, 1),
             train_cpu_seconds=round(cpu_seconds, 1), final_loss=None if loss is None else round(float(loss), 4),
             test_accuracy=round(float(acc), 4), torch=str(torch.__version__))
    finally:
        torch.set_num_threads(old_threads)
        _close_log_files(runner)
        shutil.rmtree(work, ignore_errors=True)
    log.info("trained %s in %.0fs (%d iterations), test accuracy %.3f", out_path, seconds, total, acc)
    return out_path


def classification_accuracy(model, loader_cfg=None) -> float:
    """Top-1 accuracy of ``model`` on a test split, in float32.

    ``loader_cfg``: a config's ``test_dataloader`` (its dataset and pipeline),
    or a whole config that has one; default the digits test split.
    """
    import torch
    from mmengine.dataset import default_collate
    from mmengine.registry import DefaultScope

    import mmpretrain.datasets  # noqa: F401
    from mmpretrain.registry import DATASETS

    if loader_cfg is not None and "test_dataloader" in loader_cfg:
        loader_cfg = loader_cfg.get("test_dataloader")
    if loader_cfg is not None and loader_cfg.get("dataset") is not None:
        with DefaultScope.overwrite_default_scope("mmpretrain"):
            ds = DATASETS.build(loader_cfg["dataset"].copy())
    else:
        from ..extract.digits import Digits

        ds = Digits(split="test", pipeline=[dict(type="PackInputs")])
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.inference_mode():
            for start in range(0, len(ds), 256):
                batch = default_collate([ds[i] for i in range(start, min(start + 256, len(ds)))])
                data = model.data_preprocessor(batch, False)
                for p in model(**data, mode="predict"):
                    correct += int(p.pred_label.item() == p.gt_label.item())
                    total += 1
    finally:
        model.train(was_training)
    return correct / max(total, 1)
