"""`[retention]` in the running service (contract §19): the app prunes as it starts (then hourly)
and counts what it pruned by table in `/metrics`; and what a clinic's event replayed after its
stored copy was pruned really does: a treatment already planned answers 200 with the plan as
it stands, nothing planned twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, func, select

from service.config import Settings
from service.storage.models import Message
from service.storage.pruning import Pruner
from service.storage.transactions import Transactions
from service.web.keys import TRANSACTIONS
from tests.conftest import MakeClient
from tests.helpers.client import post_completed, post_event
from tests.helpers.events import completed_event
from tests.helpers.prometheus import sample
from tests.helpers.retention import LABELS, patient_world, survivors
from tests.processes import until_async
from tests.support import FakeClock, make_settings

DAY = timedelta(days=1)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_app_prunes_as_it_starts_and_counts_by_table(
    make_client: MakeClient, database: str, clock: FakeClock
) -> None:
    """A patient's story 40 days old under a 30-day policy is gone shortly after the start;
    `aftercare_retention_pruned_total` says how many rows of each table."""
    settings: Settings = make_settings(
        database, retention={"messages": "30d", "replies": "30d", "events": "30d"}
    )
    seeding = Transactions.open(database)
    await seeding.write(patient_world("old", clock.now() - 40 * DAY))
    await seeding.close()
    client = await make_client(settings, clock=clock)

    async def pruned() -> bool:
        left = await client.app[TRANSACTIONS].read(survivors)
        return left == {table: set() for table in LABELS}

    await until_async(pruned)
    text = await (await client.get("/metrics")).text()
    counted = {t: sample(text, "aftercare_retention_pruned_total", table=t) for t in LABELS}
    assert counted == {
        "patient": 1.0,
        "treatment": 1.0,
        "message": 4.0,
        "message_history": None,  # pruned with its message, counted as the message
        "provider_status": None,
        "appointment": 1.0,
        "appointment_message": None,
        "escalation": 1.0,
        "inbound": 1.0,
        "event": 1.0,
    }


def message_count(s: Session) -> int:
    return s.exec(select(func.count()).select_from(Message)).one()


async def test_an_event_replayed_after_its_copy_was_pruned_answers_with_the_plan_as_it_stands(
    client: Any, settings: Settings, clock: FakeClock
) -> None:
    """`events = 30d`: 31 days on, the webhook id is forgotten, but the treatment is not: the
    same event answers 200 (not the first 202) with the existing plan, nothing added."""
    body = completed_event(treatment={"id": "tr_1", "completed_at": clock.now().isoformat()})
    first = await post_event(client, body, clinic="glow", msg_id="wh_1")
    assert first.status == 202, await first.text()
    planned = [m["id"] for m in (await first.json())["messages"]]
    transactions = client.app[TRANSACTIONS]
    stored = await transactions.read(message_count)
    clock.advance(31 * DAY)
    job = Pruner(retention=settings.retention, transactions=transactions, clock=clock)
    assert await job.prune() == {"event": 1}
    again = await post_event(client, body, clinic="glow", msg_id="wh_1")
    assert again.status == 200
    assert [m["id"] for m in (await again.json())["messages"]] == planned
    assert await transactions.read(message_count) == stored
    other = await post_completed(client, {"id": "tr_2"}, msg_id="wh_2")  # new plans still are
    assert await transactions.read(message_count) == stored + len(other["messages"])
