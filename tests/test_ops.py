"""Operations (contract §9): metrics, logs, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from sqlalchemy.engine import make_url
from sqlmodel import Session

from service.observability.logs import JsonFormatter, stamp_request_id
from service.observability.metrics import Metrics
from service.storage.database import create_engine
from service.storage.transactions import Transactions
from service.web.app import create_app
from service.web.keys import METRICS, TRANSACTIONS
from tests.fakes.proxy import Proxy
from tests.helpers.client import bearer
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.prometheus import sample
from tests.support import TOKEN, make_settings, quick_settings


@pytest.fixture
async def client(database: str, aiohttp_client: AiohttpClient) -> Any:
    return await aiohttp_client(create_app(quick_settings(database)))


async def send_one(client: Any) -> None:
    body = completed_event(
        treatment={"protocol": "quick", "completed_at": datetime.now(UTC).isoformat()},
        patient={"timezone": "UTC"},
    )
    raw = encode(body)
    assert (
        await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
    ).status == 202
    deadline = asyncio.get_running_loop().time() + 10
    # The send counts at once; the stored statuses once the database is counted again.
    while (text := await (await client.get("/metrics")).text()) and (
        sample(text, "aftercare_sends_total", outcome="accepted") != 1.0
        or sample(text, "aftercare_messages", status="sent") != 1.0
    ):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


class TestMetrics:
    async def test_metrics_count_sends_lateness_and_stored_statuses(self, client: Any) -> None:
        """After one send: the send, its lateness and latency, and statuses from the database."""
        await send_one(client)
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
        assert sample(text, "aftercare_lateness_seconds_count") == 1.0
        assert sample(text, "aftercare_send_seconds_count") == 1.0
        assert sample(text, "aftercare_messages", status="sent") == 1.0
        assert sample(text, "aftercare_pending_messages") == 0.0

    async def test_events_are_counted_by_type_and_outcome(self, client: Any) -> None:
        """Accepted, replayed and rejected events each show in their own series."""
        raw = encode(completed_event(treatment={"protocol": "quick"}))
        headers = signed(raw, msg_id="msg_counted")
        for _ in range(2):
            await client.post("/v1/clinics/glow/events", data=raw, headers=headers)
        await client.post(
            "/v1/clinics/glow/events", data=raw, headers={"content-type": "application/json"}
        )  # unsigned
        text = await (await client.get("/metrics")).text()
        assert (
            sample(text, "aftercare_events_total", type="treatment.completed", outcome="accepted")
            == 1.0
        )
        assert (
            sample(text, "aftercare_events_total", type="treatment.completed", outcome="replayed")
            == 1.0
        )
        assert sample(text, "aftercare_events_total", type="unknown", outcome="rejected_401") == 1.0

    async def test_each_app_has_its_own_registry(self, client: Any, database: str) -> None:
        """Two apps in one process do not share counters (no import-time state)."""
        await send_one(client)
        other = create_app(make_settings(database))
        text = other[METRICS].render().decode()
        assert sample(text, "aftercare_sends_total", outcome="accepted") is None

    def test_stored_counts_are_reused_while_recent_for_what_they_cost(self) -> None:
        """Counting a million rows takes ~0.2 s: its counts serve the scrapes of the next
        40 s (0.5 % of the time counting), a cheap count's only those of the next moments."""
        metrics = Metrics()
        assert metrics.stored_due(now=1000.0)  # never counted
        metrics.set_stored({"scheduled": 1_000_000}, counted_at=1000.0, took=0.2)
        assert not metrics.stored_due(now=1039.0)
        assert metrics.stored_due(now=1040.0)
        metrics.set_stored({"scheduled": 3}, counted_at=1040.0, took=0.001)
        assert not metrics.stored_due(now=1040.1)
        assert metrics.stored_due(now=1040.2)
        assert sample(metrics.render().decode(), "aftercare_pending_messages") == 3.0


class TestLogs:
    def test_a_log_line_is_one_json_object_with_numbers_masked(self) -> None:
        """Records become JSON lines; a phone number anywhere in them is masked."""
        record = logging.LogRecord(
            "aftercare.test", logging.INFO, __file__, 1, "texted %s", ("+14155550123",), None
        )
        record.message_id = "msg_1"
        line = JsonFormatter().format(record)
        entry = json.loads(line)
        assert entry["message"] == "texted •••••••0123"
        assert entry["message_id"] == "msg_1" and entry["level"] == "info"
        assert "+14155550123" not in line


class TestReadiness:
    async def test_readyz_follows_the_database_down_and_back_up(
        self, pg_database: str, aiohttp_client: AiohttpClient, tmp_path: Path
    ) -> None:
        """503 naming the database while it does not answer; 200 again when it returns."""
        real = make_url(pg_database)
        proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
        await proxy.start()
        url = real.set(port=proxy.port).render_as_string(hide_password=False)
        client = await aiohttp_client(create_app(make_settings(url)))
        assert (await client.get("/readyz")).status == 200
        await proxy.cut()
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["checks"]["database"].startswith("failing")
        await proxy.start()
        deadline = asyncio.get_running_loop().time() + 10
        while (await client.get("/readyz")).status != 200:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
        await proxy.cut()


class TestRequestIds:
    async def test_answers_carry_the_callers_request_id_or_a_new_one(self, client: Any) -> None:
        """A sane X-Request-Id is echoed; otherwise the service makes one up."""
        given = await client.get("/healthz", headers={"X-Request-Id": "req-42"})
        assert given.headers["X-Request-Id"] == "req-42"
        made = await client.get("/healthz", headers={"X-Request-Id": "bad id\\n"})
        again = await client.get("/healthz")
        assert len(made.headers["X-Request-Id"]) == 32
        assert again.headers["X-Request-Id"] != made.headers["X-Request-Id"]

    async def test_log_lines_of_a_request_carry_its_id(self, client: Any) -> None:
        """Lines logged while handling a request name that request."""
        lines: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
        handler.addFilter(stamp_request_id)
        access = logging.getLogger("aiohttp.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        try:
            await client.get("/healthz", headers={"X-Request-Id": "req-7"})
        finally:
            access.removeHandler(handler)
        assert lines and all(json.loads(line)["request_id"] == "req-7" for line in lines)


class TestReadsBesideWrites:
    async def test_readiness_metrics_and_reads_do_not_queue_behind_a_write(
        self, client: Any
    ) -> None:
        """A long write (a large ingest, a burst's outcomes) does not hold up readiness, the
        metrics or the read API: on SQLite they read on connections of their own."""
        body = completed_event(
            treatment={"protocol": "quick", "completed_at": datetime.now(UTC).isoformat()}
        )
        raw = encode(body)
        assert (
            await client.post("/v1/clinics/glow/events", data=raw, headers=signed(raw))
        ).status == 202
        async with _long_write(client.server.app[TRANSACTIONS]), asyncio.timeout(5):
            ready = await client.get("/readyz")
            scraped = await (await client.get("/metrics")).text()
            listed = await client.get("/v1/clinics/glow/messages", headers=bearer(TOKEN))
        assert ready.status == 200, await ready.text()
        counts = [
            sample(scraped, "aftercare_messages", status=st)
            for st in ("scheduled", "sending", "sent", "delivered")
        ]
        assert sum(c or 0 for c in counts) == 1
        assert listed.status == 200 and len((await listed.json())["messages"]) == 1


@contextlib.asynccontextmanager
async def _long_write(transactions: Transactions) -> AsyncIterator[None]:
    """A write transaction open for the block: on SQLite the writer's, holding the write lock
    (BEGIN IMMEDIATE) on its thread; on PostgreSQL another connection's, rows locked."""
    if transactions.dialect != "sqlite":
        engine = create_engine(transactions.engine.url.render_as_string(hide_password=False))
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("UPDATE message SET updated_at = updated_at")
                yield
        finally:
            await engine.dispose()
        return
    started, release = threading.Event(), threading.Event()

    def hold(s: Session) -> None:
        s.connection()
        started.set()
        assert release.wait(10), "the block ended"

    writing = asyncio.create_task(transactions.write(hold))
    try:
        while not started.is_set():  # until the writer's thread holds the transaction
            await asyncio.sleep(0.01)
        yield
    finally:
        release.set()
        await writing
