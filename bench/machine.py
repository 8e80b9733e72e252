"""What the machine and the processes on it are doing: CPU and memory from /proc, the wait
for a quiet machine between runs, and py-spy attached to the service (--profile)."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import time
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
    """CPU used by some processes and by the machine over a window, in cores."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.t0 = time.monotonic()
        self.start = {k: proc_cpu(v) for k, v in self.pids.items()}
        self.machine0 = machine_busy()

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        out = {k: (proc_cpu(v) - self.start[k]) / elapsed for k, v in self.pids.items()}
        busy, total = machine_busy()
        out["machine"] = (
            (busy - self.machine0[0]) / max(1.0, total - self.machine0[1]) * (os.cpu_count() or 1)
        )
        return out


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int, key: str) -> float:
    """A kB figure from /proc/PID/status (VmRSS, VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its children (a Celery worker and its pool processes), in MB."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return proc_status(pid, "VmRSS") + sum(proc_status(int(c), "VmRSS") for c in children)


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
    """`py-spy record --format raw` on the service during a window (with --profile)."""

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
