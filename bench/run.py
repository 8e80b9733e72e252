"""Aftercare benchmarks: `.venv/bin/python bench/run.py [--quick]`.

Starts the real service (`python -m service --config <tmp toml> serve`) as a subprocess, a lean
fake Twilio (bench/fake_twilio.py) as another, and measures, in one run:

  1. ingest of signed `treatment.completed` events (microneedling: ~33 messages each) on
     SQLite and PostgreSQL: events/s and p50/p99 latency at a fixed client concurrency;
     console backend (every message is due hours or days later: nothing is sent);
  2. a burst of 10,000 messages due in the same second (rows inserted straight into the
     database): drain rate and lateness at the fake Twilio;
  3. lateness under a steady 200 messages/s (rows due at T0 + i/200);
  4. mixed (issue 28): 200 signed events/s in, 200 texts due each second out and their
     status callbacks back, together for 20 s: lateness, events/s, callbacks, CPU;
  5. 1,000,000 pending messages over the coming weeks: RSS after ready and a minute later,
     restart-to-ready, idle CPU; then, as an extra, the steady 200/s again on top of them.

With `--workers N` the service runs as a supervisor and N workers (`[server] workers`): its
CPU is its process tree's, its memory per process. A second table judges issue 28's targets,
each from figures of the same run.

Lateness is (arrival at the fake, time.time()) - send_at. Prints a markdown table with the
issue-5 target beside each figure and always exits 0 (a benchmark is not a test), unless
the run itself could not be carried out. `--profile DIR` attaches `py-spy record` to the
service during each measured window and writes collapsed stacks plus a summary there
(py-spy adds load on two cores: take the figures from a run without it).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # bench's modules; tests.helpers, tests.fakes

import aiohttp  # noqa: E402
import calibrate  # noqa: E402
import callbacks  # noqa: E402
from databases import Database, open_databases  # noqa: E402
from dispatch import bench_burst, bench_steady  # noqa: E402
from harness import AUTH_TOKEN, ROOT, Context, FakeTwilio, Service  # noqa: E402
from ingest import bench_ingest  # noqa: E402
from machine import Profiler, describe_machine, settle  # noqa: E402
from mixed import bench_mixed  # noqa: E402
from options import parse_args  # noqa: E402
from peer import bench_peer  # noqa: E402
from pending import bench_pending  # noqa: E402
from report import Report, log, pct, print_report  # noqa: E402

Step = tuple[str, Callable[[], Awaitable[None]]]


def revision(root: Path) -> str:
    """The commit the service runs from, or the other tree's path (--root)."""
    try:
        if root != ROOT:
            return f"the tree at {root}"
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service", "migrations"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + (" + uncommitted changes in service/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def scheduler_overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return out


def plan_steps(ctx: Context, databases: Sequence[Database]) -> list[Step]:
    """The runs, in order: every ingest, then burst, steady and mixed, then the pending
    ones, then the peer."""
    phases = {p.strip() for p in ctx.args.phases.split(",") if p.strip()}
    steps: list[Step] = []
    if "ingest" in phases:
        steps += [
            (f"ingest {db.kind} c={c}", partial(bench_ingest, ctx, db, c))
            for db in databases
            for c in map(int, ctx.args.concurrency.split(","))
        ]
    for db in databases:
        if "burst" in phases:
            steps.append((f"burst {db.kind}", partial(bench_burst, ctx, db)))
            if ctx.args.callbacks:
                steps.append(
                    (f"burst {db.kind}, callbacks off", partial(bench_burst, ctx, db, False))
                )
        if "steady" in phases:
            steps.append((f"steady {db.kind}", partial(bench_steady, ctx, db)))
        if "mixed" in phases:
            steps.append((f"mixed {db.kind}", partial(bench_mixed, ctx, db)))
    if "pending" in phases:
        steps += [(f"pending {db.kind}", partial(bench_pending, ctx, db)) for db in databases]
    if "peer" in phases:
        steps.append(("peer: Celery", partial(bench_peer, ctx)))
    return steps


async def machine_speed(workdir: Path, root: Path, quiet_wait: bool = True) -> tuple[str, float]:
    """`calibrate`'s two figures, on a quiet machine, for the report's header; and SQLite's
    transactions/s (issue 28's ingest target is a multiple of it)."""
    if quiet_wait:
        await settle()
    cpu = calibrate.cpu_score()
    service = Service(
        "calibrate", workdir, f"sqlite+aiosqlite:///{workdir / 'calibrate.db'}", root=root
    )
    await asyncio.to_thread(service.migrate)
    if quiet_wait:
        await settle()
    tx = await asyncio.to_thread(calibrate.sqlite_transactions, str(workdir / "calibrate.db"))
    return (
        f"machine speed (bench/calibrate.py): CPU {cpu:,.0f} rounds/s on one core, "
        f"SQLite {tx:,.0f} 35-row transactions/s into `message`"
    ), tx


async def run_steps(ctx: Context, steps: Sequence[Step], scores: list[float]) -> bool:
    """Each step on a quiet machine, its CPU score first; whether any could not be measured."""
    failed = False
    for title, step in steps:
        quiet = await settle() if ctx.args.quiet_wait else 0.0
        scores.append(calibrate.cpu_score(1.0))
        log(f"--- {title} (machine quiet after {quiet:.1f} s; CPU score {scores[-1]:,.0f})")
        try:
            await step()
        except Exception as exc:  # report it and go on with the other runs
            failed = True
            traceback.print_exc()
            ctx.report.note(f"{title}: could not be measured ({type(exc).__name__}: {exc})")
    return failed


async def measure(
    args: argparse.Namespace,
    workdir: Path,
    report: Report,
    databases: Sequence[Database],
    scores: list[float],
) -> bool:
    """Start the fake Twilio, run every step against it; whether any step failed."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256), timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        fake = FakeTwilio(workdir)
        await fake.start(http, callbacks.fake_args(args, AUTH_TOKEN))
        ctx = Context(
            args,
            workdir,
            http,
            fake,
            report,
            Profiler(args.profile, args.profile_args),
            scheduler_overrides(args.scheduler),
            args.callbacks,
        )
        if args.callbacks and "peer" in args.phases:
            report.note(
                "Peer (Celery): it has no callback endpoint and asks for none, so its "
                "figures leave Twilio's return traffic out (creates still take "
                f"{args.create_latency} s)"
            )
        try:
            return await run_steps(ctx, plan_steps(ctx, databases), scores)
        finally:
            fake.stop()


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, __doc__.split("\n\n")[0])
    workdir = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    report = Report()
    databases = await open_databases(args, report)
    started = time.time()
    log(f"work directory {workdir}")
    speed, report.figures["sqlite_tx"] = await machine_speed(workdir, args.root, args.quiet_wait)
    log(speed)
    scores: list[float] = []  # the CPU score again before each run: the machine drifts
    failed = await measure(args, workdir, report, databases, scores)
    if scores:
        speed += (
            f"; CPU score before each run {min(scores):,.0f} to {max(scores):,.0f} "
            f"(median {pct(scores, 0.5):,.0f})"
        )
    print_report(
        args,
        report,
        scheduler_overrides(args.scheduler),
        minutes=(time.time() - started) / 60,
        speed=speed,
        machine=describe_machine(),
        revision=revision(args.root),
    )
    if args.keep or failed:
        print(f"\nlogs and databases kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
