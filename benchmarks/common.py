"""Shared plumbing of the benchmarks: modes, repetitions, child processes, machine facts.

Every figure is a ratio against a baseline measured in the same run (the
machine is shared, so absolute seconds drift), repeated ``reps`` times and
reported as ``{"median", "min", "max", "n", "values"}``. Repetitions of the
things being compared are interleaved (A B A B A B), so that a slow period of
the machine hits both sides, and ratios are taken per repetition (paired)
before the median.

Whole processes are measured as children whose resources come from
``os.wait4`` (peak resident memory of that child alone); library calls are
timed inside a child (:mod:`benchmarks.child`) around the call only, so that
interpreter start and imports do not count.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
DEMO_CONFIG = str(ROOT / "configs" / "digits_resnet18.py")
#: The stage every t-SNE benchmark embeds: the reference's default for an
#: ImageClassifier (``--vis-stage`` unset means ``neck``).
STAGE = "neck"


# ------------------------------------------------------------------ modes
@dataclass
class Mode:
    """What one run measures; ``tiny`` < ``quick`` < ``default`` < ``full``."""

    name: str
    reps: int
    engine_sizes: list[int]
    #: sizes at which the scikit-learn runs are skipped (too slow for the mode)
    sklearn_skip: list[int] = field(default_factory=list)
    method_sizes: list[int] = field(default_factory=list)
    retune_n: int = 2000
    extract_r18_n: int = 2000
    extract_r50_n: int = 256
    sweep_n: int = 2000
    sweep_perplexities: tuple[float, ...] = (5.0, 15.0, 30.0, 50.0)
    overhead_sizes: list[int] = field(default_factory=list)
    #: ``test_dataloader.dataset.expand`` of the bench entry; all modes but
    #: tiny share one value, so that they share one store entry that grows.
    expand: int = 77000
    profile_n: int = 2000
    #: t-SNE iterations everywhere (the reference's 1000; tiny cuts it to stay fast)
    n_iter: int = 1000
    #: profile extraction inside the counted repetition instead of one more run
    profile_in_rep: bool = False
    #: also profile one whole cold ``vistsne run``
    profile_cold_run: bool = True
    #: how many extraction models get a profiled run (in order: ResNet-18, ResNet-50)
    profile_models: int = 2
    #: repetitions of the extraction pairs (None: ``reps``); the bare loop's
    #: run-to-run spread is the widest of all, so the default run takes 5
    extract_reps: int | None = None

    @property
    def max_n(self) -> int:
        return max(self.engine_sizes + self.method_sizes + self.overhead_sizes
                   + [self.sweep_n, self.profile_n])


def make_mode(name: str, full: bool = False) -> Mode:
    if name == "tiny":
        m = Mode("tiny", reps=1, engine_sizes=[200], method_sizes=[200], retune_n=200,
                 extract_r18_n=200, extract_r50_n=16, sweep_n=200, overhead_sizes=[200],
                 expand=1000, profile_n=200, sweep_perplexities=(5.0, 15.0, 30.0, 50.0), n_iter=300,
                 profile_in_rep=True, profile_cold_run=False)
    elif name == "quick":
        m = Mode("quick", reps=3, engine_sizes=[1000], method_sizes=[1000], retune_n=500,
                 extract_r18_n=1000, extract_r50_n=32, sweep_n=500, overhead_sizes=[1000],
                 profile_n=1000, profile_cold_run=False, profile_models=1)
    else:
        m = Mode("default", reps=3, engine_sizes=[2000, 10000, 20000],
                 method_sizes=[1000, 2000, 3000, 5000, 7000, 10000], retune_n=2000,
                 extract_r18_n=2000, extract_r50_n=256, sweep_n=2000,
                 overhead_sizes=[2000, 10000], profile_n=10000, extract_reps=5)
    if full:
        m.name = "full" if m.name == "default" else f"{m.name}+full"
        m.engine_sizes = sorted(set(m.engine_sizes + [70000]))
        # scikit-learn's Barnes-Hut at 70,000 rows takes tens of minutes a run:
        # one repetition of each of its two settings would eat the hour alone.
        m.sklearn_skip = [70000]
    return m


# ------------------------------------------------------------- reporting
_T0 = time.perf_counter()


def say(msg: str) -> None:
    """A progress line with the run's elapsed time and the CPU pressure now (PSI avg10)."""
    p = cpu_pressure()
    psi = f" psi {p['some_avg10']:3.0f}%" if p else ""
    print(f"[{time.perf_counter() - _T0:7.1f}s{psi}] {msg}", flush=True)


def stats(values: Sequence[float]) -> dict:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals),
            "values": [round(v, 6) for v in vals]}


def ratios(num: Sequence[float], den: Sequence[float]) -> dict:
    """Paired per-repetition ratios ``num[i] / den[i]``, summarised."""
    return stats([a / b for a, b in zip(num, den) if a is not None and b])


def fmt_stat(s: dict | None, digits: int = 2, unit: str = "") -> str:
    """``median [min–max]`` (just the value with one repetition)."""
    if not s or s.get("median") is None:
        return "n/a"
    f = f"{{:.{digits}f}}"
    if s.get("n", 1) <= 1 or s["min"] == s["max"]:
        return f.format(s["median"]) + unit
    return f"{f.format(s['median'])}{unit} [{f.format(s['min'])}–{f.format(s['max'])}]"


# -------------------------------------------------------------- children
@dataclass
class ChildResult:
    returncode: int
    wall: float
    maxrss_mb: float
    stdout: str
    stderr: str
    result: dict | None = None


def run_process(cmd: Sequence[str], *, env: dict | None = None, cwd: str | Path = ROOT,
                timeout: float | None = None, check: bool = True, stream: bool = False) -> ChildResult:
    """Run ``cmd`` as a child; its wall time and its own peak RSS (``os.wait4``).

    ``stream``: let the child write to this terminal (progress bars) instead
    of capturing its output.
    """
    full_env = dict(os.environ)
    full_env.update(CHILD_ENV)
    full_env.update(env or {})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=None if stream else out,
                                stderr=None if stream else err, env=full_env, cwd=str(cwd))
        timer = None
        if timeout:
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = ChildResult(proc.returncode, wall, ru.ru_maxrss / 1024.0, out.read(), err.read())
    if check and res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return res


#: Environment of every child: thread limits when the run asks for fewer
#: threads than cores (``--threads``), so that scikit-learn's OpenMP, BLAS and
#: torch use as many threads as openTSNE's ``n_jobs``.
CHILD_ENV: dict[str, str] = {}


def thread_env(n: int) -> dict[str, str]:
    """Child environment that gives OpenMP, BLAS and MKL ``n`` threads."""
    return {var: str(n) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def limit_threads(n_jobs: int) -> None:
    CHILD_ENV.clear()
    if n_jobs < (os.cpu_count() or 1):
        CHILD_ENV.update(thread_env(n_jobs))


def all_threads() -> dict[str, str]:
    """Child environment with every core for OpenMP and BLAS (what a user's process gets)."""
    return thread_env(os.cpu_count() or 1)


def run_child(job: str, args: dict, *, timeout: float | None = None,
              env: dict | None = None) -> ChildResult:
    """Run one :mod:`benchmarks.child` job; its JSON result lands in ``.result``.

    ``env`` replaces the thread limits of :data:`CHILD_ENV` (see :func:`all_threads`).
    """
    with tempfile.TemporaryDirectory(prefix="vistsne-bench-") as tmp:
        spec = Path(tmp) / "job.json"
        out = Path(tmp) / "result.json"
        spec.write_text(json.dumps({"job": job, "args": args, "out": str(out)}))
        res = run_process([PYTHON, str(BENCH_DIR / "child.py"), str(spec)], timeout=timeout,
                          env=CHILD_ENV if env is None else env)
        res.result = json.loads(out.read_text())
    return res


def vistsne_cmd(*args: Any) -> list[str]:
    return [PYTHON, "-m", "vistsne", *map(str, args)]


def interleave(reps: int, jobs: dict[str, Callable[[int], Any]]) -> dict[str, list]:
    """Run every job once per repetition, in turn; ``{name: [result per rep]}``."""
    out: dict[str, list] = {k: [] for k in jobs}
    for r in range(reps):
        for name, fn in jobs.items():
            out[name].append(fn(r))
    return out


# --------------------------------------------------------- machine facts
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_pressure() -> dict | None:
    """Linux PSI: the share of time some runnable task waited for a CPU (avg10/avg60, %)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    vals = dict(kv.split("=") for kv in line.split()[1:] if "=" in kv)
    return {"some_avg10": float(vals.get("avg10", "nan")), "some_avg60": float(vals.get("avg60", "nan"))}


def machine_load() -> dict:
    return {"loadavg": loadavg(), "cpu_pressure": cpu_pressure()}


def machine_info(torch_threads: int | None) -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem_gb = None
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "cores_usable": affinity,
            "torch_threads": torch_threads, "memory_gb": mem_gb, "platform": platform.platform(),
            "hostname": platform.node()}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("vistsne", "numpy", "scikit-learn", "openTSNE", "torch", "torchvision", "mmpretrain",
                "mmengine", "mmcv-lite", "zarr", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                           capture_output=True, text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out
