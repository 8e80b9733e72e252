"""`POST /v1/clinics/{clinic_id}/events` (contract §5), accepted: a signed event answers 202 with
its plan, stored before the answer, in UTC, in the patient's language and without rebooking after
the last session; a plan without consent or for an opted-out number is recorded suppressed; quiet
hours move a message to their end; and a replayed or raced event plans once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from service.storage.models import Message, OptOut
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.fixtures.events import URL, client, counts, post
from tests.helpers.events import completed_event, encode, signed
from tests.support import PHONE, FakeClock

__all__ = ["client"]  # the fixture, from tests/fixtures/events.py


class TestAcceptedEvent:
    async def test_signed_event_answers_202_with_the_plan(self, client: AppClient) -> None:
        """A signed treatment.completed answers 202 with event id, treatment and messages."""
        body = completed_event()
        raw = encode(body)
        headers = signed(raw, msg_id="msg_first")
        response = await client.post(URL, data=raw, headers=headers)
        assert response.status == 202
        plan = await response.json()
        assert plan["event_id"] == "msg_first"
        assert plan["type"] == "treatment.completed"
        assert plan["treatment"]["id"] == body["data"]["treatment"]["id"]
        steps = [m["step"] for m in plan["messages"]]
        assert steps.count("tonight") == 1 and steps.count("serum") == 4
        assert steps.count("next") == 1
        assert all(m["status"] == "scheduled" for m in plan["messages"])

    async def test_every_message_is_stored_before_the_answer(self, client: AppClient) -> None:
        """Each planned message is a row with its send_at and a first history entry."""
        plan = await (await post(client, completed_event())).json()
        stored = await counts(client)
        assert stored["Message"] == len(plan["messages"]) == stored["MessageHistory"]
        assert stored["Event"] == stored["Treatment"] == stored["Patient"] == 1

    async def test_send_at_is_utc_iso_8601(self, make_client: Any, settings: Any) -> None:
        """send_at is the planned instant, ISO 8601 in UTC."""
        completed = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 09:00 PST
        client = await make_client(settings, clock=FakeClock(completed))
        body = completed_event(treatment={"completed_at": completed.isoformat()})
        plan = await (await post(client, body)).json()
        tonight = next(m for m in plan["messages"] if m["step"] == "tonight")
        assert tonight["send_at"] == "2026-11-25T19:00:00Z"
        serum = [m["send_at"] for m in plan["messages"] if m["step"] == "serum"]
        assert serum[:2] == ["2026-11-26T16:30:00Z", "2026-11-27T04:30:00Z"]  # 08:30, 20:30 PST

    async def test_last_session_plans_no_rebooking(self, client: AppClient) -> None:
        """The rebook step is planned only while more sessions are planned."""
        body = completed_event(treatment={"session_number": 3, "sessions_planned": 3})
        plan = await (await post(client, body)).json()
        assert "next" not in {m["step"] for m in plan["messages"]}

    async def test_texts_use_the_patients_locale(self, client: AppClient) -> None:
        """A patient's locale picks the text; an unknown one falls back to the clinic's."""
        await post(client, completed_event(patient={"id": "p-de", "locale": "de-AT"}))
        await post(
            client, completed_event(patient={"id": "p-fr", "locale": "fr", "phone": "+14155550124"})
        )

        def _tx2(s: Session) -> Sequence[tuple[str, str, str]]:
            rows = s.exec(select(Message.phone, Message.locale, Message.body)).all()
            return rows

        rows = await client.app[TRANSACTIONS].read(_tx2)
        german = [b for p, loc, b in rows if p == PHONE]
        assert german and all(b.startswith(("Hallo", "Zeit", "Buchen")) for b in german)
        assert {loc for p, loc, _ in rows if p == "+14155550124"} == {"en"}


class TestSuppression:
    async def test_no_consent_records_the_plan_suppressed(self, client: AppClient) -> None:
        """Without SMS consent the plan is recorded and every message is suppressed."""
        response = await post(client, completed_event(patient={"sms_consent": False}))
        plan = await response.json()
        assert response.status == 202
        assert {m["status"] for m in plan["messages"]} == {"suppressed"}
        assert all("consent" in m["reason"] for m in plan["messages"])

    async def test_opted_out_number_records_the_plan_suppressed(self, client: AppClient) -> None:
        """A number that said STOP to the clinic gets a suppressed plan."""

        def _tx3(s: Session) -> Any:
            s.add(OptOut(clinic_id="glow", phone=PHONE, at=datetime.now(UTC), source="test"))

        await client.app[TRANSACTIONS].write(_tx3)
        plan = await (await post(client, completed_event())).json()
        assert {m["status"] for m in plan["messages"]} == {"suppressed"}
        assert all("opted out" in m["reason"] for m in plan["messages"])

    async def test_opt_out_at_another_clinic_does_not_suppress(self, client: AppClient) -> None:
        """A STOP is scoped to the clinic whose number was texted."""

        def _tx4(s: Session) -> Any:
            s.add(OptOut(clinic_id="other", phone=PHONE, at=datetime.now(UTC), source="test"))

        await client.app[TRANSACTIONS].write(_tx4)
        plan = await (await post(client, completed_event())).json()
        assert {m["status"] for m in plan["messages"]} == {"scheduled"}


class TestQuietHours:
    async def test_message_in_quiet_hours_moves_to_their_end(
        self, make_client: Any, settings: Any
    ) -> None:
        """A step falling at 22:30 local is sent at 08:00 local the next morning."""
        # 20:30 PST on 25 Nov + 2h = 22:30 PST, inside 21:00-08:00.
        completed = datetime(2026, 11, 26, 4, 30, tzinfo=UTC)
        client = await make_client(settings, clock=FakeClock(completed + timedelta(minutes=1)))
        body = completed_event(treatment={"completed_at": completed.isoformat()})
        plan = await (await post(client, body)).json()
        tonight = next(m for m in plan["messages"] if m["step"] == "tonight")
        assert tonight["send_at"] == "2026-11-26T16:00:00Z"  # 08:00 PST


class TestIdempotency:
    async def test_replay_answers_200_with_the_first_answer(self, client: AppClient) -> None:
        """The same webhook-id and body answers the first answer again, storing nothing new."""
        raw = encode(completed_event())
        headers = signed(raw, msg_id="msg_replay")
        first = await client.post(URL, data=raw, headers=headers)
        before = await counts(client)
        again = await client.post(URL, data=raw, headers=signed(raw, msg_id="msg_replay"))
        assert (first.status, again.status) == (202, 200)
        assert await again.json() == await first.json()
        assert await counts(client) == before

    async def test_same_id_with_another_body_is_409(self, client: AppClient) -> None:
        """Reusing a webhook-id for a different body is a conflict and changes nothing."""
        await post(client, completed_event(), msg_id="msg_twice")
        before = await counts(client)
        response = await post(client, completed_event(), msg_id="msg_twice")
        assert response.status == 409
        assert response.content_type == "application/problem+json"
        assert await counts(client) == before

    @pytest.mark.parametrize(
        "refused",
        [
            b"{not json",  # does not parse
            completed_event(treatment={"completed_at": "2099-01-01T00:00:00Z"}),  # not planned
        ],
    )
    async def test_reused_id_answers_409_before_the_body_is_refused(
        self, client: AppClient, refused: dict[str, Any] | bytes
    ) -> None:
        """A webhook-id reused for a body that would be a 422 is still the conflict: the
        replay check comes first, and nothing changes."""
        await post(client, completed_event(), msg_id="msg_taken")
        before = await counts(client)
        assert (await post(client, refused, msg_id="msg_taken")).status == 409
        assert (await post(client, refused, msg_id="msg_free")).status == 422
        assert await counts(client) == before

    async def test_treatment_planned_twice_keeps_one_plan(self, client: AppClient) -> None:
        """A new webhook-id for an already planned treatment answers 200 with the same plan."""
        body = completed_event()
        first = await (await post(client, body)).json()
        before = (await counts(client))["Message"]
        response = await post(client, body)
        assert response.status == 200
        second = await response.json()
        assert second["messages"] == first["messages"]
        assert (await counts(client))["Message"] == before

    async def test_concurrent_deliveries_plan_once(self, client: AppClient) -> None:
        """Two deliveries of one event racing each other end in one plan."""

        raw = encode(completed_event())
        answers = await asyncio.gather(
            *[client.post(URL, data=raw, headers=signed(raw, msg_id="msg_race")) for _ in range(4)]
        )
        assert sorted(a.status for a in answers) == [200, 200, 200, 202]
        assert (await counts(client))["Treatment"] == 1
