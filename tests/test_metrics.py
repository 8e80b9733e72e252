"""`/metrics` in production (contract §14, Operations): the process and Python collectors, HTTP
requests by route and status, no `*_created`, the oldest overdue message and readiness."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from sqlmodel import Session

from service.storage import store
from service.storage.transactions import Transactions
from service.web.app import create_app
from service.web.keys import TIMERS
from tests.helpers.client import bearer, post_event
from tests.helpers.events import completed_event
from tests.helpers.prometheus import sample
from tests.support import TOKEN, FakeClock, quick_settings

HTTP = "aftercare_http_request_duration_seconds"
PATIENT_ROUTE = "/v1/clinics/{clinic_id}/patients/{patient_id}/messages"


@pytest.fixture
async def client(db_path: Path, aiohttp_client: AiohttpClient) -> Any:
    return await aiohttp_client(create_app(quick_settings(f"sqlite+aiosqlite:///{db_path}")))


async def scrape(client: Any) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    return str(await response.text())


def total(text: str, name: str) -> float:
    """The sum of every sample of `name`, whatever its labels."""
    return sum(float(m[1]) for m in re.finditer(rf"^{name}(?:\{{.*\}})? (\S+)$", text, re.M))


class TestCollectors:
    async def test_a_scrape_has_process_and_python_series_and_no_created(self, client: Any) -> None:
        """The process, platform and GC collectors report in the app's registry; no counter
        or histogram doubles itself with a `_created` series."""
        await client.get("/healthz")
        text = await scrape(client)
        assert (sample(text, "process_resident_memory_bytes") or 0) > 0
        assert sample(text, "process_cpu_seconds_total") is not None
        assert sample(text, "python_gc_objects_collected_total", generation="0") is not None
        assert re.search(r'^python_info\{.*implementation="CPython".*\} 1\.0$', text, re.M)
        assert "_created" not in text


class TestHttpRequests:
    async def test_requests_are_counted_under_their_route_and_status(self, client: Any) -> None:
        """A patient's path is counted under its canonical route with the status answered (200,
        401, 422, and 404 for a patient not known), a path no route matches under `unmatched`;
        the count rises by exactly the requests made."""
        assert (
            await post_event(client, completed_event(treatment={"protocol": "quick"}))
        ).status == 202  # patient pt_77 is known
        before = total(await scrape(client), f"{HTTP}_count")
        path = "/v1/clinics/glow/patients/{}/messages"
        statuses = [
            (await client.get(path.format("pt_77"), headers=bearer(TOKEN))).status,
            (await client.get(path.format("pt_77"))).status,
            (await client.get(path.format("pt_77") + "?limit=lots", headers=bearer(TOKEN))).status,
            (await client.get(path.format("pt_88"), headers=bearer(TOKEN))).status,
            (await client.get("/v1/clinics/glow/patients/pt_77/nothing")).status,
        ]
        assert statuses == [200, 401, 422, 404, 404]
        text = await scrape(client)
        for status in ("200", "401", "422", "404"):
            assert (
                sample(text, f"{HTTP}_count", route=PATIENT_ROUTE, method="GET", status=status)
                == 1.0
            )
        assert sample(text, f"{HTTP}_count", route="unmatched", method="GET", status="404") == 1.0
        assert (
            sample(text, f"{HTTP}_count", route="/metrics", method="GET", status="200") == 1.0
        )  # the first scrape; this one counts after it
        assert total(text, f"{HTTP}_count") == before + len(statuses) + 1
        assert "pt_77" not in text and "pt_88" not in text  # never the raw path

    async def test_a_refused_event_counts_with_the_status_the_client_got(self, client: Any) -> None:
        """A signed event that fails the schema is 422 at the client and in the series; an
        unknown method on a known path is 405, `unmatched`."""
        refused = await post_event(client, completed_event(type="treatment.exploded"))
        assert refused.status == 422
        assert (await client.put("/healthz")).status == 405
        text = await scrape(client)
        assert (
            sample(
                text,
                f"{HTTP}_count",
                route="/v1/clinics/{clinic_id}/events",
                method="POST",
                status="422",
            )
            == 1.0
        )
        assert sample(text, f"{HTTP}_count", route="unmatched", method="PUT", status="405") == 1.0
        assert (
            sample(
                text,
                f"{HTTP}_sum",
                route="/v1/clinics/{clinic_id}/events",
                method="POST",
                status="422",
            )
            or 0
        ) > 0


class TestStoredGauges:
    async def test_oldest_overdue_is_the_age_of_the_oldest_scheduled_message_past_due(
        self, database: str, aiohttp_client: AiohttpClient
    ) -> None:
        """Ready and nothing overdue while healthy; with the scheduler stopped, a message
        planned for 1 s after the treatment is 89 s overdue 90 s later, and not ready."""
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        client = await aiohttp_client(create_app(quick_settings(database), clock=clock))
        text = await scrape(client)
        assert sample(text, "aftercare_ready") == 1.0
        assert sample(text, "aftercare_oldest_overdue_seconds") == 0.0
        await client.app[TIMERS].stop(timeout=5)  # nothing sends from here on
        event = completed_event(
            treatment={"protocol": "quick", "completed_at": clock.now().isoformat()},
            patient={"timezone": "UTC"},
        )
        assert (await post_event(client, event)).status == 202
        text = await counted(client, scheduled=1.0)
        assert sample(text, "aftercare_oldest_overdue_seconds") == 0.0  # due in 1 s
        assert sample(text, "aftercare_ready") == 0.0
        clock.advance(timedelta(seconds=90))
        text = await counted(client, scheduled=1.0)
        assert sample(text, "aftercare_oldest_overdue_seconds") == 89.0


async def counted(client: Any, *, scheduled: float) -> str:
    """A scrape once the database has been counted again (a recent count is reused)."""
    deadline = asyncio.get_running_loop().time() + 10
    while (
        sample(text := await scrape(client), "aftercare_messages", status="scheduled") != scheduled
    ):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    return text


class TestOldestOverdueIndex:
    async def test_the_oldest_scheduled_due_at_is_read_from_its_index(self, database: str) -> None:
        """The read each scrape may make is answered by the (status, due_at) index, not by a
        scan of every scheduled message (PostgreSQL told to avoid scans where it can)."""
        transactions = Transactions.open(database)

        def explain(s: Session) -> str:
            conn = s.connection()
            sql = str(
                store.OLDEST_SCHEDULED.compile(
                    dialect=conn.dialect, compile_kwargs={"literal_binds": True}
                )
            )
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                return " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN " + sql))
            return " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))

        try:
            plan = await transactions.read(explain)
        finally:
            await transactions.close()
        assert "ix_message_status_due" in plan, plan
