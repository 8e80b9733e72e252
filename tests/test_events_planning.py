"""`POST /v1/clinics/{clinic_id}/events` (SPEC §5): verification, planning, idempotency."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from service.storage.models import Event, Message, MessageHistory, OptOut, Patient, Treatment
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.statements import statements
from tests.support import OLD_SECRET, OTHER_SECRET, PHONE, SECRET, FakeClock, make_settings

URL = "/v1/clinics/glow/events"


async def post(client: AppClient, body: dict[str, Any] | bytes, **sign: Any) -> Any:
    raw = body if isinstance(body, bytes) else encode(body)
    return await client.post(URL, data=raw, headers=signed(raw, **sign))


async def counts(client: AppClient) -> dict[str, int]:
    """Rows in every table the service writes."""
    found = {}

    def _tx(s: Session) -> Any:
        for table in (Event, Patient, Treatment, Message, MessageHistory, OptOut):
            query = sa.select(sa.func.count()).select_from(table)
            found[table.__name__] = s.exec(query).one()[0]

    await client.app[TRANSACTIONS].read(_tx)
    return found


@pytest.fixture
async def client(make_client: Any, settings: Any) -> AppClient:
    return await make_client(settings)


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

        def _tx2(s: Session) -> Any:
            rows = s.exec(sa.select(Message.phone, Message.locale, Message.body)).all()
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
        import asyncio

        raw = encode(completed_event())
        answers = await asyncio.gather(
            *[client.post(URL, data=raw, headers=signed(raw, msg_id="msg_race")) for _ in range(4)]
        )
        assert sorted(a.status for a in answers) == [200, 200, 200, 202]
        assert (await counts(client))["Treatment"] == 1


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

        def _tx5(s: Session) -> Any:
            message = (
                s.exec(sa.select(Message).where(Message.id == plan["messages"][0]["id"]))
            ).one()[0]
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

        def _tx6(s: Session) -> Any:
            texts = (s.exec(sa.select(Message.body).where(Message.id == serum[0]["id"]))).one()
            return texts

        texts = await client.app[TRANSACTIONS].read(_tx6)
        assert texts[0].startswith("Zeit für Ihr")

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


class TestSignature:
    @pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    async def test_missing_header_is_401(self, client: AppClient, drop: str) -> None:
        """An event without one of the three signature headers is refused."""
        raw = encode(completed_event())
        headers = signed(raw)
        del headers[drop]
        response = await client.post(URL, data=raw, headers=headers)
        await assert_refused(client, response, 401)

    @pytest.mark.parametrize("signature", ["garbage", "v1,not-base64!!", "v1", "v2,abc", ""])
    async def test_malformed_signature_is_401(self, client: AppClient, signature: str) -> None:
        """A malformed signature header is refused, never a 500."""
        raw = encode(completed_event())
        headers = {**signed(raw), "webhook-signature": signature}
        await assert_refused(client, await client.post(URL, data=raw, headers=headers), 401)

    async def test_wrong_secret_is_401(self, client: AppClient) -> None:
        """An event signed with another clinic's secret is refused."""
        await assert_refused(
            client, await post(client, completed_event(), secret=OTHER_SECRET), 401
        )

    @pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
    async def test_stale_or_future_timestamp_is_401(
        self, client: AppClient, skew: timedelta
    ) -> None:
        """A timestamp more than five minutes off is refused."""
        response = await post(client, completed_event(), at=datetime.now(UTC) + skew)
        await assert_refused(client, response, 401)

    async def test_tampered_body_is_401(self, client: AppClient) -> None:
        """A body changed after signing is refused."""
        raw = encode(completed_event())
        headers = signed(raw)
        await assert_refused(client, await client.post(URL, data=raw + b" ", headers=headers), 401)

    async def test_rotated_secret_is_accepted(self, client: AppClient) -> None:
        """Any of the clinic's secrets verifies, so secrets rotate without downtime."""
        assert (await post(client, completed_event(), secret=OLD_SECRET)).status == 202
        assert (await post(client, completed_event(), secret=SECRET)).status == 202

    async def test_unknown_clinic_is_401(self, client: AppClient) -> None:
        """An event for a clinic this service does not know is refused."""
        raw = encode(completed_event())
        response = await client.post("/v1/clinics/nobody/events", data=raw, headers=signed(raw))
        await assert_refused(client, response, 401)

    async def test_error_body_echoes_no_secret(self, client: AppClient) -> None:
        """A refusal says nothing of the secrets."""
        response = await post(client, completed_event(), secret=OTHER_SECRET)
        text = await response.text()
        assert SECRET not in text and OTHER_SECRET not in text and "whsec" not in text


class TestBadInput:
    async def test_wrong_content_type_is_415(self, client: AppClient) -> None:
        """An event not sent as application/json is refused."""
        raw = encode(completed_event())
        headers = {**signed(raw), "content-type": "text/plain"}
        await assert_refused(client, await client.post(URL, data=raw, headers=headers), 415)

    async def test_body_over_the_limit_is_413(self, client: AppClient) -> None:
        """A body over max_body_bytes is refused before it is read."""
        body = completed_event(padding="x" * 70_000)
        await assert_refused(client, await post(client, body), 413)

    async def test_not_json_is_422(self, client: AppClient) -> None:
        """A signed body that is not JSON is a 422 naming the body."""
        response = await post(client, b"{not json")
        problem = await assert_refused(client, response, 422)
        assert problem["errors"][0]["field"] == "body"

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"type": "treatment.started"}, "type"),
            ({"treatment": {"id": ""}}, "data.treatment.id"),
            ({"treatment": {"completed_at": "yesterday"}}, "data.treatment.completed_at"),
            ({"treatment": {"completed_at": "2026-11-25T14:30:00"}}, "data.treatment.completed_at"),
            ({"treatment": {"protocol": "botox"}}, "data.treatment.protocol"),
            ({"treatment": {"session_number": 4, "sessions_planned": 3}}, "data.treatment"),
            ({"patient": {"phone": "4155550123"}}, "data.patient.phone"),
            ({"patient": {"phone": "+1415555"}}, "data.patient.phone"),
            ({"patient": {"phone": "+18005550123"}}, "data.patient.phone"),
            ({"patient": {"phone": "+493012345678"}}, "data.patient.phone"),
            ({"patient": {"timezone": "Mars/Olympus"}}, "data.patient.timezone"),
            ({"patient": {"sms_consent": "yes"}}, "data.patient.sms_consent"),
            ({"patient": {"first_name": None}}, "data.patient.first_name"),
        ],
    )
    async def test_wrong_field_is_422_naming_it(
        self, client: AppClient, change: dict[str, Any], field: str
    ) -> None:
        """Each wrong field is a 422 naming the field, and nothing is stored."""
        body = completed_event(**change)
        problem = await assert_refused(client, await post(client, body), 422)
        assert field in [e["field"] for e in problem["errors"]], problem

    async def test_missing_fields_are_all_listed(self, client: AppClient) -> None:
        """Every missing field is listed, not only the first."""
        body = completed_event()
        del body["data"]["patient"]["phone"]
        del body["data"]["treatment"]["protocol"]
        problem = await assert_refused(client, await post(client, body), 422)
        fields = {e["field"] for e in problem["errors"]}
        assert {"data.patient.phone", "data.treatment.protocol"} <= fields

    async def test_completed_in_the_future_is_422(self, client: AppClient) -> None:
        """A treatment completed in the future cannot be planned."""
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        body = completed_event(treatment={"completed_at": later})
        problem = await assert_refused(client, await post(client, body), 422)
        assert problem["errors"][0]["field"] == "data.treatment.completed_at"

    @pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"text"', b"{}"])
    async def test_json_that_is_no_event_is_422(self, client: AppClient, raw: bytes) -> None:
        """JSON that is not an event object is refused and nothing is stored."""
        await assert_refused(client, await post(client, raw), 422)

    async def test_body_that_is_not_utf8_is_401(self, client: AppClient) -> None:
        """Bytes that cannot carry a valid signature are refused, never a 500."""
        headers = {
            "content-type": "application/json",
            "webhook-id": "x",
            "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
            "webhook-signature": "v1,AAAA",
        }
        await assert_refused(client, await client.post(URL, data=b"\xff\xfe", headers=headers), 401)


async def assert_refused(client: AppClient, response: Any, status: int) -> dict[str, Any]:
    """The answer is problem+json with `status`, and nothing was stored."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    problem = json.loads(await response.text())
    assert problem["status"] == status
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert set((await counts(client)).values()) == {0}
    return problem
