"""What the machine and the processes on it are doing: CPU and memory from /proc, the wait
for a quiet machine between runs, and py-spy attached to the service (--profile).

The service may be a process tree (`serve --workers N`: a supervisor and its N workers), so a
process's figures are its tree's: the tree is read again at every reading (a worker restarted
during a window is a new pid). CPU is cumulative and counted once: every live process's
utime+stime plus its cutime+cstime, the CPU of the children it has waited for. A worker that
died during a window thus moves from "live" into its supervisor's cutime when reaped, and a
zombie not yet reaped is still listed with its own times; what could be lost is only a
process whose parent died before reaping it (reparented out of the tree). RSS is per
process (`RssTree`): the target is per process, and a sum of replicas says another thing."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import profile_top
from report import log

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


async def settle(*, quiet: float = 0.15, limit: float = 30.0) -> float:
    """Flush dirty pages to disk and wait (at most `limit` s) until the machine has used under
    `quiet` cores for a whole second, so that one run's aftermath (PostgreSQL's checkpoint of a
    dropped database, the kernel writing back the last run's files) does not land in the next
    run's figures; the seconds waited."""
    t0 = time.monotonic()
    await asyncio.to_thread(os.sync)
    while time.monotonic() - t0 < limit:
        busy0, total0 = machine_busy()
        await asyncio.sleep(1.0)
        busy1, total1 = machine_busy()
        if (busy1 - busy0) / max(1.0, total1 - total0) * (os.cpu_count() or 1) < quiet:
            break
    return time.monotonic() - t0


class CpuWindow:
    """CPU used by some process trees and by the machine over a window, in cores."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.t0 = time.monotonic()
        self.start = {k: tree_cpu(v) for k, v in self.pids.items()}
        self.machine0 = machine_busy()
        self.processes: dict[str, int] = {}  # how many processes each tree had at the end

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        out = {k: (tree_cpu(v) - self.start[k]) / elapsed for k, v in self.pids.items()}
        self.processes = {k: len(proc_tree(v)) for k, v in self.pids.items()}
        busy, total = machine_busy()
        out["machine"] = (
            (busy - self.machine0[0]) / max(1.0, total - self.machine0[1]) * (os.cpu_count() or 1)
        )
        return out


def children(pid: int) -> list[int]:
    """The direct children of `pid`, from every one of its threads (any may have forked)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return out


def proc_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (read now), `pid` first; [] when it is gone."""
    if not Path(f"/proc/{pid}").exists():
        return []
    tree, i = [pid], 0
    while i < len(tree):
        tree += [c for c in children(tree[i]) if c not in tree]
        i += 1
    return tree


def proc_cpu(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of a process, in seconds; with `reaped`, plus cutime + cstime (the
    children it has waited for)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid`'s tree: every live process's own, plus what each has reaped (see
    the module's docstring); NaN when `pid` is gone."""
    tree = proc_tree(pid)
    if not tree:
        return math.nan
    own = proc_cpu(pid, reaped=True)
    rest = (proc_cpu(p, reaped=True) for p in tree[1:])
    return own + sum(x for x in rest if not math.isnan(x))  # one ending now: left out


def proc_status(pid: int, key: str) -> float:
    """A kB figure from /proc/PID/status (VmRSS, VmHWM), in MB; NaN when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass(frozen=True)
class RssTree:
    """A process tree's memory, per process (MB): the root's own and each descendant's."""

    root: float
    children: tuple[float, ...]

    @property
    def largest(self) -> float:
        """The largest single process: what a per-process bound is judged by."""
        return max((self.root, *self.children))

    @property
    def largest_child(self) -> float:
        return max(self.children, default=math.nan)

    @property
    def total(self) -> float:
        return self.root + sum(self.children)

    @property
    def processes(self) -> int:
        return 1 + len(self.children)

    def describe(self) -> str:
        """One process's RSS; or the largest child's, the supervisor's and the sum."""
        if not self.children:
            return f"{self.root:.0f} MB"
        return (
            f"{self.largest_child:.0f} MB largest of {len(self.children)} children, "
            f"supervisor {self.root:.0f} MB, sum {self.total:.0f} MB"
        )


def tree_rss(pid: int, key: str = "VmRSS") -> RssTree:
    """`key` (VmRSS, or VmHWM: the peak) of `pid` and of each of its descendants."""
    tree = proc_tree(pid)
    rest = (proc_status(p, key) for p in tree[1:])
    return RssTree(proc_status(pid, key), tuple(x for x in rest if not math.isnan(x)))


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its descendants together (a Celery worker and its pool), in MB."""
    return tree_rss(pid).total


def describe_machine() -> str:
    """Cores, CPU model, memory and Python, for the report's header."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = proc_meminfo_gb()
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GB RAM, Python {sys.version.split()[0]}"


def proc_meminfo_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return math.nan


class Profiler:
    """`py-spy record --format raw --subprocesses` on the service during a window (with
    --profile): a supervisor's workers are its children, and each is recorded."""

    def __init__(self, directory: Path | None, extra: str = "") -> None:
        self.directory = directory
        self.extra = extra.split()
        self.exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Path | None = None
        if directory and not self.exe:
            log("py-spy not found: no profiles (pip install py-spy into the venv)")
        if directory:
            directory.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, pid: int) -> None:
        if not (self.directory and self.exe):
            return
        self.output = self.directory / f"{name}.txt"
        self.process = subprocess.Popen(
            [
                self.exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--subprocesses",
                *([] if "--native" in self.extra else ["--nonblocking"]),
                *self.extra,
                "-o",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.process = None
        if self.output and self.output.exists():
            summary = profile_top.summarize(self.output.read_text(), top=25)
            self.output.with_suffix(".summary.txt").write_text(summary)
            log(f"profile: {self.output} (+ .summary.txt)")
