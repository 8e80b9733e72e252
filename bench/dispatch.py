"""Runs 2 and 3, dispatch: a burst of messages due at one instant, and a steady rate, rows
inserted straight into the database while the service runs; drain rate and lateness at the
fake Twilio, and the return traffic's figures when the fake posts status callbacks."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import callbacks
import seed
from arrivals import Arrivals, collect, dispatch_batch, wait_arrivals
from databases import Database
from harness import Context, Service
from machine import CpuWindow
from report import log, pct, processes


async def run_due(
    ctx: Context,
    db: Database,
    service: Service,
    label: str,
    send_at: Sequence[float],
    area: int,
    name: str,
) -> tuple[Arrivals, dict[str, float]]:
    """Insert `send_at` rows while the service runs, wait for them at the fake."""
    await ctx.fake.reset(ctx.http)
    t0 = time.time()
    batch = dispatch_batch(label, send_at, area)
    await db.seed(batch)
    log(
        f"{name}: {len(send_at)} rows inserted in {time.time() - t0:.1f} s; first due in "
        f"{send_at[0] - time.time():.1f} s"
    )
    await asyncio.sleep(max(0.0, send_at[0] - time.time() - 0.5))
    cpu = CpuWindow(service=service.pid, fake=ctx.fake.pid)
    ctx.profiler.start(name, service.pid)
    got, cores = await arrived(ctx, db, (name, label), batch, send_at, cpu)
    if got.missing:
        log(
            f"{name}: {got.missing} messages had not arrived "
            f"{ctx.args.drain_timeout:g} s after the last was due"
        )
    return got, cores


async def arrived(
    ctx: Context,
    db: Database,
    names: tuple[str, str],
    batch: seed.Batch,
    send_at: Sequence[float],
    cpu: CpuWindow,
) -> tuple[Arrivals, dict[str, float]]:
    """The end of a measured window (`names`: the run's and its rows' label): every row at
    the fake (or the drain deadline), the window's CPU and profile closed, a second for a
    doubled send to show, then what arrived and, with callbacks, what came back."""
    name, label = names
    await wait_arrivals(ctx, len(send_at), deadline=send_at[-1] + ctx.args.drain_timeout)
    ctx.profiler.stop()
    cores = cpu.cores()
    ctx.report.processes[name] = cpu.processes["service"]
    await asyncio.sleep(1.0)  # a doubled send would show by now
    got = await collect(ctx, batch)
    if ctx.callbacks_on and got.arrivals:
        got.back = await returned(ctx, db, label, len(send_at), got.arrivals[-1])
    return got, cores


async def returned(
    ctx: Context, db: Database, label: str, count: int, last_send: float
) -> dict[str, Any]:
    """callbacks.returned for a run's `count` messages labelled `label`."""
    label_sql = f"SELECT count(*) FROM message WHERE body LIKE '[{label}#%' AND status IN "

    async def final() -> bool:
        final_count = await db.scalar(label_sql + callbacks.FINAL)
        assert isinstance(final_count, int)
        return final_count >= count

    return await callbacks.returned(
        ctx.http, ctx.fake.url, final, last_send, time.time() + ctx.args.drain_timeout
    )


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
    ctx.report.add(
        scenario, "failed callbacks", got.back["failed"], f"of {got.back['posted']:,.0f}"
    )


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
    service = ctx.service(name, await db.fresh(ctx.workdir, name))
    await service.start(ctx.http)
    try:
        n = ctx.args.burst
        due = time.time() + lead_seconds(service)
        got, cores = await run_due(ctx, db, service, "burst", [due] * n, 0, name)
    finally:
        await service.stop()
        await db.drop()
    scenario = f"Burst of {n:,} due at once, {db.label}" + (
        "" if ctx.callbacks_on else ", callbacks off"
    )
    report_burst(ctx, db, scenario, got)
    ctx.report.note(
        f"{scenario}: {got.summary()}; first arrival "
        f"{min(got.lateness, default=math.nan):.3f} s after send_at, last "
        f"{max(got.lateness, default=math.nan):.2f} s; service {cores['service']:.2f} cores "
        f"in {processes(ctx.report.processes[name])}, "
        f"fake {cores.get('fake', 0):.2f}, machine {cores['machine']:.2f} of {os.cpu_count()}"
    )


def report_burst(ctx: Context, db: Database, scenario: str, got: Arrivals) -> None:
    """A burst's rows; with callbacks off, the drain rate beside the run with them on."""
    target = db.kind == "sqlite" or ctx.args.targets_on_postgres
    rate = got.drain_rate()
    ctx.report.figures[f"burst_{'on' if ctx.callbacks_on else 'off'}:{db.kind}"] = rate
    if ctx.callbacks_on:
        ctx.drain_with[db.kind] = rate
    elif db.kind in ctx.drain_with:
        ctx.report.add(
            scenario, "drain with callbacks / without", ctx.drain_with[db.kind] / rate, ""
        )
    late = got.all_lateness
    ctx.report.add(
        scenario,
        "sent once each (arrived at the fake)",
        float(len(got.arrivals)),
        f"of {got.expected:,}",
    )
    ctx.report.add(scenario, "drain rate", rate, "msg/s", (">=", 1600) if target else None)
    ctx.report.add(scenario, "lateness p50", pct(late, 0.5), "s")
    ctx.report.add(scenario, "lateness p99", pct(late, 0.99), "s", ("<=", 6) if target else None)
    ctx.report.add(scenario, "lateness max", max(late, default=math.nan), "s")
    report_back(ctx, scenario, got)


async def steady(
    ctx: Context, db: Database, service: Service, scenario: str, name: str, area: int, target: bool
) -> None:
    """`--rate` messages a second for `--duration` seconds into a running service."""
    rate, seconds = ctx.args.rate, ctx.args.duration
    n = int(rate * seconds)
    t0 = time.time() + lead_seconds(service)
    got, cores = await run_due(
        ctx,
        db,
        service,
        "steady" if area == 1 else f"steady{area}",
        [t0 + i / rate for i in range(n)],
        area,
        name,
    )
    ms = [x * 1000 for x in got.all_lateness]
    if area == 1:  # the steady run itself, not the one on top of pending rows
        ctx.report.figures[f"steady_p99:{db.kind}"] = pct(ms, 0.99)
    if got.missing:
        ctx.report.add(
            scenario, "sent once each (arrived at the fake)", float(len(got.arrivals)), f"of {n:,}"
        )
    ctx.report.add(scenario, "lateness p50", pct(ms, 0.5), "ms")
    ctx.report.add(scenario, "lateness p99", pct(ms, 0.99), "ms", ("<=", 25) if target else None)
    ctx.report.add(scenario, "lateness max", max(ms, default=math.nan), "ms")
    report_back(ctx, scenario, got)
    ctx.report.note(
        f"{scenario}: {got.summary()}; p90 {pct(ms, 0.9):.1f} ms, min "
        f"{min(ms, default=0):.1f} ms; service {cores['service']:.2f} cores in "
        f"{processes(ctx.report.processes[name])}, fake "
        f"{cores.get('fake', 0):.2f}, machine {cores['machine']:.2f} of {os.cpu_count()}"
    )


async def bench_steady(ctx: Context, db: Database) -> None:
    name = f"steady-{db.kind}"
    service = ctx.service(name, await db.fresh(ctx.workdir, name))
    await service.start(ctx.http)
    try:
        scenario = f"Steady {ctx.args.rate:g}/s for {ctx.args.duration:g} s, {db.label}"
        await steady(
            ctx, db, service, scenario, name, 1, db.kind == "sqlite" or ctx.args.targets_on_postgres
        )
    finally:
        await service.stop()
        await db.drop()
