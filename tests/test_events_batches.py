"""`POST /v1/clinics/{clinic_id}/events` (contract §5) in batches (issue 5): events that arrive
together are written together in a few statements, each answered and stored as if it came alone (one
patient in two events, a zone left out, a STOP, plans larger than one statement, replicas racing for
one treatment)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from service.storage.models import Message, OptOut
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.fixtures.events import client, counts, post
from tests.helpers.events import completed_event
from tests.helpers.statements import statements
from tests.support import PHONE, make_settings

__all__ = ["client"]  # the fixture, from tests/fixtures/events.py


class TestBatches:
    """Events that arrive together are written together (issue 5), each answered as if alone."""

    async def test_many_events_at_once_are_a_few_statements(self, client: AppClient) -> None:
        """Twenty new treatments posted at once are stored in a few batched transactions."""
        bodies = [
            completed_event(patient={"id": f"pt_{i}", "phone": f"+1415555{100 + i:04d}"})
            for i in range(20)
        ]
        with statements(client.app[TRANSACTIONS]) as seen:
            answers = await asyncio.gather(*(post(client, b) for b in bodies))
        assert [a.status for a in answers] == [202] * 20
        plans = [await a.json() for a in answers]
        assert [p["treatment"]["id"] for p in plans] == [
            b["data"]["treatment"]["id"] for b in bodies
        ]
        assert len({m["id"] for p in plans for m in p["messages"]}) == 20 * 6
        assert len(seen) <= 30, seen  # one at a time, it is over 200
        stored = await counts(client)
        assert (stored["Treatment"], stored["Patient"], stored["Message"]) == (20, 20, 120)
        assert stored["MessageHistory"] == 120 and stored["Event"] == 20

    async def test_a_batch_plans_as_one_event_at_a_time_would(self, client: AppClient) -> None:
        """Answers and rows are the same whether an event comes alone or with others."""
        done = {"completed_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()}
        alone = await (
            await post(
                client,
                completed_event(treatment=done, patient={"id": "pt_alone", "first_name": "Bea"}),
            )
        ).json()
        together = await asyncio.gather(
            *(
                post(
                    client,
                    completed_event(treatment=done, patient={"id": f"pt_{i}", "first_name": "Bea"}),
                )
                for i in range(5)
            )
        )
        for answer in together:
            plan = await answer.json()
            assert _shape(plan) == _shape(alone)

        def _tx5(s: Session) -> Message:
            message = (s.exec(select(Message).where(Message.id == plan["messages"][0]["id"]))).one()
            return message

        message = await client.app[TRANSACTIONS].read(_tx5)
        assert message.body.startswith("Hi Bea") and message.status == "scheduled"
        assert message.due_at == message.send_at and message.attempts == 0

    async def test_one_patient_in_two_events_at_once(self, client: AppClient) -> None:
        """Two treatments of one patient posted together: one patient row, two plans."""
        first, second = await asyncio.gather(
            post(client, completed_event(patient={"first_name": "Ana"})),
            post(client, completed_event(patient={"first_name": "Anna"})),
        )
        assert (first.status, second.status) == (202, 202)
        stored = await counts(client)
        assert (stored["Patient"], stored["Treatment"]) == (1, 2)

    async def test_stored_zone_is_kept_when_the_event_leaves_it_out(
        self, client: AppClient
    ) -> None:
        """A known patient's stored time zone and locale plan an event that gives neither."""
        await post(client, completed_event(patient={"timezone": "Europe/Berlin", "locale": "de"}))
        patient = {"timezone": None, "locale": None}
        plan = await (await post(client, completed_event(patient=patient))).json()
        serum = [m for m in plan["messages"] if m["step"] == "serum"]
        assert serum[0]["send_at"].endswith("T07:30:00Z")  # 08:30 in Berlin (CET)

        def _tx6(s: Session) -> str:
            text = (s.exec(select(Message.body).where(Message.id == serum[0]["id"]))).one()
            return text

        text = await client.app[TRANSACTIONS].read(_tx6)
        assert text.startswith("Zeit für Ihr")

    async def test_stop_suppresses_only_that_numbers_plan(self, client: AppClient) -> None:
        """In a batch, the number that said STOP gets a suppressed plan, the others do not."""

        def _tx7(s: Session) -> Any:
            s.add(OptOut(clinic_id="glow", phone=PHONE, at=datetime.now(UTC), source="test"))

        await client.app[TRANSACTIONS].write(_tx7)
        stopped, other = await asyncio.gather(
            post(client, completed_event(patient={"id": "pt_a"})),
            post(client, completed_event(patient={"id": "pt_b", "phone": "+14155550124"})),
        )
        assert {m["status"] for m in (await stopped.json())["messages"]} == {"suppressed"}
        assert {m["status"] for m in (await other.json())["messages"]} == {"scheduled"}

    async def test_plans_larger_than_one_statement_are_stored_whole(
        self, make_client: Any, database: str
    ) -> None:
        """Plans of some 2,190 messages each (more than one SQLite statement takes) store every
        message and its history."""
        step = {
            "key": "daily",
            "kind": "serum",
            "days": "0-365",
            "at": ["08:00", "10:00", "12:00", "14:00", "16:00", "20:00"],
            "text": "Serum time, {first_name}.",
        }
        big = {"big": {"title": "Big", "default_serum": "serum", "steps": [step]}}
        client = await make_client(make_settings(database, protocols=big))
        bodies = [
            completed_event(treatment={"protocol": "big"}, patient={"id": f"pt_{i}"})
            for i in range(2)
        ]
        with statements(client.app[TRANSACTIONS]) as seen:
            answers = await asyncio.gather(*(post(client, b) for b in bodies))
        assert [a.status for a in answers] == [202, 202]
        planned = sum([len((await a.json())["messages"]) for a in answers])
        assert planned > 2 * 2000
        stored = await counts(client)
        assert stored["Message"] == stored["MessageHistory"] == planned
        if database.startswith("sqlite"):  # several statements, each within SQLite's limit
            assert len([s for s in seen if s.startswith("INSERT INTO message ")]) >= 3

    async def test_replicas_racing_for_one_treatment_plan_it_once(
        self, make_client: Any, settings: Any
    ) -> None:
        """Two instances on one database given one treatment at once: one plan, one answer."""
        first, second = await make_client(settings), await make_client(settings)
        for round_ in range(5):
            body = completed_event(patient={"id": f"pt_{round_}"})
            answers = await asyncio.gather(post(first, body), post(second, body))
            assert sorted(a.status for a in answers) == [200, 202]
            plans = [await a.json() for a in answers]
            assert plans[0]["messages"] == plans[1]["messages"]
        stored = await counts(first)
        assert (stored["Treatment"], stored["Message"]) == (5, 30)


def _shape(plan: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    return [(m["step"], m["send_at"], m["status"], m["reason"]) for m in plan["messages"]]
