"""Who writes: a process's identity (host, pid, start time) and whether it still runs.

A writer is recorded on what it writes (each part and map attempt) and, while
it works on an entry, as a marker under ``entries/<key>/writers/<id>``
(:meth:`vistsne.store.Store.writing`). ``gc`` removes nothing a live writer
owns. A pid alone is not enough after the writer dies (pids are reused), so
the process start time is recorded too and must match. Writers on other
hosts cannot be checked; they count as live until they are older than a
limit the caller gives.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import socket

_START_TOLERANCE_S = 2.0
_identity_cache: dict[int, dict] = {}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def now_iso_us() -> str:
    """A timestamp that orders events within a second (for 'first complete' choices)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def age_seconds(iso: str | None) -> float:
    """Seconds since ``iso`` (an ISO time); infinite when missing or unreadable."""
    try:
        t = _dt.datetime.fromisoformat(str(iso))
    except (TypeError, ValueError):
        return float("inf")
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux), else None."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            text = f.read()
    except (OSError, ValueError):
        return None
    return text[text.rfind(")") + 2:].split()


@functools.cache
def _boot_id() -> str | None:
    """This boot of this host (Linux), so that a process's start in clock ticks names it (read
    once: it cannot change while this process lives, unlike the wall-clock boot time)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux): unlike the wall-clock
    start, a step of the system clock (NTP, a VM's clock sync) does not move it."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields and len(fields) >= 20 else None
    except ValueError:
        return None


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), where the system says (Linux)."""
    ticks = process_start_ticks(pid)
    boot = _boot_time()
    if ticks is None or boot is None:
        return None
    try:
        return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (ValueError, OSError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    return not (fields and fields[0] in ("Z", "X"))


def identity() -> dict:
    """This process as a writer: host, pid, start time (wall clock, and clock ticks since this boot)
    and when it first wrote."""
    pid = os.getpid()
    if pid not in _identity_cache:  # a fork is a new writer
        _identity_cache[pid] = {"host": socket.gethostname(), "pid": pid, "start": process_start(pid),
                                "start_ticks": process_start_ticks(pid), "boot_id": _boot_id(),
                                "since": now_iso()}
    return dict(_identity_cache[pid])


def same_host(writer: dict | None) -> bool:
    return bool(writer) and writer.get("host") == socket.gethostname()


def alive(writer: dict | None) -> bool:
    """Whether the writer is a running process on this host (False for other hosts and unknowns)."""
    if not same_host(writer):
        return False
    pid = writer.get("pid", -1)
    if not pid_alive(pid):
        return False
    ticks, boot = writer.get("start_ticks"), writer.get("boot_id")
    if ticks is not None and boot is not None and boot == _boot_id():
        # the same boot: the start in ticks since boot names the process exactly, whatever the
        # wall clock did since (the wall-clock start moves with every step of the clock)
        return process_start_ticks(int(pid)) == int(ticks)
    recorded = writer.get("start")
    if recorded is None:
        return True  # recorded without a start time: the pid is all there is
    now = process_start(int(pid))
    return now is None or abs(float(now) - float(recorded)) <= _START_TOLERANCE_S


def live(writer: dict | None, older_than: float, since: str | None = None) -> bool:
    """Whether a writer may still be working: alive on this host, or on another host and recent.

    ``since`` is the time to age a writer of another host by (default: its own
    ``since``); it counts as live for ``older_than`` seconds after that.
    """
    if not writer:
        return False
    if same_host(writer):
        return alive(writer)
    return age_seconds(since or writer.get("since")) <= older_than


def drop_group(parent, name: str, marker: str) -> bool:
    """Remove ``parent[name]`` so that no reader ever sees it as whole: its ``marker`` attribute
    (``committed``, ``complete``) is cleared first, then the group is deleted. False when it was gone."""
    try:
        grp = parent[name]
        if grp.attrs.get(marker):
            grp.attrs.update({marker: False, "dropped": now_iso()})
    except (KeyError, FileNotFoundError):
        return False
    except Exception:  # noqa: BLE001 - unreadable metadata: nothing counts it as whole
        pass
    try:
        del parent[name]
    except (KeyError, FileNotFoundError):
        pass
    return True
