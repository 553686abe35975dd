"""Extraction on ranks (issue 13): 2 ranks against 1, and the launcher path against a single process.

Three commands over the same rows, each into a fresh store, alternated over
the repetitions (the machine is shared; the median is reported):

- ``single``: ``vistsne extract`` as one process (torch's default threads: every core);
- ``launcher_1x2``: ``torchrun --nproc_per_node 1 ... --launcher pytorch``, one rank with every core
  (gloo on the CPU);
- ``ranks_2x1``: ``torchrun --nproc_per_node 2 ... --launcher pytorch``, two ranks of one thread each.

Reported: the inference loop's images/s over all ranks (from the summary's
``images_per_s``) of 2 ranks against 1 rank with 2 threads (need not exceed 1
on 2 cores), and the launcher path's wall time (the whole command: startup,
rendezvous, model, inference, store) against the single process's (target <=
1.05x).

Runs on its own: ``python benchmarks/distributed.py [--n 4000] [--reps 3]``
prints one JSON document; ``run(ctx)`` is the same for the bench's runner.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / "configs" / "digits_resnet18.py")
OVERHEAD_TARGET = 1.05


def _command(kind: str, store: str, n: int) -> list[str]:
    args = [DEMO_CONFIG, "--device", "cpu", "--store", store, "--max-num-class", "10",
            "--max-num-samples", str(10**6), "--cfg-options", f"test_dataloader.dataset.expand={n}",
            "--batch-size", "32", "--num-workers", "0", "--json"]
    if kind == "single":
        return [sys.executable, "-m", "vistsne", "extract", *args]
    nproc = 1 if kind == "launcher_1x2" else 2
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "vistsne", "extract", *args, "--launcher", "pytorch"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.pop("VISTSNE_STORE", None)
    return env


def _one(kind: str, n: int, work: Path) -> dict:
    tmp = tempfile.mkdtemp(prefix=f"dist-{kind}-", dir=work)
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(_command(kind, f"{tmp}/store.zarr", n), cwd=ROOT, env=_env(), capture_output=True,
                              text=True, timeout=1800)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            said = [ln for ln in proc.stderr.splitlines() if ln.lstrip().lower().startswith("error")]
            raise RuntimeError(f"{kind} failed ({proc.returncode}): " + " | ".join(said[:3])
                               + f" | {proc.stderr[-1500:]}")
        res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
        assert res["new_rows"] == res["rows"], res
        return {"wall_s": wall, "images_per_s": res.get("images_per_s"), "rows": res["rows"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(n: int = 4000, reps: int = 3, work: Path | None = None, warmup: bool = True) -> dict:
    work = Path(work or tempfile.mkdtemp(prefix="vistsne-bench-dist-"))
    work.mkdir(parents=True, exist_ok=True)
    kinds = ("single", "launcher_1x2", "ranks_2x1")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    if warmup:
        _one("single", min(n, 200), work)  # warm the file caches and the dataset's hash cache
    for _ in range(reps):
        for k in kinds:
            runs[k].append(_one(k, n, work))
    med = {k: {"wall_s": statistics.median(r["wall_s"] for r in v),
               "images_per_s": statistics.median(r["images_per_s"] for r in v if r["images_per_s"])
               if any(r["images_per_s"] for r in v) else None} for k, v in runs.items()}
    throughput = med["ranks_2x1"]["images_per_s"] / med["launcher_1x2"]["images_per_s"]
    overhead = med["launcher_1x2"]["wall_s"] / med["single"]["wall_s"]
    return {"item": "distributed", "rows": runs["single"][0]["rows"], "reps": reps, "cores": os.cpu_count(),
            "median": med, "runs": runs,
            "throughput_2ranks_over_1rank_2threads": round(throughput, 3),
            "launcher_overhead_wall": round(overhead, 3), "overhead_target": OVERHEAD_TARGET,
            "overhead_ok": overhead <= OVERHEAD_TARGET}


def run(ctx) -> dict:
    """The bench runner's item: the mode's repetitions, in its work folder."""
    reps = getattr(ctx.mode, "extract_reps", None) or getattr(ctx.mode, "reps", 3)
    n = getattr(ctx.mode, "extract_r18_n", 4000)
    return measure(n=n, reps=reps, work=ctx.work / "distributed", warmup=getattr(ctx.mode, "warmup", 1) > 0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000, help="rows (digits expanded to N images)")
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args(argv)
    print(json.dumps(measure(a.n, a.reps), indent=1))


if __name__ == "__main__":
    main()
