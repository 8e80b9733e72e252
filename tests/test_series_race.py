"""Two replicas booking the same appointment at once (PostgreSQL): the one that loses the race
on the unique (clinic, appointment id) answers as the booking that won, and nothing doubles.

The race is forced: the other replica's transaction has inserted the appointment and not
committed, so this replica's booking waits on the unique index until it does.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import sqlalchemy as sa

from service.clock import SystemClock
from service.intake.ingest import Ingest
from service.storage.database import create_engine
from service.storage.transactions import Transactions
from tests.helpers.events import completed_event, encode
from tests.helpers.series import booked_event
from tests.support import make_settings
from tests.test_ingest_race import _until_blocked

STARTS = datetime(2027, 1, 12, 18, 0, tzinfo=UTC)
RIVAL = sa.text(
    "INSERT INTO appointment (clinic_id, external_id, patient_id, treatment_id, protocol, "
    "session_number, starts_at, state, created_at, updated_at) "
    "SELECT 'glow', 'ap_raced', t.patient_id, t.id, t.protocol, 2, :starts, 'booked', now(), "
    "now() FROM treatment t WHERE t.external_id = 'tr_1'"
)


async def test_a_booking_that_loses_the_race_answers_as_it_stands(pg_database: str) -> None:
    settings = make_settings(pg_database)
    ours, theirs = Transactions.open(pg_database), create_engine(pg_database)
    try:
        ingest = Ingest(settings=settings, transactions=ours, clock=SystemClock())
        first = encode(completed_event(treatment={"id": "tr_1"}))
        planned = await ingest.handle("glow", "wh_1", first)
        assert planned.status == 202
        async with theirs.begin() as conn:
            await conn.execute(RIVAL, {"starts": STARTS})
            reply = asyncio.ensure_future(
                ingest.handle("glow", "wh_raced", encode(booked_event("ap_raced", STARTS)))
            )
            await _until_blocked(theirs)
        answer = await reply
        assert answer.status == 200, answer.body
        assert json.loads(answer.body)["appointment"]["id"] == "ap_raced"
        async with theirs.connect() as conn:
            count = (await conn.execute(sa.text("SELECT count(*) FROM appointment"))).scalar()
            events = (await conn.execute(sa.text("SELECT webhook_id FROM event"))).scalars().all()
        assert count == 1
        assert sorted(events) == ["wh_1", "wh_raced"]
        await ingest.close()
    finally:
        await ours.close()
        await theirs.dispose()
