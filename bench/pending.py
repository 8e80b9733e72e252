"""Run 4, a million pending: rows due from 1 h to 4 weeks ahead, inserted before the service
starts; RSS at ready and later, idle CPU (and with /metrics scraped), restart-to-ready; then,
as an extra, the steady run again on top of them."""

from __future__ import annotations

import asyncio
import math
import time

import seed
from arrivals import phone
from databases import Database
from dispatch import steady
from harness import Context, Service
from machine import CpuWindow, RssTree

SCRAPE_EVERY = 15.0  # Prometheus's default scrape interval
SPAN = 28 * 86400  # the pending rows are due over four weeks


async def bench_pending(ctx: Context, db: Database) -> None:
    n = ctx.args.pending
    name = f"pending-{db.kind}"
    service = ctx.service(name, await db.fresh(ctx.workdir, name))
    scenario = f"{n:,} pending, {db.label}"
    try:
        service.migrate()
        await seed_pending(ctx, db, scenario, n)
        await measure_pending(ctx, service, scenario)
        if ctx.args.steady_on_pending:
            await steady(
                ctx,
                db,
                service,
                f"Steady {ctx.args.rate:g}/s on top of {n:,} pending, {db.label}",
                f"steady-on-pending-{db.kind}",
                2,
                False,
            )
    finally:
        await service.stop()
        await db.drop()


async def seed_pending(ctx: Context, db: Database, scenario: str, n: int) -> None:
    """`n` messages due from an hour ahead (nothing falls due while idle is measured)."""
    start = time.time() + 3600
    t = time.time()
    batch = seed.Batch(
        label="pend",
        send_at=[start + SPAN * i / n for i in range(n)],
        phone=phone,
        body=lambda i: (
            f"[pend#{i}] Ana, time for your hyaluronic acid serum: apply a "
            f"thin layer to clean skin."
        ),
        per_treatment=33,
    )
    await db.seed(batch)
    ctx.report.note(
        f"{scenario}: seeded {n:,} messages (+ history rows) in {time.time() - t:.0f} s"
    )


async def measure_pending(ctx: Context, service: Service, scenario: str) -> None:
    """Start the service over the pending rows: memory, idle CPU, restarts; rows and a note.
    Memory is per process (a supervisor and its workers: bench/machine.py's RssTree)."""
    first = await service.start(ctx.http)
    rss_ready = service.rss()
    await asyncio.sleep(2.0)
    cpu = CpuWindow(service=service.pid)
    await asyncio.sleep(ctx.args.idle)
    idle = cpu.cores()["service"] * 100
    ctx.report.processes[service.name] = cpu.processes["service"]
    scraped, scrape = await scraped_idle(ctx, service)
    await asyncio.sleep(max(0.0, ctx.args.rss_after - 2 * ctx.args.idle - 2.0))
    rss_later = service.rss()
    peak = service.peak_rss()
    restarts = []
    for _ in range(ctx.args.restarts):
        await service.stop()
        restarts.append(await service.start(ctx.http))
    rss_restart = service.rss()
    kind = service.name.removeprefix("pending-")
    ctx.report.figures[f"pending_rss:{kind}"] = rss_later.largest
    if restarts:
        ctx.report.figures[f"pending_restart:{kind}"] = max(restarts)
    report_pending(
        ctx, scenario, rss=(rss_ready, rss_later), restarts=restarts, idle=(idle, scraped)
    )
    ctx.report.note(
        f"{scenario}: first start {first:.2f} s, restarts "
        f"{', '.join(f'{x:.2f}' for x in restarts)} s; RSS ready {rss_ready.describe()}, "
        f"later {rss_later.describe()}, peak (VmHWM) {peak.describe()}, after restart "
        f"{rss_restart.describe()}; the first GET /metrics took {scrape * 1000:.0f} ms"
    )


def report_pending(
    ctx: Context,
    scenario: str,
    *,
    rss: tuple[RssTree, RssTree],
    restarts: list[float],
    idle: tuple[float, float],
) -> None:
    """The rows of a pending run, against issue 5's targets (RSS: the largest process)."""
    many = rss[1].processes > 1
    per = " (largest process)" if many else ""
    ctx.report.add(scenario, f"RSS after ready{per}", rss[0].largest, "MB", ("<=", 150))
    ctx.report.add(
        scenario,
        f"RSS {ctx.args.rss_after:g} s after ready{per}",
        rss[1].largest,
        "MB",
        ("<=", 150),
    )
    if many:
        ctx.report.add(scenario, "RSS, supervisor's own", rss[1].root, "MB")
        ctx.report.add(scenario, f"RSS, sum of {rss[1].processes} processes", rss[1].total, "MB")
    if restarts:
        ctx.report.add(
            scenario, f"restart-to-ready (worst of {len(restarts)})", max(restarts), "s", ("<=", 3)
        )
    ctx.report.add(scenario, f"idle CPU over {ctx.args.idle:g} s", idle[0], "%", ("<=", 1))
    ctx.report.add(
        scenario, f"idle CPU, /metrics scraped every {SCRAPE_EVERY:g} s", idle[1], "%", ("<=", 1)
    )


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
