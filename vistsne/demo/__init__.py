"""The built-in demo: train a digits checkpoint, then extract, embed and render it.

The trainer lives in :mod:`vistsne.demo.train`; the run goes through the one
orchestrator (:func:`vistsne.pipeline.run`) like every other command.
"""

from __future__ import annotations

from pathlib import Path

from .train import DEMO_CHECKPOINT, DEMO_CONFIG, classification_accuracy, snapshot_paths, train_checkpoint

__all__ = ["DEMO_CONFIG", "DEMO_CHECKPOINT", "train_checkpoint", "run_demo", "DemoResult", "classification_accuracy",
           "snapshot_paths"]

# ------------------------------------------------------------ the demo run
DEMO_STAGES = ("all",)


class DemoResult:
    def __init__(self, figures: list, entries: dict, accuracy: dict, out_dir: Path, comparison: Path,
                 training: list | None = None):
        self.training = training or []
        self.figures = figures
        self.entries = entries
        self.accuracy = accuracy
        self.out_dir = out_dir
        self.comparison = comparison

    def to_json(self) -> dict:
        return {"figures": [str(f) for f in self.figures], "entries": self.entries,
                "knn_acc_map_pre_logits": self.accuracy, "comparison": str(self.comparison),
                "training": [str(f) for f in self.training]}

    def summary(self, seconds: float) -> str:
        acc = ", ".join(f"{k} {v:.3f}" for k, v in self.accuracy.items())
        return (f"demo: pre_logits 10-NN accuracy in the map: {acc}; {len(self.figures)} figures in "
                f"{seconds:.1f}s; see {self.comparison} (all figures in {self.out_dir})")


def run_demo(store, out_dir: str, checkpoint: str = DEMO_CHECKPOINT, progress: bool = True) -> DemoResult:
    """Extract the digits test split with the trained and the untrained model, embed, render.

    Writes every map, the HTML page of each entry, and
    ``demo_trained_vs_untrained.png``: the two ``pre_logits`` maps side by side.
    """
    from .. import pipeline
    from ..extract import ExtractParams
    from ..render import RenderParams
    from ..render.entry import render_cells

    out = Path(out_dir)
    figures: list[Path] = []
    entries: dict[str, str] = {}
    accuracy: dict[str, float] = {}
    cells, captions = [], {}
    for label, ckpt in (("trained", checkpoint), ("untrained", None)):
        # every backbone stage, so that the depth figure shows separation building up through the network
        request = pipeline.Request(extract=ExtractParams(config=DEMO_CONFIG, checkpoint=ckpt, backbone_stages="all"),
                                   out_dir=out,
                                   stages=DEMO_STAGES, render=RenderParams(formats=("png", "html"), legend=True))
        done = pipeline.run(store, request, progress=progress)
        entries[label] = done.entry
        figures += done.files
        stored = store.stored_stage(done.entry, "pre_logits")  # pre_logits is stored once, as backbone.3
        rec = next(r for r in done.records if r.stage == stored)
        accuracy[label] = float(rec.metrics["knn_acc_map"])
        cells.append((done.entry, rec.key))
        captions[(done.entry, rec.key)] = (f"{label}: 10-NN acc {accuracy[label]:.3f}, "
                                           f"trust {rec.metrics['trustworthiness']:.3f}")
    comparison = render_cells(store, [cells], ["pre_logits"], ["trained checkpoint", "random init (untrained)"],
                              out / "demo_trained_vs_untrained.png", RenderParams(legend=True), captions)
    figures.append(comparison)
    # the trained checkpoint's likeliest label errors, as a contact sheet
    from ..selection import RowSelection

    _, sheet = pipeline.suspects(store, pipeline.EntryRef(entry=entries["trained"]), "pre_logits", RowSelection(), top=24,
                                 out_dir=out, render_params=RenderParams(), progress=progress)
    if sheet is not None:
        figures.append(sheet)
    training = compare_training(store, out, checkpoint, entries["untrained"], progress=progress)
    figures += training
    return DemoResult(figures, entries, accuracy, out, comparison, training)


def compare_training(store, out: Path, checkpoint: str, untrained: str, progress: bool = True) -> list[Path]:
    """The digits forming clusters along training: untrained, the saved snapshots, trained (pre_logits).

    Nothing when the checkpoint was trained before snapshots were saved (`vistsne demo --retrain` adds them).
    """
    import logging
    import re
    import shutil

    from ..compare import compare

    snaps = [str(p) for p in snapshot_paths(checkpoint)]
    if not snaps:
        logging.getLogger("vistsne").info("no training snapshots beside %s; `vistsne demo --retrain` saves "
                                          "them for the training comparison", checkpoint)
        return []
    done = compare(store, configs=[DEMO_CONFIG], checkpoints=[*snaps, checkpoint], entries=[untrained],
                   stages=["pre_logits"], out_dir=out, figures=("sheet", "curve", "gif", "html"),
                   extract_options={"vis_stage": "pre_logits"}, progress=progress)
    named = []
    for f in done.files:  # stable names for the demo's figures
        target = f.with_name(re.sub(r"^compare_[0-9a-f]+_[0-9a-f]+_\d+", "demo_training", f.name))
        shutil.move(str(f), target)
        named.append(target)
    return named
