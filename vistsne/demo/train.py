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
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("vistsne")

DEMO_CONFIG = "configs/digits_resnet18.py"
DEMO_CHECKPOINT = os.path.join("work_dirs", "demo", "digits_resnet18.pth")
#: Train the demo in bfloat16 autocast when the CPU has native bf16 (AVX512-BF16
#: or AMX): about twice as fast there, and the same accuracy. ``None`` = detect.
DEMO_BF16: bool | None = None
#: Checkpoints saved along the schedule (besides the final one), evenly spaced, for
#: `vistsne compare`: ``<name>_iter_<n>.pth`` beside the final checkpoint.
DEMO_SNAPSHOTS = 2


def snapshot_paths(out: str | os.PathLike = DEMO_CHECKPOINT) -> list[Path]:
    """The checkpoints saved along the schedule of ``out`` (in iteration order)."""
    import re

    out = Path(out)
    found = list(out.parent.glob(f"{out.stem}_iter_*.pth"))
    return sorted(found, key=lambda p: int(re.findall(r"_iter_(\d+)", p.name)[-1]))


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (else bf16 is slower)."""
    import torch

    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


BF16_OPTIM_WRAPPER = "VistsneCPUBf16OptimWrapper"


def _register_bf16_optim_wrapper() -> str:
    """Register (once) an ``OptimWrapper`` whose forward pass runs under CPU bf16 autocast.

    mmengine's ``AmpOptimWrapper`` refuses CPUs. Here too the weights, gradients
    and optimizer stay float32; only the forward ops run in bfloat16. Returns
    the registered type name (a name, so the config still prints and dumps).
    """
    import torch
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import OPTIM_WRAPPERS

    if OPTIM_WRAPPERS.get(BF16_OPTIM_WRAPPER) is None:
        class CPUBf16OptimWrapper(OptimWrapper):
            @contextmanager
            def optim_context(self, model):
                with super().optim_context(model), torch.autocast("cpu", dtype=torch.bfloat16):
                    yield

        OPTIM_WRAPPERS.register_module(name=BF16_OPTIM_WRAPPER, module=CPUBf16OptimWrapper)
    return BF16_OPTIM_WRAPPER


class ThreadChooser:
    """Picks torch's CPU thread count during training, from quick timed probes.

    On a shared machine torch's OpenMP threads wait for each other at every
    barrier: when another process holds one of two cores, two threads run 5-20x
    *slower* than one (and on a quiet machine about twice as fast). Timing a
    whole training iteration with the wrong count costs seconds, so the counts
    are compared by a probe of a few small convolutions (see
    :func:`probe_threads`), which shows the same barrier cost in milliseconds.

    A probe runs before the first iteration, then after ``period`` iterations
    (the wait doubles up to ``max_period`` each time a probe keeps the count),
    and at once when an iteration is ``slow`` times slower per image than the
    best since the last probe (another process just started). Pure Python:
    ask :meth:`probe_due`, pass the probe's times to :meth:`choose`, and each
    iteration's seconds per image to :meth:`record`.
    """

    def __init__(self, candidates, period: int = 16, max_period: int = 128, slow: float = 2.0):
        self.candidates = list(dict.fromkeys(int(c) for c in candidates if int(c) >= 1)) or [1]
        self.period = self._period = max(1, int(period))
        self.max_period = max(int(max_period), self.period)
        self.slow = float(slow)
        self.current = self.candidates[0]
        self.used: dict[int, int] = {c: 0 for c in self.candidates}  # iterations per count
        self.probes: list[dict[int, float]] = []
        self._due = len(self.candidates) > 1
        self._since = 0
        self._best = float("inf")

    def probe_due(self) -> bool:
        return len(self.candidates) > 1 and (self._due or self._since >= self._period)

    def choose(self, times: dict[int, float]) -> int:
        """Take a probe's ``{threads: seconds}``; return the count to use now."""
        times = {int(c): float(t) for c, t in times.items() if int(c) in self.candidates}
        self.probes.append(times)
        if times:
            new = min(times, key=times.get)
            keep = new == self.current and len(self.probes) > 1
            self._period = min(2 * self._period, self.max_period) if keep else self.period
            self.current = new
        self._due, self._since, self._best = False, 0, float("inf")
        return self.current

    def record(self, threads: int, seconds_per_item: float) -> None:
        """Time of one training iteration run with ``threads`` threads."""
        threads, t = int(threads), float(seconds_per_item)
        self.used[threads] = self.used.get(threads, 0) + 1
        self._since += 1
        if self._since > 1 and t > self.slow * self._best:  # the first after a probe may warm up
            self._due = True
        self._best = min(self._best, t)


def thread_candidates(max_threads: int) -> list[int]:
    """All threads first (the quiet-machine default), then half, then one."""
    n = max(1, int(max_threads))
    return list(dict.fromkeys([n, max(1, n // 2), 1]))


_PROBE_DATA: dict = {}


def probe_threads(threads: int, reps: int = 6) -> float:
    """Seconds per small convolution (16x64x16x16, 3x3) with ``threads`` torch threads.

    A few milliseconds on a quiet core; it pays the same OpenMP barrier cost as
    training, so the fastest count here is the fastest for training. The
    thread count is left at ``threads``.
    """
    import torch
    import torch.nn.functional as F

    if not _PROBE_DATA:
        gen = torch.Generator().manual_seed(0)
        _PROBE_DATA["x"] = torch.randn(16, 64, 16, 16, generator=gen)
        _PROBE_DATA["w"] = torch.randn(64, 64, 3, 3, generator=gen)
    x, w = _PROBE_DATA["x"], _PROBE_DATA["w"]
    torch.set_num_threads(int(threads))
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)  # warm-up: kernels for this thread count
        t0 = time.perf_counter()
        for _ in range(reps):
            F.conv2d(x, w, padding=1)
    return (time.perf_counter() - t0) / reps


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
                     force: bool = False, bf16: bool | None = DEMO_BF16, show_progress: bool = True,
                     cfg_options: dict | None = None, snapshots: int = DEMO_SNAPSHOTS) -> Path:
    """Train the demo checkpoint with mmengine's Runner (CPU) and save it to ``out``.

    ``epochs`` replaces the config's ``max_epochs``; ``max_iters`` caps the
    schedule (the tests use a few iterations); the learning-rate schedule is
    stretched to whatever length results. ``threads`` sets torch's CPU threads
    for the run (restored after). ``bf16``: train under bfloat16 autocast
    (``None``: when the CPU supports it natively). ``cfg_options``: config
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
    use_bf16 = cpu_has_bf16() if bf16 is None else bool(bf16)
    if use_bf16 and cfg.optim_wrapper.get("type", "OptimWrapper") in ("OptimWrapper", BF16_OPTIM_WRAPPER):
        cfg.optim_wrapper.type = _register_bf16_optim_wrapper()
    else:
        use_bf16 = False
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
    tmp = out_path.with_name(out_path.name + f".{os.getpid()}.tmp")
    runner = None
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        runner = Runner.from_cfg(cfg)

        bar = Progress(total, "training demo checkpoint", "batch", enabled=show_progress)
        chooser = None if threads or old_threads <= 1 else ThreadChooser(thread_candidates(old_threads))

        snap_at = sorted({max(1, round(total * (i + 1) / (snapshots + 1))) for i in range(max(0, snapshots))}
                         - {total})
        for old in snapshot_paths(out_path):
            old.unlink()

        def save_snapshot(model, n: int) -> None:
            path = out_path.with_name(f"{out_path.stem}_iter_{n}.pth")
            part = path.with_name(path.name + f".{os.getpid()}.tmp")
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            classes_now = [str(c) for c in (runner.train_dataloader.dataset.metainfo.get("classes") or range(10))]
            torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": classes_now}, "iter": int(n),
                                                      "vistsne": {"config": str(config), "iter": int(n),
                                                                  "iters": total, "seed": int(seed)}}}, part)
            os.replace(part, path)

        class _Iterations(Hook):
            """Moves the bar; with no fixed ``threads``, lets ``chooser`` pick them."""

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                if chooser is not None:
                    if chooser.probe_due():
                        chooser.choose({c: probe_threads(c) for c in chooser.candidates})
                    if chooser.current != torch.get_num_threads():
                        torch.set_num_threads(chooser.current)
                self.t = time.perf_counter()

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                if chooser is not None:
                    items = len(data_batch["inputs"]) if isinstance(data_batch, dict) else 1
                    chooser.record(torch.get_num_threads(), (time.perf_counter() - self.t) / max(items, 1))
                bar.update(1)
                if runner.iter + 1 in snap_at:
                    model = runner.model.module if hasattr(runner.model, "module") else runner.model
                    save_snapshot(model, runner.iter + 1)

        runner.register_hook(_Iterations(), priority="LOWEST")
        model = runner.train()
        bar.close()
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
        loss = runner.message_hub.get_scalar("train/loss").current() \
            if "train/loss" in runner.message_hub.log_scalars else None

        acc = classification_accuracy(model, test_cfg)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        classes = runner.train_dataloader.dataset.metainfo.get("classes") or range(10)
        meta = {"dataset_meta": {"classes": [str(c) for c in classes]}, "iter": int(total),
                "vistsne": {"config": str(config), "iters": total,
                            "batch_size": int(cfg.train_dataloader.batch_size),
                            "seed": int(seed), "bf16": use_bf16,
                            "threads": {str(k): v for k, v in chooser.used.items()} if chooser
                            else {str(torch.get_num_threads()): total},
                            "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu_seconds, 1),
                            "final_loss":
                                None if loss is None else round(float(loss), 4),
                            "test_accuracy": round(float(acc), 4), "torch": str(torch.__version__)}}
        torch.save({"state_dict": state, "meta": meta}, tmp)
        os.replace(tmp, out_path)
    finally:
        torch.set_num_threads(old_threads)
        _close_log_files(runner)
        shutil.rmtree(work, ignore_errors=True)
        if tmp.exists():
            tmp.unlink()
    log.info("trained %s in %.0fs (%d iterations%s), test accuracy %.3f", out_path, seconds, total,
             ", bf16" if use_bf16 else "", acc)
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
