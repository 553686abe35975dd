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

import hashlib
import json
import os
import platform
import shutil
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
    profile_models: int = 3  # the extraction rows: float32, bfloat16, ResNet-50
    #: repetitions of the extraction pairs (None: ``reps``); the bare loop's
    #: run-to-run spread is the widest of all, so the default run takes 5
    extract_reps: int | None = None
    #: rows of the entry that items 9 and 10 run whole ``vistsne`` processes on
    #: (the selection ``--max-num-class 10 --max-num-samples seams_n/10``)
    seams_n: int = 20000
    #: repetitions of the short whole-process comparisons of items 9 and 10 (None: ``reps``)
    process_reps: int | None = 5
    #: untimed warm-up rounds before those comparisons (bytecode of the worktree, font and page caches)
    warmup: int = 1
    #: 10a: rows and parts of the stage read with and without the completeness check
    checks_read_rows: int = 20000
    checks_read_parts: int = 20
    #: 10d: MB of features that ``vistsne store verify --deep`` reads
    verify_mb: float = 1000.0

    @property
    def max_n(self) -> int:
        return max(self.engine_sizes + self.method_sizes + self.overhead_sizes
                   + [self.sweep_n, self.profile_n, self.seams_n])


def make_mode(name: str, full: bool = False) -> Mode:
    if name == "tiny":
        m = Mode("tiny", reps=1, engine_sizes=[200], method_sizes=[200], retune_n=200,
                 extract_r18_n=200, extract_r50_n=16, sweep_n=200, overhead_sizes=[200],
                 expand=1000, profile_n=200, sweep_perplexities=(5.0, 15.0, 30.0, 50.0), n_iter=300,
                 profile_in_rep=True, profile_cold_run=False, seams_n=200, process_reps=1, warmup=0,
                 checks_read_rows=1000, checks_read_parts=2, verify_mb=10.0)
    elif name == "quick":
        m = Mode("quick", reps=3, engine_sizes=[1000], method_sizes=[1000], retune_n=500,
                 extract_r18_n=1000, extract_r50_n=32, sweep_n=500, overhead_sizes=[1000],
                 profile_n=1000, profile_cold_run=False, profile_models=1, seams_n=1000, process_reps=3,
                 checks_read_rows=5000, checks_read_parts=5, verify_mb=100.0)
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


def status_mb(field: str, pid: int | str = "self") -> float | None:
    """A memory field of ``/proc/PID/status`` (``VmHWM``, ``VmRSS``) in MB; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` of its address space. ``ru_maxrss`` would not do: on
    Linux it is kept over ``exec``, so a child reports at least its forked parent's resident size."""
    hwm = status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _watch_hwm(pid: int, hwm: list, done: threading.Event) -> None:
    """Keep ``hwm[0]``: process ``pid``'s ``VmHWM`` (MB), read every 50 ms until ``done``."""
    first = True
    while first or not done.wait(0.05):
        first = False
        hwm[0] = max(hwm[0], status_mb("VmHWM", pid) or 0.0)


def run_process(cmd: Sequence[str], *, env: dict | None = None, cwd: str | Path = ROOT,
                timeout: float | None = None, check: bool = True, stream: bool = False) -> ChildResult:
    """Run ``cmd`` as a child; its wall time and its own peak RSS.

    The peak is the child's ``VmHWM``, read every 50 ms while it runs (it only grows, so the last
    read is the peak up to 50 ms before the end): ``os.wait4``'s ``ru_maxrss`` is kept over
    ``exec``, so it would be at least this process's size. ``ru_maxrss`` only when nothing was read.

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
        hwm = [0.0]
        done = threading.Event()
        watch = threading.Thread(target=_watch_hwm, args=(proc.pid, hwm, done), daemon=True)
        watch.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            done.set()
            if timer:
                timer.cancel()
        watch.join()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = ChildResult(proc.returncode, wall, hwm[0] or ru.ru_maxrss / 1024.0, out.read(), err.read())
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


# ------------------------------------------- before / after: two versions
#: "Before" of the before/after items (9 seams, 10 store_checks): the last
#: commit before the store refactor (store package, checksums, row reads of
#: only the needed chunks, cached part indices, embed reading features only
#: on a cache miss).
BEFORE_COMMIT = "7fc1473"
#: Stage the before/after items embed (the CLI's usual choice for a classifier map).
SEAMS_STAGE = "pre_logits"

_CLEANUPS: list[Callable[[], None]] = []


def at_exit(fn: Callable[[], None]) -> None:
    """Register ``fn`` for :func:`run_cleanups` (run.py calls it when the run ends, failed or not)."""
    _CLEANUPS.append(fn)


def run_cleanups() -> None:
    while _CLEANUPS:
        fn = _CLEANUPS.pop()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a failed cleanup must not hide the run's own error
            print(f"bench cleanup failed: {e}", file=sys.stderr)


@dataclass
class Version:
    """One version of vistsne: its tree root; its commands run with ``PYTHONPATH`` and cwd set to it."""

    name: str            # "before" / "after"
    label: str           # "7fc1473" / "working tree"
    root: Path
    imported: str = ""   # vistsne.__file__ as a process of this version imports it

    def env(self) -> dict[str, str]:
        return {**CHILD_ENV, "PYTHONPATH": str(self.root)}

    def child_env(self) -> dict[str, str]:
        """Environment of a :func:`run_child` job that imports this version's vistsne (``child.py``)."""
        return {**CHILD_ENV, "VISTSNE_BENCH_TREE": str(self.root)}

    def run(self, *args: Any, timeout: float | None = 900, check: bool = True,
            python_c: str | None = None) -> ChildResult:
        """``python -m vistsne ARGS`` of this version as a whole process (``python -c CODE ARGS`` with
        ``python_c``)."""
        head = [PYTHON, "-c", python_c] if python_c else [PYTHON, "-m", "vistsne"]
        return run_process([*head, *map(str, args)], env=self.env(), cwd=self.root, timeout=timeout, check=check)


def _check_import(v: Version) -> Version:
    res = run_process([PYTHON, "-c", "import vistsne; print(vistsne.__file__)"], env=v.env(), cwd=v.root)
    v.imported = res.stdout.strip()
    want = str(Path(v.root).resolve() / "vistsne")
    if not str(Path(v.imported).resolve()).startswith(want + os.sep):
        raise RuntimeError(f"the {v.name} version imports vistsne from {v.imported}, not from {want}")
    return v


def after_version(ctx) -> Version:
    """The working tree's ``vistsne/`` as it is when first asked for, copied into the run's temporary
    folder (made once per run), so that edits made in the tree while the run goes on do not mix in.

    A copy that does not compile or import (a file caught mid-edit) is taken again, up to 10 times
    30 s apart.
    """
    if "after" not in ctx.shared:
        dest = Path(ctx.work) / "after-snapshot"
        probe = "import vistsne.cli, vistsne.store, vistsne.embed.entry, vistsne.render"
        for attempt in range(10):
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / "vistsne", dest / "vistsne", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            built = subprocess.run([PYTHON, "-m", "compileall", "-q", str(dest / "vistsne")], capture_output=True,
                                   text=True, timeout=600)
            if built.returncode == 0:
                probe_res = run_process([PYTHON, "-c", probe], env={**CHILD_ENV, "PYTHONPATH": str(dest)}, cwd=dest,
                                        check=False, timeout=300)
                if probe_res.returncode == 0:
                    break
                why = probe_res.stderr.strip().splitlines()[-1:] or ["?"]
            else:
                why = (built.stdout + built.stderr).strip().splitlines()[-1:] or ["?"]
            say(f"the working tree's vistsne/ does not build right now ({why[0][:160]}); trying again in 30 s")
            time.sleep(30)
        else:
            raise RuntimeError("the working tree's vistsne/ did not compile and import in 10 tries")
        h = hashlib.sha256()
        for f in sorted((dest / "vistsne").rglob("*.py")):
            h.update(str(f.relative_to(dest)).encode() + b"\0" + f.read_bytes())
        git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=60).stdout.strip()
        ctx.shared["after_snapshot"] = {"sha256": h.hexdigest(), "head": git("rev-parse", "--short", "HEAD"),
                                        "uncommitted_files": len(git("status", "--porcelain", "--", "vistsne")
                                                                 .splitlines()),
                                        "taken": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ctx.shared["after"] = _check_import(Version("after", "working tree", dest))
    return ctx.shared["after"]


def before_version(ctx) -> Version:
    """A git worktree of :data:`BEFORE_COMMIT` in the run's temporary folder (made once per run,
    removed with ``git worktree remove --force`` when the run ends)."""
    if "before" not in ctx.shared:
        path = Path(ctx.work) / f"before-{BEFORE_COMMIT}"
        add = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), BEFORE_COMMIT],
                             capture_output=True, text=True, timeout=300)
        if add.returncode != 0:
            raise RuntimeError(f"git worktree add {BEFORE_COMMIT} failed: {add.stderr.strip()[-500:]}")

        def remove():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                           capture_output=True, text=True, timeout=300)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True, timeout=300)

        at_exit(remove)
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=60).stdout.strip()
        v = Version("before", BEFORE_COMMIT, path)
        ctx.shared["before"] = _check_import(v)
        ctx.shared["before_commit"] = commit
    return ctx.shared["before"]


def seams_store(ctx) -> dict:
    """A store holding one entry of ``mode.seams_n`` rows, written by the after version (made once per run).

    The rows are the bench entry's selection ``--max-num-class 10
    --max-num-samples seams_n/10``, every stage, thumbnails and labels, in
    parts of 1,024 rows (what extract commits at a time); the entry's metadata
    is the bench entry's, so that the same ``vistsne extract`` command is a
    cache hit, except that every stage is stored under its own name (no
    ``aliases``: 7fc1473 does not know them). No maps.
    """
    if "seams_store" not in ctx.shared:
        dest = Path(ctx.work) / "seams_store.zarr"
        say(f"seams store: {ctx.mode.seams_n} rows of the bench entry into {dest}")
        res = run_child("seams_store", {"store": ctx.store, "entry": ctx.entry, "n": ctx.mode.seams_n,
                                        "stage": SEAMS_STAGE, "dest": str(dest)}, env=after_version(ctx).child_env())
        ctx.shared["seams_store"] = {**res.result, "path": str(dest)}
    return ctx.shared["seams_store"]


def extract_argv(ctx, store: str, n: int) -> list[str]:
    """``vistsne extract`` arguments of the bench entry's selection of ``n`` rows (``--json``)."""
    return ["extract", DEMO_CONFIG, "--checkpoint", ctx.checkpoint, "--cfg-options", ctx.expand_option(),
            "--max-num-class", "10", "--max-num-samples", str(n // 10), "--store", store, "--json"]


def last_json(text: str):
    """The last JSON document a ``--json`` command printed (a line of its own, or all of stdout)."""
    for cand in [text.strip()] + [ln for ln in reversed(text.strip().splitlines())]:
        try:
            return json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
    raise ValueError(f"no JSON in the output: {text[-300:]!r}")


def cached_flags(doc) -> list[bool]:
    """Every ``cached`` value in a JSON document (a list of map records, or dicts holding them)."""
    out: list[bool] = []
    if isinstance(doc, dict):
        if "cached" in doc:
            out.append(bool(doc["cached"]))
        for v in doc.values():
            if isinstance(v, (dict, list)):
                out += cached_flags(v)
    elif isinstance(doc, list):
        for v in doc:
            out += cached_flags(v)
    return out
