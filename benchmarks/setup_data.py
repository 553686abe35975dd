"""The bench data: the checkpoint, the bench entry in the bench store, features per N.

The bench entry is the demo config over the digits test split expanded by
deterministic augmentation (``test_dataloader.dataset.expand``) to enough
distinct images for the largest size, passed through the demo checkpoint.
All modes but tiny use one expansion, so they share one entry that grows:
quick extracts 2,000 rows, the default run adds rows up to 20,000, ``--full``
up to 70,000; every later run is a cache hit (the tool's own cache at work).
A size N is the class-balanced selection of N/10 rows per class, exactly as
``--max-num-class 10 --max-num-samples N/10`` picks them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .common import BENCH_DIR, DEMO_CONFIG, PYTHON, ROOT, STAGE, Mode, run_child, run_process, say


@dataclass
class Context:
    mode: Mode
    store: str
    out: Path
    work: Path                   # temporary folder of this run
    n_jobs: int
    checkpoint: str = ""
    checkpoint_info: dict = field(default_factory=dict)
    entry: str = ""
    entry_info: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)   # {N: {"X", "labels", "rows", ...}}
    #: what several items share within one run (the before version's worktree, the seams store)
    shared: dict = field(default_factory=dict)

    def expand_option(self, expand: int | None = None) -> str:
        return f"test_dataloader.dataset.expand={expand or self.mode.expand}"

    def xy(self, n: int) -> dict:
        f = self.features[n]
        return {"X": f["X"], "labels": f["labels"]}


def snapshot_checkpoint(path: Path, ctx: Context) -> str:
    """A content-named copy of the checkpoint that the whole run uses.

    The demo checkpoint may be retrained while a run goes on (it is shared
    with other work); every measurement of a run must see the same weights.
    The copy lives in ``benchmarks/.cache/`` (git-ignored) under its sha256,
    so that later runs reuse it and vistsne's file-hash cache knows it; the
    entry key depends on the bytes only, so the entry is the same.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    sha = h.hexdigest()
    ctx.checkpoint_info["sha256"] = sha
    ctx.checkpoint_info["source"] = str(path)
    if ctx.mode.name == "tiny":
        return str(path)
    dest = BENCH_DIR / ".cache" / "checkpoints" / f"{path.stem}-{sha[:12]}{path.suffix}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
    return str(dest)


def prepare(ctx: Context) -> None:
    mode = ctx.mode
    if mode.name == "tiny":
        ck = Path(ctx.store).parent / "bench_tiny_random.pth"
        res = run_child("checkpoint", {"random": True, "path": str(ck), "config": DEMO_CONFIG})
    else:
        say("checkpoint: vistsne.demo.train_checkpoint() (made once, then reused)")
        res = run_child("checkpoint", {"path": str(ROOT / "work_dirs" / "demo" / "digits_resnet18.pth")},
                        timeout=3600)
    ctx.checkpoint_info = dict(res.result)
    ctx.checkpoint = snapshot_checkpoint(Path(res.result["path"]), ctx)
    say(f"checkpoint: {res.result['path']} ({res.result['kind']}), sha256 "
        f"{ctx.checkpoint_info['sha256'][:12]}; the run uses the snapshot {ctx.checkpoint}")

    rows_per_class = mode.max_n // 10
    params = dict(config=DEMO_CONFIG, checkpoint=ctx.checkpoint, cfg_options=[ctx.expand_option()],
                  vis_stage="all", max_num_class=10, max_num_samples=rows_per_class, device="cpu")
    say(f"bench entry: extract {mode.max_n} rows of digits expand={mode.expand} into {ctx.store} "
        "(a cache hit when an earlier run extracted them)")
    spec_dir = Path(tempfile.mkdtemp(dir=ctx.work))
    spec = spec_dir / "job.json"
    out = spec_dir / "out.json"
    spec.write_text(json.dumps({"job": "extract_entry", "args": {"params": params, "store": ctx.store},
                                "out": str(out)}))
    proc = run_process([PYTHON, str(BENCH_DIR / "child.py"), str(spec)], stream=True)
    info = json.loads(out.read_text())
    ctx.entry = info["entry"]
    ctx.entry_info = {**info, "wall_s": proc.wall, "expand": mode.expand, "rows_per_class": rows_per_class}
    say(f"bench entry {ctx.entry[:12]}: {info['rows']} rows, {info['new_rows']} computed now "
        f"({'cache hit' if info['cached'] else 'inference ran'}), {proc.wall:.1f}s")

    sizes = sorted({*mode.engine_sizes, *mode.method_sizes, *mode.overhead_sizes, mode.sweep_n,
                    mode.profile_n})
    fdir = ctx.work / "features"
    fdir.mkdir(parents=True, exist_ok=True)
    res = run_child("features", {"store": ctx.store, "entry": ctx.entry, "stage": STAGE, "sizes": sizes,
                                 "dir": str(fdir)})
    ctx.features = {int(k): v for k, v in res.result.items()}
    for n, f in sorted(ctx.features.items()):
        if f["rows"] != n:
            raise RuntimeError(f"size {n}: the bench entry gives {f['rows']} rows; grow the expansion")
    say("features: " + ", ".join(f"N={n} ({f['dim']}-d, {f['classes']} classes)"
                                 for n, f in sorted(ctx.features.items())))
