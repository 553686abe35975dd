"""Extraction on several processes: mmengine's launchers over torch.distributed.

``vistsne extract --launcher pytorch`` under ``torchrun`` (one node or
several) and ``--launcher slurm`` under ``srun`` start the process group
through :func:`mmengine.dist.init_dist`, as MMPretrain's ``tools/test.py``
does; ``--launcher none`` is one process and touches nothing here.

What the ranks share, and how (:mod:`vistsne.extract.entry` uses it):

- the rows still missing: rank 0 reads them from the store and broadcasts
  them, and each rank takes ``todo[rank::world]``, so the shares are disjoint
  even while another run writes the same entry;
- the entry: rank 0 creates it and writes its metadata, then a barrier lets
  the others write their parts (each its own, under unique names);
- the progress: every rank adds its rows to a counter in the process group's
  key-value store (no collective), and rank 0's bar shows the global count;
- the summary: an all-reduce of the new rows and the slowest rank's seconds.

Every collective runs under the process group's timeout
(``$VISTSNE_DIST_TIMEOUT`` seconds, default 600), so a rank that dies makes
the others fail within that time with one line, not hang; under ``torchrun``
they are stopped sooner, by the launcher's SIGTERM, after committing what they
computed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

from ..errors import ParamError, VistsneError
from ..progress import Progress
from ..resources import available_cores

LAUNCHERS = ("none", "pytorch", "slurm")
DEFAULT_TIMEOUT_S = 600.0

#: The environment each launcher sets, and who sets it.
_ENV = {"pytorch": (("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"),
                    "run it under torchrun --nproc_per_node N (or tools/dist_test.sh), or use --launcher none"),
        "slurm": (("SLURM_PROCID", "SLURM_NTASKS", "SLURM_NODELIST"),
                  "run it inside a slurm job step (srun ... vistsne extract ... --launcher slurm), "
                  "or use --launcher none")}


class DistributedError(VistsneError):
    """A collective failed: another rank stopped, or the process group timed out."""

    exit_code = 3


def timeout_s() -> float:
    try:
        return max(1.0, float(os.environ.get("VISTSNE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def check_environment(launcher: str) -> None:
    """One line naming the missing variables when ``launcher`` was not started by its launcher."""
    if launcher == "none":
        return
    if launcher not in _ENV:
        raise ParamError(f"unknown --launcher {launcher!r}", f"choose from {', '.join(LAUNCHERS)}")
    names, fix = _ENV[launcher]
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise ParamError(f"--launcher {launcher} needs {', '.join(missing)} in the environment "
                         f"(set by {'torchrun' if launcher == 'pytorch' else 'slurm'})", fix)


def env_rank(launcher: str) -> int:
    """This process's global rank as its launcher set it (0 for none), before any process group exists."""
    if launcher == "pytorch":
        return int(os.environ.get("RANK", 0))
    if launcher == "slurm":
        return int(os.environ.get("SLURM_PROCID", 0))
    return 0


@dataclass
class Ranks:
    """This process's place among the ranks; ``Ranks()`` is the single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: str | None = None  # None: no process group
    _seq: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.backend is not None

    def place(self, device: str) -> str:
        """The device of this rank: ``cuda`` becomes ``cuda:<local rank>``."""
        if self.active and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    def share(self, todo):
        """This rank's disjoint share of ``todo``."""
        return todo[self.rank::self.world] if self.active else todo

    # ------------------------------------------------------------- collectives
    @contextlib.contextmanager
    def _collective(self, what: str):
        try:
            yield
        except VistsneError:
            raise
        except Exception as e:  # noqa: BLE001 - torch raises RuntimeError / DistBackendError / ...
            first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:200]
            raise DistributedError(
                f"rank {self.rank} of {self.world}: {what} failed: another rank stopped or did not answer "
                f"within {timeout_s():.0f}s ({e.__class__.__name__}: {first})",
                "committed rows are kept; rerun the same command (with any number of ranks) to compute "
                "the missing ones") from e

    def barrier(self, what: str) -> None:
        if not self.active:
            return
        import datetime

        import torch.distributed as td

        with self._collective(what):
            if self.backend == "gloo":  # names the rank that did not arrive
                td.monitored_barrier(timeout=datetime.timedelta(seconds=timeout_s()), wait_all_ranks=True)
            else:
                td.barrier()

    def broadcast(self, obj, what: str):
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        import torch.distributed as td

        box = [obj if self.main else None]
        with self._collective(what):
            td.broadcast_object_list(box, src=0)
        return box[0]

    def _reduce(self, value: float, op: str, what: str) -> float:
        if not self.active:
            return value
        import torch
        import torch.distributed as td

        dev = f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"
        t = torch.tensor([float(value)], dtype=torch.float64, device=dev)
        with self._collective(what):
            td.all_reduce(t, op=getattr(td.ReduceOp, op))
        return float(t.item())

    def total(self, n: int, what: str = "summing the new rows") -> int:
        return int(round(self._reduce(n, "SUM", what)))

    def slowest(self, seconds: float, what: str = "timing the ranks") -> float:
        return self._reduce(seconds, "MAX", what)

    def all_agree(self, flag: bool, what: str) -> bool:
        """True on every rank when ``flag`` is true on every rank."""
        return bool(self._reduce(1.0 if flag else 0.0, "MIN", what))

    def counter(self, name: str):
        """A global counter (``add(n) -> total``) in the process group's key-value store, or None."""
        if not self.active:
            return None
        self._seq += 1
        try:
            from torch.distributed import distributed_c10d

            kv = distributed_c10d._get_default_store()
        except Exception:  # noqa: BLE001 - a process group without a store: rank 0 shows its own rows
            return None
        return _Counter(kv, f"vistsne/{name}/{self._seq}")

    def close(self) -> None:
        if self.active:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()
            self.backend = None


class _Counter:
    def __init__(self, kv, key: str):
        self.kv, self.key = kv, key

    def add(self, n: int) -> int:
        return int(self.kv.add(self.key, int(n)))


def _wants_cuda(device: str | None) -> bool:
    import torch

    if device is None:
        return torch.cuda.is_available()
    return device.startswith("cuda")


def setup(launcher: str, device: str | None) -> Ranks:
    """Join the process group ``launcher`` started (nccl on GPUs, gloo on CPUs); ``Ranks()`` for none."""
    if launcher == "none":
        return Ranks()
    check_environment(launcher)
    import torch
    import torch.distributed as td

    cuda = _wants_cuda(device)
    backend = "nccl" if cuda else "gloo"
    if not td.is_initialized():
        from mmengine.dist import init_dist

        # mmengine selects the rank's GPU with torch.cuda.set_device, which a CPU-only machine refuses
        skip = contextlib.nullcontext() if cuda else _no_cuda_set_device(torch)
        try:
            with skip:
                init_dist(launcher, backend=backend, timeout=timeout_s())
        except VistsneError:
            raise
        except Exception as e:  # noqa: BLE001 - rendezvous failures: one line
            first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:200]
            raise DistributedError(f"--launcher {launcher}: the process group did not start "
                                   f"({e.__class__.__name__}: {first})",
                                   "check MASTER_ADDR / MASTER_PORT and that every rank was started") from e
    else:
        backend = td.get_backend()
    rank, world = td.get_rank(), td.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
                      or min(world, max(1, torch.cuda.device_count() if cuda else world)))
    if not cuda:  # the node's cores, shared by its ranks (1 thread each for 2 ranks on 2 cores)
        torch.set_num_threads(max(1, available_cores() // max(1, local_world)))
    if rank:  # rank 0 speaks for all; the others log only warnings and errors
        log = logging.getLogger("vistsne")
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    return Ranks(rank=rank, world=world, local_rank=local_rank, local_world=local_world, backend=backend)


@contextlib.contextmanager
def _no_cuda_set_device(torch):
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda *a, **k: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


class RankProgress(Progress):
    """One bar for all ranks: rank 0 draws the global count; the others draw nothing."""

    def __init__(self, total: int, desc: str, unit: str, *, ranks: Ranks, enabled: bool = True):
        if ranks.active and ranks.world > 1:
            desc = f"{desc} ({ranks.world} ranks)"
        super().__init__(total, desc, unit, enabled=enabled and ranks.main)
        self._counter = ranks.counter("progress")

    def update(self, n: int = 1) -> None:
        if self._counter is None:
            super().update(n)
            return
        self.n = self._counter.add(n)
        self._draw()

    def wait_all(self) -> None:
        """Rank 0 draws the others' rows until the count is complete (bounded by the timeout)."""
        if self._counter is None or not self.enabled:
            return
        end = time.monotonic() + timeout_s()
        while time.monotonic() < end:
            self.n = self._counter.add(0)
            self._draw()
            if self.n >= self.total:
                return
            time.sleep(0.2)
