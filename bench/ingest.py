"""Run 1, ingest: signed `treatment.completed` events POSTed at a fixed concurrency; events/s
and latency, on the console backend (nothing falls due during the run)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
import seed
from arrivals import phone
from databases import Database
from harness import SECRET, Context
from machine import CpuWindow
from report import pct, processes
from standardwebhooks import Webhook

STALE_AFTER = 240  # seconds; Standard Webhooks allows 5 minutes of clock difference

Request = tuple[bytes, dict[str, str]]


def event_body(i: int, run: str, completed_at: str) -> bytes:
    body = {
        "type": "treatment.completed",
        "timestamp": completed_at,
        "data": {
            "treatment": {
                "id": f"tr_{run}_{i}",
                "protocol": "microneedling",
                "completed_at": completed_at,
                "session_number": 1,
                "sessions_planned": 3,
                "serum": "hyaluronic acid serum",
            },
            "patient": {
                "id": f"pt_{run}_{i}",
                "first_name": "Ana",
                "phone": phone(i),
                "timezone": "America/Los_Angeles",
                "locale": "en",
                "sms_consent": True,
            },
        },
    }
    return json.dumps(body).encode()


def signed_requests(count: int, run: str) -> list[Request]:
    """`count` signed treatment.completed requests, signed now (5-minute tolerance)."""
    now = datetime.now(UTC)
    completed = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    out = []
    for i in range(count):
        raw = event_body(i, run, completed)
        headers = {"content-type": "application/json", "webhook-id": f"evt_{run}_{i}"}
        out.append((raw, sign(raw, headers, now)))
    return out


def sign(raw: bytes, headers: dict[str, str], now: datetime | None = None) -> dict[str, str]:
    """`headers` with the Standard Webhooks timestamp and signature of `raw` at `now`."""
    now = now or datetime.now(UTC)
    return {
        **headers,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(headers["webhook-id"], now, raw.decode()),
    }


async def drive(
    http: aiohttp.ClientSession, url: str, requests: Sequence[Request], concurrency: int
) -> tuple[list[float], float, Counter[int]]:
    """POST every request with `concurrency` workers; (latencies, elapsed, statuses)."""
    pending = iter(requests)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        for raw, headers in pending:
            if time.time() - int(headers["webhook-timestamp"]) > STALE_AFTER:
                headers = sign(raw, headers)  # a long run: stay inside the tolerance
            t = time.perf_counter()
            async with http.post(url, data=raw, headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0, statuses


async def bench_ingest(ctx: Context, db: Database, concurrency: int) -> None:
    """One ingest run: warm-up events, then the measured ones; the figures and a note."""
    name = f"ingest-{db.kind}-c{concurrency}"
    service = ctx.service(name, await db.fresh(ctx.workdir, name), twilio=False)
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
        ctx.report.processes[name] = cpu.processes["service"]
        messages = await db.scalar("SELECT count(*) FROM message")
        total = len(warm) + len(requests)
        per_event = float(messages) / total if messages else math.nan  # type: ignore[arg-type]
    finally:
        await service.stop()
        await db.drop()
    scenario = f"Ingest, {db.label}, concurrency {concurrency}"
    report_ingest(ctx, db, scenario, latencies, statuses.get(202, 0) / elapsed)
    ctx.report.note(
        f"{scenario}: {len(requests)} events in {elapsed:.1f} s ({per_event:.1f} messages per "
        f"event stored), answers {dict(statuses)}; service {cores['service']:.2f} cores "
        f"in {processes(ctx.report.processes[name])}, "
        f"machine {cores['machine']:.2f} of {os.cpu_count()} cores; "
        f"max latency {max(latencies) * 1000:.0f} ms"
    )


def report_ingest(
    ctx: Context, db: Database, scenario: str, latencies: list[float], rate: float
) -> None:
    """The run's rows, judged against issue 5's targets on SQLite; the best rate of the
    database's runs is issue 28's ingest figure."""
    key = f"ingest:{db.kind}"
    ctx.report.figures[key] = max(rate, ctx.report.figures.get(key, 0.0))
    ctx.report.add(scenario, "events/s", rate, "ev/s", (">=", 500) if db.kind == "sqlite" else None)
    ctx.report.add(scenario, "latency p50", pct(latencies, 0.5) * 1000, "ms")
    ctx.report.add(
        scenario,
        "latency p99",
        pct(latencies, 0.99) * 1000,
        "ms",
        ("<=", 50) if db.kind == "sqlite" else None,
    )
