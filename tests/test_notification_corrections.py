"""Contract §11: a message that a correction moves past its expiry is notified `message.expired`,
as one found past it at claim time is (`test_notification_emission`).

`treatment.updated` (a `completed_at` a day earlier) and `patient.updated` (a time zone in
which the reminder's time has long passed) end scheduled messages `expired`; a clinic that
listens hears of each, in the event's transaction; one that does not is written nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from service.storage.outbox import Notification
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.helpers.client import post_completed, post_event, treatment_messages
from tests.helpers.events import patient_updated_event
from tests.helpers.series import treatment_updated_event
from tests.support import SECRET, FakeClock, glow_in_utc, make_settings

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
HOOK = {"url": "http://127.0.0.1:9/hooks", "secrets": [SECRET]}


async def started(make_client: Any, database: str, clock: FakeClock, **hook: Any) -> AppClient:
    clinic = glow_in_utc(notifications=hook) if hook else glow_in_utc()
    clinic["timezone"] = "America/Los_Angeles"
    settings = make_settings(database, clinics={"glow": clinic})
    client: AppClient = await make_client(settings, clock=clock)
    return client


async def expired_notices(client: AppClient) -> list[dict[str, Any]]:
    rows = await client.app[TRANSACTIONS].read(lambda s: s.exec(select(Notification)).all())
    bodies = [json.loads(r.body) for r in rows]
    return [b for b in bodies if b["type"] == "message.expired"]


async def accepted(client: AppClient, body: dict[str, Any]) -> None:
    response = await post_event(client, body)
    assert response.status in (200, 202), await response.text()


async def test_a_completed_at_corrected_a_day_earlier_notifies_the_expired_message(
    make_client: Any, database: str
) -> None:
    client = await started(make_client, database, FakeClock(NOW), **HOOK)
    await post_completed(client, {"id": "tr_1", "completed_at": NOW.isoformat()})
    await accepted(client, treatment_updated_event("tr_1", completed_at=NOW - timedelta(days=1)))
    expired = [m for m in (await treatment_messages(client)).values() if m["status"] == "expired"]
    notified = await expired_notices(client)
    assert [n["data"]["message"]["id"] for n in notified] == [m["id"] for m in expired] != []
    assert notified[0]["data"]["message"]["reason"] == "its time had passed after the correction"


async def test_a_time_long_past_in_a_new_zone_notifies_the_expired_message(
    make_client: Any, database: str
) -> None:
    """A day after the treatment (07:00 in Los Angeles), the patient moves to Berlin: the
    morning's serum reminder would have been due hours ago there. (`tonight`, expired when the
    late event arrived, is in the event's answer and notified by nothing.)"""
    client = await started(make_client, database, FakeClock(NOW + timedelta(hours=24)), **HOOK)
    await post_completed(client, {"id": "tr_1", "completed_at": NOW.isoformat()})
    await accepted(client, patient_updated_event(timezone="Europe/Berlin"))
    moved = [
        m["id"]
        for m in (await treatment_messages(client)).values()
        if m["reason"] == "its time had passed in the patient's new time zone"
    ]
    notified = await expired_notices(client)
    assert [n["data"]["message"]["id"] for n in notified] == moved != []
    assert notified[0]["data"]["message"]["status"] == "expired"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_clinic_that_does_not_listen_is_written_nothing(
    make_client: Any, database: str
) -> None:
    client = await started(make_client, database, FakeClock(NOW))
    await post_completed(client, {"id": "tr_1", "completed_at": NOW.isoformat()})
    await accepted(client, treatment_updated_event("tr_1", completed_at=NOW - timedelta(days=1)))
    statuses = [m["status"] for m in (await treatment_messages(client)).values()]
    assert "expired" in statuses
    assert await expired_notices(client) == []
