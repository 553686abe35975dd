"""3. Extraction: ``vistsne extract`` images/s against the forward-pass ceiling.

Per repetition one process (``child.job_extract_pair``) runs the library's
``extract`` into a fresh store (config, dataset, model, checkpoint, loading,
preprocessing, every stage, thumbnails, store writes: all of it), and then a
bare loop of the same model's ``extract_feat`` over batches that were loaded
and preprocessed beforehand, with one untimed warm-up batch: the steady-state
forward pass of this machine. The ratio is vistsne's images/s over the bare
loop's (target >= 0.85). One more, profiled, run (cProfile, not counted)
says where vistsne's time goes. Peak memory of extract is the process's peak
right after the extract call (before the bare loop builds anything).

Models: the demo ResNet-18-CIFAR at 32 px with the demo checkpoint over
digits expanded to N images; a ResNet-50 at 224 px
(``mmpretrain::resnet/resnet50_8xb32_in1k.py``, random init, no download)
over ``--images`` pointing at digit PNGs written by the bench; and the ResNet-18 again with
``--precision bfloat16`` (autocast, channels-last; its bare loop runs the same way), whose row
also gives its images/s over the float32 row's, repetition by repetition.
"""

from __future__ import annotations

import shutil
import tempfile

from .common import DEMO_CONFIG, fmt_stat, ratios, run_child, say, stats
from .setup_data import Context

TARGET = 0.85
R50_CONFIG = "mmpretrain::resnet/resnet50_8xb32_in1k.py"

PROFILE_TARGETS = {
    "whole extract()": ("vistsne/extract/entry.py", "extract_entry"),
    "entry key (config parse, hashing)": ("vistsne/extract/entry.py", "entry_key"),
    "build dataset": ("vistsne/extract/model.py", "build_dataset"),
    "build model": ("vistsne/extract/model.py", "build_model"),
    "load checkpoint": ("vistsne/extract/checkpoint.py", "apply_checkpoint"),
    "provenance": ("vistsne/extract/entry.py", "_provenance"),
    "data loading (DataLoader next)": ("torch/utils/data/dataloader.py", "__next__"),
    "data preprocessor": ("mmpretrain/models/utils/data_preprocessor.py", "forward"),
    "forward, every stage (StageReader)": ("vistsne/extract/model.py", "__call__"),
    "thumbnails": ("vistsne/extract/model.py", "thumbnails"),
    "store: write parts": ("vistsne/store.py", "write_part"),
    "store: update entry meta": ("vistsne/store.py", "update_entry_meta"),
    "store: present rows": ("vistsne/store.py", "present"),
}


def _models(ctx: Context) -> list[dict]:
    mode = ctx.mode
    png_dir = ctx.work / "r50_images"
    return [
        {"name": "ResNet-18-CIFAR, 32 px, demo checkpoint", "key": "resnet18_32px", "n": mode.extract_r18_n,
         "params": dict(config=DEMO_CONFIG, checkpoint=ctx.checkpoint,
                        cfg_options=[ctx.expand_option(mode.extract_r18_n)], vis_stage="all",
                        max_num_class=10, max_num_samples=10**6, device="cpu")},
        {"name": "ResNet-18-CIFAR, 32 px, demo checkpoint, --precision bfloat16", "key": "resnet18_32px_bf16",
         "n": mode.extract_r18_n, "over": "resnet18_32px",
         "params": dict(config=DEMO_CONFIG, checkpoint=ctx.checkpoint,
                        cfg_options=[ctx.expand_option(mode.extract_r18_n)], vis_stage="all",
                        max_num_class=10, max_num_samples=10**6, device="cpu", precision="bfloat16")},
        {"name": "ResNet-50, 224 px, random init", "key": "resnet50_224px", "n": mode.extract_r50_n,
         "params": dict(config=R50_CONFIG, checkpoint=None, images=str(png_dir), vis_stage="all",
                        max_num_class=10, max_num_samples=10**6, device="cpu"),
         "write_pngs": {"dir": str(png_dir), "n": mode.extract_r50_n}},
    ]


def run(ctx: Context) -> dict:
    mode = ctx.mode
    out = []
    ips_of = {}
    for i, spec in enumerate(_models(ctx)):
        v_ips, b_ips, v_s, b_s, rss, threads, warm = [], [], [], [], [], None, []
        extra = {}
        prof = None
        reps = mode.extract_reps or mode.reps
        for r in range(reps):
            tmp = tempfile.mkdtemp(prefix="extract-", dir=ctx.work)
            args = {"params": spec["params"], "store": f"{tmp}/store.zarr", "write_pngs": spec.get("write_pngs")}
            if mode.profile_in_rep:
                args.update(profile=True, profile_targets=PROFILE_TARGETS)
            res = run_child("extract_pair", args).result
            shutil.rmtree(tmp, ignore_errors=True)
            if mode.profile_in_rep:
                prof = res
            v_s.append(res["vistsne_seconds"])
            b_s.append(res["bare_seconds"])
            v_ips.append(res["rows"] / res["vistsne_seconds"])
            b_ips.append(res["bare_rows"] / res["bare_seconds"])
            rss.append(res["vistsne_maxrss_mb"])
            # the first batch's extra time over a steady-state batch: what a fresh process pays once
            steady = res["bare_seconds"] / res["bare_rows"] * res["bare_first_batch_rows"]
            warm.append(max(0.0, res["bare_warmup_seconds"] - steady))
            threads = res["torch_threads"]
            extra = {"batch_size": res["batch_size"], "num_workers": res["num_workers"], "rows": res["rows"]}
            say(f"extract {spec['key']} rep {r + 1}/{reps}: vistsne {v_ips[-1]:.1f} img/s "
                f"({res['vistsne_seconds']:.1f}s for {res['rows']}), bare loop {b_ips[-1]:.1f} img/s")
        if prof is None and i < mode.profile_models:  # one more run, profiled, not counted
            tmp = tempfile.mkdtemp(prefix="extract-prof-", dir=ctx.work)
            prof = run_child("extract_pair", {"params": spec["params"], "store": f"{tmp}/store.zarr",
                                              "profile": True, "profile_targets": PROFILE_TARGETS}).result
            shutil.rmtree(tmp, ignore_errors=True)
        row = {"model": spec["name"], "key": spec["key"], "n": spec["n"], **extra, "torch_threads": threads,
               "reps": reps,
               "vistsne_ips": stats(v_ips), "bare_ips": stats(b_ips), "vistsne_seconds": stats(v_s),
               "bare_seconds": stats(b_s), "ratio": ratios(v_ips, b_ips), "vistsne_maxrss_mb": stats(rss),
               "first_batch_extra_seconds": stats(warm),
               "target": TARGET, "profile": (prof or {}).get("profile"),
               "profile_run_seconds": (prof or {}).get("vistsne_seconds")}
        row["met"] = bool(row["ratio"]["median"] >= TARGET)
        ips_of[spec["key"]] = v_ips
        if spec.get("over") in ips_of:  # the same extraction in float32, measured in this run
            row["speedup_over"] = {"key": spec["over"], "ratio": ratios(v_ips, ips_of[spec["over"]])}
            say(f"extract {spec['key']}: {fmt_stat(row['speedup_over']['ratio'], 2)}x the images/s of "
                f"{spec['over']}")
        say(f"extract {spec['key']}: vistsne/bare {fmt_stat(row['ratio'], 3)} (target >= {TARGET}: "
            f"{'met' if row['met'] else 'MISSED'})")
        out.append(row)
    return {"rows": out, "target": TARGET}
