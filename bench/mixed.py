"""Run `mixed` (issue 28): the whole service's traffic at once. Texts fall due every second,
each second's `--mixed-rate` (200) within `--mixed-spread` ms of each other as 08:30
reminders are (rows inserted ahead, as the burst and steady runs do), while `--mixed-events`
(200) signed `treatment.completed` events a second are POSTed at a fixed rate (open loop:
each at its instant, whatever the answers before it) and the fake posts `sending`, `sent`
and `delivered` for every text. The fake runs as in issue 28's measurement (creates answered
at once, callbacks 0.2 s apart: callbacks.MIXED_FAKE) unless the command line set its timing.

The events' own plans send nothing during the run: a microneedling plan's first text
(`tonight`) is due 2 h after `completed_at` (a minute ago), or at 20:45 local when that is in
quiet hours and still ahead (`in_quiet_hours = "earlier"`), which falls inside a run only
when it starts within a minute or so of 20:45 in Los Angeles (the events' patients' zone).
Any such text is counted and named in the run's note.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import callbacks
import seed
from arrivals import Arrivals, dispatch_batch
from databases import Database
from dispatch import arrived, lead_seconds
from harness import Context, Service
from ingest import Request, signed_requests
from machine import CpuWindow
from report import log, pct, processes

AREA = 3  # the due rows' phones; the events' patients are in area 0


@dataclass
class Events:
    """What the open-loop POSTs got: latency from each one's scheduled instant, statuses,
    how far behind its instant the bench itself started the latest one."""

    latencies: list[float]
    statuses: Counter[int]
    elapsed: float
    behind: float

    @property
    def rate(self) -> float:
        """202 answers a second, from the first event's instant to the last answer."""
        return self.statuses.get(202, 0) / self.elapsed if self.elapsed else math.nan


async def post_events(
    ctx: Context, url: str, requests: Sequence[Request], rate: float, start: float
) -> Events:
    """POST request i at `start` + i / `rate` (time.time()), each as its own task."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    behind = 0.0

    async def one(raw: bytes, headers: dict[str, str], at: float) -> None:
        try:
            async with ctx.http.post(url, data=raw, headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
        except Exception as exc:  # counted, not fatal: the figure is what got through
            statuses[-1] += 1
            log(f"mixed: an event failed ({type(exc).__name__})")
        latencies.append(time.time() - at)

    tasks = []
    for i, (raw, headers) in enumerate(requests):
        at = start + i / rate
        await asyncio.sleep(max(0.0, at - time.time()))
        behind = max(behind, time.time() - at)
        tasks.append(asyncio.create_task(one(raw, headers, at)))
    await asyncio.gather(*tasks)
    return Events(latencies, statuses, time.time() - start, behind)


def due_instants(first: float, seconds: int, per_second: int, spread_ms: float) -> list[float]:
    """`per_second` instants at the start of each of `seconds` seconds from `first`, spread
    evenly over `spread_ms`."""
    step = spread_ms / 1000 / max(1, per_second)
    return [first + s + j * step for s in range(seconds) for j in range(per_second)]


async def bench_mixed(ctx: Context, db: Database) -> None:
    """One mixed run on `db`, with the fake set to the mixed phase's timing meanwhile."""
    a = ctx.args
    await callbacks.configure(
        ctx.http, ctx.fake.url, callbacks=str(int(a.callbacks)), **a.mixed_fake
    )
    try:
        await _mixed(ctx, db)
    finally:
        await callbacks.configure(
            ctx.http,
            ctx.fake.url,
            create_latency=a.create_latency,
            sent_delay=a.sent_delay,
            delivered_delay=a.delivered_delay,
        )


async def _mixed(ctx: Context, db: Database) -> None:
    a = ctx.args
    name = f"mixed-{db.kind}"
    service = ctx.service(name, await db.fresh(ctx.workdir, name))
    await service.start(ctx.http)
    try:
        seconds = max(1, round(a.mixed_duration))
        requests = signed_requests(int(a.mixed_events * seconds), name)
        first = time.time() + lead_seconds(service)
        send_at = due_instants(first, seconds, int(a.mixed_rate), a.mixed_spread)
        got, events, cores = await run_mixed(ctx, db, service, name, send_at, requests)
        others = await ctx.fake.count(ctx.http) - len(got.arrivals) - got.duplicates
    finally:
        await service.stop()
        await db.drop()
    report_mixed(ctx, db, seconds, got, events, cores, others)


async def run_mixed(
    ctx: Context,
    db: Database,
    service: Service,
    name: str,
    send_at: Sequence[float],
    requests: Sequence[Request],
) -> tuple[Arrivals, Events, dict[str, float]]:
    """Insert the due rows, POST the events from half a second before the first is due,
    wait for every text at the fake and for their callbacks."""
    await ctx.fake.reset(ctx.http)
    batch = dispatch_batch("mixed", send_at, AREA)
    await db.seed(batch)
    log(f"{name}: {len(send_at)} rows inserted; first due in {send_at[0] - time.time():.1f} s")
    start = send_at[0] - 0.5
    await asyncio.sleep(max(0.0, start - time.time() - 0.2))
    cpu = CpuWindow(service=service.pid, fake=ctx.fake.pid)
    ctx.profiler.start(name, service.pid)
    endpoint = f"{service.base}/v1/clinics/{seed.CLINIC}/events"
    events = await post_events(ctx, endpoint, requests, ctx.args.mixed_events, start)
    got, cores = await arrived(ctx, db, (name, "mixed"), batch, send_at, cpu)
    return got, events, cores


def report_mixed(
    ctx: Context,
    db: Database,
    seconds: int,
    got: Arrivals,
    events: Events,
    cores: dict[str, float],
    others: int,
) -> None:
    """The run's rows (issue 28's target is judged in its own table) and a note."""
    a = ctx.args
    scenario = (
        f"Mixed: {a.mixed_events:g} events/s in, {a.mixed_rate:g} texts due each second "
        f"(within {a.mixed_spread:g} ms), for {seconds} s, {db.label}"
        + ("" if a.callbacks else ", callbacks off")
    )
    ms = [x * 1000 for x in got.all_lateness]
    ctx.report.figures[f"mixed_p99:{db.kind}"] = pct(ms, 0.99)
    add = ctx.report.add
    add(
        scenario,
        "sent once each (arrived at the fake)",
        float(len(got.arrivals)),
        f"of {got.expected:,}",
    )
    add(scenario, "lateness p50", pct(ms, 0.5), "ms")
    add(scenario, "lateness p99", pct(ms, 0.99), "ms")
    add(scenario, "lateness max", max(ms, default=math.nan), "ms")
    add(scenario, "events/s achieved (202)", events.rate, "ev/s")
    add(scenario, "event response p50", pct(events.latencies, 0.5) * 1000, "ms")
    add(scenario, "event response p99", pct(events.latencies, 0.99) * 1000, "ms")
    if got.back is not None:
        back = got.back
        add(scenario, "callbacks applied (2xx)", back["posted"] - back["failed"], "")
        add(scenario, "callbacks failed", back["failed"], f"of {back['posted']:,.0f}")
        add(scenario, "last send -> every text final", back["final_after"], "s")
    add(scenario, "service CPU", cores["service"], "cores")
    ctx.report.note(
        f"{scenario}: {got.summary()}; {others} other texts sent (events' plans falling due "
        f"during the run, see bench/mixed.py); event answers {dict(events.statuses)}, the "
        f"bench at most {events.behind * 1000:.0f} ms behind an event's instant; service "
        f"{cores['service']:.2f} cores in {processes(ctx.report.processes[f'mixed-{db.kind}'])}, "
        f"fake {cores.get('fake', 0):.2f}, machine {cores['machine']:.2f} of "
        f"{os.cpu_count()}; fake: creates after {a.mixed_fake['create_latency']} s, sent "
        f"after {a.mixed_fake['sent_delay']} s, delivered {a.mixed_fake['delivered_delay']} s "
        f"later"
    )
