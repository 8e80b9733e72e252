"""Two replicas storing the same treatment at once (PostgreSQL): the batch that loses the race
goes one event at a time, through the same store function and with the plans already made, and
ends in one plan.

The race is forced, not hoped for: another replica's transaction has inserted the treatment
and not committed, so this replica's batch waits on the unique index until it does.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from service.clock import SystemClock
from service.intake.envelope import Envelope
from service.intake.ingest import Ingest
from service.intake.payloads import TreatmentCompleted, parse_event
from service.planning.protocols import PlannedMessage
from service.storage.database import create_engine
from service.storage.transactions import Transactions
from tests.helpers.events import completed_event, encode
from tests.support import make_settings

WAITING = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")


async def _until_blocked(engine: AsyncEngine) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if (await conn.execute(WAITING)).scalar():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the batch never waited on the other replica's insert")


async def plans_and_events(engine: AsyncEngine) -> tuple[dict[str, int], dict[str, int]]:
    """How many messages each treatment (by its external id) has, and each event's answer."""
    async with engine.connect() as conn:
        plans: dict[str, int] = dict(
            (
                await conn.execute(
                    sa.text(
                        "SELECT t.external_id, count(m.id) FROM treatment t JOIN message m "
                        "ON m.treatment_id = t.id GROUP BY t.external_id"
                    )
                )
            ).all()
        )
        events: dict[str, int] = dict(
            (await conn.execute(sa.text("SELECT webhook_id, status_code FROM event"))).all()
        )
    return plans, events


async def test_a_batch_that_loses_the_race_ends_in_one_plan_each(pg_database: str) -> None:
    settings = make_settings(pg_database)
    ours, rivals = Transactions.open(pg_database), Transactions.open(pg_database)
    theirs, watcher = create_engine(pg_database), create_engine(pg_database)
    try:
        ingest = Ingest(settings=settings, transactions=ours, clock=SystemClock())
        planned_for: list[str] = []
        plan_for = ingest.planner.plan_for

        def counted(clinic_id: str, *args: Any, **kwargs: Any) -> list[PlannedMessage]:
            planned_for.append(clinic_id)
            return plan_for(clinic_id, *args, **kwargs)

        ingest.planner.plan_for = counted  # type: ignore[method-assign]
        rival = Ingest(settings=settings, transactions=rivals, clock=SystemClock())
        raced = encode(completed_event(treatment={"id": "tr_raced"}))
        alone = encode(
            completed_event(
                treatment={"id": "tr_alone"}, patient={"id": "pt_88", "phone": "+14155550188"}
            )
        )
        event = parse_event(raced)
        assert isinstance(event, TreatmentCompleted)
        fresh = rival.intake.prepare(
            Envelope("glow", "wh_theirs", "digest", SystemClock().now()), event
        )
        async with theirs.begin() as conn:
            assert await conn.run_sync(lambda c: rival.intake.store(c, [fresh])) != [None]
            # One batch of both: it inserts the raced patient and waits for this commit.
            replies = asyncio.gather(
                ingest.handle("glow", "wh_raced", raced), ingest.handle("glow", "wh_alone", alone)
            )
            await _until_blocked(watcher)
        first, second = await replies
        await ingest.close()
        assert (first.status, second.status) == (200, 202)
        assert json.loads(first.body)["treatment"]["id"] == "tr_raced"
        plans, events = await plans_and_events(watcher)
        planned = len(json.loads(second.body)["messages"])
        assert plans == {"tr_raced": len(json.loads(first.body)["messages"]), "tr_alone": planned}
        assert events == {"wh_theirs": 202, "wh_raced": 200, "wh_alone": 202}
        # Each event planned once: the one-by-one path stores the plan the batch was given.
        assert planned_for == ["glow", "glow"]
    finally:
        for engine in (theirs, watcher):
            await engine.dispose()
        await ours.close()
        await rivals.close()
