"""Aftercare benchmarks: `.venv/bin/python bench/run.py [--quick]`.

Starts the real service (`python -m service --config <tmp toml> serve`) as a subprocess, a lean
fake Twilio (bench/fake_twilio.py) as another, and measures, in one run:

  1. ingest of signed `treatment.completed` events (microneedling: ~33 messages each) on
     SQLite and PostgreSQL: events/s and p50/p99 latency at a fixed client concurrency;
     console backend (every message is due hours or days later: nothing is sent);
  2. a burst of 10,000 messages due in the same second (rows inserted straight into the
     database): drain rate and lateness at the fake Twilio;
  3. lateness under a steady 200 messages/s (rows due at T0 + i/200);
  4. 1,000,000 pending messages over the coming weeks: RSS after ready and a minute later,
     restart-to-ready, idle CPU; then, as an extra, the steady 200/s again on top of them.

Lateness is (arrival at the fake, time.time()) - send_at. Prints a markdown table with the
issue-5 target beside each figure and always exits 0 (a benchmark is not a test), unless
the run itself could not be carried out. `--profile DIR` attaches `py-spy record` to the
service during each measured window and writes collapsed stacks plus a summary there
(py-spy adds load on two cores: take the figures from a run without it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from standardwebhooks import Webhook

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVICE_ROOT = ROOT  # the tree whose `service` package runs (--root)
sys.path.insert(0, str(BENCH))

import calibrate  # noqa: E402
import callbacks  # noqa: E402
import profile_top  # noqa: E402
import seed  # noqa: E402

from service.config import SchedulerSettings  # noqa: E402

PY = sys.executable
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token"
SECRET = "whsec_" + base64.b64encode(b"aftercare-bench-secret-012345678").decode()
API_TOKEN = "bench-api-token"
PG_DEFAULT = os.environ.get("AFTERCARE_TEST_POSTGRES_URL",
                            "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PG_BENCH_DB = "aftercare_bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
AREAS = ("415", "212", "646", "310", "617")
BODY_TAG = re.compile(r"^\[(\w+)#(\d+)\]")


# --- small helpers -------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of `values`."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phone(i: int) -> str:
    return f"+1{AREAS[(i // 10000) % len(AREAS)]}555{i % 10000:04d}"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


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
        out["machine"] = (busy - self.machine0[0]) / max(1.0, total - self.machine0[1]) * (
            os.cpu_count() or 1)
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


# --- configuration -------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    if hasattr(value, "isoformat"):  # a TOML local time such as 08:30
        return str(value.isoformat())
    raise TypeError(f"cannot write {value!r} as TOML")


def example_protocols() -> str:
    """The [protocols.*] tables of config.example.toml, written back as TOML."""
    data = tomllib.loads((SERVICE_ROOT / "config.example.toml").read_text())
    out = []
    for key, protocol in data["protocols"].items():
        out.append(f"[protocols.{json.dumps(key)}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in protocol.items() if k != "steps"]
        for step in protocol.get("steps", []):
            out.append(f"[[protocols.{json.dumps(key)}.steps]]")
            out += [f"{k} = {_toml_value(v)}" for k, v in step.items()]
        out.append("")
    return "\n".join(out)


def config_text(*, port: int, db_url: str, backend: str, twilio_url: str,
                scheduler: dict[str, Any]) -> str:
    sched = "\n".join(f"{k} = {_toml_value(v)}" for k, v in scheduler.items())
    return f"""
[server]
host = "127.0.0.1"
port = {port}
public_base_url = "http://127.0.0.1:{port}"

[database]
url = {json.dumps(db_url)}
migrate_on_start = true

[sms]
backend = "{backend}"
opt_out_footer = "Reply STOP to opt out."

[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_base_url = {json.dumps(twilio_url or "http://127.0.0.1:9")}
request_timeout = "10s"

[scheduler]
{sched}

[clinics.{seed.CLINIC}]
name = "Bench Skin Studio"
timezone = "America/Los_Angeles"
locale = "en"
from_number = "{seed.FROM_NUMBER}"
webhook_secrets = ["{SECRET}"]
api_tokens = ["{API_TOKEN}"]
help_text = "Bench Skin Studio aftercare."

{example_protocols()}
"""


# --- processes -----------------------------------------------------------------------------
def clean_env() -> dict[str, str]:
    """The environment without AFTERCARE_* overrides, so the config file is what runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}


class FakeTwilio:
    """bench/fake_twilio.py in its own process."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "fake_twilio.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, http: aiohttp.ClientSession, extra: Sequence[str] = ()) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [PY, str(BENCH / "fake_twilio.py"), str(self.port), *extra],
                cwd=ROOT, stdout=out, stderr=out)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                await self.count(http)
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the fake Twilio did not start; see {self.log}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def count(self, http: aiohttp.ClientSession) -> int:
        async with http.get(self.url + "/_control/count") as r:
            return int((await r.json())["count"])

    async def messages(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with http.get(self.url + "/_control/messages") as r:
            return list((await r.json())["messages"])

    async def reset(self, http: aiohttp.ClientSession) -> None:
        async with http.post(self.url + "/_control/reset") as r:
            await r.read()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Service:
    """`python -m service --config <toml> serve` in a subprocess."""

    def __init__(self, name: str, workdir: Path, db_url: str, *, backend: str = "console",
                 twilio_url: str = "", scheduler: dict[str, Any] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = workdir / f"{name}.toml"
        self.config.write_text(config_text(port=self.port, db_url=db_url, backend=backend,
                                           twilio_url=twilio_url, scheduler=scheduler or {}))
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.scheduler = scheduler or {}

    def command(self, *args: str) -> list[str]:
        return [PY, "-m", "service", "--config", str(self.config), *args]

    def migrate(self) -> None:
        with self.log.open("ab") as out:
            subprocess.run(self.command("migrate"), cwd=SERVICE_ROOT, stdout=out, stderr=out,
                           env=clean_env(), check=True)

    async def start(self, http: aiohttp.ClientSession, timeout: float = 120) -> float:
        """Spawn the service; seconds from spawn to the first 200 from /readyz."""
        t0 = time.perf_counter()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command("serve"), cwd=SERVICE_ROOT, stdout=out,
                                            stderr=out, env=clean_env())
        while time.perf_counter() - t0 < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; "
                                   f"see {self.log}")
            try:
                async with http.get(self.base + "/readyz") as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS")

    def peak_rss_mb(self) -> float:
        return proc_status(self.pid, "VmHWM")

    async def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return await asyncio.to_thread(self.process.wait, 10)


class Profiler:
    """`py-spy record --format raw` on the service during a window (with --profile)."""

    def __init__(self, directory: Path | None, extra: str = "") -> None:
        self.directory = directory
        self.extra = extra.split()
        self.exe = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
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
            [self.exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
             *([] if "--native" in self.extra else ["--nonblocking"]), *self.extra,
             "-o", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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


# --- results -------------------------------------------------------------------------------
@dataclass
class Row:
    scenario: str
    metric: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None

    def measured(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "n/a"
        v = self.value
        if math.isinf(v):
            return "never (not all arrived)"
        text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return f"{text} {self.unit}".strip()


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, scenario: str, metric: str, value: float | None, unit: str,
            target: tuple[str, float] | None = None) -> None:
        """`target` is ("<=" or ">=", bound), in the same unit as `value`."""
        if target is None:
            self.rows.append(Row(scenario, metric, value, unit))
            return
        op, bound = target
        ok = None
        if value is not None and not math.isnan(value):
            ok = value <= bound if op == "<=" else value >= bound
        bound_text = f"{bound:,.0f}" if bound >= 100 else f"{bound:g}"
        self.rows.append(Row(scenario, metric, value, unit, f"{op} {bound_text} {unit}", ok))

    def note(self, text: str) -> None:
        log(text)
        self.notes.append(text)

    def markdown(self) -> str:
        lines = ["| Scenario | Metric | Measured | Target (issue 5) | Met |",
                 "|---|---|---:|---:|:---:|"]
        for r in self.rows:
            met = "" if r.ok is None and not r.target else ("yes" if r.ok else "**no**")
            lines.append(f"| {r.scenario} | {r.metric} | {r.measured()} | {r.target} | {met} |")
        return "\n".join(lines)


# --- 1. ingest -------------------------------------------------------------------------------
def event_body(i: int, run: str, completed_at: str) -> bytes:
    body = {"type": "treatment.completed", "timestamp": completed_at,
            "data": {"treatment": {"id": f"tr_{run}_{i}", "protocol": "microneedling",
                                   "completed_at": completed_at, "session_number": 1,
                                   "sessions_planned": 3,
                                   "serum": "hyaluronic acid serum"},
                     "patient": {"id": f"pt_{run}_{i}", "first_name": "Ana",
                                 "phone": phone(i), "timezone": "America/Los_Angeles",
                                 "locale": "en", "sms_consent": True}}}
    return json.dumps(body).encode()


def signed_requests(count: int, run: str) -> list[tuple[bytes, dict[str, str]]]:
    """`count` signed treatment.completed requests, signed now (5-minute tolerance)."""
    hook = Webhook(SECRET)
    now = datetime.now(UTC)
    completed = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    out = []
    for i in range(count):
        raw = event_body(i, run, completed)
        msg_id = f"evt_{run}_{i}"
        out.append((raw, {"content-type": "application/json", "webhook-id": msg_id,
                          "webhook-timestamp": str(int(now.timestamp())),
                          "webhook-signature": hook.sign(msg_id, now, raw.decode())}))
    return out


STALE_AFTER = 240  # seconds; Standard Webhooks allows 5 minutes of clock difference


def resign(raw: bytes, headers: dict[str, str]) -> dict[str, str]:
    now = datetime.now(UTC)
    return {**headers, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(headers["webhook-id"], now, raw.decode())}


async def drive(http: aiohttp.ClientSession, url: str,
                requests: Sequence[tuple[bytes, dict[str, str]]],
                concurrency: int) -> tuple[list[float], float, Counter[int]]:
    """POST every request with `concurrency` workers; (latencies, elapsed, statuses)."""
    pending = iter(requests)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        for raw, headers in pending:
            if time.time() - int(headers["webhook-timestamp"]) > STALE_AFTER:
                headers = resign(raw, headers)  # a long run: stay inside the tolerance
            t = time.perf_counter()
            async with http.post(url, data=raw, headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0, statuses


async def bench_ingest(ctx: Context, db: Database, concurrency: int) -> None:
    name = f"ingest-{db.kind}-c{concurrency}"
    url = await db.fresh(ctx.workdir, name)
    service = Service(name, ctx.workdir, url, backend="console")
    await service.start(ctx.http)
    try:
        endpoint = f"{service.base}/v1/clinics/{seed.CLINIC}/events"
        warm = signed_requests(ctx.args.warmup, f"{name}-warm")
        await drive(ctx.http, endpoint, warm, concurrency)
        requests = signed_requests(ctx.args.events, name)
        cpu = CpuWindow(service=service.pid)
        ctx.profiler.start(name, service.pid)
        latencies, elapsed, statuses = await drive(ctx.http, endpoint, requests, concurrency)
        ctx.profiler.stop()
        cores = cpu.cores()
        messages = await db.scalar("SELECT count(*) FROM message")
        total = len(warm) + len(requests)
        per_event = float(messages) / total if messages else math.nan  # type: ignore[arg-type]
    finally:
        await service.stop()
        await db.drop()
    scenario = f"Ingest, {db.label}, concurrency {concurrency}"
    rate = statuses.get(202, 0) / elapsed
    ctx.report.add(scenario, "events/s", rate, "ev/s",
                   (">=", 500) if db.kind == "sqlite" else None)
    ctx.report.add(scenario, "latency p50", pct(latencies, 0.5) * 1000, "ms")
    ctx.report.add(scenario, "latency p99", pct(latencies, 0.99) * 1000, "ms",
                   ("<=", 50) if db.kind == "sqlite" else None)
    ctx.report.note(
        f"{scenario}: {len(requests)} events in {elapsed:.1f} s ({per_event:.1f} messages per "
        f"event stored), answers {dict(statuses)}; service {cores['service']:.2f} cores, "
        f"machine {cores['machine']:.2f} of {os.cpu_count()} cores; "
        f"max latency {max(latencies) * 1000:.0f} ms")


# --- 2./3. dispatch --------------------------------------------------------------------------
@dataclass
class Arrivals:
    expected: int
    lateness: list[float]  # of the arrived; see `all_lateness`
    arrivals: list[float]
    duplicates: int
    missing: int
    waited_until: float = math.nan
    misaddressed: int = 0
    back: dict[str, Any] | None = None  # the return traffic (callbacks.returned)

    @property
    def all_lateness(self) -> list[float]:
        """Every expected message's lateness; one that never arrived counts as infinite, so
        a percentile it reaches reads "never" rather than flattering the figure."""
        return self.lateness + [math.inf] * self.missing

    def drain_rate(self) -> float:
        """Messages/s from the first arrival to the last (to the end of the wait if some
        never arrived)."""
        if len(self.arrivals) < 2:
            return math.nan
        if self.missing:
            return len(self.arrivals) / (self.waited_until - self.arrivals[0])
        return (len(self.arrivals) - 1) / max(1e-9, self.arrivals[-1] - self.arrivals[0])

    def summary(self) -> str:
        return (f"{len(self.arrivals)}/{self.expected} arrived, {self.duplicates} sent twice, "
                f"{self.missing} never arrived, {self.misaddressed} to another number")


async def wait_arrivals(ctx: Context, expected: int, deadline: float) -> None:
    while time.time() < deadline:
        if await ctx.fake.count(ctx.http) >= expected:
            return
        await asyncio.sleep(0.25)


async def collect(ctx: Context, batch: seed.Batch) -> Arrivals:
    label, send_at = batch.label, batch.send_at
    seen: Counter[int] = Counter()
    lateness, arrivals = [], []
    firsts: list[tuple[int, float]] = []
    misaddressed = 0
    for m in await ctx.fake.messages(ctx.http):
        tag = BODY_TAG.match(m["body"])
        if not tag or tag.group(1) != label:
            continue
        i = int(tag.group(2))
        seen[i] += 1
        misaddressed += m["to"] != batch.phone(i - i % batch.per_treatment)
        if seen[i] == 1:
            lateness.append(m["at"] - send_at[i])
            firsts.append((i, lateness[-1]))
            arrivals.append(m["at"])
    if ctx.args.lateness_file:  # each message's send_at and lateness, to see when it was late
        with ctx.args.lateness_file.open("a") as out:
            out.writelines(f"{label} {send_at[i]:.6f} {late:.6f}\n" for i, late in firsts)
    return Arrivals(len(send_at), lateness, sorted(arrivals),
                    sum(c - 1 for c in seen.values()), len(send_at) - len(seen), time.time(),
                    misaddressed)


def dispatch_batch(label: str, send_at: Sequence[float], area: int) -> seed.Batch:
    """Rows for a dispatch run: a patient and treatment per message, each its own phone (the
    footer goes on each: every message is its number's first)."""
    def to(i: int) -> str:
        return f"+1{AREAS[(area + i // 10000) % len(AREAS)]}555{i % 10000:04d}"

    def body(i: int) -> str:
        return (f"[{label}#{i}] Ana, time for your hyaluronic acid serum: apply a thin "
                f"layer to clean skin.")

    return seed.Batch(label=label, send_at=send_at, phone=to, body=body, per_treatment=1)


async def run_due(ctx: Context, db: Database, service: Service, label: str,
                  send_at: Sequence[float], area: int,
                  name: str) -> tuple[Arrivals, dict[str, float]]:
    """Insert `send_at` rows while the service runs, wait for them at the fake."""
    await ctx.fake.reset(ctx.http)
    t0 = time.time()
    batch = dispatch_batch(label, send_at, area)
    await db.seed(batch)
    log(f"{name}: {len(send_at)} rows inserted in {time.time() - t0:.1f} s; first due in "
        f"{send_at[0] - time.time():.1f} s")
    await asyncio.sleep(max(0.0, send_at[0] - time.time() - 0.5))
    cpu = CpuWindow(service=service.pid, fake=ctx.fake.pid)
    ctx.profiler.start(name, service.pid)
    await wait_arrivals(ctx, len(send_at), deadline=send_at[-1] + ctx.args.drain_timeout)
    ctx.profiler.stop()
    cores = cpu.cores()
    await asyncio.sleep(1.0)  # a doubled send would show by now
    got = await collect(ctx, batch)
    if ctx.callbacks_on and got.arrivals:
        label_sql = f"SELECT count(*) FROM message WHERE body LIKE '[{label}#%' AND status IN "

        async def final() -> bool:
            return int(await db.scalar(label_sql + callbacks.FINAL)) >= len(send_at)  # type: ignore[call-overload]

        got.back = await callbacks.returned(ctx.http, ctx.fake.url, final, got.arrivals[-1],
                                            time.time() + ctx.args.drain_timeout)
    if got.missing:
        log(f"{name}: {got.missing} messages had not arrived "
            f"{ctx.args.drain_timeout:g} s after the last was due")
    return got, cores


def lead_seconds(service: Service) -> float:
    """How far ahead to put the first row: beyond one refill poll, inside the horizon."""
    poll = service.scheduler.get("poll_interval", "5s")
    return float(poll.rstrip("s")) + 4.0 if poll.endswith("s") and poll[:-1].isdigit() else 9.0


def report_back(ctx: Context, scenario: str, got: Arrivals) -> None:
    """The return traffic's figures, when the fake posted callbacks."""
    if got.back is None:
        return
    ms = [x * 1000 for x in got.back["latency"]]
    ctx.report.add(scenario, "last send -> every message final", got.back["final_after"], "s")
    ctx.report.add(scenario, "callback latency p50", pct(ms, 0.5), "ms")
    ctx.report.add(scenario, "callback latency p99", pct(ms, 0.99), "ms")
    ctx.report.add(scenario, "failed callbacks", got.back["failed"],
                   f"of {got.back['posted']:,.0f}")


async def bench_burst(ctx: Context, db: Database, on: bool = True) -> None:
    """A burst with the fake's callbacks as configured, or (on=False) switched off."""
    if not on:
        await callbacks.switch(ctx.http, ctx.fake.url, False)
        ctx.callbacks_on = False
        try:
            await _burst(ctx, db, on)
        finally:
            await callbacks.switch(ctx.http, ctx.fake.url, ctx.args.callbacks)
            ctx.callbacks_on = ctx.args.callbacks
        return
    await _burst(ctx, db, on)


async def _burst(ctx: Context, db: Database, on: bool) -> None:
    name = f"burst-{db.kind}" + ("" if on else "-no-callbacks")
    url = await db.fresh(ctx.workdir, name)
    service = Service(name, ctx.workdir, url, backend="twilio", twilio_url=ctx.fake.url,
                      scheduler=ctx.scheduler)
    await service.start(ctx.http)
    try:
        n = ctx.args.burst
        due = time.time() + lead_seconds(service)
        got, cores = await run_due(ctx, db, service, "burst", [due] * n, 0, name)
    finally:
        await service.stop()
        await db.drop()
    scenario = f"Burst of {n:,} due at once, {db.label}" + (
        "" if ctx.callbacks_on else ", callbacks off")
    target = db.kind == "sqlite" or ctx.args.targets_on_postgres
    rate = got.drain_rate()
    if ctx.callbacks_on:
        ctx.drain_with[db.kind] = rate
    elif db.kind in ctx.drain_with:
        ctx.report.add(scenario, "drain with callbacks / without",
                       ctx.drain_with[db.kind] / rate, "")
    late = got.all_lateness
    ctx.report.add(scenario, "sent once each (arrived at the fake)",
                   float(len(got.arrivals)), f"of {n:,}")
    ctx.report.add(scenario, "drain rate", got.drain_rate(), "msg/s",
                   (">=", 1600) if target else None)
    ctx.report.add(scenario, "lateness p50", pct(late, 0.5), "s")
    ctx.report.add(scenario, "lateness p99", pct(late, 0.99), "s",
                   ("<=", 6) if target else None)
    ctx.report.add(scenario, "lateness max", max(late, default=math.nan), "s")
    report_back(ctx, scenario, got)
    ctx.report.note(
        f"{scenario}: {got.summary()}; first arrival "
        f"{min(got.lateness, default=math.nan):.3f} s after send_at, last "
        f"{max(got.lateness, default=math.nan):.2f} s; service {cores['service']:.2f} cores, "
        f"fake {cores.get('fake', 0):.2f}, machine {cores['machine']:.2f} of {os.cpu_count()}")


async def steady(ctx: Context, db: Database, service: Service, scenario: str, name: str,
                 area: int, target: bool) -> None:
    rate, seconds = ctx.args.rate, ctx.args.duration
    n = int(rate * seconds)
    t0 = time.time() + lead_seconds(service)
    got, cores = await run_due(ctx, db, service, "steady" if area == 1 else f"steady{area}",
                               [t0 + i / rate for i in range(n)], area, name)
    ms = [x * 1000 for x in got.all_lateness]
    if got.missing:
        ctx.report.add(scenario, "sent once each (arrived at the fake)",
                       float(len(got.arrivals)), f"of {n:,}")
    ctx.report.add(scenario, "lateness p50", pct(ms, 0.5), "ms")
    ctx.report.add(scenario, "lateness p99", pct(ms, 0.99), "ms",
                   ("<=", 25) if target else None)
    ctx.report.add(scenario, "lateness max", max(ms, default=math.nan), "ms")
    report_back(ctx, scenario, got)
    ctx.report.note(
        f"{scenario}: {got.summary()}; p90 {pct(ms, 0.9):.1f} ms, min "
        f"{min(ms, default=0):.1f} ms; service {cores['service']:.2f} cores, fake "
        f"{cores.get('fake', 0):.2f}, machine {cores['machine']:.2f} of {os.cpu_count()}")


async def bench_steady(ctx: Context, db: Database) -> None:
    name = f"steady-{db.kind}"
    url = await db.fresh(ctx.workdir, name)
    service = Service(name, ctx.workdir, url, backend="twilio", twilio_url=ctx.fake.url,
                      scheduler=ctx.scheduler)
    await service.start(ctx.http)
    try:
        scenario = f"Steady {ctx.args.rate:g}/s for {ctx.args.duration:g} s, {db.label}"
        await steady(ctx, db, service, scenario, name, 1,
                     db.kind == "sqlite" or ctx.args.targets_on_postgres)
    finally:
        await service.stop()
        await db.drop()


# --- 4. a million pending --------------------------------------------------------------------
async def bench_pending(ctx: Context, db: Database) -> None:
    n = ctx.args.pending
    name = f"pending-{db.kind}"
    url = await db.fresh(ctx.workdir, name)
    service = Service(name, ctx.workdir, url, backend="twilio", twilio_url=ctx.fake.url,
                      scheduler=ctx.scheduler)
    scenario = f"{n:,} pending, {db.label}"
    try:
        service.migrate()
        start = time.time() + 3600  # nothing falls due while idle is measured
        span = 28 * 86400
        t = time.time()
        batch = seed.Batch(label="pend", send_at=[start + span * i / n for i in range(n)],
                           phone=phone, body=lambda i: (
                               f"[pend#{i}] Ana, time for your hyaluronic acid serum: apply a "
                               f"thin layer to clean skin."), per_treatment=33)
        await db.seed(batch)
        ctx.report.note(f"{scenario}: seeded {n:,} messages (+ history rows) in "
                        f"{time.time() - t:.0f} s")
        first = await service.start(ctx.http)
        rss_ready = service.rss_mb()
        await asyncio.sleep(2.0)
        cpu = CpuWindow(service=service.pid)
        await asyncio.sleep(ctx.args.idle)
        idle = cpu.cores()["service"] * 100
        scraped, scrape = await scraped_idle(ctx, service)
        await asyncio.sleep(max(0.0, ctx.args.rss_after - 2 * ctx.args.idle - 2.0))
        rss_later = service.rss_mb()
        peak = service.peak_rss_mb()
        restarts = []
        for _ in range(ctx.args.restarts):
            await service.stop()
            restarts.append(await service.start(ctx.http))
        rss_restart = service.rss_mb()
        ctx.report.add(scenario, "RSS after ready", rss_ready, "MB", ("<=", 150))
        ctx.report.add(scenario, f"RSS {ctx.args.rss_after:g} s after ready", rss_later, "MB",
                       ("<=", 150))
        if restarts:
            ctx.report.add(scenario, f"restart-to-ready (worst of {len(restarts)})",
                           max(restarts), "s", ("<=", 3))
        ctx.report.add(scenario, f"idle CPU over {ctx.args.idle:g} s", idle, "%", ("<=", 1))
        ctx.report.add(scenario, f"idle CPU, /metrics scraped every {SCRAPE_EVERY:g} s",
                       scraped, "%", ("<=", 1))
        ctx.report.note(
            f"{scenario}: first start {first:.2f} s, restarts "
            f"{', '.join(f'{x:.2f}' for x in restarts)} s; RSS ready {rss_ready:.0f} MB, "
            f"later {rss_later:.0f} MB, peak (VmHWM) {peak:.0f} MB, after restart "
            f"{rss_restart:.0f} MB; the first GET /metrics took {scrape * 1000:.0f} ms")
        if ctx.args.steady_on_pending:
            await steady(ctx, db, service,
                         f"Steady {ctx.args.rate:g}/s on top of {n:,} pending, {db.label}",
                         f"steady-on-pending-{db.kind}", 2, False)
    finally:
        await service.stop()
        await db.drop()


SCRAPE_EVERY = 15.0  # Prometheus's default scrape interval


async def scraped_idle(ctx: Context, service: Service) -> tuple[float, float]:
    """Idle CPU (%) over `--idle` seconds while /metrics is scraped as Prometheus would, and
    how long the first scrape took (s)."""
    cpu = CpuWindow(service=service.pid)
    began, first = time.monotonic(), math.nan
    while (elapsed := time.monotonic() - began) < ctx.args.idle:
        t = time.perf_counter()
        async with ctx.http.get(service.base + "/metrics") as r:
            await r.read()
        first = time.perf_counter() - t if math.isnan(first) else first
        await asyncio.sleep(min(SCRAPE_EVERY, ctx.args.idle - elapsed))
    return cpu.cores()["service"] * 100, first


# --- 5. the peer: Celery with ETA tasks on Redis ----------------------------------------------
PEER_PENDING = 20_000


def peer_missing() -> str | None:
    """Why the Celery peer cannot run here, or None."""
    try:
        import peer_celery
    except ImportError as exc:
        return f"Celery peer: not installed ({exc.name}); pip install -e '.[bench]'"
    try:
        peer_celery.app.connection_for_write().ensure_connection(max_retries=1)
    except Exception as exc:
        return f"Celery peer: no Redis at {peer_celery.BROKER} ({type(exc).__name__})"
    return None


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its children (a Celery worker and its pool processes), in MB."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return proc_status(pid, "VmRSS") + sum(proc_status(int(c), "VmRSS") for c in children)


class CeleryWorker:
    """`celery -A peer_celery worker` in its own process: one pool process per core, or, when
    the fake takes time to answer (`threads`), that many pool threads, as many sends in flight
    as the service's `max_concurrent_sends`."""

    def __init__(self, workdir: Path, twilio_url: str, threads: int | None = None) -> None:
        self.log = workdir / "celery_worker.log"
        self.pool = (["--pool=threads", f"--concurrency={threads}"] if threads
                     else [f"--concurrency={os.cpu_count()}"])
        self.env = {**os.environ, "PEER_TWILIO_URL": twilio_url}
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, ctx: Context) -> None:
        import peer_celery

        peer_celery.app.control.purge()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [PY, "-m", "celery", "-A", "peer_celery", "worker", "--loglevel=WARNING",
                 *self.pool, "--without-gossip", "--without-mingle",
                 "--without-heartbeat"], cwd=BENCH, env=self.env, stdout=out, stderr=out,
                start_new_session=True)  # its pool processes go with it, in one group
        await ctx.fake.reset(ctx.http)
        peer_celery.send.delay("+14155550199", "[warm#0] the worker is up")
        await wait_arrivals(ctx, 1, deadline=time.time() + 60)
        if await ctx.fake.count(ctx.http) < 1:
            raise RuntimeError(f"the Celery worker did not start; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self) -> None:
        import peer_celery

        if self.process and self.process.poll() is None:
            # Killed, not stopped: a warm shutdown would hand its ETA tasks back to Redis.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        with peer_celery.app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()


def enqueue(batch: seed.Batch) -> None:
    """One `apply_async(eta=send_at)` per message, as a producer of reminders would."""
    import peer_celery

    with peer_celery.app.producer_or_acquire() as producer:
        for i, epoch in enumerate(batch.send_at):
            peer_celery.send.apply_async((batch.phone(i), batch.body(i)),
                                         eta=seed.utc(epoch), producer=producer)


async def peer_due(ctx: Context, worker: CeleryWorker, label: str, send_at: Sequence[float],
                   area: int) -> tuple[Arrivals, dict[str, float]]:
    await ctx.fake.reset(ctx.http)
    batch = dispatch_batch(label, send_at, area)
    t0 = time.time()
    await asyncio.to_thread(enqueue, batch)
    log(f"peer {label}: {len(send_at)} tasks enqueued in {time.time() - t0:.1f} s; first due "
        f"in {send_at[0] - time.time():.1f} s")
    await asyncio.sleep(max(0.0, send_at[0] - time.time() - 0.5))
    cpu = CpuWindow(worker=worker.pid, fake=ctx.fake.pid)
    await wait_arrivals(ctx, len(send_at), deadline=send_at[-1] + ctx.args.drain_timeout)
    cores = cpu.cores()
    await asyncio.sleep(1.0)
    return await collect(ctx, batch), cores


def peer_threads(ctx: Context) -> int | None:
    """Pool threads for the peer when creates take time (as many as the service may have in
    flight), else None: a process per core, which sends fastest when answers are instant."""
    if ctx.args.create_latency.strip() in ("0", "0-0", "0.0"):
        return None
    return int(ctx.scheduler.get("max_concurrent_sends",
                                   SchedulerSettings().max_concurrent_sends))


async def bench_peer(ctx: Context) -> None:
    missing = peer_missing()
    if missing:
        ctx.report.note(missing)
        return
    import celery

    threads = peer_threads(ctx)
    worker = CeleryWorker(ctx.workdir, ctx.fake.url, threads)
    pool = f"{threads} threads" if threads else f"{os.cpu_count()} processes"
    label = f"Peer: Celery {celery.__version__}, ETA tasks on Redis, {pool}"
    try:
        await worker.start(ctx)
        n = ctx.args.burst
        got, cores = await peer_due(ctx, worker, "burst", [time.time() + 5 + n / 2000] * n, 0)
        scenario = f"{label}, burst of {n:,}"
        late = got.all_lateness
        ctx.report.add(scenario, "drain rate", got.drain_rate(), "msg/s")
        ctx.report.add(scenario, "lateness p50", pct(late, 0.5), "s")
        ctx.report.add(scenario, "lateness p99", pct(late, 0.99), "s")
        ctx.report.add(scenario, "lateness max", max(late, default=math.nan), "s")
        ctx.report.note(f"{scenario}: {got.summary()}; worker {cores['worker']:.2f} cores")
        rate, seconds = ctx.args.rate, ctx.args.duration
        t0 = time.time() + 5 + rate * seconds / 2000
        got, cores = await peer_due(ctx, worker, "steady",
                                    [t0 + i / rate for i in range(int(rate * seconds))], 1)
        scenario = f"{label}, steady {rate:g}/s for {seconds:g} s"
        ms = [x * 1000 for x in got.all_lateness]
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            ctx.report.add(scenario, f"lateness {name}", pct(ms, q), "ms")
        ctx.report.add(scenario, "lateness max", max(ms, default=math.nan), "ms")
        ctx.report.note(f"{scenario}: {got.summary()}; worker {cores['worker']:.2f} cores")
        await peer_memory(ctx, worker, label)
    finally:
        await worker.stop()


async def peer_memory(ctx: Context, worker: CeleryWorker, label: str) -> None:
    """Memory the worker holds per reminder pending: PEER_PENDING due 1 h to 4 weeks ahead."""
    before = tree_rss_mb(worker.pid)
    now = time.time()
    n = PEER_PENDING
    batch = dispatch_batch("pending", [now + 3600 + i * 2_419_200 / n for i in range(n)], 2)
    await asyncio.to_thread(enqueue, batch)
    import peer_celery

    with peer_celery.app.connection_for_write() as conn:
        client = conn.default_channel.client
        deadline = time.time() + 120
        while client.llen("celery") and time.time() < deadline:  # until the worker holds all
            await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    after = tree_rss_mb(worker.pid)
    scenario = f"{label}, {n:,} pending"
    ctx.report.add(scenario, "worker RSS per pending reminder", (after - before) * 1024 / n,
                   "KB")
    ctx.report.note(f"{scenario}: worker and pool RSS {before:.0f} MB before, {after:.0f} MB "
                    f"holding them")


# --- databases -------------------------------------------------------------------------------
class Database:
    kind = ""
    label = ""
    keep = False

    async def fresh(self, workdir: Path, name: str) -> str:
        raise NotImplementedError

    async def seed(self, batch: seed.Batch) -> None:
        raise NotImplementedError

    async def scalar(self, sql: str) -> object:
        raise NotImplementedError

    async def drop(self) -> None:
        pass


class Sqlite(Database):
    kind, label = "sqlite", "SQLite"

    async def fresh(self, workdir: Path, name: str) -> str:
        self.path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return f"sqlite+aiosqlite:///{self.path}"

    async def seed(self, batch: seed.Batch) -> None:
        await asyncio.to_thread(seed.seed_sqlite, str(self.path), batch)

    async def scalar(self, sql: str) -> object:
        return await asyncio.to_thread(seed.sqlite_scalar, str(self.path), sql)

    async def drop(self) -> None:
        if self.keep:
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class Postgres(Database):
    kind, label = "postgresql", "PostgreSQL"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        self.admin = urlunsplit(parts)
        self.dsn = urlunsplit(parts._replace(path="/" + PG_BENCH_DB))
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def fresh(self, workdir: Path, name: str) -> str:
        await seed.create_database(self.admin, PG_BENCH_DB)
        return self.url

    async def seed(self, batch: seed.Batch) -> None:
        await seed.seed_postgres(self.dsn, batch)

    async def scalar(self, sql: str) -> object:
        return await seed.postgres_scalar(self.dsn, sql)

    async def drop(self) -> None:
        if not self.keep:
            await seed.drop_database(self.admin, PG_BENCH_DB)

    async def available(self) -> bool:
        try:
            await seed.postgres_scalar(self.admin, "SELECT 1")
            return True
        except Exception as exc:
            log(f"PostgreSQL not reachable ({type(exc).__name__}: {exc}): skipped")
            return False


# --- main ------------------------------------------------------------------------------------
@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    http: aiohttp.ClientSession
    fake: FakeTwilio
    report: Report
    profiler: Profiler
    scheduler: dict[str, Any]
    callbacks_on: bool = True
    drain_with: dict[str, float] = field(default_factory=dict)  # burst drain, callbacks on


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller counts (a few minutes less)")
    p.add_argument("--phases", default="ingest,burst,steady,pending,peer",
                   help="comma list of ingest, burst, steady, pending, peer (Celery)")
    p.add_argument("--databases", default="sqlite,postgresql",
                   help="comma list of sqlite, postgresql")
    p.add_argument("--postgres-url", default=PG_DEFAULT,
                   help=f"server to create/drop the '{PG_BENCH_DB}' database on")
    p.add_argument("--concurrency", default="16", help="ingest client concurrency (comma list)")
    p.add_argument("--events", type=int, help="ingest: events per run (3000; --quick 600)")
    p.add_argument("--warmup", type=int, default=60, help="ingest: unmeasured events first")
    p.add_argument("--burst", type=int, help="burst size (10000; --quick 2000)")
    p.add_argument("--rate", type=float, default=200, help="steady: messages/s")
    p.add_argument("--duration", type=float, help="steady: seconds (30; --quick 10)")
    p.add_argument("--pending", type=int, help="pending messages (1000000; --quick 100000)")
    p.add_argument("--idle", type=float, help="idle CPU window, s (30; --quick 10)")
    p.add_argument("--rss-after", type=float, help="second RSS reading, s after ready (60)")
    p.add_argument("--restarts", type=int, default=3, help="restarts timed (worst reported)")
    p.add_argument("--no-steady-on-pending", dest="steady_on_pending", action="store_false",
                   help="skip the extra steady run on top of the pending rows")
    p.add_argument("--drain-timeout", type=float, default=120,
                   help="give up waiting for messages this long after the last is due")
    p.add_argument("--scheduler", action="append", default=[], metavar="KEY=VALUE",
                   help="override a [scheduler] setting for dispatch runs, e.g. "
                        "max_concurrent_sends=64 (default: the service's defaults)")
    p.add_argument("--targets-on-postgres", action="store_true",
                   help="also judge PostgreSQL dispatch figures against the targets")
    p.add_argument("--lateness-file", type=Path, metavar="FILE",
                   help="append each dispatched message's 'label send_at lateness' (seconds)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy record the service during each measured window into DIR")
    p.add_argument("--profile-args", default="", metavar="ARGS",
                   help="extra py-spy record arguments, e.g. '--gil' or '--native'")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="run the service from this tree (python -m service with this working "
                        "directory), e.g. a patched copy; default: this repository")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, dbs)")
    callbacks.add_options(p)
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"events": (3000, 600), "burst": (10000, 2000), "duration": (30.0, 10.0),
                "pending": (1_000_000, 100_000), "idle": (30.0, 10.0),
                "rss_after": (60.0, 20.0)}
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    return args


def describe_machine() -> str:
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


def revision() -> str:
    try:
        if SERVICE_ROOT != ROOT:
            return f"the tree at {SERVICE_ROOT}"
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "service", "migrations"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes in service/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def scheduler_overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return out


async def open_databases(args: argparse.Namespace, report: Report) -> list[Database]:
    databases: list[Database] = []
    for kind in (d.strip() for d in args.databases.split(",") if d.strip()):
        if kind == "sqlite":
            databases.append(Sqlite())
        elif kind == "postgresql":
            pg = Postgres(args.postgres_url)
            if await pg.available():
                databases.append(pg)
            else:
                report.note("PostgreSQL: not reachable, its rows are missing")
    for db in databases:
        db.keep = args.keep
    return databases


def plan_steps(ctx: Context, databases: Sequence[Database]
               ) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The runs, in order: every ingest, then burst and steady, then the pending ones."""
    phases = {p.strip() for p in ctx.args.phases.split(",") if p.strip()}
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    if "ingest" in phases:
        steps += [(f"ingest {db.kind} c={c}", partial(bench_ingest, ctx, db, c))
                  for db in databases for c in map(int, ctx.args.concurrency.split(","))]
    for db in databases:
        if "burst" in phases:
            steps.append((f"burst {db.kind}", partial(bench_burst, ctx, db)))
            if ctx.args.callbacks:
                steps.append((f"burst {db.kind}, callbacks off",
                              partial(bench_burst, ctx, db, False)))
        if "steady" in phases:
            steps.append((f"steady {db.kind}", partial(bench_steady, ctx, db)))
    if "pending" in phases:
        steps += [(f"pending {db.kind}", partial(bench_pending, ctx, db)) for db in databases]
    if "peer" in phases:
        steps.append(("peer: Celery", partial(bench_peer, ctx)))
    return steps


async def machine_speed(workdir: Path, quiet_wait: bool = True) -> str:
    """`calibrate`'s two figures, on a quiet machine, for the report's header."""
    if quiet_wait:
        await settle()
    cpu = calibrate.cpu_score()
    service = Service("calibrate", workdir, f"sqlite+aiosqlite:///{workdir / 'calibrate.db'}")
    await asyncio.to_thread(service.migrate)
    if quiet_wait:
        await settle()
    tx = await asyncio.to_thread(calibrate.sqlite_transactions, str(workdir / "calibrate.db"))
    return (f"machine speed (bench/calibrate.py): CPU {cpu:,.0f} rounds/s on one core, "
            f"SQLite {tx:,.0f} 35-row transactions/s into `message`")


def print_report(args: argparse.Namespace, report: Report, scheduler: dict[str, Any],
                 minutes: float, speed: str) -> None:
    print()
    print(f"Aftercare benchmarks — {describe_machine()}; revision {revision()}; "
          f"{'quick' if args.quick else 'full'} run in {minutes:.1f} min")
    print(speed)
    print(callbacks.header(args))
    if scheduler:
        print(f"scheduler overrides for dispatch runs: {scheduler}")
    print()
    print(report.markdown())
    print()
    for note in report.notes:
        print(f"- {note}")


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global SERVICE_ROOT
    SERVICE_ROOT = args.root.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    report = Report()
    scheduler = scheduler_overrides(args.scheduler)
    databases = await open_databases(args, report)
    started = time.time()
    log(f"work directory {workdir}")
    speed = await machine_speed(workdir, args.quiet_wait)
    log(speed)
    scores: list[float] = []  # the CPU score again before each run: the machine drifts
    failed = False
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256),
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        fake = FakeTwilio(workdir)
        await fake.start(http, callbacks.fake_args(args, AUTH_TOKEN))
        ctx = Context(args, workdir, http, fake, report,
                      Profiler(args.profile, args.profile_args), scheduler, args.callbacks)
        if args.callbacks and "peer" in args.phases:
            report.note("Peer (Celery): it has no callback endpoint and asks for none, so its "
                        "figures leave Twilio's return traffic out (creates still take "
                        f"{args.create_latency} s)")
        try:
            for title, step in plan_steps(ctx, databases):
                quiet = await settle() if args.quiet_wait else 0.0
                scores.append(calibrate.cpu_score(1.0))
                log(f"--- {title} (machine quiet after {quiet:.1f} s; CPU score "
                    f"{scores[-1]:,.0f})")
                try:
                    await step()
                except Exception as exc:  # report it and go on with the other runs
                    failed = True
                    traceback.print_exc()
                    report.note(f"{title}: could not be measured ({type(exc).__name__}: {exc})")
        finally:
            fake.stop()
    if scores:
        speed += (f"; CPU score before each run {min(scores):,.0f} to {max(scores):,.0f} "
                  f"(median {pct(scores, 0.5):,.0f})")
    print_report(args, report, scheduler, (time.time() - started) / 60, speed)
    if args.keep or failed:
        print(f"\nlogs and databases kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
