"""Health and readiness for operators (contract §9): readiness reads the database, writes it (a
heartbeat at most every few seconds, `storage.heartbeat`) and asks whether the scheduler runs."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from service.reads import inbox
from service.reads.answers import HEALTH, READINESS, Health, Readiness
from service.storage import escalation_rows, outbox_claims, store
from service.web.errors import answer
from service.web.keys import CLOCK, METRICS, SETTINGS, TIMERS, TRANSACTIONS, WRITE_CHECK
from service.web.openapi import document

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the process runs."""
    body: Health = {"status": "ok"}
    return answer(HEALTH, body)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers and takes a write and the scheduler runs; 503 naming
    what fails."""
    checks = await _checks(request)
    ok = all(v == "ok" for v in checks.values())
    body: Readiness = {"status": "ok" if ok else "unavailable", "checks": checks}
    return answer(READINESS, body, status=200 if ok else 503)


async def _checks(request: web.Request) -> dict[str, str]:
    """Each readiness check: "ok" or "failing: why"."""
    return {
        "database": await _database(request),
        "database_write": await request.app[WRITE_CHECK].status(),
        "scheduler": _scheduler(request),
    }


async def _database(request: web.Request) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await request.app[TRANSACTIONS].read(store.ping)
    except Exception as exc:
        return f"failing: {type(exc).__name__}"
    return "ok"


def _scheduler(request: web.Request) -> str:
    return "ok" if request.app[TIMERS].running else "failing: not running"


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: this process's counters (with several workers, all of theirs, see
    docs/metrics.md); message counts, the oldest overdue message and readiness (the checks of
    /readyz) from the database."""
    registry = request.app[METRICS]
    checks = await _checks(request)
    if checks["database"] == "ok":  # one that does not answer is not counted: readiness says so
        await _count(request)
    registry.set_scrape(now=request.app[CLOCK].now(), ready=all(v == "ok" for v in checks.values()))
    return web.Response(
        body=registry.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


async def _count(request: web.Request) -> None:
    """Read the stored counts again, unless the last read is recent for what it cost."""
    registry = request.app[METRICS]
    started = time.monotonic()
    if not registry.stored_due(started):
        return
    clinics = request.app[SETTINGS].clinics
    reminders = {cid: c.escalation_reminder for cid, c in clinics.items()}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            counts, oldest, outbox, open_, items = await request.app[TRANSACTIONS].read(
                lambda s: (
                    store.count_by_status(s),
                    store.oldest_scheduled(s),
                    outbox_claims.pending_stats(s),
                    escalation_rows.open_stats(s),
                    inbox.counts(s, reminders),
                )
            )
            registry.inbox.set_counts(items.open, oldest=items.oldest, deadlines=items.deadlines)
        registry.set_notifications(outbox[0], oldest=outbox[1])
        registry.set_escalations(open_[0], oldest=open_[1])
        registry.set_stored(
            counts, counted_at=started, took=time.monotonic() - started, oldest_scheduled=oldest
        )
    except Exception:  # the counters are still worth serving; readiness reports the database
        pass


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this service."""
    return web.json_response(document())
