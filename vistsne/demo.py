"""The built-in demo: train a digits checkpoint, then extract, embed, render.

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


def train_checkpoint(config: str = DEMO_CONFIG, out: str = DEMO_CHECKPOINT, *, epochs: int | None = None,
                     max_iters: int | None = None, seed: int = 0, threads: int | None = None,
                     force: bool = False) -> Path:
    """Train the demo checkpoint with mmengine's Runner (CPU) and save it to ``out``.

    ``max_iters`` caps the schedule (the tests use a few iterations). The saved
    file holds only ``state_dict`` and ``meta`` (classes, config, epochs, the
    test accuracy), so loading it needs no allow-listed globals.
    """
    out_path = Path(out)
    if out_path.exists() and not force:
        log.info("demo checkpoint %s exists; reusing it", out_path)
        return out_path
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from .extract.config import load_config, quiet_mmengine

    quiet_mmengine()
    if threads:
        torch.set_num_threads(threads)
    cfg: Config = load_config(config, import_custom_modules=True).cfg
    if epochs is not None:
        cfg.train_cfg.max_epochs = int(epochs)
    batch = cfg.train_dataloader.batch_size
    work = Path(tempfile.mkdtemp(prefix="vistsne-train-"))
    cfg.work_dir = str(work)
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.launcher = "none"
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**6)
    cfg.val_cfg = None
    cfg.val_dataloader = None
    cfg.val_evaluator = None
    cfg.test_cfg = None
    cfg.test_dataloader = None
    cfg.test_evaluator = None
    cfg.visualizer = dict(type="UniversalVisualizer", vis_backends=[])
    cfg.log_level = "WARNING"

    from .extract.digits import digits_split  # noqa: F401  (registers Digits)

    n_train = len(digits_split("train")[1])
    iters_per_epoch = -(-n_train // batch)
    total = iters_per_epoch * cfg.train_cfg.max_epochs
    if max_iters is not None and max_iters < total:
        cfg.train_cfg = dict(by_epoch=False, max_iters=int(max_iters), val_interval=10**6)
        total = int(max_iters)
    if cfg.param_scheduler.get("type") == "OneCycleLR":
        cfg.param_scheduler.total_steps = total

    t0 = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    from .progress import Progress

    bar = Progress(total, "training demo checkpoint", "batch")
    from mmengine.hooks import Hook

    class _Bar(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            bar.update(1)

    runner.register_hook(_Bar(), priority="LOWEST")
    model = runner.train()
    bar.close()
    seconds = time.perf_counter() - t0

    acc = test_accuracy(model, cfg)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {"dataset_meta": {"classes": [str(i) for i in range(10)]},
            "vistsne": {"config": str(config), "iters": total, "seed": seed,
                        "train_seconds": round(seconds, 1), "test_accuracy": acc}}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    torch.save({"state_dict": state, "meta": meta}, tmp)
    os.replace(tmp, out_path)
    shutil.rmtree(work, ignore_errors=True)
    log.info("trained %s in %.0fs (%d iterations), test accuracy %.3f", out_path, seconds, total, acc)
    return out_path


def test_accuracy(model, cfg) -> float:
    """Top-1 accuracy of ``model`` on the digits test split."""
    import torch

    from .extract.digits import Digits
    from mmengine.dataset import default_collate

    ds = Digits(split="test", pipeline=[dict(type="PackInputs")])
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for start in range(0, len(ds), 256):
            batch = default_collate([ds[i] for i in range(start, min(start + 256, len(ds)))])
            data = model.data_preprocessor(batch, False)
            preds = model(**data, mode="predict")
            for p in preds:
                correct += int(p.pred_label.item() == p.gt_label.item())
                total += 1
    return correct / max(total, 1)


# ------------------------------------------------------------ the demo run
DEMO_STAGES = ("all",)


class DemoResult:
    def __init__(self, figures: list, entries: dict, accuracy: dict, out_dir: Path, comparison: Path):
        self.figures = figures
        self.entries = entries
        self.accuracy = accuracy
        self.out_dir = out_dir
        self.comparison = comparison

    def to_json(self) -> dict:
        return {"figures": [str(f) for f in self.figures], "entries": self.entries,
                "knn_acc_map_pre_logits": self.accuracy, "comparison": str(self.comparison)}

    def summary(self, seconds: float) -> str:
        acc = ", ".join(f"{k} {v:.3f}" for k, v in self.accuracy.items())
        return (f"demo: pre_logits 10-NN accuracy in the map: {acc}; {len(self.figures)} figures in "
                f"{seconds:.1f}s; see {self.comparison} (all figures in {self.out_dir})")


def run_demo(store, out_dir: str, checkpoint: str = DEMO_CHECKPOINT, progress: bool = True) -> DemoResult:
    """Extract the digits test split with the trained and the untrained model, embed, render.

    Writes every map, the HTML page of each entry, and
    ``demo_trained_vs_untrained.png``: the two ``pre_logits`` maps side by side.
    """
    from .embed import EmbedParams
    from .embed.cached import RowSelection, embed_entry
    from .extract import ExtractParams, extract
    from .render import RenderParams
    from .render.from_store import load_map, render_entry
    from .render.static import render_sheet

    out = Path(out_dir)
    figures: list[Path] = []
    entries: dict[str, str] = {}
    accuracy: dict[str, float] = {}
    pre_logits = {}
    for label, ckpt in (("trained", checkpoint), ("untrained", None)):
        res = extract(ExtractParams(config=DEMO_CONFIG, checkpoint=ckpt), store, show_progress=progress)
        entries[label] = res.entry
        records = embed_entry(store, res.entry, DEMO_STAGES, [EmbedParams()], RowSelection(),
                              n_jobs=os.cpu_count() or 1, progress=progress)
        rendered = render_entry(store, res.entry, out, RenderParams(formats=("png", "html"), legend=True),
                                embeddings=[r.key for r in records], progress=progress)
        figures += rendered.files
        rec = next(r for r in records if r.stage == "pre_logits")
        accuracy[label] = float(rec.metrics["knn_acc_map"])
        meta = store.entry_meta(res.entry)
        m = load_map(store, res.entry, store.embedding(res.entry, rec.key), meta, None, with_thumbs=False)
        m.caption = f"{label}: 10-NN acc {accuracy[label]:.3f}, trust {rec.metrics['trustworthiness']:.3f}"
        pre_logits[label] = m
    comparison = render_sheet([[pre_logits["trained"], pre_logits["untrained"]]], ["pre_logits"],
                              ["trained checkpoint", "random init (untrained)"],
                              out / "demo_trained_vs_untrained.png", RenderParams(legend=True))
    figures.append(comparison)
    return DemoResult(figures, entries, accuracy, out, comparison)
