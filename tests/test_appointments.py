"""Appointments of a series (contract §13): booked, rescheduled, cancelled; signed, idempotent.

Signed events through the real app, on SQLite then PostgreSQL. The clock stands at
2026-11-25 15:00 UTC, when session 1 of 3 of `tr_1` completed (07:00 in Los Angeles); the
protocol's rebook step nudges four weeks later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from service.storage.appointments import Appointment, AppointmentMessage
from service.storage.models import Event
from service.web.keys import TRANSACTIONS
from tests.conftest import AppClient
from tests.helpers.client import bearer, post_completed, post_event
from tests.helpers.events import patient_updated_event
from tests.helpers.series import (
    appointment_cancelled_event,
    booked_event,
    rescheduled_event,
)
from tests.support import OTHER_SECRET, OTHER_TOKEN, TOKEN, FakeClock

COMPLETED = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
STARTS = datetime(2026, 12, 16, 18, 0, tzinfo=UTC)  # session 2: 10:00 in Los Angeles


async def complete(client: AppClient, treatment_id: str = "tr_1", **treatment: Any) -> Any:
    """Session 1 of 3 completed at COMPLETED for pt_77; the answer's body."""
    treatment = {"id": treatment_id, "completed_at": COMPLETED.isoformat(), **treatment}
    return await post_completed(client, treatment)


async def send(client: AppClient, body: dict[str, Any], status: int = 202, **kw: Any) -> Any:
    response = await post_event(client, body, **kw)
    assert response.status == status, await response.text()
    return await response.json()


async def appointment(client: AppClient, appointment_id: str = "ap_2") -> Any:
    url = f"/v1/clinics/glow/appointments/{appointment_id}"
    response = await client.get(url, headers=bearer(TOKEN))
    assert response.status == 200, await response.text()
    return await response.json()


async def rebooks(client: AppClient) -> list[dict[str, Any]]:
    """pt_77's rebook messages, as the read API lists them, oldest first."""
    url = "/v1/clinics/glow/patients/pt_77/messages"
    found = await (await client.get(url, headers=bearer(TOKEN))).json()
    return sorted(
        (m for m in found["messages"] if m["kind"] == "rebook"), key=lambda m: m["send_at"]
    )


async def count(client: AppClient, table: Any) -> int:
    """How many rows `table` holds, read through the app's transactions."""
    query = select(sa.func.count()).select_from(table)
    return await client.app[TRANSACTIONS].read(lambda s: int(s.exec(query).one()))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TestBooked:
    async def test_the_scheduled_rebook_nudge_is_cancelled(self, client: AppClient) -> None:
        """Booking the next session cancels the nudge to book it, with the reason."""
        await complete(client)
        [nudge] = await rebooks(client)
        assert nudge["status"] == "scheduled"
        answer = await send(client, booked_event("ap_2", STARTS))
        assert answer["type"] == "appointment.booked"
        assert answer["appointment"] == {
            "id": "ap_2",
            "patient_id": "pt_77",
            "treatment_id": "tr_1",
            "protocol": "mn",
            "session_number": 2,
            "starts_at": "2026-12-16T18:00:00Z",
            "state": "booked",
            "cancelled_at": None,
        }
        assert [(m["id"], m["status"], m["reason"]) for m in answer["messages"]] == [
            (nudge["id"], "cancelled", "next session booked")
        ]
        [after] = await rebooks(client)
        assert after["history"][-1]["detail"] == "next session booked (appointment.booked)"

    async def test_an_unknown_patient_is_422_and_stores_nothing(self, client: AppClient) -> None:
        """A patient the clinic never reported cannot book: 422 naming the field."""
        await complete(client)
        answer = await send(client, booked_event("ap_2", STARTS, patient_id="pt_nobody"), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.patient.id"]
        assert await count(client, Appointment) == 0
        assert await count(client, Event) == 1  # the treatment's
        assert [m["status"] for m in await rebooks(client)] == ["scheduled"]

    async def test_another_clinics_patient_is_unknown(self, client: AppClient) -> None:
        """Clinic `other` knows no pt_77 of glow's."""
        await complete(client)
        answer = await send(
            client, booked_event("ap_2", STARTS), 422, clinic="other", secret=OTHER_SECRET
        )
        assert [e["field"] for e in answer["errors"]] == ["data.patient.id"]
        assert [m["status"] for m in await rebooks(client)] == ["scheduled"]

    async def test_an_unknown_protocol_is_422_and_stores_nothing(self, client: AppClient) -> None:
        await complete(client)
        body = booked_event("ap_2", STARTS, protocol="nope")
        answer = await send(client, body, 422)
        assert [e["field"] for e in answer["errors"]] == ["data.appointment.protocol"]
        assert await count(client, Appointment) == 0
        assert [m["status"] for m in await rebooks(client)] == ["scheduled"]

    async def test_a_malformed_booking_is_422_naming_each_field(self, client: AppClient) -> None:
        await complete(client)
        body = booked_event("ap 2", STARTS, session_number=0)
        body["data"]["appointment"]["starts_at"] = "2026-12-16T18:00:00"  # no zone
        answer = await send(client, body, 422)
        assert sorted(e["field"] for e in answer["errors"]) == [
            "data.appointment.id",
            "data.appointment.session_number",
            "data.appointment.starts_at",
        ]
        assert await count(client, Appointment) == 0

    async def test_an_appointment_in_year_1_is_422_not_a_500(self, client: AppClient) -> None:
        """Its prep, days before in Los Angeles, fell before datetime's first day: a 500."""
        await complete(client)
        answer = await send(client, booked_event("ap_2", datetime(1, 1, 1, 0, 1, tzinfo=UTC)), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.appointment.starts_at"]
        assert await count(client, Appointment) == 0

    async def test_a_replay_answers_the_first_answer(self, client: AppClient) -> None:
        """Same webhook id, same body: 200 with the first answer; other body: 409."""
        await complete(client)
        body = booked_event("ap_2", STARTS)
        first = await send(client, body, msg_id="msg_book")
        assert await send(client, body, 200, msg_id="msg_book") == first
        other = booked_event("ap_3", STARTS)
        await send(client, other, 409, msg_id="msg_book")
        assert await count(client, Appointment) == 1

    async def test_booked_again_the_same_is_200_as_it_stands(self, client: AppClient) -> None:
        """The same appointment under a new webhook id: 200, nothing doubled."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        again = await send(client, booked_event("ap_2", STARTS), 200)
        assert again["appointment"]["id"] == "ap_2"
        assert await count(client, Appointment) == 1

    async def test_booked_again_otherwise_is_409(self, client: AppClient) -> None:
        """Another time under the same id is a conflict: a move is appointment.rescheduled."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, booked_event("ap_2", STARTS + timedelta(days=1)), 409)
        assert (await appointment(client))["appointment"]["starts_at"] == "2026-12-16T18:00:00Z"

    async def test_the_protocol_and_session_are_the_latest_treatments(
        self, client: AppClient, clock: FakeClock
    ) -> None:
        """Without a protocol or session number, the patient's latest treatment's protocol
        and its next session."""
        await complete(client, "tr_1")
        clock.advance(timedelta(days=21))
        await complete(client, "tr_2", session_number=2, completed_at=clock.now().isoformat())
        answer = await send(client, booked_event("ap_3", STARTS + timedelta(days=21)))
        assert answer["appointment"]["treatment_id"] == "tr_2"
        assert answer["appointment"]["session_number"] == 3


class TestCancelled:
    async def test_the_nudge_is_planned_again_from_the_cancellation(
        self, client: AppClient, clock: FakeClock
    ) -> None:
        """Sessions to come and nothing booked: the rebook step again, four weeks on."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        clock.advance(timedelta(days=3, hours=2))  # 09:00 in Los Angeles, out of quiet hours
        answer = await send(client, appointment_cancelled_event("ap_2"))
        assert answer["appointment"]["state"] == "cancelled"
        assert answer["appointment"]["cancelled_at"] == "2026-11-28T17:00:00Z"
        [old, new] = await rebooks(client)
        assert (old["status"], old["reason"]) == ("cancelled", "next session booked")
        assert new["status"] == "scheduled"
        assert at(new["send_at"]) == clock.now() + timedelta(weeks=4)
        assert new["treatment_id"] == "tr_1"
        assert [m["id"] for m in answer["messages"]] == [new["id"]]
        shown = await appointment(client)
        assert [m["id"] for m in shown["messages"]] == [new["id"]]

    async def test_no_nudge_when_the_series_is_complete(self, client: AppClient) -> None:
        """The last session of the series: no nudge to plan."""
        await complete(client, session_number=3)
        await send(client, booked_event("ap_x", STARTS, session_number=4))
        await send(client, appointment_cancelled_event("ap_x"))
        assert await rebooks(client) == []

    async def test_no_nudge_while_another_session_is_booked(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, booked_event("ap_2b", STARTS + timedelta(days=7)))
        await send(client, appointment_cancelled_event("ap_2"))
        assert [m["status"] for m in await rebooks(client)] == ["cancelled"]

    async def test_cancelling_twice_changes_nothing_more(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, appointment_cancelled_event("ap_2"))
        again = await send(client, appointment_cancelled_event("ap_2"))
        assert again["appointment"]["state"] == "cancelled"
        assert len(await rebooks(client)) == 2
        assert await count(client, AppointmentMessage) == 1

    async def test_an_unknown_appointment_is_422(self, client: AppClient) -> None:
        await complete(client)
        answer = await send(client, appointment_cancelled_event("ap_none"), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.appointment.id"]
        assert await count(client, Event) == 1

    async def test_the_new_nudge_follows_a_new_time_zone(
        self, client: AppClient, clock: FakeClock
    ) -> None:
        """A nudge planned from a cancellation is the appointment's: a new time zone re-plans
        it from the cancellation (not "not in the plan" of the treatment)."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        clock.advance(timedelta(days=1))
        await send(client, appointment_cancelled_event("ap_2"))
        await send(client, patient_updated_event(timezone="Europe/Berlin"))
        [_, new] = await rebooks(client)
        assert (new["status"], new["reason"]) == ("scheduled", None), new["history"]
        # 15:00 UTC is 16:00 in Berlin: out of its quiet hours, four weeks on exactly.
        assert at(new["send_at"]) == clock.now() + timedelta(weeks=4)


class TestRescheduled:
    async def test_an_unknown_appointment_is_422(self, client: AppClient) -> None:
        await complete(client)
        answer = await send(client, rescheduled_event("ap_none", STARTS), 422)
        assert [e["field"] for e in answer["errors"]] == ["data.appointment.id"]

    async def test_a_cancelled_appointment_cannot_move(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, appointment_cancelled_event("ap_2"))
        await send(client, rescheduled_event("ap_2", STARTS + timedelta(days=1)), 409)
        assert (await appointment(client))["appointment"]["starts_at"] == "2026-12-16T18:00:00Z"

    async def test_the_new_time_is_kept(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        moved = await send(client, rescheduled_event("ap_2", STARTS + timedelta(days=2)))
        assert moved["appointment"]["starts_at"] == "2026-12-18T18:00:00Z"
        assert (await appointment(client))["appointment"]["starts_at"] == "2026-12-18T18:00:00Z"


class TestReadApi:
    async def test_another_clinics_token_is_403_and_unknown_404(self, client: AppClient) -> None:
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        url = "/v1/clinics/glow/appointments/"
        assert (await client.get(url + "ap_2", headers=bearer(OTHER_TOKEN))).status == 403
        assert (await client.get(url + "ap_9", headers=bearer(TOKEN))).status == 404
        assert (await client.get(url + "ap_2")).status == 401

    async def test_its_messages_are_the_series_treatments_too(self, client: AppClient) -> None:
        """A message an appointment planned is linked to it once, and listed with the
        treatment its series comes from."""
        await complete(client)
        await send(client, booked_event("ap_2", STARTS))
        await send(client, appointment_cancelled_event("ap_2"))
        [linked] = (await appointment(client))["messages"]
        assert await count(client, AppointmentMessage) == 1
        url = "/v1/clinics/glow/treatments/tr_1"
        found = await (await client.get(url, headers=bearer(TOKEN))).json()
        assert linked["id"] in [m["id"] for m in found["messages"]]
        assert linked["seq"] == 1  # after the treatment's own nudge, seq 0
